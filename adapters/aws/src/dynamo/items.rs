//! The items of the instance store: an instance, its order line, its events, a nonce and an
//! order notice, built from the domain and decoded back (the JSON in `data` is the versioned
//! record of `koogallery`).

use koogallery::failure::Detail;
use std::collections::HashMap;

use koogallery::{
    StoreError,
    instance::{Instance, InstanceEvent, record},
    order::notice::{OrderNotice, record as notice_record},
};

use super::{
    attr::{Item, json_text, n, number_attr, s, string_attr},
    keys::*,
};

/// The instance item; `instance.version` is stored as given.
pub(crate) fn instance_item(instance: &Instance) -> Result<Item, StoreError> {
    let id = &instance.instance_id;
    let mut item = HashMap::from([
        (PK.to_owned(), s(instance_pk(id))),
        (SK.to_owned(), s(INSTANCE_SK)),
        (VERSION.to_owned(), n(instance.version)),
        (
            DATA.to_owned(),
            s(json_text(record::encode_instance(instance)?)?),
        ),
        (STATE.to_owned(), s(instance.state.as_str())),
        (ORDER_ID.to_owned(), s(&instance.order_id)),
        (ORDER_LINE_ID.to_owned(), s(&instance.order_line_id)),
    ]);
    if instance.is_unsettled() {
        item.insert(UNSETTLED_SHARD.to_owned(), s(unsettled_shard(id)));
    }
    Ok(item)
}

/// Decodes an instance item; `version` comes from the item's `version` attribute.
pub(crate) fn decode_instance(item: &Item) -> Result<Instance, StoreError> {
    let pk = string_attr(item, PK).map_err(|m| StoreError::Corrupt(m.into()))?;
    let corrupt = |m: String| StoreError::Corrupt(format!("instance item {pk}: {m}").into());
    let data = string_attr(item, DATA).map_err(corrupt)?;
    let version: u64 = number_attr(item, VERSION).map_err(corrupt)?;
    let mut instance =
        record::decode_instance(data.as_bytes()).map_err(|e| corrupt(e.to_string()))?;
    if instance_id_of(pk) != Some(instance.instance_id.as_str()) {
        return Err(corrupt(format!(
            "data holds instance {} instead",
            instance.instance_id
        )));
    }
    instance.version = version;
    Ok(instance)
}

pub(crate) fn order_line_item(instance: &Instance) -> Item {
    HashMap::from([
        (
            PK.to_owned(),
            s(order_line_pk(&instance.order_id, &instance.order_line_id)),
        ),
        (SK.to_owned(), s(ORDER_LINE_SK)),
        (INSTANCE_ID.to_owned(), s(&instance.instance_id)),
        (ORDER_ID.to_owned(), s(&instance.order_id)),
        (ORDER_LINE_ID.to_owned(), s(&instance.order_line_id)),
    ])
}

/// An event item, filed under `instance_id` (the instance being written).
pub(crate) fn event_item(instance_id: &str, event: &InstanceEvent) -> Result<Item, StoreError> {
    Ok(HashMap::from([
        (PK.to_owned(), s(instance_pk(instance_id))),
        (SK.to_owned(), s(event_sk(event.seq))),
        (SEQ.to_owned(), n(event.seq)),
        (DATA.to_owned(), s(json_text(record::encode_event(event)?)?)),
    ]))
}

pub(crate) fn decode_event(item: &Item) -> Result<InstanceEvent, StoreError> {
    let pk = string_attr(item, PK).map_err(|m| StoreError::Corrupt(m.into()))?;
    let sk = string_attr(item, SK).map_err(|m| StoreError::Corrupt(m.into()))?;
    let data = string_attr(item, DATA)
        .map_err(|m| StoreError::Corrupt(Detail::caused_by(format!("event item {pk}/{sk}"), m)))?;
    record::decode_event(data.as_bytes())
        .map_err(|e| StoreError::Corrupt(Detail::caused_by(format!("event item {pk}/{sk}"), e)))
}

pub(crate) fn nonce_item(nonce: &str, expires_ms: i64) -> Item {
    HashMap::from([
        (PK.to_owned(), s(nonce_pk(nonce))),
        (SK.to_owned(), s(NONCE_SK)),
        (EXPIRES_MS.to_owned(), n(expires_ms)),
        (TTL.to_owned(), n(ttl_secs(expires_ms))),
    ])
}

pub(crate) fn notice_item(notice: &OrderNotice) -> Result<Item, StoreError> {
    Ok(HashMap::from([
        (
            PK.to_owned(),
            s(order_notice_pk(&notice.order_id, &notice.order_line_id)),
        ),
        (SK.to_owned(), s(ORDER_NOTICE_SK)),
        (
            DATA.to_owned(),
            s(json_text(notice_record::encode(notice)?)?),
        ),
    ]))
}

/// An order notice back from its item.
pub(crate) fn decode_notice(item: &Item) -> Result<OrderNotice, StoreError> {
    let data = string_attr(item, DATA).map_err(|m| StoreError::Corrupt(m.into()))?;
    notice_record::decode(data.as_bytes())
}
