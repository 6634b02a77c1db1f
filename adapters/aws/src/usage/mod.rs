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
//!
//! [`record::encode_window`]: koogallery::metering::record::encode_window
//! [`record::encode_total`]: koogallery::metering::record::encode_total
//! [`record::encode_key`]: koogallery::metering::record::encode_key
//! [`record::encode_package`]: koogallery::metering::record::encode_package
//! [`ingest::touched`]: koogallery::metering::ingest::touched
//! [`ingest::apply`]: koogallery::metering::ingest::apply

use std::sync::{Arc, Mutex, atomic::AtomicU64};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use koogallery::{
    StoreError,
    metering::{
        IngestError, IngestOutcome, PackageQuotas, PackageUsage, UsageReport, UsageStore,
        UsageTotal, UsageWindow, WindowKey,
    },
};

use self::{
    faults::{NO_FAULT, PauseAt},
    keys::*,
    windows::decode_window_item,
};
use crate::dynamo::{
    DynamoStore,
    attr::Item,
    sdk::{BatchGet, MAX_BATCH_GET_KEYS, MAX_UNPROCESSED_RETRIES, Table},
};

mod calls;
mod chunks;
mod due;
mod faults;
mod holds;
mod ingestion;
mod items;
pub mod keys;
mod packages;
mod push_claim;
mod totals;
mod windows;

pub use calls::Calls;
pub use faults::IngestPause;
pub use windows::usage_of;

/// How many times a batch is read and applied again after losing to a concurrent writer.
pub const MAX_INGEST_ATTEMPTS: u32 = 10;

/// How many of [`UsageStore::save_windows`]'s conditional puts (and of a batch's holds, and of the
/// reads that sum windows for instances without a total) are in flight at once.
pub const SAVE_CONCURRENCY: usize = 32;

/// How long a batch of several transactions holds what it validated (module docs, Ingestion 5).
pub const HOLD_FOR: std::time::Duration = std::time::Duration::from_secs(60);

/// A batch sends no transaction this close to its holds' end.
pub const HOLD_MARGIN: std::time::Duration = std::time::Duration::from_secs(15);

/// Usage windows, idempotency keys and package usage in the single DynamoDB table; cheap to clone
/// (clones share their counters).
#[derive(Debug, Clone)]
pub struct DynamoUsageStore {
    table: Table,
    ingests: Arc<Ingests>,
}

/// What the store's ingests share across clones: how many lost to a concurrent writer, and the
/// tests' fault and pause for the next one.
#[derive(Debug)]
struct Ingests {
    contended: AtomicU64,
    /// Fault injection: see [`DynamoUsageStore::fail_next_ingest_after`]; `u64::MAX` when off.
    fail_after: AtomicU64,
    /// See [`DynamoUsageStore::pause_next_ingest_after`].
    pause: Mutex<Option<PauseAt>>,
}

impl Default for Ingests {
    fn default() -> Self {
        Self {
            contended: AtomicU64::new(0),
            fail_after: AtomicU64::new(NO_FAULT),
            pause: Mutex::new(None),
        }
    }
}

/// How the usage store reads batches of keys: 100 keys a request, the requests all at once.
const BATCH_GET: BatchGet = BatchGet {
    what: "BatchGetItem (usage)",
    per_request: MAX_BATCH_GET_KEYS,
    in_flight: usize::MAX,
    retries: MAX_UNPROCESSED_RETRIES,
};

impl From<&DynamoStore> for DynamoUsageStore {
    /// The usage store on the instance store's table.
    fn from(store: &DynamoStore) -> Self {
        Self::new(store.client().clone(), store.table())
    }
}

impl DynamoUsageStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            table: Table::new(client, table),
            ingests: Arc::default(),
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        self.table.name()
    }

    /// Every item `keys` names that exists (strongly consistent), in no particular order: 100
    /// keys per `BatchGetItem`, the calls concurrent.
    async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        self.table.batch_get(keys, BATCH_GET).await
    }
}

#[async_trait]
impl UsageStore for DynamoUsageStore {
    async fn ingest(
        &self,
        reports: &[UsageReport],
        quotas: &PackageQuotas,
        now: DateTime<Utc>,
    ) -> Result<IngestOutcome, IngestError> {
        self.ingest_batch(reports, quotas, now).await
    }

    async fn due(
        &self,
        ended_by: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<UsageWindow>, StoreError> {
        self.read_due(ended_by, limit).await
    }

    async fn save_window(&self, window: &UsageWindow) -> Result<(), StoreError> {
        self.save_one(window).await
    }

    async fn save_windows(&self, windows: &[UsageWindow]) -> Result<Vec<bool>, StoreError> {
        self.save_each(windows).await
    }

    async fn window(&self, key: &WindowKey) -> Result<Option<UsageWindow>, StoreError> {
        let (pk, sk) = window_key(key)?;
        self.table
            .get_item(&pk, &sk)
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
        self.read_package(package_instance_id).await
    }

    async fn usage_totals(&self, instance_ids: &[&str]) -> Result<Vec<UsageTotal>, StoreError> {
        self.read_totals(instance_ids).await
    }

    async fn claim_push(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.put_push_claim(holder, now, until).await
    }

    async fn release_push(&self, holder: &str) -> Result<(), StoreError> {
        self.drop_push_claim(holder).await
    }
}

#[cfg(test)]
mod tests;
