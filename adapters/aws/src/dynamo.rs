//! [`InstanceStore`] and [`NonceStore`] on one DynamoDB table, with the exact semantics of
//! `koogallery::testing::MemoryStore` (conditional create, compare-and-set on `version`).
//!
//! # Key schema (single table)
//!
//! The table has a string partition key `pk` and a string sort key `sk`, on-demand capacity, and
//! time to live on the attribute `ttl`. Item kinds:
//!
//! | item        | `pk`                                   | `sk`                 | other attributes                                              |
//! |-------------|----------------------------------------|----------------------|---------------------------------------------------------------|
//! | instance    | `INSTANCE#{instanceId}`                | `INSTANCE`           | `version` (N), `data` (S, the `Instance` JSON), `state` (S), `order_id` (S), `order_line_id` (S), `unsettled_shard` (S, only while unsettled) |
//! | order line  | `ORDERLINE#{orderId}#{orderLineId}`    | `ORDERLINE`          | `instance_id` (S), `order_id` (S), `order_line_id` (S)        |
//! | event       | `INSTANCE#{instanceId}`                | `EVENT#{seq:020}`    | `data` (S, the `InstanceEvent` JSON), `seq` (N)               |
//! | nonce       | `NONCE#{nonce}`                        | `NONCE`              | `expires_ms` (N, Unix millis), `ttl` (N, Unix seconds)        |
//!
//! - An instance and its events share a partition; the zero-padded sequence number makes the sort
//!   key order the history order, so [`InstanceStore::events`] is one `Query` with
//!   `begins_with(sk, "EVENT#")` (paginated).
//! - In the order-line key, `%` and `#` inside the two IDs are percent-escaped (`%25`, `%23`) so
//!   no two (orderId, orderLineId) pairs share a key; KooGallery IDs contain neither, so in practice
//!   the key reads `ORDERLINE#CS1906666666ABCDE#CS1906666666ABCDE-000001`.
//! - `version` is authoritative for optimistic concurrency; the `data` JSON carries the same value.
//! - `unsettled_shard` (`"0"` to `"15"`, a hash of the instance ID) keys the sparse, keys-only index
//!   `unsettled-shard-index`: [`InstanceStore::unsettled`] queries its 16 shards at once, then reads
//!   the instances. Earlier releases wrote `unsettled` = `"1"` instead (index `unsettled-index`,
//!   one hot partition); an item loses it at its next save, and until then the legacy index is
//!   queried too ([`keys::LEGACY_UNSETTLED`]).
//! - A nonce counts only while `expires_ms > now`; `ttl` lets DynamoDB delete it eventually (TTL
//!   deletion lags by up to days, which is why the condition checks `expires_ms`, not presence).
//!   `ttl` is a reserved word: expressions name it through an expression attribute name.
//!
//! # Writes
//!
//! - `create_for_order_line`: one `TransactWriteItems` — put the order line (`attribute_not_exists(pk)`),
//!   put the instance at version 1 (`attribute_not_exists(pk)`), put each event. The cancellation
//!   reasons say which condition failed: the order line → read it and its instance, answer
//!   `Existing`; only the instance ID → `Conflict` (a businessId reused by another order).
//!   Transactions that collide with another in-flight transaction are retried with backoff.
//! - `save`: put the instance at `expected + 1` if `version = expected` (a missing record fails too),
//!   and each event if its key is new, in one transaction (a single conditional `PutItem` when
//!   there are no events). Any failed condition is `Conflict`.
//! - `remember`: conditional `PutItem`, `attribute_not_exists(pk) OR expires_ms <= :now`.
//!
//! Reads are strongly consistent, like the in-memory reference.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use async_trait::async_trait;
use aws_sdk_dynamodb::{
    Client,
    error::{DisplayErrorContext, SdkError},
    operation::{put_item::PutItemError, transact_write_items::TransactWriteItemsError},
    types::{
        AttributeValue, KeysAndAttributes, Put, ReturnValuesOnConditionCheckFailure,
        TransactWriteItem,
    },
};
use chrono::{DateTime, Utc};
use koogallery::{
    StoreError,
    callbacks::StoreAccess,
    instance::{CreateOutcome, Instance, InstanceEvent, InstanceStore, record},
    order::notice::{OrderNotice, OrderNoticeStore, record as notice_record},
    security::replay::NonceStore,
};

use self::keys::*;

/// DynamoDB's limit on the actions of one `TransactWriteItems`.
pub(crate) const MAX_TRANSACTION_ITEMS: usize = 100;
/// DynamoDB's limit on the keys of one `BatchGetItem`.
pub(crate) const MAX_BATCH_GET_KEYS: usize = 100;
/// Rounds of `UnprocessedKeys` retries before a batched read gives up as unavailable.
pub(crate) const MAX_UNPROCESSED_RETRIES: u32 = 8;
/// Retries of a create whose transaction collided with another in-flight transaction.
const MAX_CONTENDED_RETRIES: u32 = 10;

/// Item keys and attribute names of the single-table design (see the [module docs](super)).
pub mod keys {
    pub const PK: &str = "pk";
    pub const SK: &str = "sk";
    pub const VERSION: &str = "version";
    pub const DATA: &str = "data";
    pub const STATE: &str = "state";
    pub const ORDER_ID: &str = "order_id";
    pub const ORDER_LINE_ID: &str = "order_line_id";
    pub const INSTANCE_ID: &str = "instance_id";
    pub const SEQ: &str = "seq";
    pub const EXPIRES_MS: &str = "expires_ms";
    /// The table's time-to-live attribute (Unix seconds). A reserved word in expressions.
    pub const TTL: &str = "ttl";
    /// Present only on instance items the worker still owes something: the instance's shard
    /// ([`unsettled_shard`]), the key of the sparse, keys-only index the reconciler queries, one
    /// query per shard, so no one index partition takes every unsettled instance's writes.
    pub const UNSETTLED_SHARD: &str = "unsettled_shard";
    pub const UNSETTLED_INDEX: &str = "unsettled-shard-index";
    /// How many shards [`UNSETTLED_INDEX`] is spread over.
    pub const UNSETTLED_SHARDS: u8 = 16;
    /// Earlier releases marked unsettled instances with this attribute, always `"1"`, the key of
    /// the legacy index below (one hot partition, every attribute projected). Nothing writes it
    /// any more: an item leaves that index at its next save. Until every item has been saved
    /// once, the reconciler queries it too (`DynamoStore::unsettled`); a later release drops it.
    pub const LEGACY_UNSETTLED: &str = "unsettled";
    pub const LEGACY_UNSETTLED_INDEX: &str = "unsettled-index";
    pub const LEGACY_UNSETTLED_KEY: &str = "1";

    /// The shard of an instance in [`UNSETTLED_INDEX`], `"0"` to `"15"`: from a hash of its ID,
    /// the same on every save (a shard that changed would rewrite the index entry).
    pub fn unsettled_shard(instance_id: &str) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(instance_id.as_bytes());
        (digest[0] % UNSETTLED_SHARDS).to_string()
    }

    pub const INSTANCE_SK: &str = "INSTANCE";
    pub const ORDER_LINE_SK: &str = "ORDERLINE";
    pub const NONCE_SK: &str = "NONCE";
    /// Prefix of every event's sort key.
    pub const EVENT_SK_PREFIX: &str = "EVENT#";
    const INSTANCE_PK_PREFIX: &str = "INSTANCE#";

    /// `INSTANCE#{instanceId}`: the partition of an instance and its events.
    pub fn instance_pk(instance_id: &str) -> String {
        format!("{INSTANCE_PK_PREFIX}{instance_id}")
    }

    /// The instance ID back from an instance partition key.
    pub fn instance_id_of(pk: &str) -> Option<&str> {
        pk.strip_prefix(INSTANCE_PK_PREFIX)
    }

    /// `ORDERLINE#{orderId}#{orderLineId}`, with `%` and `#` in the IDs percent-escaped.
    pub fn order_line_pk(order_id: &str, order_line_id: &str) -> String {
        format!(
            "ORDERLINE#{}#{}",
            escape_component(order_id),
            escape_component(order_line_id)
        )
    }

    /// `EVENT#{seq:020}`: zero-padded so the sort key order is the sequence order.
    pub fn event_sk(seq: u64) -> String {
        format!("{EVENT_SK_PREFIX}{seq:020}")
    }

    pub const ORDER_NOTICE_SK: &str = "NOTICE";

    /// `ORDERNOTICE#{orderId}#{orderLineId}`, escaped as order lines are.
    pub fn order_notice_pk(order_id: &str, order_line_id: &str) -> String {
        format!(
            "ORDERNOTICE#{}#{}",
            escape_component(order_id),
            escape_component(order_line_id)
        )
    }

    /// `NONCE#{nonce}`.
    pub fn nonce_pk(nonce: &str) -> String {
        format!("NONCE#{nonce}")
    }

    /// The `ttl` value for an expiry in Unix millis: whole seconds, rounded up so DynamoDB never
    /// deletes a nonce before it expires.
    pub fn ttl_secs(expires_ms: i64) -> i64 {
        expires_ms.div_euclid(1000) + i64::from(expires_ms.rem_euclid(1000) > 0)
    }

    /// A key component with `%` and `#` percent-escaped (`%25`, `%23`): it never holds `#`, so
    /// `#` separates components unambiguously.
    pub fn escape_component(s: &str) -> std::borrow::Cow<'_, str> {
        if s.contains(['%', '#']) {
            s.replace('%', "%25").replace('#', "%23").into()
        } else {
            s.into()
        }
    }
}

pub(crate) type Item = HashMap<String, AttributeValue>;

/// Instances, order lines, events and nonces in one DynamoDB table; cheap to clone.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The client, e.g. for [`crate::bootstrap::ensure_table`].
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn put(
        &self,
        item: Item,
        condition: &str,
        names: &[(&str, &str)],
        values: &[(&str, AttributeValue)],
    ) -> Result<Put, StoreError> {
        self.put_returning(item, condition, names, values, None)
    }

    /// A conditional `Put` for a transaction; `on_failure` asks for the old item in the
    /// cancellation reason when the condition fails.
    fn put_returning(
        &self,
        item: Item,
        condition: &str,
        names: &[(&str, &str)],
        values: &[(&str, AttributeValue)],
        on_failure: Option<ReturnValuesOnConditionCheckFailure>,
    ) -> Result<Put, StoreError> {
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_return_values_on_condition_check_failure(on_failure);
        for (k, v) in names {
            put = put.expression_attribute_names(*k, *v);
        }
        for (k, v) in values {
            put = put.expression_attribute_values(*k, v.clone());
        }
        put.build()
            .map_err(|e| StoreError::Unavailable(format!("cannot build DynamoDB Put: {e}")))
    }

    async fn get_item(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(pk.clone()))
            .key(SK, AttributeValue::S(sk.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable(&format!("GetItem {pk}"), &e))?;
        Ok(out.item)
    }

    /// The instance an already-recorded order line points at (`Existing`). `instance_id` comes from
    /// the cancellation reason when DynamoDB returned the old item, else the order line is read.
    async fn existing(
        &self,
        instance: &Instance,
        instance_id: Option<String>,
    ) -> Result<CreateOutcome, StoreError> {
        let line_pk = order_line_pk(&instance.order_id, &instance.order_line_id);
        let instance_id = match instance_id {
            Some(id) => id,
            None => {
                let line = self
                    .get_item(line_pk.clone(), ORDER_LINE_SK)
                    .await?
                    .ok_or_else(|| {
                        StoreError::Unavailable(format!(
                            "order line {line_pk} was taken but cannot be read back; retry"
                        ))
                    })?;
                string_attr(&line, INSTANCE_ID)
                    .map_err(|m| StoreError::Corrupt(format!("order line {line_pk}: {m}")))?
                    .to_owned()
            }
        };
        let item = self
            .get_item(instance_pk(&instance_id), INSTANCE_SK)
            .await?
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "order line {line_pk} points at missing instance {instance_id}"
                ))
            })?;
        Ok(CreateOutcome::Existing(Box::new(decode_instance(&item)?)))
    }
}

/// Any SDK failure that is not a failed condition: throttling, service errors, timeouts, network,
/// missing table, validation. Carries the operation and the full error chain.
pub(crate) fn unavailable<E, R>(op: &str, err: &SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError::Unavailable(format!(
        "DynamoDB {op} failed: {}",
        DisplayErrorContext(err)
    ))
}

/// The cancellation reason codes of a cancelled transaction (`None` for any other failure), with
/// the old item DynamoDB returned for a failed condition, if any.
pub(crate) fn cancellation_reasons<R>(
    err: &SdkError<TransactWriteItemsError, R>,
) -> Option<Vec<(String, Option<Item>)>> {
    match err.as_service_error()? {
        TransactWriteItemsError::TransactionCanceledException(e) => Some(
            e.cancellation_reasons()
                .iter()
                .map(|r| (r.code().unwrap_or("None").to_owned(), r.item().cloned()))
                .collect(),
        ),
        _ => None,
    }
}

pub(crate) const CONDITION_FAILED: &str = "ConditionalCheckFailed";
pub(crate) const TRANSACTION_CONFLICT: &str = "TransactionConflict";

/// What a cancelled create transaction means.
#[derive(Debug, PartialEq)]
enum CreateCancel {
    /// The order line exists: answer `Existing` (with its instance ID if DynamoDB returned the item).
    OrderLineTaken(Option<String>),
    /// Only the instance ID exists, under another order line.
    InstanceIdTaken,
    /// Collided with another in-flight transaction on the same items: try again.
    Contended,
    /// Something else (throttling, validation, …): the codes, for the error.
    Other(String),
}

/// Reasons are positional: 0 = order line, 1 = instance, 2.. = events.
fn classify_create(reasons: &[(String, Option<Item>)]) -> CreateCancel {
    let code = |i: usize| reasons.get(i).map(|(c, _)| c.as_str());
    if code(0) == Some(CONDITION_FAILED) {
        let id = reasons
            .first()
            .and_then(|(_, item)| item.as_ref())
            .and_then(|item| string_attr(item, INSTANCE_ID).ok())
            .map(str::to_owned);
        return CreateCancel::OrderLineTaken(id);
    }
    if code(1) == Some(CONDITION_FAILED) {
        return CreateCancel::InstanceIdTaken;
    }
    if reasons.iter().any(|(c, _)| c == TRANSACTION_CONFLICT) {
        return CreateCancel::Contended;
    }
    CreateCancel::Other(reason_codes(reasons))
}

pub(crate) fn reason_codes(reasons: &[(String, Option<Item>)]) -> String {
    reasons
        .iter()
        .map(|(c, _)| c.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Exponential backoff from 10 ms, capped at 640 ms, with up to 100% jitter.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let base = 10u64 << attempt.min(6);
    let jitter = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0),
    ) % base.max(1);
    Duration::from_millis(base + jitter)
}

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
    String::from_utf8(bytes).map_err(|e| StoreError::Corrupt(format!("record is not UTF-8: {e}")))
}

/// The instance item; `instance.version` is stored as given.
/// The table actions a callback's store access needs: exactly what its IAM role grants
/// (`template.yaml`, checked by `tests/template.rs`). `TransactWriteItems` is authorised per item, as
/// `PutItem` and `ConditionCheckItem`.
pub fn iam_actions(access: StoreAccess) -> &'static [&'static str] {
    match access {
        StoreAccess::ReadOne => &["dynamodb:GetItem"],
        // queryInstance: the instances, and their usage for `usageInfo` (windows by Query).
        StoreAccess::ReadMany => &[
            "dynamodb:GetItem",
            "dynamodb:BatchGetItem",
            "dynamodb:Query",
        ],
        StoreAccess::Update => &["dynamodb:GetItem", "dynamodb:PutItem"],
        StoreAccess::Create => &[
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:ConditionCheckItem",
        ],
        StoreAccess::Notices => &["dynamodb:GetItem", "dynamodb:PutItem"],
        // The Kit syncs (`DynamoDirectory`): reads and queries of one tenant's partition, batch
        // writes of its records, the transaction that numbers its events.
        // TransactWriteItems is authorised per item (PutItem, DeleteItem, ConditionCheckItem).
        StoreAccess::Directory => &[
            "dynamodb:BatchGetItem",
            "dynamodb:BatchWriteItem",
            "dynamodb:ConditionCheckItem",
            "dynamodb:DeleteItem",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:Query",
        ],
    }
}

/// The partition keys a function with `access` may touch (the `dynamodb:LeadingKeys` condition
/// of its role): instances (debug ones included), and order lines for the one that creates them;
/// never the edge's nonces. `tests/template.rs` checks the template against this.
pub fn leading_keys(access: StoreAccess) -> &'static [&'static str] {
    match access {
        StoreAccess::Create => &["INSTANCE#*", "ORDERLINE#*"],
        StoreAccess::ReadMany => &["INSTANCE#*", "USAGE#*", "USAGEPKG#*"],
        StoreAccess::ReadOne | StoreAccess::Update => &["INSTANCE#*"],
        StoreAccess::Notices => &["ORDERNOTICE#*"],
        StoreAccess::Directory => &["DIR#*"],
    }
}

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
    let pk = string_attr(item, PK).map_err(StoreError::Corrupt)?;
    let corrupt = |m: String| StoreError::Corrupt(format!("instance item {pk}: {m}"));
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
    let pk = string_attr(item, PK).map_err(StoreError::Corrupt)?;
    let sk = string_attr(item, SK).map_err(StoreError::Corrupt)?;
    let data = string_attr(item, DATA)
        .map_err(|m| StoreError::Corrupt(format!("event item {pk}/{sk}: {m}")))?;
    record::decode_event(data.as_bytes())
        .map_err(|e| StoreError::Corrupt(format!("event item {pk}/{sk}: {e}")))
}

pub(crate) fn nonce_item(nonce: &str, expires_ms: i64) -> Item {
    HashMap::from([
        (PK.to_owned(), s(nonce_pk(nonce))),
        (SK.to_owned(), s(NONCE_SK)),
        (EXPIRES_MS.to_owned(), n(expires_ms)),
        (TTL.to_owned(), n(ttl_secs(expires_ms))),
    ])
}

fn too_many_events(op: &str, events: usize, fixed: usize) -> StoreError {
    // Retrying cannot help, so this is not reported as `Unavailable`.
    StoreError::Corrupt(format!(
        "{op} of {events} events exceeds one DynamoDB transaction ({} actions including {fixed} for the records)",
        MAX_TRANSACTION_ITEMS
    ))
}

#[async_trait]
impl InstanceStore for DynamoStore {
    async fn create_for_order_line(
        &self,
        instance: &Instance,
        events: &[InstanceEvent],
    ) -> Result<CreateOutcome, StoreError> {
        if events.len() + 2 > MAX_TRANSACTION_ITEMS {
            return Err(too_many_events("create", events.len(), 2));
        }
        let mut stored = instance.clone();
        stored.version = 1;
        let new_key = [("#pk", PK)];
        let line = self.put_returning(
            order_line_item(instance),
            "attribute_not_exists(#pk)",
            &new_key,
            &[],
            Some(ReturnValuesOnConditionCheckFailure::AllOld),
        )?;
        let mut items = vec![
            TransactWriteItem::builder().put(line).build(),
            TransactWriteItem::builder()
                .put(self.put(
                    instance_item(&stored)?,
                    "attribute_not_exists(#pk)",
                    &new_key,
                    &[],
                )?)
                .build(),
        ];
        for ev in events {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(event_item(&instance.instance_id, ev)?))
                .build()
                .map_err(|e| StoreError::Unavailable(format!("cannot build DynamoDB Put: {e}")))?;
            items.push(TransactWriteItem::builder().put(put).build());
        }

        let id = &instance.instance_id;
        let mut attempt = 0;
        loop {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(CreateOutcome::Created),
                Err(err) => err,
            };
            let Some(reasons) = cancellation_reasons(&err) else {
                return Err(unavailable(
                    &format!("TransactWriteItems (create instance {id})"),
                    &err,
                ));
            };
            match classify_create(&reasons) {
                CreateCancel::OrderLineTaken(existing_id) => {
                    return self.existing(instance, existing_id).await;
                }
                CreateCancel::InstanceIdTaken => {
                    // A businessId reused across orders: never overwrite another order's instance.
                    tracing::warn!(
                        instance_id = %id,
                        order_id = %instance.order_id,
                        "instance ID already taken by another order line"
                    );
                    return Ok(CreateOutcome::InstanceIdTaken);
                }
                CreateCancel::Contended if attempt < MAX_CONTENDED_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(backoff(attempt)).await;
                }
                CreateCancel::Contended => {
                    return Err(StoreError::Unavailable(format!(
                        "create instance {id}: still contended after {attempt} retries"
                    )));
                }
                CreateCancel::Other(codes) => {
                    return Err(StoreError::Unavailable(format!(
                        "create instance {id}: transaction cancelled ({codes})"
                    )));
                }
            }
        }
    }

    async fn get(&self, instance_id: &str) -> Result<Option<Instance>, StoreError> {
        self.get_item(instance_pk(instance_id), INSTANCE_SK)
            .await?
            .map(|item| decode_instance(&item))
            .transpose()
    }

    async fn get_many(&self, instance_ids: &[&str]) -> Result<Vec<Instance>, StoreError> {
        // BatchGetItem refuses duplicate keys: ask once per ID, answer in the caller's order.
        let mut seen = HashSet::new();
        let unique: Vec<&str> = instance_ids
            .iter()
            .copied()
            .filter(|id| seen.insert(*id))
            .collect();
        let mut found: HashMap<String, Instance> = HashMap::with_capacity(unique.len());
        for chunk in unique.chunks(MAX_BATCH_GET_KEYS) {
            let mut pending: Vec<Item> = chunk
                .iter()
                .map(|id| {
                    HashMap::from([
                        (PK.to_owned(), s(instance_pk(id))),
                        (SK.to_owned(), s(INSTANCE_SK)),
                    ])
                })
                .collect();
            let mut retries = 0;
            while !pending.is_empty() {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| {
                        StoreError::Unavailable(format!("cannot build BatchGetItem keys: {e}"))
                    })?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| unavailable("BatchGetItem", &e))?;
                for item in out
                    .responses()
                    .and_then(|r| r.get(&self.table))
                    .into_iter()
                    .flatten()
                {
                    let instance = decode_instance(item)?;
                    found.insert(instance.instance_id.clone(), instance);
                }
                pending = out
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.table))
                    .map(|k| k.keys().to_vec())
                    .unwrap_or_default();
                if !pending.is_empty() {
                    if retries >= MAX_UNPROCESSED_RETRIES {
                        return Err(StoreError::Unavailable(format!(
                            "BatchGetItem: {} keys still unprocessed after {retries} retries",
                            pending.len()
                        )));
                    }
                    retries += 1;
                    tokio::time::sleep(backoff(retries)).await;
                }
            }
        }
        Ok(instance_ids
            .iter()
            .filter_map(|id| found.get(*id).cloned())
            .collect())
    }

    async fn save(
        &self,
        instance: &Instance,
        expected_version: u64,
        events: &[InstanceEvent],
    ) -> Result<(), StoreError> {
        if events.len() + 1 > MAX_TRANSACTION_ITEMS {
            return Err(too_many_events("save", events.len(), 1));
        }
        let id = &instance.instance_id;
        let mut stored = instance.clone();
        stored.version = expected_version + 1;
        let condition = "#v = :expected";
        let names = [("#v", VERSION)];
        let values = [(":expected", n(expected_version))];

        if events.is_empty() {
            let mut put = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(instance_item(&stored)?))
                .condition_expression(condition);
            for (k, v) in names {
                put = put.expression_attribute_names(k, v);
            }
            for (k, v) in values {
                put = put.expression_attribute_values(k, v);
            }
            return match put_if(put, &format!("PutItem (save instance {id})")).await? {
                true => Ok(()),
                false => Err(StoreError::Conflict),
            };
        }

        let mut items = vec![
            TransactWriteItem::builder()
                .put(self.put(instance_item(&stored)?, condition, &names, &values)?)
                .build(),
        ];
        for ev in events {
            // History is append-only: a seq already stored fails the whole save.
            let put = self.put(
                event_item(id, ev)?,
                "attribute_not_exists(#sk)",
                &[("#sk", SK)],
                &[],
            )?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        let err = match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => return Ok(()),
            Err(err) => err,
        };
        match cancellation_reasons(&err) {
            // Another writer was first, or is writing right now: the caller reloads and retries.
            Some(reasons)
                if reasons
                    .iter()
                    .any(|(c, _)| c == CONDITION_FAILED || c == TRANSACTION_CONFLICT) =>
            {
                if reasons.iter().skip(1).any(|(c, _)| c == CONDITION_FAILED) {
                    tracing::error!(instance_id = %id, "event seq already stored; save refused");
                }
                Err(StoreError::Conflict)
            }
            Some(reasons) => Err(StoreError::Unavailable(format!(
                "save instance {id}: transaction cancelled ({})",
                reason_codes(&reasons)
            ))),
            None => Err(unavailable(
                &format!("TransactWriteItems (save instance {id})"),
                &err,
            )),
        }
    }

    async fn events(&self, instance_id: &str) -> Result<Vec<InstanceEvent>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(instance_pk(instance_id)))
            .expression_attribute_values(":prefix", s(EVENT_SK_PREFIX))
            .consistent_read(true);
        query_all(query, &format!("Query (events of {instance_id})"))
            .await?
            .iter()
            .map(decode_event)
            .collect()
    }

    /// The keys in the sparse index, all shards queried at once, and those still in the legacy
    /// index of earlier releases; then the instances themselves, read consistently (the index
    /// projects keys only, and lags the table a little: what settled meanwhile is left out).
    async fn unsettled(&self) -> Result<Vec<Instance>, StoreError> {
        let shard = |key: String| {
            self.client
                .query()
                .table_name(&self.table)
                .index_name(UNSETTLED_INDEX)
                .key_condition_expression("#u = :u")
                .expression_attribute_names("#u", UNSETTLED_SHARD)
                .expression_attribute_values(":u", s(key))
        };
        let legacy = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(LEGACY_UNSETTLED_INDEX)
            .key_condition_expression("#u = :u")
            .expression_attribute_names("#u", LEGACY_UNSETTLED)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":u", s(LEGACY_UNSETTLED_KEY))
            // Every attribute is projected there; only the key is needed.
            .projection_expression("#pk");
        let shards = (0..UNSETTLED_SHARDS).map(|k| shard(k.to_string()));
        let (pages, legacy) = futures_util::future::try_join(
            futures_util::future::try_join_all(
                shards.map(|q| query_all(q, "Query (unsettled instances)")),
            ),
            query_all(legacy, "Query (unsettled instances, legacy index)"),
        )
        .await?;
        if !legacy.is_empty() {
            tracing::info!(
                instances = legacy.len(),
                "unsettled instances still in the legacy index {LEGACY_UNSETTLED_INDEX}; each moves at its next save"
            );
        }
        let mut ids = Vec::new();
        for item in pages.iter().flatten().chain(&legacy) {
            let pk = string_attr(item, PK).map_err(StoreError::Corrupt)?;
            let id = instance_id_of(pk)
                .ok_or_else(|| StoreError::Corrupt(format!("{pk} in the unsettled index")))?;
            ids.push(id);
        }
        // `get_many` asks once per ID (an item may be in both indexes while it moves).
        Ok(self
            .get_many(&ids)
            .await?
            .into_iter()
            .filter(Instance::is_unsettled)
            .collect())
    }
}

/// A conditional `PutItem`: true when written, false when its condition failed.
pub(crate) async fn put_if(
    put: aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder,
    what: &str,
) -> Result<bool, StoreError> {
    match put.send().await {
        Ok(_) => Ok(true),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(PutItemError::ConditionalCheckFailedException(_))
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(unavailable(what, &e)),
    }
}

/// Every item a query matches, page after page.
async fn query_all(
    query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    what: &str,
) -> Result<Vec<Item>, StoreError> {
    let mut items = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let out = query
            .clone()
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| unavailable(what, &e))?;
        items.extend(out.items().iter().cloned());
        match out.last_evaluated_key() {
            Some(key) if !key.is_empty() => start = Some(key.clone()),
            _ => return Ok(items),
        }
    }
}

impl DynamoStore {
    fn notice_item(notice: &OrderNotice) -> Result<Item, StoreError> {
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
}

#[async_trait]
impl OrderNoticeStore for DynamoStore {
    async fn record_notice(&self, notice: &OrderNotice) -> Result<bool, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Self::notice_item(notice)?))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK);
        put_if(put, "PutItem (record order notice)").await
    }

    async fn notice(
        &self,
        order_id: &str,
        order_line_id: &str,
    ) -> Result<Option<OrderNotice>, StoreError> {
        let Some(item) = self
            .get_item(order_notice_pk(order_id, order_line_id), ORDER_NOTICE_SK)
            .await?
        else {
            return Ok(None);
        };
        let data = string_attr(&item, DATA).map_err(StoreError::Corrupt)?;
        notice_record::decode(data.as_bytes()).map(Some)
    }

    async fn update_notice(&self, notice: &OrderNotice) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Self::notice_item(notice)?))
            .send()
            .await
            .map_err(|e| unavailable("PutItem (update order notice)", &e))?;
        Ok(())
    }
}

#[async_trait]
impl NonceStore for DynamoStore {
    async fn remember(
        &self,
        nonce: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(nonce_item(nonce, expires_at.timestamp_millis())))
            .condition_expression("attribute_not_exists(#pk) OR #exp <= :now")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#exp", EXPIRES_MS)
            .expression_attribute_values(":now", n(now.timestamp_millis()));
        // The nonce itself is not secret, but keep it out of error text anyway.
        put_if(put, "PutItem (remember nonce)").await
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use koogallery::instance::InstanceState;

    use super::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap()
    }

    #[test]
    fn keys_follow_the_documented_schema() {
        assert_eq!(instance_pk("biz-1"), "INSTANCE#biz-1");
        assert_eq!(instance_id_of("INSTANCE#biz-1"), Some("biz-1"));
        assert_eq!(instance_id_of("NONCE#x"), None);
        assert_eq!(
            order_line_pk("CS1906666666ABCDE", "CS1906666666ABCDE-000001"),
            "ORDERLINE#CS1906666666ABCDE#CS1906666666ABCDE-000001"
        );
        assert_eq!(event_sk(7), "EVENT#00000000000000000007");
        assert_eq!(event_sk(u64::MAX), "EVENT#18446744073709551615");
        assert_eq!(nonce_pk("abc"), "NONCE#abc");
    }

    #[test]
    fn order_line_keys_are_unambiguous() {
        assert_ne!(order_line_pk("A#B", "C"), order_line_pk("A", "B#C"));
        assert_eq!(order_line_pk("A#B", "C"), "ORDERLINE#A%23B#C");
        assert_ne!(order_line_pk("A%23", "B"), order_line_pk("A#", "B"));
    }

    #[test]
    fn event_sort_keys_sort_by_sequence() {
        let mut seqs = [10u64, 2, 100, 1, 9, 11, 0];
        let mut keys: Vec<String> = seqs.iter().map(|s| event_sk(*s)).collect();
        keys.sort();
        seqs.sort_unstable();
        assert_eq!(keys, seqs.iter().map(|s| event_sk(*s)).collect::<Vec<_>>());
        assert!(keys.iter().all(|k| k.starts_with(EVENT_SK_PREFIX)));
        assert!(!INSTANCE_SK.starts_with(EVENT_SK_PREFIX));
    }

    #[test]
    fn ttl_rounds_up_to_whole_seconds() {
        assert_eq!(ttl_secs(1_000), 1);
        assert_eq!(ttl_secs(1_001), 2);
        assert_eq!(ttl_secs(0), 0);
        assert_eq!(ttl_secs(-1), 0);
        let item = nonce_item("n", 1_767_225_600_500);
        assert_eq!(item.get(TTL), Some(&n(1_767_225_601i64)));
        assert_eq!(item.get(EXPIRES_MS), Some(&n(1_767_225_600_500i64)));
        assert_eq!(item.get(PK), Some(&s("NONCE#n")));
    }

    #[test]
    fn instance_items_round_trip_with_the_version_attribute() {
        let (mut inst, ev) = Instance::new_provisioning("O-1", "O-1-000001", "biz-1", false, t0());
        inst.version = 3;
        let item = instance_item(&inst).unwrap();
        assert_eq!(item.get(PK), Some(&s("INSTANCE#biz-1")));
        assert_eq!(item.get(SK), Some(&s(INSTANCE_SK)));
        assert_eq!(item.get(VERSION), Some(&n(3)));
        assert_eq!(item.get(STATE), Some(&s("provisioning")));
        assert_eq!(item.get(ORDER_ID), Some(&s("O-1")));
        assert_eq!(decode_instance(&item).unwrap(), inst);

        // The attribute wins over the JSON copy.
        let mut bumped = item.clone();
        bumped.insert(VERSION.into(), n(4));
        assert_eq!(decode_instance(&bumped).unwrap().version, 4);

        let ev_item = event_item("biz-1", &ev).unwrap();
        assert_eq!(ev_item.get(SK), Some(&s(event_sk(ev.seq))));
        assert_eq!(decode_event(&ev_item).unwrap(), ev);

        let line = order_line_item(&inst);
        assert_eq!(line.get(INSTANCE_ID), Some(&s("biz-1")));
        assert_eq!(line.get(SK), Some(&s(ORDER_LINE_SK)));
        assert_eq!(inst.state, InstanceState::Provisioning);
    }

    #[test]
    fn damaged_items_are_corrupt_not_panics() {
        let (inst, _) = Instance::new_provisioning("O-1", "L", "biz-1", false, t0());
        let good = instance_item(&inst).unwrap();
        let cases: Vec<Item> = vec![
            {
                let mut i = good.clone();
                i.insert(DATA.into(), s("{not json"));
                i
            },
            {
                let mut i = good.clone();
                i.remove(DATA);
                i
            },
            {
                let mut i = good.clone();
                i.insert(VERSION.into(), s("1"));
                i
            },
            {
                let mut i = good.clone();
                i.insert(VERSION.into(), n("x"));
                i
            },
            {
                let mut i = good.clone();
                i.insert(PK.into(), s("INSTANCE#other"));
                i
            },
        ];
        for item in cases {
            assert!(
                matches!(decode_instance(&item), Err(StoreError::Corrupt(_))),
                "{item:?}"
            );
        }
        let mut ev = HashMap::from([
            (PK.to_owned(), s("INSTANCE#x")),
            (SK.to_owned(), s("EVENT#1")),
        ]);
        assert!(matches!(decode_event(&ev), Err(StoreError::Corrupt(_))));
        ev.insert(DATA.into(), s("[]"));
        assert!(matches!(decode_event(&ev), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn cancellation_reasons_classify_as_documented() {
        let r = |codes: &[&str]| -> Vec<(String, Option<Item>)> {
            codes.iter().map(|c| ((*c).to_owned(), None)).collect()
        };
        assert_eq!(
            classify_create(&r(&[
                "ConditionalCheckFailed",
                "ConditionalCheckFailed",
                "None"
            ])),
            CreateCancel::OrderLineTaken(None)
        );
        let with_item = vec![
            (
                CONDITION_FAILED.to_owned(),
                Some(HashMap::from([(INSTANCE_ID.to_owned(), s("biz-0"))])),
            ),
            ("None".to_owned(), None),
        ];
        assert_eq!(
            classify_create(&with_item),
            CreateCancel::OrderLineTaken(Some("biz-0".into()))
        );
        assert_eq!(
            classify_create(&r(&["None", "ConditionalCheckFailed", "None"])),
            CreateCancel::InstanceIdTaken
        );
        assert_eq!(
            classify_create(&r(&["TransactionConflict", "None"])),
            CreateCancel::Contended
        );
        assert_eq!(
            classify_create(&r(&["ThrottlingError", "None"])),
            CreateCancel::Other("ThrottlingError, None".into())
        );
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        assert!(backoff(1) >= Duration::from_millis(20));
        assert!(backoff(1) < Duration::from_millis(40));
        assert!(backoff(50) < Duration::from_millis(1280));
    }

    /// The shard of an instance is stable (a save never moves it) and the shards share the
    /// instances about evenly.
    #[test]
    fn unsettled_shards_are_stable_and_spread() {
        let mut counts = [0u32; UNSETTLED_SHARDS as usize];
        for k in 0..1600 {
            let id = format!("CS2611210000{k:05}-000001");
            let shard = unsettled_shard(&id);
            assert_eq!(shard, unsettled_shard(&id));
            let n: usize = shard.parse().unwrap();
            counts[n] += 1;
        }
        assert!(counts.iter().all(|c| (50..=150).contains(c)), "{counts:?}");
    }
}
