//! The item of a versioned record kept on its own (a package's usage, an instance's total): its
//! key, `version` and `data`, and the record back, checked to be filed under its owner.

use std::collections::HashMap;

use koogallery::StoreError;

use crate::dynamo::{
    attr::{Item, json_text, n, number_attr, s, string_attr},
    keys::{DATA, PK, SK, VERSION},
};

/// A versioned record stored as an item of its own.
pub(super) trait RecordItem: Sized {
    /// Names the record in errors.
    const WHAT: &'static str;
    /// Its sort key.
    const SK: &'static str;
    /// The partition key of the record's owner, and the owner's ID.
    fn owner(&self) -> (String, String);
    fn version(&self) -> u64;
    fn set_version(&mut self, version: u64);
    fn encode(&self) -> Result<Vec<u8>, StoreError>;
    fn decode(bytes: &[u8]) -> Result<Self, String>;
}

/// A versioned record's item: its key, `version` and `data` (a package's usage, a total).
pub(super) fn record_item<T: RecordItem>(record: &T) -> Result<Item, StoreError> {
    Ok(HashMap::from([
        (PK.to_owned(), s(record.owner().0)),
        (SK.to_owned(), s(T::SK)),
        (VERSION.to_owned(), n(record.version())),
        (DATA.to_owned(), s(json_text(record.encode()?)?)),
    ]))
}

/// A versioned record from its item, checked to belong to the item's partition (its owner's)
/// and given the item's `version`; `None` for a hold alone (no `data`).
pub(super) fn decode_record_item<T: RecordItem>(item: &Item) -> Result<Option<T>, StoreError> {
    let what = T::WHAT;
    let pk = string_attr(item, PK).map_err(|m| StoreError::Corrupt(m.into()))?;
    if !item.contains_key(DATA) {
        return Ok(None);
    }
    let corrupt = |m: String| StoreError::Corrupt(format!("{what} item {pk}: {m}").into());
    let data = string_attr(item, DATA).map_err(corrupt)?;
    let version: u64 = number_attr(item, VERSION).map_err(corrupt)?;
    let mut record = T::decode(data.as_bytes()).map_err(corrupt)?;
    let (owner_pk, owner) = record.owner();
    if owner_pk != pk {
        return Err(corrupt(format!("data holds {what} of {owner} instead")));
    }
    record.set_version(version);
    Ok(Some(record))
}
