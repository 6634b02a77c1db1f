//! [`UsageStore`] on DynamoDB: usage windows, the sparse index of the unsettled ones, idempotency
//! keys and package usage, in the single table of [`crate::dynamo`], with the semantics of the
//! memory store (`koogallery::testing::MemoryStore`) and the embedded (redb) store.
//!
//! # Items
//!
//! | item            | `pk`                            | `sk`                                         | other attributes |
//! |-----------------|---------------------------------|----------------------------------------------|------------------|
//! | window          | `USAGE#{instanceId}`            | `W#{start:015}` or `W#{start:015}#{package}` | `version` (N), `data` (S, [`record::encode_window`]), `usage` (S, what it adds up to: [`usage_of`]); while unsettled also `usage_due` (S, `"1"`) and `usage_due_at` (S, `{end:015}#{series}`) |
//! | usage total     | `USAGE#{instanceId}`            | `TOTAL`                                      | `version` (N), `data` (S, [`record::encode_total`]) |
//! | idempotency key | `USAGEKEY#{idempotencyKey}`     | `USAGEKEY`                                   | `data` (S, [`record::encode_key`]), `ttl` (N, Unix seconds: `KeyRecord::keep_until`, for the table's TTL) |
//! | package         | `USAGEPKG#{packageInstanceId}`  | `USAGEPKG`                                   | `version` (N), `data` (S, [`record::encode_package`]) |
//! | push claim      | `USAGE#` (no instance)          | `PUSH` (never a window's `W#…`)              | `push_holder` (S), `push_until` (N, Unix millis) |
//!
//! - `start` and `end` are Unix milliseconds, zero-padded to 15 digits (until the year 33658); a
//!   time before 1970 is refused as corrupt (no instance is that old). The fixed width keeps the
//!   keys unambiguous whatever an ID holds, so nothing is escaped: a window's package (its
//!   `relate_pkg_instance`) follows the start, and the key and package partitions are the whole
//!   ID after their prefix.
//! - An instance's windows, its packages' included, share its partition: [`UsageStore::windows_of`]
//!   is one `Query` (paginated), and [`UsageStore::windows_at`] one `Query` on the sort key prefix
//!   `W#{start:015}`; both sorted by (start, package) as the other stores sort them.
//! - `data` is the versioned stored form of `koogallery::metering::record`; `version` is
//!   authoritative for compare-and-set (the JSON carries the same value).
//! - `series` is [`WindowKey::series`] (the instance, or instance `\n` package).
//! - A window, a usage total or a package may also carry a hold, `usage_hold` (S, a batch's
//!   token) and `usage_hold_until` (N, Unix millis): see Ingestion. A total or a package item may
//!   be a hold alone (no `data`): it reads as absent.
//!
//! # Usage totals
//!
//! An instance's [`UsageTotal`] is written in the same transaction as the windows it sums, so
//! [`UsageStore::usage_totals`] is one `BatchGetItem` for up to 100 instances. Tables written
//! before totals were kept have windows without a total: an instance without one is summed from
//! its windows (one `Query`, as before) when it is read, and the first batch that reports usage
//! for it writes its total, built from its windows in that batch's first transaction
//! (conditioned on no total existing yet). Reads never write (queryInstance's role only reads).
//!
//! # The due index
//!
//! `usage-due-index` (partition `usage_due`, sort `usage_due_at`, keys only) is sparse: a window
//! carries the two attributes only while it is unsettled (open or sealed), and the save that
//! settles it drops them. [`UsageStore::due`] queries `usage_due = "1" AND usage_due_at <
//! {ended_by + 1 ms:015}`, oldest first (then by series, as redb orders it), and reads the windows
//! themselves with strongly consistent `BatchGetItem`: the index lags the table a little, so what
//! settled meanwhile is skipped and the query pages on until `limit` windows are found or the
//! index ends; a window created an instant ago may show only on the next pass.
//!
//! Keys only, and the index key of a window never changes while it is unsettled: usage added to an
//! open window writes the table only; the index is written when a window is created and when it
//! is settled. One constant partition takes about 1000 index writes a second (window creations at
//! the top of the hour, settlements by the pusher); a deployment that opens more windows per
//! second than that would shard `usage_due`.
//!
//! # Saves
//!
//! [`UsageStore::save_window`] is a `PutItem` at `version + 1` on the condition `version =
//! expected` (a missing window fails it too: `Conflict`), `usage` unchanged (a save never changes
//! what a window adds up to, so totals stay its sum) and no live hold, with the due-index
//! attributes as the window's state says. [`UsageStore::save_windows`] (the pusher's seals and settlements, up to
//! 1000 windows) sends those puts [`SAVE_CONCURRENCY`] at a time rather than as transactions: each
//! window is its own compare-and-set, so one stale copy must not fail the others, and a plain put
//! costs half the write units of a transactional one.
//!
//! # The push claim
//!
//! [`UsageStore::claim_push`] is a `PutItem` of the claim item on the condition
//! `attribute_not_exists(pk) OR push_until <= :now OR push_holder = :holder`; a failed condition
//! is a claim refused. [`UsageStore::release_push`] puts it back expired (`push_until` 0) on the
//! condition `push_holder = :holder`, so a release never drops another holder's claim; it is a
//! `PutItem` under `USAGE#`, as the pusher's role already may.
//!
//! # Ingestion
//!
//! 1. Everything [`ingest::touched`] names, and the usage total of every instance the batch
//!    names, is read with strongly consistent `BatchGetItem` (100 keys per call, the calls
//!    concurrent, `UnprocessedKeys` retried with backoff); a missing total is built from the
//!    instance's windows (see Usage totals).
//! 2. [`ingest::apply`] validates and applies the whole batch: a refusal is returned and nothing
//!    is written; a batch of duplicates only writes nothing.
//! 3. Every changed window, package and total is put at its loaded version + 1 on the condition
//!    `version = loaded` (`attribute_not_exists` for a new one), every new key on the condition
//!    `attribute_not_exists(pk)`. When that is at most 100 items (DynamoDB's limit per
//!    transaction), it is **one** `TransactWriteItems`: all or nothing, like redb's one commit.
//!    Its totals and packages are also conditioned on no other batch holding them (below).
//! 4. A batch over 100 items is written in several transactions, sent one after the other. The
//!    reports applied are grouped by package and window (order does not change what a batch that
//!    passed adds up to: quantities are positive, so no subset of it can exceed a quota or a
//!    window that the whole did not) and cut into chunks of at most 100 items; each chunk's
//!    transaction writes its reports' keys together with the windows, packages and totals they
//!    add to, at the values the chunks so far give ([`ingest::apply`] again, chunk by chunk), each
//!    conditioned on the version the previous write of this batch left. A failure between two
//!    transactions (a crash, a timeout, an outage) therefore leaves whole chunks: every report is
//!    stored with its key or not at all, and the batch sent again applies each report exactly
//!    once (those already stored are its duplicates).
//! 5. **Holds**: so that what step 2 validated cannot change under a batch of several
//!    transactions, and nothing of a refused batch is ever stored, such a batch first holds, before
//!    its first transaction, every total, package and existing window it will write: a `PutItem`
//!    of the item as loaded plus `usage_hold` = the batch's token and `usage_hold_until` = now +
//!    [`HOLD_FOR`], on the condition `version = loaded` and no other live hold (a new total or
//!    package is held by a hold-only item). While held, another batch cannot write the instance
//!    or the package (its transaction carries the total or package conditioned on no live hold),
//!    and a seal cannot save the window ([`UsageStore::save_window`] is conditioned on no live
//!    hold); a window the batch creates can be neither (it does not exist until the batch
//!    writes it, and only a batch writing the instance's total can create it). A hold refused
//!    (a concurrent writer since step 1) drops the holds taken and goes back to step 1, where
//!    the batch may now be refused, with nothing written. Each item's last write in the batch
//!    puts it without the hold; earlier writes keep it. The batch sends no transaction within
//!    [`HOLD_MARGIN`] of its holds' end (a retryable error instead); a batch that stops early drops
//!    its holds, and a crashed one's lapse after [`HOLD_FOR`]. Not held: idempotency keys. Two
//!    batches sent at once that use one key for two different reports (an app's mistake) can
//!    still see the second refused (`KeyReused`) after its first transactions were stored.
//! 6. A transaction cancelled by a failed condition or a conflicting transaction means a
//!    concurrent writer (another batch, a seal) or a live hold: the batch is read and applied
//!    again from step 1, at most [`MAX_INGEST_ATTEMPTS`] times, then `StoreError::Conflict`
//!    (retryable). Reports that this call stored in an earlier attempt are counted as applied,
//!    not as duplicates.
//!
//! Every transaction carries its own `ClientRequestToken`, so when the SDK retries one that did
//! commit (a lost answer), DynamoDB answers success instead of failing its conditions.
//!
//! [`DynamoUsageStore::take_calls`] counts the requests sent and the items written, for the
//! figures in BENCHMARKS.md ("DynamoDB writes per ingested batch").

use std::{
    collections::{HashMap, HashSet},
    hash::BuildHasher,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use async_trait::async_trait;
use aws_sdk_dynamodb::{
    Client,
    types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem},
};
use chrono::{DateTime, Utc};
use koogallery::{
    StoreError,
    metering::{
        IngestError, IngestOutcome, PackageQuotas, PackageUsage, UsageReport, UsageStore,
        UsageTotal, UsageWindow, WindowKey,
        ingest::{self, Applied, Loaded},
        record,
    },
};

use self::keys::*;
use crate::dynamo::{
    DynamoStore,
    attr::{Item, json_text, n, number_attr, s, string_attr},
    keys::{DATA, PK, SK, TTL, VERSION},
    sdk::{
        CONDITION_FAILED, MAX_BATCH_GET_KEYS, MAX_TRANSACTION_ITEMS, MAX_UNPROCESSED_RETRIES,
        TRANSACTION_CONFLICT, backoff, cancellation_reasons, put_if, reason_codes, unavailable,
    },
};

/// How many times a batch is read and applied again after losing to a concurrent writer.
pub const MAX_INGEST_ATTEMPTS: u32 = 10;

/// How many of [`UsageStore::save_windows`]'s conditional puts (and of a batch's holds, and of the
/// reads that sum windows for instances without a total) are in flight at once.
pub const SAVE_CONCURRENCY: usize = 32;

/// How long a batch of several transactions holds what it validated (module docs, Ingestion 5).
pub const HOLD_FOR: std::time::Duration = std::time::Duration::from_secs(60);

/// A batch sends no transaction this close to its holds' end.
pub const HOLD_MARGIN: std::time::Duration = std::time::Duration::from_secs(15);

/// Item keys and attribute names of the usage items (see the [module docs](super)).
pub mod keys {
    use chrono::{DateTime, Utc};
    use koogallery::{StoreError, metering::WindowKey};

    /// Prefix of a window's partition key: the instance's usage partition.
    pub const USAGE_PK_PREFIX: &str = "USAGE#";
    /// Prefix of every window's sort key.
    pub const WINDOW_SK_PREFIX: &str = "W#";
    pub const KEY_PK_PREFIX: &str = "USAGEKEY#";
    pub const KEY_SK: &str = "USAGEKEY";
    pub const PACKAGE_PK_PREFIX: &str = "USAGEPKG#";
    pub const PACKAGE_SK: &str = "USAGEPKG";
    /// The sort key of an instance's usage total, in its usage partition (never a window's `W#…`).
    pub const TOTAL_SK: &str = "TOTAL";
    /// What a window adds up to (`usage_of`): a save must leave it unchanged.
    pub const USAGE: &str = "usage";
    /// The token of the batch holding the item (module docs, Ingestion 5).
    pub const HOLD: &str = "usage_hold";
    /// Until when (Unix millis) the hold lasts.
    pub const HOLD_UNTIL: &str = "usage_hold_until";
    /// Present (`"1"`) only on unsettled windows: the partition key of the due index.
    pub const DUE: &str = "usage_due";
    /// `{end:015}#{series}`: the sort key of the due index.
    pub const DUE_AT: &str = "usage_due_at";
    pub const DUE_INDEX: &str = "usage-due-index";
    pub const DUE_PARTITION: &str = "1";

    /// The largest time the 15-digit keys hold (Unix millis).
    const MAX_MILLIS: i64 = 999_999_999_999_999;

    /// The push claim's item (`usage_pk("")`: no instance has an empty ID).
    pub const PUSH_CLAIM_PK: &str = USAGE_PK_PREFIX;
    pub const PUSH_CLAIM_SK: &str = "PUSH";
    pub const PUSH_HOLDER: &str = "push_holder";
    pub const PUSH_UNTIL: &str = "push_until";

    /// The partition keys the usage items live under (for an IAM `dynamodb:LeadingKeys` condition).
    pub const LEADING_KEYS: &[&str] = &["USAGE#*", "USAGEKEY#*", "USAGEPKG#*"];

    /// `USAGE#{instanceId}`: an instance's windows, its packages' included.
    pub fn usage_pk(instance_id: &str) -> String {
        format!("{USAGE_PK_PREFIX}{instance_id}")
    }

    /// `W#{start:015}`, or `W#{start:015}#{package}` for a package window.
    pub fn window_sk(start: DateTime<Utc>, package: Option<&str>) -> Result<String, StoreError> {
        let start = millis_text(start)?;
        Ok(match package {
            None => format!("{WINDOW_SK_PREFIX}{start}"),
            Some(p) => format!("{WINDOW_SK_PREFIX}{start}#{p}"),
        })
    }

    /// The (`pk`, `sk`) of a window.
    pub fn window_key(key: &WindowKey) -> Result<(String, String), StoreError> {
        Ok((
            usage_pk(&key.instance_id),
            window_sk(key.start, key.package.as_deref())?,
        ))
    }

    /// `USAGEKEY#{idempotencyKey}`.
    pub fn key_pk(idempotency_key: &str) -> String {
        format!("{KEY_PK_PREFIX}{idempotency_key}")
    }

    /// `USAGEPKG#{packageInstanceId}`.
    pub fn package_pk(package_instance_id: &str) -> String {
        format!("{PACKAGE_PK_PREFIX}{package_instance_id}")
    }

    /// `{end:015}#{series}`: the due index orders by the end of the hour, then by series.
    pub fn due_at(end: DateTime<Utc>, series: &str) -> Result<String, StoreError> {
        Ok(format!("{}#{series}", millis_text(end)?))
    }

    /// The exclusive upper bound of `usage_due_at` for the windows ended by `ended_by`; `None`
    /// when no window can have ended (before 1970).
    pub fn due_bound(ended_by: DateTime<Utc>) -> Option<String> {
        let ms = ended_by.timestamp_millis();
        if ms < 0 {
            return None;
        }
        // Past the last 15-digit time, a bound above every digit.
        Some(if ms >= MAX_MILLIS {
            "~".to_owned()
        } else {
            format!("{:015}", ms + 1)
        })
    }

    fn millis_text(t: DateTime<Utc>) -> Result<String, StoreError> {
        let ms = t.timestamp_millis();
        if !(0..=MAX_MILLIS).contains(&ms) {
            return Err(StoreError::Corrupt(format!(
                "usage window time {t} is outside what the table's keys hold (1970 to 33658)"
            )));
        }
        Ok(format!("{ms:015}"))
    }
}

/// What a store sent DynamoDB (see [`DynamoUsageStore::take_calls`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Calls {
    /// Write requests: `TransactWriteItems` and `PutItem` (cancelled ones included: they consume
    /// capacity too).
    pub writes: u64,
    /// The items those requests put.
    pub items: u64,
    /// Read requests: `GetItem`, `Query` pages, `BatchGetItem` (each `UnprocessedKeys` round too).
    pub reads: u64,
    /// Batches read and applied again after a transaction lost to a concurrent writer.
    pub contended: u64,
    /// The largest item put, in bytes counted as DynamoDB sizes items (attribute names plus
    /// values; numbers by their digits, a slight overestimate). A transactional write costs 2 WCU
    /// per started KB of each item, a plain `PutItem` 1.
    pub largest_item_bytes: u64,
}

#[derive(Debug)]
struct Counters {
    writes: AtomicU64,
    items: AtomicU64,
    reads: AtomicU64,
    contended: AtomicU64,
    largest_item_bytes: AtomicU64,
    /// Fault injection: see [`DynamoUsageStore::fail_next_ingest_after`]; `u64::MAX` when off.
    fail_after: AtomicU64,
    /// See [`DynamoUsageStore::pause_next_ingest_after`].
    pause: std::sync::Mutex<Option<PauseAt>>,
}

/// Where the next batch pauses (see [`DynamoUsageStore::pause_next_ingest_after`]).
#[derive(Debug)]
struct PauseAt {
    after: u64,
    reached: tokio::sync::oneshot::Sender<()>,
    resume: tokio::sync::oneshot::Receiver<()>,
}

/// A test's handle on a paused batch: wait until it [`reached`](Self::reached) its pause, do
/// something concurrent, then [`resume`](Self::resume) it.
#[derive(Debug)]
pub struct IngestPause {
    reached: Option<tokio::sync::oneshot::Receiver<()>>,
    resume: tokio::sync::oneshot::Sender<()>,
}

impl IngestPause {
    /// Waits until the batch pauses (returns at once if it ended without pausing).
    pub async fn reached(&mut self) {
        if let Some(reached) = self.reached.take() {
            let _ = reached.await;
        }
    }

    /// Lets the batch go on.
    pub fn resume(self) {
        let _ = self.resume.send(());
    }
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            writes: AtomicU64::new(0),
            items: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            contended: AtomicU64::new(0),
            largest_item_bytes: AtomicU64::new(0),
            fail_after: AtomicU64::new(NO_FAULT),
            pause: std::sync::Mutex::new(None),
        }
    }
}

const NO_FAULT: u64 = u64::MAX;

/// Usage windows, idempotency keys and package usage in the single DynamoDB table; cheap to clone
/// (clones share their counters).
#[derive(Debug, Clone)]
pub struct DynamoUsageStore {
    client: Client,
    table: String,
    counters: Arc<Counters>,
}

impl From<&DynamoStore> for DynamoUsageStore {
    /// The usage store on the instance store's table.
    fn from(store: &DynamoStore) -> Self {
        Self::new(store.client().clone(), store.table())
    }
}

/// A chunk of a batch's writes: one transaction.
struct Chunk {
    items: Vec<TransactWriteItem>,
    /// The idempotency keys it stores.
    keys: Vec<String>,
    /// The items it leaves held (written with the hold: the batch writes them again later), and
    /// those it puts without the hold, as (`pk`, `sk`).
    held: Vec<(String, String)>,
    released: Vec<(String, String)>,
    largest_item_bytes: u64,
}

/// How a batch's writes ended.
enum Written {
    All,
    /// A transaction lost to a concurrent writer or a hold (its cancellation codes).
    Contended(String),
}

/// What one attempt at a batch came to.
enum Attempt {
    Done(IngestOutcome),
    /// Lost to a concurrent writer: read and apply again.
    Contended(String),
}

/// A batch's hold on what it validated (module docs, Ingestion 5).
#[derive(Debug, Clone)]
struct Hold {
    token: String,
    until_ms: i64,
}

/// What one call to [`UsageStore::ingest`] did so far, across its attempts.
struct Progress {
    /// The batch's token: its holds, and its own hold passes every hold check.
    token: String,
    /// Committed transactions.
    committed: u64,
    /// The idempotency keys they stored.
    own: HashSet<String>,
    /// Items this call holds, as (`pk`, `sk`): dropped when the call ends.
    held: HashSet<(String, String)>,
    fault: Option<u64>,
    pause: Option<PauseAt>,
}

/// A condition expression with its names and values, for a `Put` in a transaction or a
/// `PutItem`.
struct Condition {
    parts: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Condition {
    fn new(part: &str) -> Self {
        Self {
            parts: vec![part.to_owned()],
            names: HashMap::new(),
            values: HashMap::new(),
        }
    }

    /// `version = stored`, or no version stored (a new item, or a hold alone).
    fn on_version(stored: Option<u64>) -> Self {
        let mut c = match stored {
            Some(v) => {
                let mut c = Self::new("#v = :v");
                c.values.insert(":v".into(), n(v));
                c
            }
            None => Self::new("attribute_not_exists(#v)"),
        };
        c.names.insert("#v".into(), VERSION.into());
        c
    }

    /// No item at all.
    fn absent() -> Self {
        let mut c = Self::new("attribute_not_exists(#pk)");
        c.names.insert("#pk".into(), PK.into());
        c
    }

    fn and(mut self, part: &str) -> Self {
        self.parts.push(part.to_owned());
        self
    }

    /// No live hold but `token`'s, if any (`now_ms`: this host's clock).
    fn and_free(self, now_ms: i64, token: &str) -> Self {
        let mut c = self.and("(attribute_not_exists(#hu) OR #hu < :now OR #h = :me)");
        c.hold_names();
        c.values.insert(":now".into(), n(now_ms));
        c.values.insert(":me".into(), s(token));
        c
    }

    /// Held by `token`.
    fn and_mine(self, token: &str) -> Self {
        let mut c = self.and("#h = :me");
        c.names.insert("#h".into(), HOLD.into());
        c.values.insert(":me".into(), s(token));
        c
    }

    fn hold_names(&mut self) {
        self.names.insert("#h".into(), HOLD.into());
        self.names.insert("#hu".into(), HOLD_UNTIL.into());
    }

    fn expression(&self) -> String {
        self.parts.join(" AND ")
    }

    fn put(self, item: Item, table: &str) -> Result<Put, StoreError> {
        Put::builder()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression(self.expression())
            .set_expression_attribute_names(Some(self.names))
            .set_expression_attribute_values((!self.values.is_empty()).then_some(self.values))
            .build()
            .map_err(|e| StoreError::Unavailable(format!("cannot build DynamoDB Put: {e}")))
    }

    fn put_item(
        self,
        put: aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder,
    ) -> aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder {
        put.condition_expression(self.expression())
            .set_expression_attribute_names(Some(self.names))
            .set_expression_attribute_values((!self.values.is_empty()).then_some(self.values))
    }
}

/// This host's clock, Unix millis: what holds are measured in.
fn wall_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn millis_of(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl DynamoUsageStore {
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

    /// The requests sent and items written since the last call (or since the store was made),
    /// counters reset. Shared by clones.
    pub fn take_calls(&self) -> Calls {
        let c = &self.counters;
        Calls {
            writes: c.writes.swap(0, Ordering::Relaxed),
            items: c.items.swap(0, Ordering::Relaxed),
            reads: c.reads.swap(0, Ordering::Relaxed),
            contended: c.contended.swap(0, Ordering::Relaxed),
            largest_item_bytes: c.largest_item_bytes.swap(0, Ordering::Relaxed),
        }
    }

    /// Fault injection for tests: the next [`UsageStore::ingest`] stops with a retryable
    /// `StoreError::Unavailable` once `transactions` of its transactions have committed, before it
    /// sends the next one, as a crash or an outage between two transactions would. Has no effect
    /// on a batch that commits in `transactions` transactions or fewer.
    pub fn fail_next_ingest_after(&self, transactions: u64) {
        self.counters
            .fail_after
            .store(transactions.min(NO_FAULT - 1), Ordering::SeqCst);
    }

    /// For tests and benchmarks: puts `windows` as they are and touches no usage total, as a
    /// release from before totals left a table (`BatchWriteItem`s of 25, [`SAVE_CONCURRENCY`] at a
    /// time, unprocessed items retried).
    pub async fn put_windows_without_totals(
        &self,
        windows: &[UsageWindow],
    ) -> Result<(), StoreError> {
        let mut requests = Vec::with_capacity(windows.len());
        for w in windows {
            let put = aws_sdk_dynamodb::types::PutRequest::builder()
                .set_item(Some(window_item(w)?))
                .build()
                .map_err(|e| StoreError::Unavailable(format!("cannot build PutRequest: {e}")))?;
            requests.push(
                aws_sdk_dynamodb::types::WriteRequest::builder()
                    .put_request(put)
                    .build(),
            );
        }
        let mut calls = tokio::task::JoinSet::new();
        let mut todo = requests.chunks(25).map(<[_]>::to_vec);
        loop {
            while calls.len() < SAVE_CONCURRENCY {
                let Some(mut pending) = todo.next() else {
                    break;
                };
                let store = self.clone();
                calls.spawn(async move {
                    let mut retries = 0;
                    while !pending.is_empty() {
                        store.count_write(pending.len(), 0);
                        let out = store
                            .client
                            .batch_write_item()
                            .request_items(&store.table, std::mem::take(&mut pending))
                            .send()
                            .await
                            .map_err(|e| unavailable("BatchWriteItem (usage windows)", &e))?;
                        pending = out
                            .unprocessed_items()
                            .and_then(|u| u.get(&store.table))
                            .cloned()
                            .unwrap_or_default();
                        if !pending.is_empty() {
                            retries += 1;
                            if retries > MAX_UNPROCESSED_RETRIES {
                                return Err(StoreError::Unavailable(
                                    "BatchWriteItem (usage windows): items still unprocessed"
                                        .into(),
                                ));
                            }
                            tokio::time::sleep(backoff(retries)).await;
                        }
                    }
                    Ok(())
                });
            }
            let Some(done) = calls.join_next().await else {
                break;
            };
            done.map_err(|e| StoreError::Unavailable(format!("BatchWriteItem task failed: {e}")))??;
        }
        Ok(())
    }

    /// For tests: the next [`UsageStore::ingest`] that gets as far pauses once `transactions` of
    /// its transactions have committed (after its holds, if it takes any), before it sends the
    /// next, until the handle is resumed; a test does something concurrent meanwhile.
    pub fn pause_next_ingest_after(&self, transactions: u64) -> IngestPause {
        let (reached_tx, reached_rx) = tokio::sync::oneshot::channel();
        let (resume_tx, resume_rx) = tokio::sync::oneshot::channel();
        *self
            .counters
            .pause
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(PauseAt {
            after: transactions,
            reached: reached_tx,
            resume: resume_rx,
        });
        IngestPause {
            reached: Some(reached_rx),
            resume: resume_tx,
        }
    }

    fn count_read(&self) {
        self.counters.reads.fetch_add(1, Ordering::Relaxed);
    }

    fn count_write(&self, items: usize, largest_item_bytes: u64) {
        let c = &self.counters;
        c.writes.fetch_add(1, Ordering::Relaxed);
        c.items.fetch_add(items as u64, Ordering::Relaxed);
        c.largest_item_bytes
            .fetch_max(largest_item_bytes, Ordering::Relaxed);
    }

    /// An instance's windows whose sort key starts with `prefix` (strongly consistent, every
    /// page), sorted by (start, package) as the other stores sort them.
    async fn query_windows(
        &self,
        instance_id: &str,
        prefix: String,
    ) -> Result<Vec<UsageWindow>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(usage_pk(instance_id)))
            .expression_attribute_values(":prefix", s(prefix))
            .consistent_read(true);
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            self.count_read();
            let page = query
                .clone()
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| unavailable(&format!("Query (usage windows of {instance_id})"), &e))?;
            for item in page.items() {
                out.push(decode_window_item(item)?);
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        out.sort_by(|a, b| (a.start, &a.package).cmp(&(b.start, &b.package)));
        Ok(out)
    }

    async fn get_item(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        self.count_read();
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(pk.clone()))
            .key(SK, s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable(&format!("GetItem {pk}"), &e))?;
        Ok(out.item)
    }

    /// Every item `keys` names that exists (strongly consistent), in no particular order: 100
    /// keys per `BatchGetItem`, the calls concurrent.
    async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        if keys.len() <= MAX_BATCH_GET_KEYS {
            return batch_get_chunk(
                self.client.clone(),
                self.table.clone(),
                self.counters.clone(),
                keys,
            )
            .await;
        }
        let mut calls = tokio::task::JoinSet::new();
        for chunk in keys.chunks(MAX_BATCH_GET_KEYS) {
            calls.spawn(batch_get_chunk(
                self.client.clone(),
                self.table.clone(),
                self.counters.clone(),
                chunk.to_vec(),
            ));
        }
        let mut items = Vec::with_capacity(keys.len());
        while let Some(done) = calls.join_next().await {
            let got = done
                .map_err(|e| StoreError::Unavailable(format!("BatchGetItem task failed: {e}")))??;
            items.extend(got);
        }
        Ok(items)
    }

    /// The windows of each of `instance_ids`, [`SAVE_CONCURRENCY`] queries at a time.
    async fn windows_of_many(
        &self,
        instance_ids: Vec<String>,
    ) -> Result<Vec<(String, Vec<UsageWindow>)>, StoreError> {
        let mut out = Vec::with_capacity(instance_ids.len());
        let mut calls = tokio::task::JoinSet::new();
        let mut todo = instance_ids.into_iter();
        loop {
            while calls.len() < SAVE_CONCURRENCY {
                let Some(id) = todo.next() else { break };
                let store = self.clone();
                calls.spawn(async move {
                    let windows = store.windows_of(&id).await;
                    (id, windows)
                });
            }
            let Some(done) = calls.join_next().await else {
                break;
            };
            let (id, windows) =
                done.map_err(|e| StoreError::Unavailable(format!("Query task failed: {e}")))?;
            out.push((id, windows?));
        }
        Ok(out)
    }

    /// What the batch touches, as stored (`version` from the attribute), and the usage total of
    /// every instance it names; a total not stored (a table from before totals) is built from the
    /// instance's windows, and named in the second set (its write is a creation).
    async fn load(
        &self,
        reports: &[UsageReport],
        quotas: &PackageQuotas,
    ) -> Result<(Loaded, HashSet<String>), StoreError> {
        let (windows, keys, packages) = ingest::touched(reports, quotas);
        let instances = ingest::instances_of(reports);
        let mut request =
            Vec::with_capacity(windows.len() + keys.len() + packages.len() + instances.len());
        for w in &windows {
            let (pk, sk) = window_key(w)?;
            request.push(key_of(pk, sk));
        }
        request.extend(keys.iter().map(|k| key_of(key_pk(k), KEY_SK.to_owned())));
        request.extend(
            packages
                .iter()
                .map(|p| key_of(package_pk(p), PACKAGE_SK.to_owned())),
        );
        request.extend(
            instances
                .iter()
                .map(|i| key_of(usage_pk(i), TOTAL_SK.to_owned())),
        );
        let mut loaded = Loaded::default();
        for item in self.batch_get(request).await? {
            let pk = string_attr(&item, PK).map_err(StoreError::Corrupt)?;
            let sk = string_attr(&item, SK).map_err(StoreError::Corrupt)?;
            if let Some(key) = pk.strip_prefix(KEY_PK_PREFIX) {
                let data = string_attr(&item, DATA)
                    .map_err(|m| StoreError::Corrupt(format!("usage key item {pk}: {m}")))?;
                loaded
                    .keys
                    .insert(key.to_owned(), record::decode_key(data.as_bytes())?);
            } else if pk.starts_with(PACKAGE_PK_PREFIX) {
                if let Some(p) = decode_package_item(&item)? {
                    loaded.packages.insert(p.package_instance_id.clone(), p);
                }
            } else if sk == TOTAL_SK {
                if let Some(t) = decode_total_item(&item)? {
                    loaded.totals.insert(t.instance_id.clone(), t);
                }
            } else {
                let w = decode_window_item(&item)?;
                loaded.windows.insert(w.key(), w);
            }
        }
        let missing: Vec<String> = instances
            .into_iter()
            .filter(|i| !loaded.totals.contains_key(i))
            .collect();
        let mut built = HashSet::with_capacity(missing.len());
        for (id, queried) in self.windows_of_many(missing).await? {
            // The batch's windows as just read win over the query's copies; what changed between
            // the two reads fails the total's creation (its condition) and is read again.
            let mut all: std::collections::BTreeMap<WindowKey, UsageWindow> =
                queried.into_iter().map(|w| (w.key(), w)).collect();
            for (key, w) in loaded.windows.iter().filter(|(k, _)| k.instance_id == id) {
                all.insert(key.clone(), w.clone());
            }
            let all: Vec<UsageWindow> = all.into_values().collect();
            if let Some(total) = UsageTotal::of_windows(&id, &all) {
                loaded.totals.insert(id.clone(), total);
            }
            built.insert(id);
        }
        Ok((loaded, built))
    }

    /// One attempt at a batch: read, validate and apply the whole of it, hold what it will write
    /// when that takes several transactions, write.
    async fn attempt(
        &self,
        reports: &[UsageReport],
        quotas: &PackageQuotas,
        now: DateTime<Utc>,
        progress: &mut Progress,
    ) -> Result<Attempt, IngestError> {
        let (loaded, built) = self.load(reports, quotas).await?;
        let mut whole = loaded.clone();
        let applied = ingest::apply(reports, quotas, &mut whole, now)?;
        let outcome = credit_own(applied.outcome.clone(), reports, &progress.own);
        if applied.new_keys.is_empty() {
            return Ok(Attempt::Done(outcome));
        }
        let groups = group(reports, quotas, &applied);
        let hold = (groups.len() > 1).then(|| Hold {
            token: progress.token.clone(),
            until_ms: wall_ms().saturating_add(millis_of(HOLD_FOR)),
        });
        if let Some(hold) = &hold
            && !self
                .take_holds(&loaded, &built, &applied, hold, progress)
                .await?
        {
            // Written since it was read: let go, and read again (where it may now be refused,
            // with nothing written).
            self.release_holds(progress).await;
            return Ok(Attempt::Contended("a hold was refused".into()));
        }
        let chunks = self.build(
            groups,
            Planned {
                quotas,
                loaded: &loaded,
                built: &built,
                applied: &applied,
                whole: &whole,
                now,
                token: &progress.token,
                hold: hold.as_ref(),
            },
        )?;
        Ok(match self.write(chunks, hold.as_ref(), progress).await? {
            Written::All => Attempt::Done(outcome),
            Written::Contended(codes) => Attempt::Contended(codes),
        })
    }

    /// Holds every total, package and existing window the batch will write, each on the version
    /// it was validated at (module docs, Ingestion 5). `false` when one was written since (or
    /// is held by another batch); the holds taken are in `progress.held` either way.
    async fn take_holds(
        &self,
        loaded: &Loaded,
        built: &HashSet<String>,
        applied: &Applied,
        hold: &Hold,
        progress: &mut Progress,
    ) -> Result<bool, StoreError> {
        let mut puts: Vec<(Item, Option<u64>)> = Vec::new();
        for id in &applied.changed_totals {
            puts.push(
                match loaded.totals.get(id).filter(|_| !built.contains(id)) {
                    Some(t) => (total_item(t)?, Some(t.version)),
                    None => (key_of(usage_pk(id), TOTAL_SK.to_owned()), None),
                },
            );
        }
        for id in &applied.changed_packages {
            puts.push(match loaded.packages.get(id) {
                Some(p) => (package_item(p)?, Some(p.version)),
                None => (key_of(package_pk(id), PACKAGE_SK.to_owned()), None),
            });
        }
        for key in &applied.changed {
            if let Some(w) = loaded.windows.get(key) {
                puts.push((window_item(w)?, Some(w.version)));
            }
        }
        let now = wall_ms();
        let mut calls = tokio::task::JoinSet::new();
        let mut todo = puts.into_iter();
        let mut all = true;
        loop {
            while calls.len() < SAVE_CONCURRENCY {
                let Some((item, version)) = todo.next() else {
                    break;
                };
                let (store, hold) = (self.clone(), hold.clone());
                calls.spawn(async move {
                    let key = (
                        string_attr(&item, PK).unwrap_or_default().to_owned(),
                        string_attr(&item, SK).unwrap_or_default().to_owned(),
                    );
                    let item = with_hold(item, &hold);
                    store.count_write(1, item_bytes(&item));
                    let put = store
                        .client
                        .put_item()
                        .table_name(&store.table)
                        .set_item(Some(item));
                    let put = Condition::on_version(version)
                        .and_free(now, &hold.token)
                        .put_item(put);
                    (key, put_if(put, "PutItem (hold for a usage batch)").await)
                });
            }
            let Some(done) = calls.join_next().await else {
                break;
            };
            let (key, result) =
                done.map_err(|e| StoreError::Unavailable(format!("PutItem task failed: {e}")))?;
            match result {
                Ok(true) => {
                    progress.held.insert(key);
                }
                Ok(false) => all = false,
                // The holds in flight finish or not; `progress.held` lists those known taken, and
                // the rest lapse.
                Err(e) => return Err(e),
            }
        }
        Ok(all)
    }

    /// Drops this call's holds that are still on: each held item put back without its hold, on
    /// the condition that it is still this call's and unchanged. Best effort: a hold not dropped
    /// lapses after [`HOLD_FOR`].
    async fn release_holds(&self, progress: &mut Progress) {
        let held: Vec<Item> = progress
            .held
            .drain()
            .map(|(pk, sk)| key_of(pk, sk))
            .collect();
        if held.is_empty() {
            return;
        }
        let items = match self.batch_get(held).await {
            Ok(items) => items,
            Err(e) => {
                tracing::warn!(error = %e, "could not read a usage batch's holds to drop them; they lapse");
                return;
            }
        };
        let mut calls = tokio::task::JoinSet::new();
        let mut todo = items
            .into_iter()
            .filter(|item| string_attr(item, HOLD).ok() == Some(progress.token.as_str()));
        loop {
            while calls.len() < SAVE_CONCURRENCY {
                let Some(mut item) = todo.next() else { break };
                let (store, token) = (self.clone(), progress.token.clone());
                calls.spawn(async move {
                    let version = number_attr::<u64>(&item, VERSION).ok();
                    item.remove(HOLD);
                    item.remove(HOLD_UNTIL);
                    store.count_write(1, item_bytes(&item));
                    let put = store
                        .client
                        .put_item()
                        .table_name(&store.table)
                        .set_item(Some(item));
                    let put = Condition::on_version(version)
                        .and_mine(&token)
                        .put_item(put);
                    put_if(put, "PutItem (drop a usage batch's hold)").await
                });
            }
            let Some(done) = calls.join_next().await else {
                break;
            };
            if let Ok(Err(e)) = done {
                tracing::warn!(error = %e, "could not drop a usage batch's hold; it lapses");
            }
        }
    }

    /// The batch's writes, cut into transactions of at most 100 items (see the module docs), in
    /// the groups [`group`] made.
    fn build(
        &self,
        groups: Vec<Vec<UsageReport>>,
        p: Planned<'_>,
    ) -> Result<Vec<Chunk>, IngestError> {
        let internal = |what: &str| {
            IngestError::Store(StoreError::Corrupt(format!(
                "usage batch: {what} (a bug: the chunks differ from the batch)"
            )))
        };
        // The last chunk writing each window, package and total: it drops the hold.
        let mut last_window: HashMap<WindowKey, usize> = HashMap::new();
        let mut last_package: HashMap<String, usize> = HashMap::new();
        let mut last_total: HashMap<String, usize> = HashMap::new();
        for (i, group) in groups.iter().enumerate() {
            for r in group {
                last_window.insert(r.window(p.quotas), i);
                if let Some(pkg) = &r.package_instance_id {
                    last_package.insert(pkg.clone(), i);
                }
                last_total.insert(r.instance_id.clone(), i);
            }
        }
        let now_ms = wall_ms();
        let mut state = p.loaded.clone();
        let mut stored_windows: HashSet<WindowKey> = p.loaded.windows.keys().cloned().collect();
        let mut stored_packages: HashSet<String> = p.loaded.packages.keys().cloned().collect();
        let mut stored_totals: HashSet<String> = p
            .loaded
            .totals
            .keys()
            .filter(|id| !p.built.contains(*id))
            .cloned()
            .collect();
        let mut chunks = Vec::with_capacity(groups.len());
        for (i, group) in groups.into_iter().enumerate() {
            let a = ingest::apply(&group, p.quotas, &mut state, p.now)?;
            if a.outcome.applied != group.len() {
                return Err(internal("a chunk applied fewer reports than planned"));
            }
            let mut chunk = Chunk {
                items: Vec::with_capacity(MAX_TRANSACTION_ITEMS),
                keys: Vec::with_capacity(a.new_keys.len()),
                held: Vec::new(),
                released: Vec::new(),
                largest_item_bytes: 0,
            };
            // `keep`: written again by a later chunk, so it stays held until then.
            let push = |chunk: &mut Chunk, item: Item, condition: Condition, keep: bool| {
                let key = (
                    string_attr(&item, PK).unwrap_or_default().to_owned(),
                    string_attr(&item, SK).unwrap_or_default().to_owned(),
                );
                let item = match (keep, p.hold) {
                    (true, Some(hold)) => {
                        chunk.held.push(key);
                        with_hold(item, hold)
                    }
                    _ => {
                        chunk.released.push(key);
                        item
                    }
                };
                chunk.largest_item_bytes = chunk.largest_item_bytes.max(item_bytes(&item));
                let put = condition.put(item, &self.table)?;
                chunk
                    .items
                    .push(TransactWriteItem::builder().put(put).build());
                Ok::<(), StoreError>(())
            };
            // Totals and packages: on their version, and held by this batch (several
            // transactions) or by none but it (one).
            let holding = |c: Condition| {
                if p.hold.is_some() {
                    c.and_mine(p.token)
                } else {
                    c.and_free(now_ms, p.token)
                }
            };
            for key in &a.changed {
                let w = state
                    .windows
                    .get_mut(key)
                    .ok_or_else(|| internal("a changed window is missing"))?;
                let condition = match stored_windows.contains(key) {
                    true => Condition::on_version(Some(w.version)),
                    false => Condition::absent(),
                };
                w.version += 1;
                let keep = last_window.get(key).is_some_and(|&l| l > i);
                push(&mut chunk, window_item(w)?, condition, keep)?;
                stored_windows.insert(key.clone());
            }
            for id in &a.changed_packages {
                let pkg = state
                    .packages
                    .get_mut(id)
                    .ok_or_else(|| internal("a changed package is missing"))?;
                let condition = holding(Condition::on_version(
                    stored_packages.contains(id).then_some(pkg.version),
                ));
                pkg.version += 1;
                let keep = last_package.get(id).is_some_and(|&l| l > i);
                push(&mut chunk, package_item(pkg)?, condition, keep)?;
                stored_packages.insert(id.clone());
            }
            for id in &a.changed_totals {
                let t = state
                    .totals
                    .get_mut(id)
                    .ok_or_else(|| internal("a changed total is missing"))?;
                let condition = holding(Condition::on_version(
                    stored_totals.contains(id).then_some(t.version),
                ));
                t.version += 1;
                let keep = last_total.get(id).is_some_and(|&l| l > i);
                push(&mut chunk, total_item(t)?, condition, keep)?;
                stored_totals.insert(id.clone());
            }
            for (key, rec) in &a.new_keys {
                let item = HashMap::from([
                    (PK.to_owned(), s(key_pk(key))),
                    (SK.to_owned(), s(KEY_SK)),
                    (DATA.to_owned(), s(json_text(record::encode_key(rec)?)?)),
                    // DynamoDB deletes it once its retention is over (ingest's module docs).
                    (TTL.to_owned(), n(rec.keep_until().timestamp())),
                ]);
                chunk.largest_item_bytes = chunk.largest_item_bytes.max(item_bytes(&item));
                let put = Condition::absent().put(item, &self.table)?;
                chunk
                    .items
                    .push(TransactWriteItem::builder().put(put).build());
                chunk.keys.push(key.clone());
            }
            state.keys.extend(a.new_keys);
            chunks.push(chunk);
        }
        // The chunks must add up to what the whole batch makes (versions aside).
        for key in &p.applied.changed {
            let (Some(a), Some(b)) = (state.windows.get(key), p.whole.windows.get(key)) else {
                return Err(internal("a window is missing"));
            };
            if (UsageWindow {
                version: 0,
                ..a.clone()
            }) != (UsageWindow {
                version: 0,
                ..b.clone()
            }) {
                return Err(internal("a window adds up differently"));
            }
        }
        for id in &p.applied.changed_packages {
            let (Some(a), Some(b)) = (state.packages.get(id), p.whole.packages.get(id)) else {
                return Err(internal("a package is missing"));
            };
            if (PackageUsage {
                version: 0,
                ..a.clone()
            }) != (PackageUsage {
                version: 0,
                ..b.clone()
            }) {
                return Err(internal("a package adds up differently"));
            }
        }
        for id in &p.applied.changed_totals {
            let (Some(a), Some(b)) = (state.totals.get(id), p.whole.totals.get(id)) else {
                return Err(internal("a total is missing"));
            };
            if !a.same_sums(b) {
                return Err(internal("a total adds up differently"));
            }
        }
        Ok(chunks)
    }

    /// Sends the chunks in order; with a hold, none within [`HOLD_MARGIN`] of its end.
    async fn write(
        &self,
        chunks: Vec<Chunk>,
        hold: Option<&Hold>,
        progress: &mut Progress,
    ) -> Result<Written, StoreError> {
        let total = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            let committed = progress.committed;
            if progress.fault == Some(committed) {
                return Err(StoreError::Unavailable(format!(
                    "injected fault: usage batch stopped after {committed} transactions ({i} of {total} in this attempt)"
                )));
            }
            if let Some(pause) = progress.pause.take_if(|p| p.after == committed) {
                let _ = pause.reached.send(());
                let _ = pause.resume.await;
            }
            if let Some(hold) = hold
                && wall_ms().saturating_add(millis_of(HOLD_MARGIN)) >= hold.until_ms
            {
                return Err(StoreError::Unavailable(format!(
                    "usage batch: its holds end in under {} s; stopped before transaction {} of {total} (send it again)",
                    HOLD_MARGIN.as_secs(),
                    i + 1
                )));
            }
            let items = chunk.items;
            self.count_write(items.len(), chunk.largest_item_bytes);
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .client_request_token(request_token())
                .send()
                .await;
            let err = match sent {
                Ok(_) => {
                    progress.committed += 1;
                    progress.own.extend(chunk.keys);
                    progress.held.extend(chunk.held);
                    for key in &chunk.released {
                        progress.held.remove(key);
                    }
                    continue;
                }
                Err(err) => err,
            };
            return match cancellation_reasons(&err) {
                Some(reasons)
                    if reasons
                        .iter()
                        .any(|(c, _)| c == CONDITION_FAILED || c == TRANSACTION_CONFLICT) =>
                {
                    Ok(Written::Contended(reason_codes(&reasons)))
                }
                Some(reasons) => Err(StoreError::Unavailable(format!(
                    "usage batch: transaction {} of {total} cancelled ({})",
                    i + 1,
                    reason_codes(&reasons)
                ))),
                None => Err(unavailable(
                    &format!("TransactWriteItems (usage batch, {} of {total})", i + 1),
                    &err,
                )),
            };
        }
        Ok(Written::All)
    }
}

/// What [`DynamoUsageStore::build`] plans the chunks from.
struct Planned<'a> {
    quotas: &'a PackageQuotas,
    /// What was read, and which of its totals were built (not stored).
    loaded: &'a Loaded,
    built: &'a HashSet<String>,
    /// What [`ingest::apply`] made of the whole batch.
    applied: &'a Applied,
    whole: &'a Loaded,
    now: DateTime<Utc>,
    token: &'a str,
    /// The batch's hold on what it writes (several transactions).
    hold: Option<&'a Hold>,
}

/// The reports a batch applies (the first report of each new key), in the groups its
/// transactions write: one group when it fits one transaction, else grouped by package and
/// window and cut at 100 items (a key, and each window, package and total the first time the
/// group names it).
fn group(
    reports: &[UsageReport],
    quotas: &PackageQuotas,
    applied: &Applied,
) -> Vec<Vec<UsageReport>> {
    let mut fresh: HashSet<&str> = applied.new_keys.iter().map(|(k, _)| k.as_str()).collect();
    let mut todo: Vec<&UsageReport> = reports
        .iter()
        .filter(|r| fresh.remove(r.idempotency_key.as_str()))
        .collect();
    let items = applied.new_keys.len()
        + applied.changed.len()
        + applied.changed_packages.len()
        + applied.changed_totals.len();
    if items <= MAX_TRANSACTION_ITEMS {
        return vec![todo.into_iter().cloned().collect()];
    }
    // Stable: a window's reports keep their order.
    todo.sort_by_cached_key(|r| (r.package_instance_id.clone(), r.window(quotas)));
    let mut groups = Vec::new();
    let mut group: Vec<UsageReport> = Vec::new();
    let mut windows = HashSet::new();
    let mut packages = HashSet::new();
    let mut instances = HashSet::new();
    for r in todo {
        let window = r.window(quotas);
        let cost = |windows: &HashSet<WindowKey>,
                    packages: &HashSet<String>,
                    instances: &HashSet<String>| {
            1 + usize::from(!windows.contains(&window))
                + usize::from(
                    r.package_instance_id
                        .as_ref()
                        .is_some_and(|p| !packages.contains(p)),
                )
                + usize::from(!instances.contains(&r.instance_id))
        };
        let items = group.len() + windows.len() + packages.len() + instances.len();
        if items + cost(&windows, &packages, &instances) > MAX_TRANSACTION_ITEMS {
            groups.push(std::mem::take(&mut group));
            windows.clear();
            packages.clear();
            instances.clear();
        }
        windows.insert(window);
        if let Some(p) = &r.package_instance_id {
            packages.insert(p.clone());
        }
        instances.insert(r.instance_id.clone());
        group.push(r.clone());
    }
    groups.push(group);
    groups
}

/// `item` with `hold` on it.
fn with_hold(mut item: Item, hold: &Hold) -> Item {
    item.insert(HOLD.to_owned(), s(hold.token.clone()));
    item.insert(HOLD_UNTIL.to_owned(), n(hold.until_ms));
    item
}

/// One chunk of a `BatchGetItem`, its `UnprocessedKeys` retried with backoff.
async fn batch_get_chunk(
    client: Client,
    table: String,
    counters: Arc<Counters>,
    mut pending: Vec<Item>,
) -> Result<Vec<Item>, StoreError> {
    let mut items = Vec::with_capacity(pending.len());
    let mut retries = 0;
    while !pending.is_empty() {
        let request = KeysAndAttributes::builder()
            .set_keys(Some(std::mem::take(&mut pending)))
            .consistent_read(true)
            .build()
            .map_err(|e| StoreError::Unavailable(format!("cannot build BatchGetItem keys: {e}")))?;
        counters.reads.fetch_add(1, Ordering::Relaxed);
        let out = client
            .batch_get_item()
            .request_items(&table, request)
            .send()
            .await
            .map_err(|e| unavailable("BatchGetItem (usage)", &e))?;
        items.extend(
            out.responses()
                .and_then(|r| r.get(&table))
                .into_iter()
                .flatten()
                .cloned(),
        );
        pending = out
            .unprocessed_keys()
            .and_then(|u| u.get(&table))
            .map(|k| k.keys().to_vec())
            .unwrap_or_default();
        if !pending.is_empty() {
            if retries >= MAX_UNPROCESSED_RETRIES {
                return Err(StoreError::Unavailable(format!(
                    "BatchGetItem (usage): {} keys still unprocessed after {retries} retries",
                    pending.len()
                )));
            }
            retries += 1;
            tokio::time::sleep(backoff(retries)).await;
        }
    }
    Ok(items)
}

fn key_of(pk: String, sk: String) -> Item {
    HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
}

/// The window item; `w.version` is stored as given. The due-index attributes only while the
/// window is unsettled.
fn window_item(w: &UsageWindow) -> Result<Item, StoreError> {
    let key = w.key();
    let (pk, sk) = window_key(&key)?;
    let mut item = HashMap::from([
        (PK.to_owned(), s(pk)),
        (SK.to_owned(), s(sk)),
        (VERSION.to_owned(), n(w.version)),
        (DATA.to_owned(), s(json_text(record::encode_window(w)?)?)),
        (USAGE.to_owned(), s(usage_of(w))),
    ]);
    if w.is_unsettled() {
        item.insert(DUE.to_owned(), s(DUE_PARTITION));
        item.insert(DUE_AT.to_owned(), s(due_at(w.end(), &key.series())?));
    }
    Ok(item)
}

/// A window back from its item; `version` from the attribute, and the item's keys must be the
/// window's own.
fn decode_window_item(item: &Item) -> Result<UsageWindow, StoreError> {
    let pk = string_attr(item, PK).map_err(StoreError::Corrupt)?;
    let sk = string_attr(item, SK).map_err(StoreError::Corrupt)?;
    let corrupt = |m: String| StoreError::Corrupt(format!("usage window item {pk}/{sk}: {m}"));
    let data = string_attr(item, DATA).map_err(corrupt)?;
    let version: u64 = number_attr(item, VERSION).map_err(corrupt)?;
    let mut w = record::decode_window(data.as_bytes()).map_err(|e| corrupt(e.to_string()))?;
    if window_key(&w.key())? != (pk.to_owned(), sk.to_owned()) {
        return Err(corrupt(format!(
            "data holds the window of {} at {} instead",
            w.instance_id, w.start
        )));
    }
    w.version = version;
    Ok(w)
}

/// A versioned record's item: its key, `version` and `data` (a package's usage, a total).
fn record_item(pk: String, sk: &str, version: u64, data: Vec<u8>) -> Result<Item, StoreError> {
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
fn decode_record_item<T>(
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

fn package_item(p: &PackageUsage) -> Result<Item, StoreError> {
    record_item(
        package_pk(&p.package_instance_id),
        PACKAGE_SK,
        p.version,
        record::encode_package(p)?,
    )
}

/// A package's usage from its item; `None` for a hold alone (no `data`).
fn decode_package_item(item: &Item) -> Result<Option<PackageUsage>, StoreError> {
    decode_record_item(
        item,
        "usage package",
        |b| record::decode_package(b).map_err(|e| e.to_string()),
        |p: &PackageUsage| {
            let id = p.package_instance_id.clone();
            (package_pk(&id), id)
        },
        |p, v| p.version = v,
    )
}

fn total_item(t: &UsageTotal) -> Result<Item, StoreError> {
    record_item(
        usage_pk(&t.instance_id),
        TOTAL_SK,
        t.version,
        record::encode_total(t)?,
    )
}

/// An instance's usage total from its item; `None` for a hold alone (no `data`).
fn decode_total_item(item: &Item) -> Result<Option<UsageTotal>, StoreError> {
    decode_record_item(
        item,
        "usage total",
        |b| record::decode_total(b).map_err(|e| e.to_string()),
        |t: &UsageTotal| {
            let id = t.instance_id.clone();
            (usage_pk(&id), id)
        },
        |t, v| t.version = v,
    )
}

/// What a window adds up to, as its item's `usage` attribute: total, reports, and when the first
/// and the last were applied (Unix millis). A save is conditioned on it being unchanged.
pub fn usage_of(w: &UsageWindow) -> String {
    format!(
        "{}/{}/{}/{}",
        w.total.normalize(),
        w.reports,
        w.first_reported_at.timestamp_millis(),
        w.last_reported_at.timestamp_millis()
    )
}

/// An item's size as DynamoDB counts it, near enough: attribute names plus values (strings by
/// their UTF-8 bytes, numbers by their digits).
fn item_bytes(item: &Item) -> u64 {
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

/// A `ClientRequestToken` no other transaction uses: the time and a per-process random number.
pub(crate) fn request_token() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let random = std::collections::hash_map::RandomState::new()
        .hash_one(NEXT.fetch_add(1, Ordering::Relaxed));
    format!("{nanos:016x}{random:016x}")
}

/// Counts, in the outcome of a read-again attempt, the reports whose keys this call stored in an
/// earlier attempt as applied (the attempt saw them as duplicates).
fn credit_own(
    mut outcome: IngestOutcome,
    reports: &[UsageReport],
    own: &HashSet<String>,
) -> IngestOutcome {
    if own.is_empty() {
        return outcome;
    }
    let mut credited = HashSet::new();
    for r in reports {
        let key = r.idempotency_key.as_str();
        if own.contains(key) && credited.insert(key) {
            outcome.applied += 1;
            outcome.duplicates = outcome.duplicates.saturating_sub(1);
        }
    }
    outcome
}

#[async_trait]
impl UsageStore for DynamoUsageStore {
    async fn ingest(
        &self,
        reports: &[UsageReport],
        quotas: &PackageQuotas,
        now: DateTime<Utc>,
    ) -> Result<IngestOutcome, IngestError> {
        let fault = match self.counters.fail_after.swap(NO_FAULT, Ordering::SeqCst) {
            NO_FAULT => None,
            n => Some(n),
        };
        let pause = self
            .counters
            .pause
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let mut progress = Progress {
            token: request_token(),
            committed: 0,
            own: HashSet::new(),
            held: HashSet::new(),
            fault,
            pause,
        };
        let mut attempt = 0;
        let result = loop {
            match self.attempt(reports, quotas, now, &mut progress).await {
                Ok(Attempt::Done(outcome)) => break Ok(outcome),
                Ok(Attempt::Contended(codes)) => {
                    self.counters.contended.fetch_add(1, Ordering::Relaxed);
                    attempt += 1;
                    if attempt >= MAX_INGEST_ATTEMPTS {
                        tracing::warn!(attempt, codes, "usage batch still contended; giving up");
                        break Err(IngestError::Store(StoreError::Conflict));
                    }
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => break Err(e),
            }
        };
        // Whatever ended the call, the holds it still has go (each item's last write dropped its
        // own: after a whole batch there is none left).
        self.release_holds(&mut progress).await;
        result
    }

    async fn due(
        &self,
        ended_by: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<UsageWindow>, StoreError> {
        let Some(bound) = due_bound(ended_by) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        while out.len() < limit {
            let page = (limit - out.len()).min(MAX_BATCH_GET_KEYS);
            self.count_read();
            let found = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(DUE_INDEX)
                .key_condition_expression("#d = :d AND #at < :bound")
                .expression_attribute_names("#d", DUE)
                .expression_attribute_names("#at", DUE_AT)
                .expression_attribute_values(":d", s(DUE_PARTITION))
                .expression_attribute_values(":bound", s(bound.clone()))
                .scan_index_forward(true)
                .limit(i32::try_from(page).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| unavailable("Query (due usage windows)", &e))?;
            let mut order = Vec::with_capacity(found.items().len());
            for item in found.items() {
                let pk = string_attr(item, PK).map_err(StoreError::Corrupt)?;
                let sk = string_attr(item, SK).map_err(StoreError::Corrupt)?;
                order.push((pk.to_owned(), sk.to_owned()));
            }
            let keys = order
                .iter()
                .map(|(pk, sk)| key_of(pk.clone(), sk.clone()))
                .collect();
            let mut windows: HashMap<(String, String), UsageWindow> = HashMap::new();
            for item in self.batch_get(keys).await? {
                let w = decode_window_item(&item)?;
                windows.insert(window_key(&w.key())?, w);
            }
            // The index lags the table: what settled (or went) meanwhile is skipped.
            out.extend(
                order
                    .into_iter()
                    .filter_map(|k| windows.remove(&k))
                    .filter(|w| w.is_unsettled() && w.end() <= ended_by),
            );
            match found.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    async fn save_window(&self, window: &UsageWindow) -> Result<(), StoreError> {
        let mut next = window.clone();
        next.version += 1;
        let item = window_item(&next)?;
        self.count_write(1, item_bytes(&item));
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(
                "#v = :expected AND (attribute_not_exists(#u) OR #u = :usage) \
                 AND (attribute_not_exists(#hu) OR #hu < :now)",
            )
            .expression_attribute_names("#v", VERSION)
            .expression_attribute_names("#u", USAGE)
            .expression_attribute_names("#hu", HOLD_UNTIL)
            .expression_attribute_values(":expected", n(window.version))
            .expression_attribute_values(":usage", s(usage_of(window)))
            .expression_attribute_values(":now", n(wall_ms()));
        let what = format!(
            "PutItem (save usage window {} at {})",
            window.instance_id, window.start
        );
        match put_if(put, &what).await? {
            true => Ok(()),
            false => Err(StoreError::Conflict),
        }
    }

    /// Each window its own conditional `PutItem` (a transaction would make one stale copy fail
    /// them all, and costs twice the write units), [`SAVE_CONCURRENCY`] of them in flight.
    async fn save_windows(&self, windows: &[UsageWindow]) -> Result<Vec<bool>, StoreError> {
        let mut saved = vec![false; windows.len()];
        let mut calls = tokio::task::JoinSet::new();
        let mut next = 0;
        loop {
            while calls.len() < SAVE_CONCURRENCY && next < windows.len() {
                let (store, window, index) = (self.clone(), windows[next].clone(), next);
                calls.spawn(async move { (index, store.save_window(&window).await) });
                next += 1;
            }
            let Some(done) = calls.join_next().await else {
                break;
            };
            let (index, result) =
                done.map_err(|e| StoreError::Unavailable(format!("PutItem task failed: {e}")))?;
            match result {
                Ok(()) => saved[index] = true,
                Err(StoreError::Conflict) => {}
                // The saves still in flight are dropped; what was saved stays (the pusher reads
                // the windows again next round).
                Err(e) => return Err(e),
            }
        }
        Ok(saved)
    }

    async fn window(&self, key: &WindowKey) -> Result<Option<UsageWindow>, StoreError> {
        let (pk, sk) = window_key(key)?;
        self.get_item(pk, &sk)
            .await?
            .map(|item| decode_window_item(&item))
            .transpose()
    }

    async fn windows_of(&self, instance_id: &str) -> Result<Vec<UsageWindow>, StoreError> {
        self.query_windows(instance_id, WINDOW_SK_PREFIX.to_owned())
            .await
    }

    /// One `Query`: the hour's sort keys share the prefix `W#{start:015}`.
    async fn windows_at(
        &self,
        instance_id: &str,
        start: DateTime<Utc>,
    ) -> Result<Vec<UsageWindow>, StoreError> {
        self.query_windows(instance_id, window_sk(start, None)?)
            .await
    }

    async fn package(&self, package_instance_id: &str) -> Result<Option<PackageUsage>, StoreError> {
        match self
            .get_item(package_pk(package_instance_id), PACKAGE_SK)
            .await?
        {
            Some(item) => decode_package_item(&item),
            None => Ok(None),
        }
    }

    /// One `BatchGetItem` per 100 instances (concurrent); an instance without a total (a table
    /// from before totals) is summed from its windows, [`SAVE_CONCURRENCY`] queries at a time.
    async fn usage_totals(&self, instance_ids: &[&str]) -> Result<Vec<UsageTotal>, StoreError> {
        let mut ids: Vec<&str> = instance_ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let keys = ids
            .iter()
            .map(|id| key_of(usage_pk(id), TOTAL_SK.to_owned()))
            .collect();
        let mut out = Vec::with_capacity(ids.len());
        for item in self.batch_get(keys).await? {
            if let Some(t) = decode_total_item(&item)? {
                out.push(t);
            }
        }
        let missing: Vec<String> = ids
            .iter()
            .filter(|id| !out.iter().any(|t| t.instance_id == **id))
            .map(|id| (*id).to_owned())
            .collect();
        for (id, windows) in self.windows_of_many(missing).await? {
            out.extend(UsageTotal::of_windows(&id, &windows));
        }
        Ok(out)
    }

    async fn claim_push(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.count_write(1, 64);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(PUSH_CLAIM_PK))
            .item(SK, s(PUSH_CLAIM_SK))
            .item(PUSH_HOLDER, s(holder))
            .item(PUSH_UNTIL, n(until.timestamp_millis()))
            .condition_expression(
                "attribute_not_exists(#pk) OR #until <= :now OR #holder = :holder",
            )
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#until", PUSH_UNTIL)
            .expression_attribute_names("#holder", PUSH_HOLDER)
            .expression_attribute_values(":now", n(now.timestamp_millis()))
            .expression_attribute_values(":holder", s(holder));
        // A failed condition: another holder's claim is live.
        put_if(put, "PutItem (claim the usage push)").await
    }

    async fn release_push(&self, holder: &str) -> Result<(), StoreError> {
        self.count_write(1, 64);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(PUSH_CLAIM_PK))
            .item(SK, s(PUSH_CLAIM_SK))
            .item(PUSH_HOLDER, s(""))
            .item(PUSH_UNTIL, n(0))
            .condition_expression("#holder = :holder")
            .expression_attribute_names("#holder", PUSH_HOLDER)
            .expression_attribute_values(":holder", s(holder));
        // A failed condition: another holder took the claim since; it stays.
        put_if(put, "PutItem (release the usage push)").await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap()
    }

    fn window(package: Option<&str>) -> UsageWindow {
        let key = WindowKey {
            instance_id: "inst-1".into(),
            start: t0(),
            package: package.map(str::to_owned),
        };
        let mut w = UsageWindow::open(&key, t0());
        w.total = "3.5".parse().unwrap();
        w.reports = 2;
        w.version = 4;
        w
    }

    #[test]
    fn keys_follow_the_documented_schema() {
        let ms = t0().timestamp_millis();
        assert_eq!(usage_pk("inst-1"), "USAGE#inst-1");
        assert_eq!(window_sk(t0(), None).unwrap(), format!("W#{ms:015}"));
        assert_eq!(
            window_sk(t0(), Some("pkg-1")).unwrap(),
            format!("W#{ms:015}#pkg-1")
        );
        assert_eq!(key_pk("app/1"), "USAGEKEY#app/1");
        assert_eq!(package_pk("pkg-1"), "USAGEPKG#pkg-1");
        assert_eq!(
            due_at(t0(), "inst-1\npkg-1").unwrap(),
            format!("{ms:015}#inst-1\npkg-1")
        );
        // Before 1970 the keys cannot sort; it is refused, not mangled.
        let old = Utc
            .with_ymd_and_hms(1969, 12, 31, 23, 0, 0)
            .single()
            .unwrap();
        assert!(matches!(window_sk(old, None), Err(StoreError::Corrupt(_))));
        assert_eq!(due_bound(old), None);
        for prefix in [KEY_PK_PREFIX, PACKAGE_PK_PREFIX] {
            assert!(!prefix.starts_with(USAGE_PK_PREFIX));
            assert!(LEADING_KEYS.contains(&format!("{prefix}*").as_str()));
        }
    }

    #[test]
    fn window_sort_keys_order_by_start_then_package() {
        let h = |n: i64| t0() + Duration::hours(n);
        let mut keys = vec![
            window_sk(h(10), Some("a")).unwrap(),
            window_sk(h(2), Some("z")).unwrap(),
            window_sk(h(10), None).unwrap(),
            window_sk(h(2), None).unwrap(),
        ];
        keys.sort();
        assert_eq!(
            keys,
            vec![
                window_sk(h(2), None).unwrap(),
                window_sk(h(2), Some("z")).unwrap(),
                window_sk(h(10), None).unwrap(),
                window_sk(h(10), Some("a")).unwrap(),
            ]
        );
    }

    #[test]
    fn the_due_bound_takes_windows_ended_by_it_and_no_later() {
        let end = t0();
        let bound = due_bound(end).unwrap();
        assert!(due_at(end, "x").unwrap() < bound);
        assert!(due_at(end - Duration::hours(5), "zzz").unwrap() < bound);
        assert!(due_at(end + Duration::milliseconds(1), "").unwrap() > bound);
    }

    #[test]
    fn window_items_round_trip_and_carry_the_due_index_while_unsettled() {
        for package in [None, Some("pkg-1")] {
            let w = window(package);
            let item = window_item(&w).unwrap();
            assert_eq!(item.get(VERSION), Some(&n(4)));
            assert_eq!(item.get(DUE), Some(&s(DUE_PARTITION)));
            assert_eq!(
                item.get(DUE_AT),
                Some(&s(due_at(w.end(), &w.key().series()).unwrap()))
            );
            assert_eq!(decode_window_item(&item).unwrap(), w);
            // The attribute wins over the JSON copy.
            let mut bumped = item.clone();
            bumped.insert(VERSION.into(), n(5));
            assert_eq!(decode_window_item(&bumped).unwrap().version, 5);
        }
        let mut settled = window(None);
        assert!(settled.seal(t0() + Duration::hours(2)));
        assert!(
            window_item(&settled).unwrap().contains_key(DUE),
            "sealed is still due"
        );
        settled.accept(t0() + Duration::hours(3));
        let item = window_item(&settled).unwrap();
        assert!(!item.contains_key(DUE) && !item.contains_key(DUE_AT));
        assert_eq!(decode_window_item(&item).unwrap(), settled);
    }

    #[test]
    fn damaged_or_misfiled_items_are_corrupt() {
        let good = window_item(&window(None)).unwrap();
        let mut misfiled = good.clone();
        misfiled.insert(PK.into(), s(usage_pk("other")));
        let mut no_data = good.clone();
        no_data.remove(DATA);
        let mut bad_json = good.clone();
        bad_json.insert(DATA.into(), s("{"));
        for item in [misfiled, no_data, bad_json] {
            assert!(matches!(
                decode_window_item(&item),
                Err(StoreError::Corrupt(_))
            ));
        }
        let p = PackageUsage::new("pkg-1", Some("10".parse().unwrap()), t0());
        let mut item = package_item(&p).unwrap();
        assert_eq!(decode_package_item(&item).unwrap(), Some(p));
        item.insert(PK.into(), s(package_pk("pkg-2")));
        assert!(matches!(
            decode_package_item(&item),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn request_tokens_are_distinct_and_fit_dynamodb() {
        let tokens: HashSet<String> = (0..1000).map(|_| request_token()).collect();
        assert_eq!(tokens.len(), 1000);
        assert!(tokens.iter().all(|t| (1..=36).contains(&t.len())));
    }

    #[test]
    fn own_keys_count_as_applied_once() {
        let r = |key: &str| UsageReport {
            instance_id: "i".into(),
            quantity: "1".parse().unwrap(),
            occurred_at: t0(),
            idempotency_key: key.into(),
            package_instance_id: None,
        };
        let reports = [r("a"), r("b"), r("a"), r("c")];
        let seen = IngestOutcome {
            applied: 1,
            duplicates: 3,
            exhausted_packages: vec![],
        };
        let own: HashSet<String> = ["a".to_owned()].into();
        let o = credit_own(seen, &reports, &own);
        assert_eq!((o.applied, o.duplicates), (2, 2));
    }
}
