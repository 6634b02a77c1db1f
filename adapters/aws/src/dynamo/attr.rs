//! Attribute values and items: the helpers every store of this table builds and reads its items
//! with.

use koogallery::failure::Detail;
use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use koogallery::StoreError;

use super::keys::{PK, SK};

pub(crate) type Item = HashMap<String, AttributeValue>;

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn string_attr<'a>(item: &'a Item, name: &str) -> Result<&'a str, String> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        Some(_) => Err(format!("attribute {name} is not a string")),
        None => Err(format!("attribute {name} is missing")),
    }
}

pub(crate) fn number_attr<T: std::str::FromStr>(item: &Item, name: &str) -> Result<T, String> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|_| format!("attribute {name} is not a valid number: {v}")),
        Some(_) => Err(format!("attribute {name} is not a number")),
        None => Err(format!("attribute {name} is missing")),
    }
}

/// The record's JSON (`koogallery::instance::record`, the versioned contract) as a string attribute.
pub(crate) fn json_text(bytes: Vec<u8>) -> Result<String, StoreError> {
    String::from_utf8(bytes)
        .map_err(|e| StoreError::Corrupt(Detail::caused_by("record is not UTF-8", e)))
}

/// The key of an item: its `pk` and `sk`.
pub(crate) fn key_of(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
}

/// The key of an item read (a keys-only query's item is just that).
pub(crate) fn key_from(item: &Item) -> Result<Item, StoreError> {
    let pk = string_attr(item, PK).map_err(|m| StoreError::Corrupt(m.into()))?;
    let sk = string_attr(item, SK).map_err(|m| StoreError::Corrupt(m.into()))?;
    Ok(key_of(pk, sk))
}

/// An item's (`pk`, `sk`), each empty if missing.
pub(crate) fn key_pair(item: &Item) -> (String, String) {
    (
        string_attr(item, PK).unwrap_or_default().to_owned(),
        string_attr(item, SK).unwrap_or_default().to_owned(),
    )
}

/// An item's size as DynamoDB counts it, near enough: attribute names plus values (strings by
/// their UTF-8 bytes, numbers by their digits, a little more than DynamoDB counts).
pub(crate) fn item_bytes(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| {
            name.len()
                + match value {
                    AttributeValue::S(v) | AttributeValue::N(v) => v.len(),
                    _ => 0,
                }
        })
        .sum()
}
