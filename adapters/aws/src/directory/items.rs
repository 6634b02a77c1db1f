//! The directory's items: built from its records (the versioned JSON of
//! `koogallery::directory::record` in `data`), and decoded back, a record filed under another key
//! than its own IDs give being corrupt.

use aws_sdk_dynamodb::types::WriteRequest;
use koogallery::{
    StoreError,
    directory::{App, Department, DirectoryEvent, Tenant, TenantKey, User, record},
};

use super::{MAX_ITEM_BYTES, departments::SetRef, keys::*};
use crate::dynamo::{
    attr::{Item, item_bytes, json_text, key_of, n, number_attr, s, string_attr},
    keys::{DATA, INSTANCE_ID, PK, SEQ, SK},
    sdk,
};

/// A record item: the key and the record's versioned JSON in `data`, as the instance items keep
/// theirs.
pub(super) fn record_item(pk: &str, sk: String, bytes: Vec<u8>) -> Result<Item, StoreError> {
    let mut item = key_of(pk, sk);
    item.insert(DATA.to_owned(), s(json_text(bytes)?));
    Ok(item)
}

/// A tenant's locator item (module docs): its instanceId and its record, so the tenants of a
/// tenantId are one `Query`.
pub(super) fn locator_item(key: &TenantKey, tenant: &Tenant) -> Result<Item, StoreError> {
    let mut item = record_item(
        &locator_pk(&key.tenant_id),
        locator_sk(&key.instance_id),
        record::encode_tenant(tenant),
    )?;
    item.insert(INSTANCE_ID.to_owned(), s(&key.instance_id));
    Ok(item)
}

/// A locator item back: the tenant's key and record. Filed under another key than its
/// instanceId and `tenant_id` give, it is corrupt.
pub(super) fn decode_locator_item(
    tenant_id: &str,
    item: &Item,
) -> Result<(TenantKey, Tenant), StoreError> {
    let (sk, data) = parts(item, "tenant locator")?;
    let instance_id =
        string_attr(item, INSTANCE_ID).map_err(|m| corrupt(item, "tenant locator", m))?;
    let expected = locator_sk(instance_id);
    if sk != expected {
        return Err(misfiled(item, "tenant locator", &expected));
    }
    let tenant =
        record::decode_tenant(data.as_bytes()).map_err(|e| corrupt(item, "tenant locator", e))?;
    Ok((TenantKey::new(instance_id, tenant_id), tenant))
}

pub(super) fn event_item(pk: &str, event: &DirectoryEvent) -> Result<Item, StoreError> {
    let mut item = record_item(pk, event_sk(event.seq), record::encode_event(event))?;
    item.insert(SEQ.to_owned(), n(event.seq));
    Ok(item)
}

pub(super) fn seq_item(pk: &str, last_seq: u64) -> Item {
    let mut item = key_of(pk, SEQ_SK);
    item.insert(SEQ.to_owned(), n(last_seq));
    item
}

pub(super) fn orgset_item(pk: &str, generation: &str, chunks: u32) -> Item {
    let mut item = key_of(pk, ORGSET_SK);
    item.insert(GENERATION.to_owned(), s(generation));
    item.insert(CHUNKS.to_owned(), n(chunks));
    item
}

/// A `BatchWriteItem`'s put of `item`, refused up front when over DynamoDB's item size.
pub(super) fn put_request(item: Item) -> Result<WriteRequest, StoreError> {
    check_size(&item)?;
    sdk::put_request(item)
}

/// An item over DynamoDB's 400 KB is refused up front: retrying cannot help, so it is not
/// `Unavailable`. (Names and string values by their bytes; what this module writes holds nothing
/// else but small numbers.)
pub(super) fn check_size(item: &Item) -> Result<(), StoreError> {
    let bytes = item_bytes(item);
    if bytes > MAX_ITEM_BYTES {
        let sk = string_attr(item, SK).unwrap_or("?");
        return Err(StoreError::Corrupt(
            format!("directory item {sk} is {bytes} bytes, over DynamoDB's {MAX_ITEM_BYTES}")
                .into(),
        ));
    }
    Ok(())
}

/// A corrupt item, named by its key.
fn corrupt(item: &Item, what: &str, m: impl std::fmt::Display) -> StoreError {
    let pk = string_attr(item, PK).unwrap_or("?");
    let sk = string_attr(item, SK).unwrap_or("?");
    StoreError::Corrupt(format!("directory {what} item {pk}/{sk}: {m}").into())
}

/// The item's sort key and its `data`.
fn parts<'a>(item: &'a Item, what: &str) -> Result<(&'a str, &'a str), StoreError> {
    let sk = string_attr(item, SK).map_err(|m| corrupt(item, what, m))?;
    let data = string_attr(item, DATA).map_err(|m| corrupt(item, what, m))?;
    Ok((sk, data))
}

/// A record filed under another key than its own IDs give is corrupt, not misread.
fn misfiled(item: &Item, what: &str, expected: &str) -> StoreError {
    corrupt(item, what, format!("data belongs under {expected}"))
}

pub(super) fn decode_tenant_item(item: &Item) -> Result<Tenant, StoreError> {
    let (_, data) = parts(item, "tenant")?;
    record::decode_tenant(data.as_bytes()).map_err(|e| corrupt(item, "tenant", e))
}

pub(super) fn decode_app_item(item: &Item) -> Result<App, StoreError> {
    let (sk, data) = parts(item, "app")?;
    let app = record::decode_app(data.as_bytes()).map_err(|e| corrupt(item, "app", e))?;
    let expected = app_sk(&app.app_id);
    if sk != expected {
        return Err(misfiled(item, "app", &expected));
    }
    Ok(app)
}

/// A user of `app_id` (the key's app: the record's `app_id` is stored as sent).
pub(super) fn decode_user_item(item: &Item, app_id: &str) -> Result<User, StoreError> {
    let (sk, data) = parts(item, "user")?;
    let user = record::decode_user(data.as_bytes()).map_err(|e| corrupt(item, "user", e))?;
    let expected = user_sk(app_id, &user.user_name);
    if sk != expected {
        return Err(misfiled(item, "user", &expected));
    }
    Ok(user)
}

pub(super) fn decode_department_item(
    item: &Item,
    generation: &str,
) -> Result<Department, StoreError> {
    let (sk, data) = parts(item, "department")?;
    let department =
        record::decode_department(data.as_bytes()).map_err(|e| corrupt(item, "department", e))?;
    let expected = org_sk(generation, &department.org_code);
    if sk != expected {
        return Err(misfiled(item, "department", &expected));
    }
    Ok(department)
}

pub(super) fn decode_event_item(item: &Item) -> Result<DirectoryEvent, StoreError> {
    let (sk, data) = parts(item, "event")?;
    let event = record::decode_event(data.as_bytes()).map_err(|e| corrupt(item, "event", e))?;
    let expected = event_sk(event.seq);
    if sk != expected {
        return Err(misfiled(item, "event", &expected));
    }
    Ok(event)
}

pub(super) fn decode_seq_item(item: &Item) -> Result<u64, StoreError> {
    number_attr(item, SEQ).map_err(|m| corrupt(item, "seq", m))
}

pub(super) fn decode_orgset_item(item: &Item) -> Result<SetRef, StoreError> {
    let g = string_attr(item, GENERATION).map_err(|m| corrupt(item, "department set", m))?;
    if !is_generation(g) {
        return Err(corrupt(
            item,
            "department set",
            format!("generation {g:?} cannot be part of a key"),
        ));
    }
    let chunks = if item.contains_key(CHUNKS) {
        Some(number_attr::<u32>(item, CHUNKS).map_err(|m| corrupt(item, "department set", m))?)
    } else {
        None
    };
    Ok(SetRef {
        generation: g.to_owned(),
        chunks,
    })
}

/// A chunk of `generation`, which has `count` of them.
pub(super) fn decode_chunk_item(
    item: &Item,
    generation: &str,
    count: u32,
) -> Result<Vec<Department>, StoreError> {
    let (sk, data) = parts(item, "department chunk")?;
    let index = sk
        .strip_prefix(&chunk_prefix(generation))
        .and_then(|i| i.parse::<u32>().ok())
        .filter(|i| *i < count && sk == chunk_sk(generation, *i));
    if index.is_none() {
        return Err(corrupt(
            item,
            "department chunk",
            format!("not one of the {count} chunks of generation {generation}"),
        ));
    }
    record::decode_department_chunk(data.as_bytes())
        .map_err(|e| corrupt(item, "department chunk", e))
}
