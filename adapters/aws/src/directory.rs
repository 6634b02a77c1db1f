//! [`TenantDirectory`] on DynamoDB: the tenant directory of the Kit syncs (spec callbacks §9;
//! Decisions §15–17) in the single table of [`crate::dynamo`], with the semantics of the memory
//! directory (`koogallery::testing::MemoryDirectory`).
//!
//! # Items
//!
//! One partition per tenant (Decisions §16: a tenant is (instanceId, tenantId)):
//!
//! | item              | `pk`                             | `sk`                                | other attributes |
//! |-------------------|----------------------------------|-------------------------------------|------------------|
//! | tenant            | `DIR#{instanceId}#{tenantId}`    | `TENANT`                            | `data` (S, [`record::encode_tenant`]) |
//! | app               | `DIR#{instanceId}#{tenantId}`    | `APP#{appId}`                       | `data` (S, [`record::encode_app`]) |
//! | user              | `DIR#{instanceId}#{tenantId}`    | `USER#{appId}#{userName}`           | `data` (S, [`record::encode_user`]) |
//! | department set    | `DIR#{instanceId}#{tenantId}`    | `ORGSET`                            | `generation` (S): the current generation; `chunks` (N): how many chunks it has |
//! | department chunk  | `DIR#{instanceId}#{tenantId}`    | `ORGCHUNK#{generation}#{index:04}`  | `data` (S, [`record::encode_department_chunk`]) |
//! | department (read only) | `DIR#{instanceId}#{tenantId}` | `ORG#{generation}#{orgCode}`      | `data` (S, [`record::encode_department`]) |
//! | event numbering   | `DIR#{instanceId}#{tenantId}`    | `SEQ`                               | `seq` (N): the last `seq` numbered |
//! | pending event     | `DIR#{instanceId}#{tenantId}`    | `EVENT#{seq:020}`                   | `seq` (N), `data` (S, [`record::encode_event`]) |
//!
//! - Every ID in a key (instanceId, tenantId, appId, userName, orgCode) has `%` and `#`
//!   percent-escaped (`%25`, `%23`), so `#` only ever separates components and no two IDs share a
//!   key. An empty instanceId (the seller's own credential, callbacks §9) is valid: `DIR##{tenantId}`.
//! - The department set is read as a whole (`departments()`), never one department at a time, so
//!   a generation's departments are stored in **chunks**: JSON arrays of departments sorted by
//!   orgCode, split by encoded size (at most [`MAX_CHUNK_BYTES`], well under DynamoDB's 400 KB
//!   item limit, however long the names), indexed from `0000`. A generation is written once and
//!   never changed (copy-on-write): every department change writes a new one and flips `ORGSET`
//!   to it, so a reader that finds all the chunks `ORGSET` counted has the whole set.
//! - Generations are random UUIDs (32 hex digits), never reused; a generation never holds `#`.
//!   An `ORGSET` without `chunks`, or no `ORGSET` at all (generation [`FIRST_GENERATION`], `0`),
//!   is a set written by a release before the chunks: one `ORG#{generation}#{orgCode}` item per
//!   department. It is still read as such, and the next department change rewrites it in chunks
//!   (and deletes the items); nothing writes `ORG#` items any more.
//! - The zero-padded `seq` makes the sort key order the delivery order.
//! - Reads are strongly consistent and page past DynamoDB's 1 MB per `Query`; the lists are sorted
//!   by their ID as the memory directory sorts them (the escaped keys need not sort so).
//!
//! # Applying a sync
//!
//! 1. **Bulk records** first: an authSync's users, the users a revoke marks (read first: a user
//!    not stored is not created), the items a delete sweeps, and a new department generation's
//!    chunks when they do not fit in step 2's transaction (below). `BatchWriteItem`s of 25,
//!    [`BATCH_CONCURRENCY`] in flight, `UnprocessedItems` retried [`MAX_UNPROCESSED_ROUNDS`] times
//!    with a short backoff; what is still unprocessed fails the sync (`Unavailable`), never
//!    dropped.
//! 2. **One `TransactWriteItems`**: `SEQ` advanced on the condition that it still holds the value
//!    read, the events put under the seqs that follow (each on `attribute_not_exists`), the
//!    change's single record if it has one (tenant, app), and for the department changes the
//!    `ORGSET` item flipped to the new generation (with its chunk count) on the condition that it
//!    still names the generation read. The new generation's chunks ride in this transaction when
//!    they fit beside the events (DynamoDB: 100 actions, 4 MB; kept to [`MAX_INLINE_BYTES`]): up
//!    to about 1.5 MB of departments for an allOrgSync (its events repeat them), about 3 MB for a
//!    singleOrgSync; else step 1 wrote them. An allOrgSync
//!    builds its chunks once; a singleOrgSync reads the current set first (`ORGSET`, then its
//!    chunks, or its items in the per-item layout), applies the change and chunks the result
//!    under a new generation, on every attempt (a change that changes nothing, such as deleting a
//!    department not there, writes no generation and only checks `ORGSET`). A failed condition
//!    means a concurrent apply won: `SEQ` and `ORGSET` (and a singleOrgSync's set) are read again
//!    and the transaction rebuilt, at most [`MAX_SEQ_ATTEMPTS`] times, then `Conflict`; chunks
//!    written ahead for a cancelled attempt are deleted, best effort. So the vendor never hears of
//!    a change that was not stored, a tenant's events get gap-free increasing seqs however many
//!    applies run at once, and department changes land in the order of their seqs. Each attempt
//!    carries its own `ClientRequestToken`: an SDK retry of a committed transaction is answered as
//!    a success, not numbered twice.
//! 3. After a department change, the previous generation is deleted, best effort: its chunks by
//!    key (`ORGSET` counted them), or, in the per-item layout, its `ORG#{generation}#` items
//!    (keys read by `Query`, a page per MB). A leftover is never read, and a tenant deletion
//!    sweeps it. A reader that finds a chunk gone reads `ORGSET` again: the set was replaced
//!    under it.
//!
//! A tenant deletion sweeps `TENANT`, `APP#`, `USER#`, `ORGSET`, `ORGCHUNK#` and `ORG#` items and
//! keeps `SEQ` and `EVENT#` items: numbering never restarts, and the `tenantDeleted` event stays
//! pending. A record written in step 1 is stored even when step 2 then fails; the sync is
//! answered with an error and KooGallery sends it again (a repeat stores the same records). Two
//! bulk syncs of one tenant applied at the same moment may leave the records of either, in
//! whichever order their batches landed; their events are still numbered without gaps.
//!
//! # Calls
//!
//! A 500-user authSync: `GetItem` (`SEQ`), 20 `BatchWriteItem`s, one `TransactWriteItems` (6
//! items): 22 requests. A 5 000-department allOrgSync (about 300 KB of chunks with short names):
//! `BatchGetItem` (`SEQ`, `ORGSET`) and one `TransactWriteItems` (`SEQ`, `ORGSET`, the chunks,
//! 10 events), then the old set dropped: 3 requests, whether it replaces 5 000 departments (one
//! `BatchWriteItem` deletes their chunks) or there was no set before (a `Query` finds no
//! generation-0 items). A singleOrgSync on 5 000 departments: 2 `BatchGetItem`s (`SEQ` and
//! `ORGSET`, then the chunks), the `TransactWriteItems`, one `BatchWriteItem` (the old chunks): 4.
//! A set too big for the transaction adds a `BatchWriteItem` per 25 chunks ahead of it. Reading
//! the departments is a `GetItem` (`ORGSET`) and a `BatchGetItem` (the chunks, 40 a request). A
//! tenant or app sync is a `GetItem` and a `TransactWriteItems`.
//! [`DynamoDirectory::take_calls`] counts them.

use std::{
    collections::{HashMap, HashSet, hash_map::Entry},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use async_trait::async_trait;
use aws_sdk_dynamodb::{
    Client,
    types::{
        AttributeValue, ConditionCheck, Delete, DeleteRequest, KeysAndAttributes, Put, PutRequest,
        TransactWriteItem, WriteRequest,
    },
};
use chrono::{DateTime, Utc};
use futures_util::{StreamExt, stream};
use koogallery::{
    StoreError,
    directory::{
        App, Applied, Department, DirectoryChange, DirectoryEvent, EventBody, Tenant,
        TenantDirectory, TenantKey, User, record,
    },
};

use self::keys::*;
use crate::{
    dynamo::sdk::request_token,
    dynamo::{
        DynamoStore,
        attr::{Item, json_text, n, number_attr, s, string_attr},
        keys::{DATA, PK, SEQ, SK},
        sdk::{
            CONDITION_FAILED, MAX_BATCH_GET_KEYS, MAX_TRANSACTION_ITEMS, TRANSACTION_CONFLICT,
            backoff, cancellation_reasons, reason_codes, unavailable,
        },
    },
};

/// DynamoDB's limit on the requests of one `BatchWriteItem`.
pub const MAX_BATCH_WRITE_ITEMS: usize = 25;
/// `BatchWriteItem`s (or `BatchGetItem`s) of one sync in flight at once.
pub const BATCH_CONCURRENCY: usize = 8;
/// Retry rounds of `UnprocessedItems`/`UnprocessedKeys` (backoff from 20 ms, doubling: about a
/// second in all, well within a callback's time) before the sync fails as unavailable.
pub const MAX_UNPROCESSED_ROUNDS: u32 = 5;
/// Attempts at the numbering transaction while concurrent applies of the tenant win the race.
pub const MAX_SEQ_ATTEMPTS: u32 = 10;
/// Attempts at reading the department set while replacements keep flipping it.
const MAX_DEPARTMENT_READS: u32 = 5;
/// DynamoDB's limit on an item's size.
const MAX_ITEM_BYTES: usize = 400 * 1024;
/// The encoded JSON of one department chunk at most (split by size, not by count: names can be
/// long), well under [`MAX_ITEM_BYTES`].
pub const MAX_CHUNK_BYTES: usize = 300 * 1024;
/// The items of a numbering transaction at most when it carries the department chunks: DynamoDB
/// allows 4 MB, the rest is margin for how it counts.
pub const MAX_INLINE_BYTES: usize = 3 * 1024 * 1024;
/// The chunk keys of one `BatchGetItem`: 40 chunks of at most 400 KB stay under its 16 MB answer.
const CHUNKS_PER_GET: usize = 40;
/// The actions of the numbering transaction besides the events: `SEQ`, `ORGSET`, one record.
const FIXED_ACTIONS: usize = 3;

/// Item keys and attribute names of the directory items (see the [module docs](super)).
pub mod keys {
    use koogallery::directory::TenantKey;

    use crate::dynamo::keys::escape_component as esc;

    pub const DIR_PK_PREFIX: &str = "DIR#";
    pub const TENANT_SK: &str = "TENANT";
    pub const APP_SK_PREFIX: &str = "APP#";
    pub const USER_SK_PREFIX: &str = "USER#";
    pub const ORGSET_SK: &str = "ORGSET";
    /// The departments of a generation one item each, as releases before the chunks wrote them
    /// (still read, never written).
    pub const ORG_SK_PREFIX: &str = "ORG#";
    pub const ORGCHUNK_SK_PREFIX: &str = "ORGCHUNK#";
    /// What a tenant deletion sweeps besides apps and users: `ORGCHUNK#…`, `ORG#…` and `ORGSET`.
    pub const ORG_SWEEP_PREFIX: &str = "ORG";
    pub const SEQ_SK: &str = "SEQ";
    pub const EVENT_SK_PREFIX: &str = "EVENT#";
    /// The `ORGSET` item's attribute: the generation the departments are read from.
    pub const GENERATION: &str = "generation";
    /// The `ORGSET` item's attribute: how many chunks the generation has. Absent: its departments
    /// are `ORG#{generation}#…` items, one each (written by a release before the chunks).
    pub const CHUNKS: &str = "chunks";
    /// The generation of a tenant that has no `ORGSET` item (no allOrgSync yet).
    pub const FIRST_GENERATION: &str = "0";
    /// The partition keys the directory lives under (for an IAM `dynamodb:LeadingKeys` condition).
    pub const LEADING_KEYS: &[&str] = &["DIR#*"];

    /// `DIR#{instanceId}#{tenantId}`, escaped: the tenant's partition.
    pub fn tenant_pk(key: &TenantKey) -> String {
        format!(
            "{DIR_PK_PREFIX}{}#{}",
            esc(&key.instance_id),
            esc(&key.tenant_id)
        )
    }

    /// `APP#{appId}`.
    pub fn app_sk(app_id: &str) -> String {
        format!("{APP_SK_PREFIX}{}", esc(app_id))
    }

    /// `USER#{appId}#`: the prefix of one app's users (the escaped ID holds no `#`, so no other
    /// app's users share it).
    pub fn users_prefix(app_id: &str) -> String {
        format!("{USER_SK_PREFIX}{}#", esc(app_id))
    }

    /// `USER#{appId}#{userName}`.
    pub fn user_sk(app_id: &str, user_name: &str) -> String {
        format!("{}{}", users_prefix(app_id), esc(user_name))
    }

    /// `ORG#{generation}#`: the prefix of one generation's departments.
    pub fn org_prefix(generation: &str) -> String {
        format!("{ORG_SK_PREFIX}{generation}#")
    }

    /// `ORG#{generation}#{orgCode}`.
    pub fn org_sk(generation: &str, org_code: &str) -> String {
        format!("{}{}", org_prefix(generation), esc(org_code))
    }

    /// `ORGCHUNK#{generation}#`: the prefix of one generation's chunks.
    pub fn chunk_prefix(generation: &str) -> String {
        format!("{ORGCHUNK_SK_PREFIX}{generation}#")
    }

    /// `ORGCHUNK#{generation}#{index:04}`.
    pub fn chunk_sk(generation: &str, index: u32) -> String {
        format!("{}{index:04}", chunk_prefix(generation))
    }

    /// `EVENT#{seq:020}`: zero-padded so the sort key order is the delivery order.
    pub fn event_sk(seq: u64) -> String {
        format!("{EVENT_SK_PREFIX}{seq:020}")
    }

    /// A stored generation is usable in a key: not empty, no `#`.
    pub fn is_generation(g: &str) -> bool {
        !g.is_empty() && !g.contains('#')
    }
}

/// The requests a directory sent DynamoDB (see [`DynamoDirectory::take_calls`]); each page of a
/// `Query` and each round of unprocessed retries counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectoryCalls {
    pub get_item: u64,
    pub batch_get_item: u64,
    pub query: u64,
    pub batch_write_item: u64,
    pub transact_write_items: u64,
}

impl DirectoryCalls {
    pub fn total(&self) -> u64 {
        self.get_item
            + self.batch_get_item
            + self.query
            + self.batch_write_item
            + self.transact_write_items
    }
}

#[derive(Debug, Default)]
struct Counters {
    get_item: AtomicU64,
    batch_get_item: AtomicU64,
    query: AtomicU64,
    batch_write_item: AtomicU64,
    transact_write_items: AtomicU64,
}

#[derive(Clone, Copy)]
enum Call {
    GetItem,
    BatchGetItem,
    Query,
    BatchWriteItem,
    TransactWriteItems,
}

/// The tenant directory in the single DynamoDB table; cheap to clone (clones share their
/// counters).
#[derive(Debug, Clone)]
pub struct DynamoDirectory {
    client: Client,
    table: String,
    counters: Arc<Counters>,
}

impl From<&DynamoStore> for DynamoDirectory {
    /// The directory on the instance store's table.
    fn from(store: &DynamoStore) -> Self {
        Self::new(store.client().clone(), store.table())
    }
}

/// What an `ORGSET` item names: the current department set.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SetRef {
    generation: String,
    /// `Some(n)`: `ORGCHUNK#{generation}#0000` … `n - 1`. `None`: `ORG#{generation}#…` items, one
    /// per department (a release before the chunks wrote them).
    chunks: Option<u32>,
}

/// What the numbering transaction was built on.
#[derive(Debug, Clone, Default)]
struct State {
    last_seq: u64,
    /// A `SEQ` item exists (else the transaction creates it).
    seq_stored: bool,
    /// The `ORGSET` item, when one is stored (read only for department changes). None:
    /// generation [`FIRST_GENERATION`], one item per department.
    set: Option<SetRef>,
}

fn generation_of(set: Option<&SetRef>) -> &str {
    set.map_or(FIRST_GENERATION, |s| s.generation.as_str())
}

/// A department set written under a new generation, which the numbering transaction flips
/// `ORGSET` to.
struct NewSet {
    generation: String,
    /// The chunk items, by index.
    chunks: Vec<Item>,
    /// The chunks ride in the numbering transaction; else they are written ahead by
    /// `BatchWriteItem` (too many bytes or actions for one transaction).
    inline: bool,
}

/// What a singleOrgSync makes of the set read.
enum Edit {
    /// A chunk of the generation read is gone: the set was replaced meanwhile. Read again.
    Stale,
    /// The change changes nothing (a department deleted that is not there, or put as it is):
    /// `ORGSET` is only checked.
    Unchanged,
    Changed(NewSet),
}

/// The numbering transaction of one attempt.
struct Planned {
    items: Vec<TransactWriteItem>,
    /// The first `guards` actions are conditioned on the state read (`SEQ`, `ORGSET`).
    guards: usize,
    /// The events' actions start here.
    events_from: usize,
    applied: Applied,
}

/// Why a numbering transaction was cancelled.
#[derive(Debug, PartialEq)]
enum Cancel {
    /// A concurrent apply changed `SEQ` or `ORGSET`, or is writing them: read again, retry.
    Contended(String),
    /// `SEQ` held, yet an event's seq is taken: the partition is inconsistent.
    EventTaken,
    /// Anything else (throttling, validation): the codes.
    Other(String),
}

/// Reasons are positional: guards first, then the record (if any), then the events.
fn classify(reasons: &[(String, Option<Item>)], guards: usize, events_from: usize) -> Cancel {
    let codes = reason_codes(reasons);
    if reasons.iter().any(|(c, _)| c == TRANSACTION_CONFLICT)
        || reasons
            .iter()
            .take(guards)
            .any(|(c, _)| c == CONDITION_FAILED)
    {
        return Cancel::Contended(codes);
    }
    if reasons
        .iter()
        .skip(events_from)
        .any(|(c, _)| c == CONDITION_FAILED)
    {
        return Cancel::EventTaken;
    }
    Cancel::Other(codes)
}

/// A condition expression with its names and values.
struct Cond {
    expression: &'static str,
    names: Vec<(&'static str, &'static str)>,
    values: Vec<(&'static str, AttributeValue)>,
}

impl Cond {
    /// No such item yet.
    fn absent() -> Self {
        Self {
            expression: "attribute_not_exists(#pk)",
            names: vec![("#pk", PK)],
            values: vec![],
        }
    }

    /// `SEQ` still holds what was read (or is still absent).
    fn seq_unchanged(state: &State) -> Self {
        if state.seq_stored {
            Self {
                expression: "#seq = :seq",
                names: vec![("#seq", SEQ)],
                values: vec![(":seq", n(state.last_seq))],
            }
        } else {
            Self::absent()
        }
    }

    /// `ORGSET` still names the generation read (or is still absent).
    fn generation_unchanged(state: &State) -> Self {
        // A generation is never reused (a fresh UUID each time), so its name says it all.
        match &state.set {
            Some(set) => Self {
                expression: "#g = :g",
                names: vec![("#g", GENERATION)],
                values: vec![(":g", s(&set.generation))],
            },
            None => Self::absent(),
        }
    }

    fn names(&self) -> Option<HashMap<String, String>> {
        Some(
            self.names
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    /// DynamoDB refuses an empty map: `None` when there are no values.
    fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| {
            self.values
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect()
        })
    }
}

fn build_error(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("cannot build DynamoDB {what}: {e}"))
}

impl DynamoDirectory {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            counters: Arc::default(),
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The requests sent since the last call (or since the directory was made), counters reset.
    /// Shared by clones.
    pub fn take_calls(&self) -> DirectoryCalls {
        let c = &self.counters;
        DirectoryCalls {
            get_item: c.get_item.swap(0, Ordering::Relaxed),
            batch_get_item: c.batch_get_item.swap(0, Ordering::Relaxed),
            query: c.query.swap(0, Ordering::Relaxed),
            batch_write_item: c.batch_write_item.swap(0, Ordering::Relaxed),
            transact_write_items: c.transact_write_items.swap(0, Ordering::Relaxed),
        }
    }

    fn count(&self, call: Call) {
        let c = &self.counters;
        let counter = match call {
            Call::GetItem => &c.get_item,
            Call::BatchGetItem => &c.batch_get_item,
            Call::Query => &c.query,
            Call::BatchWriteItem => &c.batch_write_item,
            Call::TransactWriteItems => &c.transact_write_items,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    // ---- transaction actions ----

    fn tx_put(&self, item: Item, cond: Option<Cond>) -> Result<TransactWriteItem, StoreError> {
        check_size(&item)?;
        let mut put = Put::builder().table_name(&self.table).set_item(Some(item));
        if let Some(c) = cond {
            put = put
                .condition_expression(c.expression)
                .set_expression_attribute_names(c.names())
                .set_expression_attribute_values(c.values());
        }
        let put = put.build().map_err(|e| build_error("Put", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn tx_delete(&self, key: Item) -> Result<TransactWriteItem, StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .build()
            .map_err(|e| build_error("Delete", e))?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    fn tx_check(&self, key: Item, c: Cond) -> Result<TransactWriteItem, StoreError> {
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .condition_expression(c.expression)
            .set_expression_attribute_names(c.names())
            .set_expression_attribute_values(c.values())
            .build()
            .map_err(|e| build_error("ConditionCheck", e))?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    // ---- reads ----

    async fn get_item(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        self.count(Call::GetItem);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(pk))
            .key(SK, s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable(&format!("GetItem {pk}/{sk}"), &e))?;
        Ok(out.item)
    }

    /// Every item of the partition whose sort key is in `range` (strongly consistent, page after
    /// page), ascending; at most `limit`; only `pk` and `sk` when `keys_only`.
    async fn query(
        &self,
        pk: &str,
        range: SkRange<'_>,
        keys_only: bool,
        limit: Option<usize>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(pk))
            .scan_index_forward(true)
            .consistent_read(true);
        query = match range {
            SkRange::Prefix(prefix) => query
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_values(":prefix", s(prefix)),
            SkRange::Between(lo, hi) => query
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :lo AND :hi")
                .expression_attribute_values(":lo", s(lo))
                .expression_attribute_values(":hi", s(hi)),
        };
        if keys_only {
            query = query.projection_expression("#pk, #sk");
        }
        let what = format!("Query {pk} ({range})");
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut page = query.clone().set_exclusive_start_key(start.take());
            if let Some(limit) = limit {
                let left = limit.saturating_sub(items.len());
                page = page.limit(i32::try_from(left).unwrap_or(i32::MAX));
            }
            self.count(Call::Query);
            let out = page.send().await.map_err(|e| unavailable(&what, &e))?;
            items.extend(out.items().iter().cloned());
            if limit.is_some_and(|l| items.len() >= l) {
                break;
            }
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        if let Some(limit) = limit {
            items.truncate(limit);
        }
        Ok(items)
    }

    /// Every item `keys` names that exists (strongly consistent), in no particular order: 100
    /// keys per `BatchGetItem`, [`BATCH_CONCURRENCY`] in flight, `UnprocessedKeys` retried.
    async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        self.batch_get_by(keys, MAX_BATCH_GET_KEYS).await
    }

    /// [`Self::batch_get`] with `per_request` keys per `BatchGetItem`.
    async fn batch_get_by(
        &self,
        keys: Vec<Item>,
        per_request: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let chunks: Vec<Vec<Item>> = keys.chunks(per_request).map(<[_]>::to_vec).collect();
        let calls: Vec<_> = chunks
            .into_iter()
            .map(|chunk| self.batch_get_chunk(chunk))
            .collect();
        let mut calls = stream::iter(calls).buffer_unordered(BATCH_CONCURRENCY);
        let mut items = Vec::with_capacity(keys.len());
        while let Some(got) = calls.next().await {
            items.extend(got?);
        }
        Ok(items)
    }

    async fn batch_get_chunk(&self, mut pending: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::with_capacity(pending.len());
        let mut round = 0;
        while !pending.is_empty() {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut pending)))
                .consistent_read(true)
                .build()
                .map_err(|e| build_error("BatchGetItem keys", e))?;
            self.count(Call::BatchGetItem);
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(|e| unavailable("BatchGetItem (directory)", &e))?;
            if let Some(found) = out.responses().and_then(|r| r.get(&self.table)) {
                items.extend(found.iter().cloned());
            }
            pending = out
                .unprocessed_keys()
                .and_then(|u| u.get(&self.table))
                .map(|k| k.keys().to_vec())
                .unwrap_or_default();
            if !pending.is_empty() {
                round += 1;
                if round > MAX_UNPROCESSED_ROUNDS {
                    return Err(StoreError::Unavailable(format!(
                        "BatchGetItem (directory): {} keys still unprocessed after {MAX_UNPROCESSED_ROUNDS} retries",
                        pending.len()
                    )));
                }
                tokio::time::sleep(backoff(round)).await;
            }
        }
        Ok(items)
    }

    // ---- bulk writes ----

    /// Sends `requests` in `BatchWriteItem`s of 25, [`BATCH_CONCURRENCY`] in flight. Every
    /// request is written or the call fails: `UnprocessedItems` are retried with backoff, and what
    /// is left after [`MAX_UNPROCESSED_ROUNDS`] is `Unavailable`, never dropped.
    async fn batch_write(&self, requests: Vec<WriteRequest>, what: &str) -> Result<(), StoreError> {
        let chunks: Vec<Vec<WriteRequest>> = requests
            .chunks(MAX_BATCH_WRITE_ITEMS)
            .map(<[_]>::to_vec)
            .collect();
        let calls: Vec<_> = chunks
            .into_iter()
            .map(|chunk| self.batch_write_chunk(chunk, what))
            .collect();
        let mut calls = stream::iter(calls).buffer_unordered(BATCH_CONCURRENCY);
        while let Some(done) = calls.next().await {
            // The batches still in flight are dropped: the sync fails and is sent again.
            done?;
        }
        Ok(())
    }

    async fn batch_write_chunk(
        &self,
        mut pending: Vec<WriteRequest>,
        what: &str,
    ) -> Result<(), StoreError> {
        let mut round = 0;
        while !pending.is_empty() {
            self.count(Call::BatchWriteItem);
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, std::mem::take(&mut pending))
                .send()
                .await
                .map_err(|e| unavailable(&format!("BatchWriteItem ({what})"), &e))?;
            pending = out
                .unprocessed_items()
                .and_then(|u| u.get(&self.table))
                .cloned()
                .unwrap_or_default();
            if !pending.is_empty() {
                round += 1;
                if round > MAX_UNPROCESSED_ROUNDS {
                    return Err(StoreError::Unavailable(format!(
                        "BatchWriteItem ({what}): {} items still unprocessed after {MAX_UNPROCESSED_ROUNDS} retries",
                        pending.len()
                    )));
                }
                tokio::time::sleep(backoff(round)).await;
            }
        }
        Ok(())
    }

    /// Deletes every item of the partition under each of `prefixes` (keys read first, page after
    /// page; the queries concurrent).
    async fn sweep(&self, pk: &str, prefixes: &[&str], what: &str) -> Result<(), StoreError> {
        let found = futures_util::future::try_join_all(
            prefixes
                .iter()
                .map(|p| self.query(pk, SkRange::Prefix(p), true, None)),
        )
        .await?;
        let deletes = found
            .iter()
            .flatten()
            .map(|item| delete_request(key_from(item)?))
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_write(deletes, what).await
    }

    // ---- apply ----

    /// `SEQ`, and `ORGSET` when `with_generation` (one `BatchGetItem`).
    async fn read_state(&self, pk: &str, with_generation: bool) -> Result<State, StoreError> {
        let items = if with_generation {
            self.batch_get(vec![key_of(pk, SEQ_SK), key_of(pk, ORGSET_SK)])
                .await?
        } else {
            self.get_item(pk, SEQ_SK).await?.into_iter().collect()
        };
        let mut state = State::default();
        for item in &items {
            match string_attr(item, SK).map_err(StoreError::Corrupt)? {
                SEQ_SK => {
                    state.last_seq = decode_seq_item(item)?;
                    state.seq_stored = true;
                }
                ORGSET_SK => state.set = Some(decode_orgset_item(item)?),
                other => {
                    return Err(StoreError::Corrupt(format!(
                        "directory {pk}: asked for SEQ and ORGSET, got {other}"
                    )));
                }
            }
        }
        Ok(state)
    }

    /// The current department set (`None`: no `ORGSET`, generation `0`, one item per department).
    async fn read_orgset(&self, pk: &str) -> Result<Option<SetRef>, StoreError> {
        self.get_item(pk, ORGSET_SK)
            .await?
            .map(|item| decode_orgset_item(&item))
            .transpose()
    }

    /// The departments of `set`, by `org_code`; `None` when a chunk is gone (the set was replaced
    /// and dropped meanwhile). One item per department (a release before the chunks): read
    /// whatever is under the generation's prefix.
    async fn read_set(
        &self,
        pk: &str,
        set: Option<&SetRef>,
    ) -> Result<Option<Vec<Department>>, StoreError> {
        let generation = generation_of(set);
        let mut departments = match set.and_then(|s| s.chunks) {
            Some(0) => Vec::new(),
            Some(n) => {
                let keys = (0..n)
                    .map(|i| key_of(pk, chunk_sk(generation, i)))
                    .collect();
                let items = self.batch_get_by(keys, CHUNKS_PER_GET).await?;
                if items.len() < n as usize {
                    return Ok(None);
                }
                let mut departments = Vec::new();
                for item in &items {
                    departments.extend(decode_chunk_item(item, generation, n)?);
                }
                departments
            }
            None => {
                let prefix = org_prefix(generation);
                self.query(pk, SkRange::Prefix(&prefix), false, None)
                    .await?
                    .iter()
                    .map(|item| decode_department_item(item, generation))
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        departments.sort_by(|a, b| a.org_code.cmp(&b.org_code));
        if let Some(twice) = departments
            .windows(2)
            .find(|w| w[0].org_code == w[1].org_code)
        {
            return Err(StoreError::Corrupt(format!(
                "directory {pk}: department {:?} is stored twice in generation {generation}",
                twice[0].org_code
            )));
        }
        Ok(Some(departments))
    }

    /// `departments` (by `org_code`, each once) in chunks under a fresh generation; in the
    /// numbering transaction when they fit there beside `events`.
    fn new_set(
        &self,
        pk: &str,
        departments: &[Department],
        events: &[EventBody],
        now: DateTime<Utc>,
    ) -> Result<NewSet, StoreError> {
        let generation = uuid::Uuid::new_v4().simple().to_string();
        let chunks = record::split_department_chunks(departments, MAX_CHUNK_BYTES)
            .into_iter()
            .enumerate()
            .map(|(i, bytes)| {
                let index = u32::try_from(i).map_err(|_| {
                    StoreError::Corrupt(format!("directory {pk}: {i} department chunks"))
                })?;
                let item = record_item(pk, chunk_sk(&generation, index), bytes)?;
                check_size(&item)?;
                Ok(item)
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let inline = fits_inline(pk, &chunks, events, now)?;
        Ok(NewSet {
            generation,
            chunks,
            inline,
        })
    }

    /// The chunks of a set too big for the numbering transaction, ahead of it.
    async fn write_ahead(&self, set: &NewSet) -> Result<(), StoreError> {
        if set.inline {
            return Ok(());
        }
        let puts = set
            .chunks
            .iter()
            .map(|c| put_request(c.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_write(puts, "department chunks").await
    }

    /// A set written ahead whose transaction was cancelled: never read, deleted best effort.
    async fn discard(&self, pk: &str, set: &NewSet) {
        if set.inline {
            return;
        }
        let deletes = set
            .chunks
            .iter()
            .map(|c| delete_request(key_from(c)?))
            .collect::<Result<Vec<_>, _>>();
        let done = match deletes {
            Ok(deletes) => self.batch_write(deletes, "discard department chunks").await,
            Err(e) => Err(e),
        };
        if let Err(e) = done {
            tracing::warn!(
                pk = %pk, generation = %set.generation, error = %e,
                "department chunks of a cancelled sync not deleted; they are never read, and a tenant deletion sweeps them"
            );
        }
    }

    /// Step 3 (module docs): the set `ORGSET` no longer names, deleted best effort.
    async fn drop_set(&self, pk: &str, old: Option<&SetRef>) {
        let generation = generation_of(old);
        let dropped = match old.and_then(|s| s.chunks) {
            Some(n) => {
                let deletes = (0..n)
                    .map(|i| delete_request(key_of(pk, chunk_sk(generation, i))))
                    .collect::<Result<Vec<_>, _>>();
                match deletes {
                    Ok(deletes) => self.batch_write(deletes, "drop replaced departments").await,
                    Err(e) => Err(e),
                }
            }
            // One item per department (also generation 0: a release before the chunks may have
            // written there without an `ORGSET`).
            None => {
                self.sweep(pk, &[&org_prefix(generation)], "drop replaced departments")
                    .await
            }
        };
        if let Err(e) = dropped {
            tracing::warn!(
                pk = %pk, generation = generation, error = %e,
                "replaced departments not deleted; they are never read, and a tenant deletion sweeps them"
            );
        }
    }

    /// A singleOrgSync on the set `state` names: read it, apply the change, and (if it changes
    /// anything) chunk the result under a new generation.
    async fn edit_set(
        &self,
        pk: &str,
        state: &State,
        change: &DirectoryChange,
        events: &[EventBody],
        now: DateTime<Utc>,
    ) -> Result<Edit, StoreError> {
        let Some(departments) = self.read_set(pk, state.set.as_ref()).await? else {
            return Ok(Edit::Stale);
        };
        let mut by_code: std::collections::BTreeMap<String, Department> = departments
            .into_iter()
            .map(|d| (d.org_code.clone(), d))
            .collect();
        let changed = match change {
            DirectoryChange::PutDepartment(d) => {
                by_code.insert(d.org_code.clone(), d.clone()).as_ref() != Some(d)
            }
            DirectoryChange::DeleteDepartment { org_code } => by_code.remove(org_code).is_some(),
            _ => unreachable!("edit_set is only called for a singleOrgSync"),
        };
        if !changed {
            return Ok(Edit::Unchanged);
        }
        let departments: Vec<Department> = by_code.into_values().collect();
        Ok(Edit::Changed(self.new_set(
            pk,
            &departments,
            events,
            now,
        )?))
    }

    /// Step 1 (module docs): the records that do not ride in the numbering transaction.
    /// (The department changes write their chunks apart: [`Self::new_set`].)
    async fn write_records(&self, pk: &str, change: &DirectoryChange) -> Result<(), StoreError> {
        match change {
            DirectoryChange::PutTenant(_)
            | DirectoryChange::PutApp(_)
            | DirectoryChange::PutDepartment(_)
            | DirectoryChange::DeleteDepartment { .. }
            | DirectoryChange::ReplaceDepartments(_) => Ok(()),
            // `TENANT` goes in the transaction; `SEQ` and `EVENT#` stay (numbering never
            // restarts; the tenantDeleted event must stay pending).
            DirectoryChange::DeleteTenant => {
                self.sweep(
                    pk,
                    &[APP_SK_PREFIX, USER_SK_PREFIX, ORG_SWEEP_PREFIX],
                    "delete tenant",
                )
                .await
            }
            // `APP#` goes in the transaction.
            DirectoryChange::DeleteApp { app_id } => {
                self.sweep(pk, &[&users_prefix(app_id)], "delete app's users")
                    .await
            }
            DirectoryChange::PutUsers { app_id, users } => {
                // One BatchWriteItem refuses two requests for one key: the last copy wins, as
                // it does in the memory directory.
                let puts = last_wins(users, |u| &u.user_name)
                    .into_iter()
                    .map(|u| {
                        put_request(record_item(
                            pk,
                            user_sk(app_id, &u.user_name),
                            record::encode_user(u),
                        )?)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                self.batch_write(puts, "put users").await
            }
            DirectoryChange::RevokeUsers { app_id, user_names } => {
                // authSync flag 3 keeps the record, marked revoked; a user not stored is not
                // created (Decisions §16).
                let keys = unique(user_names)
                    .map(|name| key_of(pk, user_sk(app_id, name)))
                    .collect();
                let mut puts = Vec::new();
                for item in self.batch_get(keys).await? {
                    let mut user = decode_user_item(&item, app_id)?;
                    if !user.revoked {
                        user.revoked = true;
                        puts.push(put_request(record_item(
                            pk,
                            user_sk(app_id, &user.user_name),
                            record::encode_user(&user),
                        )?)?);
                    }
                }
                self.batch_write(puts, "revoke users").await
            }
            DirectoryChange::DeleteUsers { app_id, user_names } => {
                let deletes = unique(user_names)
                    .map(|name| delete_request(key_of(pk, user_sk(app_id, name))))
                    .collect::<Result<Vec<_>, _>>()?;
                self.batch_write(deletes, "delete users").await
            }
        }
    }

    /// Step 2 (module docs): the numbering transaction on `state`.
    fn plan(
        &self,
        pk: &str,
        change: &DirectoryChange,
        events: &[EventBody],
        now: DateTime<Utc>,
        state: &State,
        set: Option<&NewSet>,
    ) -> Result<Planned, StoreError> {
        let first_seq = state.last_seq + 1;
        let last_seq = state.last_seq + events.len() as u64;
        let mut items = Vec::with_capacity(events.len() + FIXED_ACTIONS);
        if !events.is_empty() {
            items.push(self.tx_put(seq_item(pk, last_seq), Some(Cond::seq_unchanged(state)))?);
        }
        // A department change flips ORGSET from the set read to its new set (a singleOrgSync's
        // new set is built from the one read; a replacement must not flip a set it did not
        // see replaced); a singleOrgSync that changes nothing checks the set is still current.
        if let Some(set) = set {
            let chunks = u32::try_from(set.chunks.len()).unwrap_or(u32::MAX);
            items.push(self.tx_put(
                orgset_item(pk, &set.generation, chunks),
                Some(Cond::generation_unchanged(state)),
            )?);
        } else if matches!(
            change,
            DirectoryChange::PutDepartment(_) | DirectoryChange::DeleteDepartment { .. }
        ) {
            items.push(self.tx_check(key_of(pk, ORGSET_SK), Cond::generation_unchanged(state))?);
        }
        let guards = items.len();
        let record = match change {
            DirectoryChange::PutTenant(t) => Some(self.tx_put(
                record_item(pk, TENANT_SK.to_owned(), record::encode_tenant(t))?,
                None,
            )?),
            DirectoryChange::DeleteTenant => Some(self.tx_delete(key_of(pk, TENANT_SK))?),
            DirectoryChange::PutApp(a) => Some(self.tx_put(
                record_item(pk, app_sk(&a.app_id), record::encode_app(a))?,
                None,
            )?),
            DirectoryChange::DeleteApp { app_id } => {
                Some(self.tx_delete(key_of(pk, app_sk(app_id)))?)
            }
            DirectoryChange::PutUsers { .. }
            | DirectoryChange::RevokeUsers { .. }
            | DirectoryChange::DeleteUsers { .. }
            | DirectoryChange::PutDepartment(_)
            | DirectoryChange::DeleteDepartment { .. }
            | DirectoryChange::ReplaceDepartments(_) => None,
        };
        items.extend(record);
        // A new generation's chunks: no reader reads them before ORGSET names it.
        if let Some(set) = set.filter(|s| s.inline) {
            for chunk in &set.chunks {
                items.push(self.tx_put(chunk.clone(), None)?);
            }
        }
        let events_from = items.len();
        for (seq, body) in (first_seq..).zip(events) {
            let event = DirectoryEvent {
                seq,
                at: now,
                body: body.clone(),
            };
            // Never over an event still pending: a failure here means SEQ fell behind.
            items.push(self.tx_put(event_item(pk, &event)?, Some(Cond::absent()))?);
        }
        Ok(Planned {
            items,
            guards,
            events_from,
            applied: Applied {
                first_seq,
                last_seq,
            },
        })
    }

    /// Sends one numbering transaction: `Ok(None)` when committed, `Ok(Some(codes))` when a
    /// concurrent apply won.
    async fn transact(&self, pk: &str, planned: Planned) -> Result<Option<String>, StoreError> {
        let (guards, events_from) = (planned.guards, planned.events_from);
        self.count(Call::TransactWriteItems);
        let err = match self
            .client
            .transact_write_items()
            .set_transact_items(Some(planned.items))
            .client_request_token(request_token())
            .send()
            .await
        {
            Ok(_) => return Ok(None),
            Err(err) => err,
        };
        let what = format!("TransactWriteItems (directory {pk})");
        let Some(reasons) = cancellation_reasons(&err) else {
            return Err(unavailable(&what, &err));
        };
        match classify(&reasons, guards, events_from) {
            Cancel::Contended(codes) => Ok(Some(codes)),
            Cancel::EventTaken => Err(StoreError::Corrupt(format!(
                "directory {pk}: an event seq past the stored SEQ is already taken"
            ))),
            Cancel::Other(codes) => Err(StoreError::Unavailable(format!(
                "{what}: transaction cancelled ({codes})"
            ))),
        }
    }
}

/// The sort key range of a [`DynamoDirectory::query`].
#[derive(Clone, Copy)]
enum SkRange<'a> {
    Prefix(&'a str),
    /// Inclusive.
    Between(&'a str, &'a str),
}

impl std::fmt::Display for SkRange<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Prefix(p) => write!(f, "{p}…"),
            Self::Between(lo, hi) => write!(f, "{lo} to {hi}"),
        }
    }
}

#[async_trait]
impl TenantDirectory for DynamoDirectory {
    async fn apply(
        &self,
        key: &TenantKey,
        change: &DirectoryChange,
        now: DateTime<Utc>,
    ) -> Result<Applied, StoreError> {
        let events = &change.events();
        if events.len() + FIXED_ACTIONS > MAX_TRANSACTION_ITEMS {
            // Retrying cannot help, so this is not reported as `Unavailable`.
            return Err(StoreError::Corrupt(format!(
                "{} with {} events exceeds one DynamoDB transaction ({MAX_TRANSACTION_ITEMS} actions including {FIXED_ACTIONS} for the records)",
                change.name(),
                events.len()
            )));
        }
        let pk = tenant_pk(key);
        let departments = matches!(
            change,
            DirectoryChange::PutDepartment(_)
                | DirectoryChange::DeleteDepartment { .. }
                | DirectoryChange::ReplaceDepartments(_)
        );
        // An allOrgSync's new set does not depend on what is stored: built (and written ahead,
        // if it does not fit in the transaction) once, whatever the attempts.
        let replacement = match change {
            DirectoryChange::ReplaceDepartments(all) => {
                let mut all: Vec<Department> = last_wins(all, |d| &d.org_code)
                    .into_iter()
                    .cloned()
                    .collect();
                all.sort_by(|a, b| a.org_code.cmp(&b.org_code));
                let set = self.new_set(&pk, &all, events, now)?;
                self.write_ahead(&set).await?;
                Some(set)
            }
            _ => {
                self.write_records(&pk, change).await?;
                None
            }
        };

        let mut attempt = 0;
        let (applied, state, edited) = loop {
            let state = self.read_state(&pk, departments).await?;
            // A singleOrgSync's new set is built from the set read, on every attempt.
            let edited = match change {
                DirectoryChange::PutDepartment(_) | DirectoryChange::DeleteDepartment { .. } => {
                    match self.edit_set(&pk, &state, change, events, now).await? {
                        Edit::Stale => None,
                        Edit::Unchanged => Some(None),
                        Edit::Changed(set) => {
                            self.write_ahead(&set).await?;
                            Some(Some(set))
                        }
                    }
                }
                _ => Some(None),
            };
            let contended = match &edited {
                None => Some("a chunk of the set read is gone".to_owned()),
                Some(edited) => {
                    let set = replacement.as_ref().or(edited.as_ref());
                    let planned = self.plan(&pk, change, events, now, &state, set)?;
                    let applied = planned.applied;
                    if planned.items.is_empty() {
                        // Nothing to number and no record to write (an empty authSync).
                        break (applied, state, None);
                    }
                    match self.transact(&pk, planned).await? {
                        None => {
                            break (
                                applied,
                                state,
                                edited.as_ref().map(|s| s.generation.clone()),
                            );
                        }
                        Some(codes) => Some(codes),
                    }
                }
            };
            if let Some(Some(set)) = &edited {
                self.discard(&pk, set).await;
            }
            attempt += 1;
            if attempt >= MAX_SEQ_ATTEMPTS {
                tracing::warn!(
                    pk = %pk, change = change.name(), codes = ?contended,
                    "directory sync still contended after {attempt} attempts"
                );
                if let Some(set) = &replacement {
                    self.discard(&pk, set).await;
                }
                return Err(StoreError::Conflict);
            }
            tokio::time::sleep(backoff(attempt)).await;
        };

        if replacement.is_some() || edited.is_some() {
            // Step 3, best effort: the previous set is no longer read.
            self.drop_set(&pk, state.set.as_ref()).await;
        }
        Ok(applied)
    }

    async fn tenant(&self, key: &TenantKey) -> Result<Option<Tenant>, StoreError> {
        self.get_item(&tenant_pk(key), TENANT_SK)
            .await?
            .map(|item| decode_tenant_item(&item))
            .transpose()
    }

    async fn apps(&self, key: &TenantKey) -> Result<Vec<App>, StoreError> {
        let items = self
            .query(&tenant_pk(key), SkRange::Prefix(APP_SK_PREFIX), false, None)
            .await?;
        let mut apps = items
            .iter()
            .map(decode_app_item)
            .collect::<Result<Vec<_>, _>>()?;
        apps.sort_by(|a, b| a.app_id.cmp(&b.app_id));
        Ok(apps)
    }

    async fn user(
        &self,
        key: &TenantKey,
        app_id: &str,
        user_name: &str,
    ) -> Result<Option<User>, StoreError> {
        self.get_item(&tenant_pk(key), &user_sk(app_id, user_name))
            .await?
            .map(|item| decode_user_item(&item, app_id))
            .transpose()
    }

    async fn users(&self, key: &TenantKey, app_id: &str) -> Result<Vec<User>, StoreError> {
        let prefix = users_prefix(app_id);
        let items = self
            .query(&tenant_pk(key), SkRange::Prefix(&prefix), false, None)
            .await?;
        let mut users = items
            .iter()
            .map(|item| decode_user_item(item, app_id))
            .collect::<Result<Vec<_>, _>>()?;
        users.sort_by(|a, b| a.user_name.cmp(&b.user_name));
        Ok(users)
    }

    /// `ORGSET`, then the set it names: its chunks (a generation's chunks never change, so all of
    /// them found is the whole set), or, one item per department (a release before the chunks),
    /// the generation's items and `ORGSET` again. A set replaced meanwhile may be deleted under
    /// the read, which then starts over.
    async fn departments(&self, key: &TenantKey) -> Result<Vec<Department>, StoreError> {
        let pk = tenant_pk(key);
        let mut set = self.read_orgset(&pk).await?;
        for _ in 0..MAX_DEPARTMENT_READS {
            let read = self.read_set(&pk, set.as_ref()).await?;
            let chunked = set.as_ref().is_some_and(|s| s.chunks.is_some());
            if chunked && let Some(departments) = read {
                return Ok(departments);
            }
            let after = self.read_orgset(&pk).await?;
            if after == set {
                match read {
                    Some(departments) => return Ok(departments),
                    None => {
                        return Err(StoreError::Corrupt(format!(
                            "directory {pk}: a chunk of department generation {} is missing",
                            generation_of(set.as_ref())
                        )));
                    }
                }
            }
            set = after;
        }
        Err(StoreError::Unavailable(format!(
            "directory {pk}: the department set was replaced during each of {MAX_DEPARTMENT_READS} reads"
        )))
    }

    async fn pending_events(
        &self,
        key: &TenantKey,
        limit: usize,
    ) -> Result<Vec<DirectoryEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.query(
            &tenant_pk(key),
            SkRange::Prefix(EVENT_SK_PREFIX),
            false,
            Some(limit),
        )
        .await?
        .iter()
        .map(decode_event_item)
        .collect()
    }

    async fn events_delivered(&self, key: &TenantKey, seq: u64) -> Result<(), StoreError> {
        if seq == 0 {
            return Ok(());
        }
        let pk = tenant_pk(key);
        let upto = event_sk(seq);
        let delivered = self
            .query(&pk, SkRange::Between(EVENT_SK_PREFIX, &upto), true, None)
            .await?;
        let deletes = delivered
            .iter()
            .map(|item| delete_request(key_from(item)?))
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_write(deletes, "delivered events").await
    }
}

// ---- items ----

fn key_of(pk: &str, sk: impl Into<String>) -> Item {
    HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
}

/// The key of an item read (a keys-only query's item is just that).
fn key_from(item: &Item) -> Result<Item, StoreError> {
    let pk = string_attr(item, PK).map_err(StoreError::Corrupt)?;
    let sk = string_attr(item, SK).map_err(StoreError::Corrupt)?;
    Ok(key_of(pk, sk))
}

/// A record item: the key and the record's versioned JSON in `data`, as the instance items keep
/// theirs.
fn record_item(pk: &str, sk: String, bytes: Vec<u8>) -> Result<Item, StoreError> {
    let mut item = key_of(pk, sk);
    item.insert(DATA.to_owned(), s(json_text(bytes)?));
    Ok(item)
}

fn event_item(pk: &str, event: &DirectoryEvent) -> Result<Item, StoreError> {
    let mut item = record_item(pk, event_sk(event.seq), record::encode_event(event))?;
    item.insert(SEQ.to_owned(), n(event.seq));
    Ok(item)
}

fn seq_item(pk: &str, last_seq: u64) -> Item {
    let mut item = key_of(pk, SEQ_SK);
    item.insert(SEQ.to_owned(), n(last_seq));
    item
}

fn orgset_item(pk: &str, generation: &str, chunks: u32) -> Item {
    let mut item = key_of(pk, ORGSET_SK);
    item.insert(GENERATION.to_owned(), s(generation));
    item.insert(CHUNKS.to_owned(), n(chunks));
    item
}

/// Whether a new set's chunks fit in the numbering transaction beside `events`: DynamoDB's 100
/// actions, and [`MAX_INLINE_BYTES`] of items (the events sized with the longest seq).
fn fits_inline(
    pk: &str,
    chunks: &[Item],
    events: &[EventBody],
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    if chunks.len() + events.len() + FIXED_ACTIONS > MAX_TRANSACTION_ITEMS {
        return Ok(false);
    }
    // SEQ and ORGSET: keys and a number or a generation.
    let mut bytes = 2 * 256 + chunks.iter().map(item_bytes).sum::<usize>();
    for body in events {
        let event = DirectoryEvent {
            seq: u64::MAX,
            at: now,
            body: body.clone(),
        };
        bytes += item_bytes(&event_item(pk, &event)?);
        if bytes > MAX_INLINE_BYTES {
            return Ok(false);
        }
    }
    Ok(bytes <= MAX_INLINE_BYTES)
}

fn put_request(item: Item) -> Result<WriteRequest, StoreError> {
    check_size(&item)?;
    let put = PutRequest::builder()
        .set_item(Some(item))
        .build()
        .map_err(|e| build_error("PutRequest", e))?;
    Ok(WriteRequest::builder().put_request(put).build())
}

fn delete_request(key: Item) -> Result<WriteRequest, StoreError> {
    let delete = DeleteRequest::builder()
        .set_key(Some(key))
        .build()
        .map_err(|e| build_error("DeleteRequest", e))?;
    Ok(WriteRequest::builder().delete_request(delete).build())
}

/// An item over DynamoDB's 400 KB is refused up front: retrying cannot help, so it is not
/// `Unavailable`. (Names and string values by their bytes; what this module writes holds nothing
/// else but small numbers.)
fn check_size(item: &Item) -> Result<(), StoreError> {
    let bytes = item_bytes(item);
    if bytes > MAX_ITEM_BYTES {
        let sk = string_attr(item, SK).unwrap_or("?");
        return Err(StoreError::Corrupt(format!(
            "directory item {sk} is {bytes} bytes, over DynamoDB's {MAX_ITEM_BYTES}"
        )));
    }
    Ok(())
}

/// An item's size as DynamoDB counts it (names and string values by their bytes; numbers by
/// their digits, a little more than DynamoDB counts).
fn item_bytes(item: &Item) -> usize {
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

/// The last of the items sharing a key, in the order of their first appearance.
fn last_wins<'a, T>(all: &'a [T], key: impl Fn(&'a T) -> &'a str) -> Vec<&'a T> {
    let mut at: HashMap<&str, usize> = HashMap::with_capacity(all.len());
    let mut out: Vec<&T> = Vec::with_capacity(all.len());
    for t in all {
        match at.entry(key(t)) {
            Entry::Occupied(e) => out[*e.get()] = t,
            Entry::Vacant(e) => {
                e.insert(out.len());
                out.push(t);
            }
        }
    }
    out
}

fn unique(names: &[String]) -> impl Iterator<Item = &str> {
    let mut seen = HashSet::with_capacity(names.len());
    names
        .iter()
        .map(String::as_str)
        .filter(move |n| seen.insert(*n))
}

/// A corrupt item, named by its key.
fn corrupt(item: &Item, what: &str, m: impl std::fmt::Display) -> StoreError {
    let pk = string_attr(item, PK).unwrap_or("?");
    let sk = string_attr(item, SK).unwrap_or("?");
    StoreError::Corrupt(format!("directory {what} item {pk}/{sk}: {m}"))
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

fn decode_tenant_item(item: &Item) -> Result<Tenant, StoreError> {
    let (_, data) = parts(item, "tenant")?;
    record::decode_tenant(data.as_bytes()).map_err(|e| corrupt(item, "tenant", e))
}

fn decode_app_item(item: &Item) -> Result<App, StoreError> {
    let (sk, data) = parts(item, "app")?;
    let app = record::decode_app(data.as_bytes()).map_err(|e| corrupt(item, "app", e))?;
    let expected = app_sk(&app.app_id);
    if sk != expected {
        return Err(misfiled(item, "app", &expected));
    }
    Ok(app)
}

/// A user of `app_id` (the key's app: the record's `app_id` is stored as sent).
fn decode_user_item(item: &Item, app_id: &str) -> Result<User, StoreError> {
    let (sk, data) = parts(item, "user")?;
    let user = record::decode_user(data.as_bytes()).map_err(|e| corrupt(item, "user", e))?;
    let expected = user_sk(app_id, &user.user_name);
    if sk != expected {
        return Err(misfiled(item, "user", &expected));
    }
    Ok(user)
}

fn decode_department_item(item: &Item, generation: &str) -> Result<Department, StoreError> {
    let (sk, data) = parts(item, "department")?;
    let department =
        record::decode_department(data.as_bytes()).map_err(|e| corrupt(item, "department", e))?;
    let expected = org_sk(generation, &department.org_code);
    if sk != expected {
        return Err(misfiled(item, "department", &expected));
    }
    Ok(department)
}

fn decode_event_item(item: &Item) -> Result<DirectoryEvent, StoreError> {
    let (sk, data) = parts(item, "event")?;
    let event = record::decode_event(data.as_bytes()).map_err(|e| corrupt(item, "event", e))?;
    let expected = event_sk(event.seq);
    if sk != expected {
        return Err(misfiled(item, "event", &expected));
    }
    Ok(event)
}

fn decode_seq_item(item: &Item) -> Result<u64, StoreError> {
    number_attr(item, SEQ).map_err(|m| corrupt(item, "seq", m))
}

fn decode_orgset_item(item: &Item) -> Result<SetRef, StoreError> {
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
fn decode_chunk_item(
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap()
    }

    fn user(name: &str) -> User {
        koogallery::testing::directory::sample_user("a1", name, t0())
    }

    #[test]
    fn keys_follow_the_documented_schema() {
        let key = TenantKey::new("inst-1", "tenant-1");
        assert_eq!(tenant_pk(&key), "DIR#inst-1#tenant-1");
        assert_eq!(tenant_pk(&TenantKey::new("", "t")), "DIR##t");
        assert_eq!(app_sk("app-1"), "APP#app-1");
        assert_eq!(user_sk("app-1", "zhangsan"), "USER#app-1#zhangsan");
        assert_eq!(users_prefix("app-1"), "USER#app-1#");
        assert_eq!(org_sk("0", "10001"), "ORG#0#10001");
        assert_eq!(chunk_sk("g1", 3), "ORGCHUNK#g1#0003");
        assert_eq!(chunk_prefix("g1"), "ORGCHUNK#g1#");
        assert_eq!(event_sk(7), "EVENT#00000000000000000007");
        assert_eq!(event_sk(u64::MAX), "EVENT#18446744073709551615");
        assert_eq!(LEADING_KEYS, [format!("{DIR_PK_PREFIX}*").as_str()]);
        // No other partition starts like a tenant's.
        for other in crate::usage::keys::LEADING_KEYS {
            assert!(!other.starts_with(DIR_PK_PREFIX) && !DIR_PK_PREFIX.starts_with(other));
        }
    }

    #[test]
    fn ids_with_hash_or_percent_never_share_a_key() {
        let pk = |i: &str, t: &str| tenant_pk(&TenantKey::new(i, t));
        assert_ne!(pk("a#b", "c"), pk("a", "b#c"));
        assert_ne!(pk("", "a#b"), pk("a", "b"));
        assert_ne!(pk("a%23", "b"), pk("a#", "b"));
        assert_eq!(pk("a#b", "c%"), "DIR#a%23b#c%25");
        assert_ne!(user_sk("a#b", "c"), user_sk("a", "b#c"));
        assert!(!user_sk("a#b", "c").starts_with(&users_prefix("a")));
        assert!(!user_sk("ab", "c").starts_with(&users_prefix("a")));
        assert_ne!(org_sk("0", "x#y"), org_sk("0#x", "y"));
        assert_ne!(app_sk("x%23"), app_sk("x#"));
    }

    #[test]
    fn sort_key_prefixes_do_not_overlap() {
        let kinds = [
            TENANT_SK.to_owned(),
            app_sk("a"),
            user_sk("a", "u"),
            ORGSET_SK.to_owned(),
            org_sk("0", "d"),
            chunk_sk("0", 0),
            SEQ_SK.to_owned(),
            event_sk(1),
        ];
        let prefixes = [
            APP_SK_PREFIX,
            USER_SK_PREFIX,
            ORG_SK_PREFIX,
            ORGCHUNK_SK_PREFIX,
            EVENT_SK_PREFIX,
        ];
        for p in prefixes {
            assert_eq!(kinds.iter().filter(|k| k.starts_with(p)).count(), 1, "{p}");
        }
        // A tenant deletion's `ORG` sweep takes the departments (both layouts) and ORGSET,
        // nothing else.
        let swept: Vec<_> = kinds
            .iter()
            .filter(|k| k.starts_with(ORG_SWEEP_PREFIX))
            .collect();
        assert_eq!(swept, [ORGSET_SK, &org_sk("0", "d"), &chunk_sk("0", 0)]);
        // Delivered events are a BETWEEN range: EVENT# up to the seq.
        assert!(EVENT_SK_PREFIX < event_sk(0).as_str());
        assert!(event_sk(9) < event_sk(10));
    }

    #[test]
    fn items_round_trip_and_damaged_ones_are_corrupt() {
        let pk = "DIR#i#t";
        let u = user("zhangsan");
        let item = record_item(pk, user_sk("a1", "zhangsan"), record::encode_user(&u)).unwrap();
        assert_eq!(decode_user_item(&item, "a1").unwrap(), u);
        // Filed under another app or name: corrupt, not misread.
        assert!(matches!(
            decode_user_item(&item, "a2"),
            Err(StoreError::Corrupt(_))
        ));
        let mut no_data = item.clone();
        no_data.remove(DATA);
        let mut bad_json = item.clone();
        bad_json.insert(DATA.into(), s("{"));
        let mut not_string = item.clone();
        not_string.insert(DATA.into(), n(1));
        for bad in [no_data, bad_json, not_string] {
            assert!(matches!(
                decode_user_item(&bad, "a1"),
                Err(StoreError::Corrupt(_))
            ));
        }

        let event = DirectoryEvent {
            seq: 12,
            at: t0(),
            body: EventBody::TenantDeleted,
        };
        let item = event_item(pk, &event).unwrap();
        assert_eq!(item.get(SEQ), Some(&n(12)));
        assert_eq!(decode_event_item(&item).unwrap(), event);
        let mut moved = item.clone();
        moved.insert(SK.into(), s(event_sk(13)));
        assert!(matches!(
            decode_event_item(&moved),
            Err(StoreError::Corrupt(_))
        ));

        assert_eq!(decode_seq_item(&seq_item(pk, 41)).unwrap(), 41);
        let mut seq = seq_item(pk, 41);
        seq.insert(SEQ.into(), s("41"));
        assert!(matches!(decode_seq_item(&seq), Err(StoreError::Corrupt(_))));

        assert_eq!(
            decode_orgset_item(&orgset_item(pk, "abc", 2)).unwrap(),
            SetRef {
                generation: "abc".into(),
                chunks: Some(2)
            }
        );
        // Written by a release before the chunks: one item per department.
        let mut per_item = orgset_item(pk, "abc", 2);
        per_item.remove(CHUNKS);
        assert_eq!(decode_orgset_item(&per_item).unwrap().chunks, None);
        let mut bad_count = orgset_item(pk, "abc", 2);
        bad_count.insert(CHUNKS.into(), s("2"));
        assert!(matches!(
            decode_orgset_item(&bad_count),
            Err(StoreError::Corrupt(_))
        ));
        for bad in ["", "a#b"] {
            assert!(matches!(
                decode_orgset_item(&orgset_item(pk, bad, 1)),
                Err(StoreError::Corrupt(_))
            ));
        }

        let departments = [Department {
            org_code: "d1".into(),
            org_name: "研发部".into(),
            parent_code: None,
        }];
        let chunk = record_item(
            pk,
            chunk_sk("g", 1),
            record::encode_department_chunk(&departments),
        )
        .unwrap();
        assert_eq!(decode_chunk_item(&chunk, "g", 2).unwrap(), departments);
        // Another generation's, or past the count: corrupt, not misread.
        for (generation, count) in [("h", 2), ("g", 1)] {
            assert!(matches!(
                decode_chunk_item(&chunk, generation, count),
                Err(StoreError::Corrupt(_))
            ));
        }
    }

    #[test]
    fn the_last_copy_of_a_key_wins_in_first_order() {
        let mut second = user("b");
        second.name = "later".into();
        let users = [user("b"), user("a"), second.clone(), user("c")];
        let kept = last_wins(&users, |u| &u.user_name);
        assert_eq!(
            kept.iter()
                .map(|u| (u.user_name.as_str(), u.name.as_str()))
                .collect::<Vec<_>>(),
            [("b", "later"), ("a", "张三"), ("c", "张三")]
        );
        let names = ["x".to_owned(), "y".to_owned(), "x".to_owned()];
        assert_eq!(unique(&names).collect::<Vec<_>>(), ["x", "y"]);
    }

    #[test]
    fn oversized_items_are_refused_up_front() {
        let item = record_item("DIR#i#t", TENANT_SK.into(), vec![b'x'; MAX_ITEM_BYTES]).unwrap();
        assert!(matches!(check_size(&item), Err(StoreError::Corrupt(_))));
        assert!(check_size(&seq_item("DIR#i#t", 1)).is_ok());
    }

    #[test]
    fn chunks_ride_in_the_transaction_while_they_fit() {
        let pk = "DIR#i#t";
        let chunk = |kb: usize| record_item(pk, chunk_sk("g", 0), vec![b'x'; kb * 1024]).unwrap();
        let small = [EventBody::TenantDeleted];
        assert!(fits_inline(pk, &[chunk(300)], &small, t0()).unwrap());
        assert!(fits_inline(pk, &vec![chunk(300); 10], &small, t0()).unwrap());
        // Over the bytes, or over the actions.
        assert!(!fits_inline(pk, &vec![chunk(300); 11], &small, t0()).unwrap());
        assert!(!fits_inline(pk, &vec![chunk(1); 97], &small, t0()).unwrap());
        assert!(fits_inline(pk, &vec![chunk(1); 96], &small, t0()).unwrap());
        assert!(fits_inline(pk, &[], &small, t0()).unwrap());
    }

    #[test]
    fn cancellations_classify_by_position() {
        let r = |codes: &[&str]| -> Vec<(String, Option<Item>)> {
            codes.iter().map(|c| ((*c).to_owned(), None)).collect()
        };
        // SEQ moved: a concurrent apply won.
        assert!(matches!(
            classify(&r(&["ConditionalCheckFailed", "None", "None"]), 1, 1),
            Cancel::Contended(_)
        ));
        // ORGSET flipped.
        assert!(matches!(
            classify(
                &r(&["None", "ConditionalCheckFailed", "None", "None"]),
                2,
                3
            ),
            Cancel::Contended(_)
        ));
        assert!(matches!(
            classify(&r(&["None", "TransactionConflict", "None"]), 1, 1),
            Cancel::Contended(_)
        ));
        assert_eq!(
            classify(&r(&["None", "None", "ConditionalCheckFailed"]), 1, 2),
            Cancel::EventTaken
        );
        assert_eq!(
            classify(&r(&["ThrottlingError", "None"]), 1, 1),
            Cancel::Other("ThrottlingError, None".into())
        );
    }

    #[test]
    fn generation_conditions_follow_the_state_read() {
        let absent = State::default();
        assert_eq!(generation_of(absent.set.as_ref()), FIRST_GENERATION);
        assert_eq!(
            Cond::generation_unchanged(&absent).expression,
            "attribute_not_exists(#pk)"
        );
        assert!(Cond::generation_unchanged(&absent).values().is_none());
        let stored = State {
            last_seq: 4,
            seq_stored: true,
            set: Some(SetRef {
                generation: "g1".into(),
                chunks: Some(1),
            }),
        };
        assert_eq!(generation_of(stored.set.as_ref()), "g1");
        assert_eq!(Cond::generation_unchanged(&stored).expression, "#g = :g");
        assert_eq!(
            Cond::seq_unchanged(&stored).values(),
            Some(HashMap::from([(":seq".to_owned(), n(4))]))
        );
    }
}
