//! What the usage items share: their keys, the item of a versioned record (a package's usage,
//! a total), and their size.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use koogallery::StoreError;

use crate::dynamo::{
    attr::{Item, json_text, n, number_attr, s, string_attr},
    keys::{DATA, PK, SK, VERSION},
};

pub(super) fn key_of(pk: String, sk: String) -> Item {
    HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
}

/// A versioned record's item: its key, `version` and `data` (a package's usage, a total).
pub(super) fn record_item(
    pk: String,
    sk: &str,
    version: u64,
    data: Vec<u8>,
) -> Result<Item, StoreError> {
    Ok(HashMap::from([
        (PK.to_owned(), s(pk)),
        (SK.to_owned(), s(sk)),
        (VERSION.to_owned(), n(version)),
        (DATA.to_owned(), s(json_text(data)?)),
    ]))
}

/// A versioned record from its item, checked to belong to the item's partition (`pk_of` the
/// record's owner) and given the item's `version`; `None` for a hold alone (no `data`). `what`
/// names the record in errors.
pub(super) fn decode_record_item<T>(
    item: &Item,
    what: &str,
    decode: impl FnOnce(&[u8]) -> Result<T, String>,
    pk_of: impl FnOnce(&T) -> (String, String),
    set_version: impl FnOnce(&mut T, u64),
) -> Result<Option<T>, StoreError> {
    let pk = string_attr(item, PK).map_err(StoreError::Corrupt)?;
    if !item.contains_key(DATA) {
        return Ok(None);
    }
    let corrupt = |m: String| StoreError::Corrupt(format!("{what} item {pk}: {m}"));
    let data = string_attr(item, DATA).map_err(corrupt)?;
    let version: u64 = number_attr(item, VERSION).map_err(corrupt)?;
    let mut record = decode(data.as_bytes()).map_err(corrupt)?;
    let (owner_pk, owner) = pk_of(&record);
    if owner_pk != pk {
        return Err(corrupt(format!("data holds {what} of {owner} instead")));
    }
    set_version(&mut record, version);
    Ok(Some(record))
}

/// An item's size as DynamoDB counts it, near enough: attribute names plus values (strings by
/// their UTF-8 bytes, numbers by their digits).
pub(super) fn item_bytes(item: &Item) -> u64 {
    item.iter()
        .map(|(name, value)| {
            name.len()
                + match value {
                    AttributeValue::S(v) | AttributeValue::N(v) => v.len(),
                    _ => 0,
                }
        })
        .sum::<usize>() as u64
}
