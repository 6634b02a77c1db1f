//! [`UsageStore`] on DynamoDB: usage windows, the sparse index of the unsettled ones, idempotency
//! keys and package usage, in the single table of [`crate::dynamo`], with the semantics of the
//! memory store (`koogallery::testing::MemoryStore`) and the embedded (redb) store.
//!
//! # Items
//!
//! | item            | `pk`                            | `sk`                                         | other attributes |
//! |-----------------|---------------------------------|----------------------------------------------|------------------|
//! | window          | `USAGE#{instanceId}`            | `W#{start:015}` or `W#{start:015}#{package}` | `version` (N), `data` (S, [`record::encode_window`]); while unsettled also `usage_due` (S, `"1"`) and `usage_due_at` (S, `{end:015}#{series}`) |
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
//! expected` (a missing window fails it too: `Conflict`), with the due-index attributes as the
//! window's state says. [`UsageStore::save_windows`] (the pusher's seals and settlements, up to
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
//! 1. Everything [`ingest::touched`] names is read with strongly consistent `BatchGetItem` (100
//!    keys per call, the calls concurrent, `UnprocessedKeys` retried with backoff).
//! 2. [`ingest::apply`]: a refusal is returned and nothing is written; a batch of duplicates only
//!    writes nothing.
//! 3. Every changed window and package is put at its loaded version + 1 on the condition
//!    `version = loaded` (`attribute_not_exists(pk)` for a new one), every new key on the
//!    condition `attribute_not_exists(pk)`. When that is at most 100 items (DynamoDB's limit per
//!    transaction), it is **one** `TransactWriteItems`: all or nothing, like redb's one commit.
//! 4. A batch over 100 items is written in several transactions, sent one after the other. The
//!    reports applied are grouped by package and window (order does not change what a batch that
//!    passed adds up to: quantities are positive, so no subset of it can exceed a quota or a
//!    window that the whole did not) and cut into chunks of at most 100 items; each chunk's
//!    transaction writes its reports' keys together with the windows and packages they add to, at
//!    the values the chunks so far give ([`ingest::apply`] again, chunk by chunk), each conditioned
//!    on the version the previous write of this batch left. A failure between two transactions (a
//!    crash, a timeout, an outage) therefore leaves whole chunks: every report is stored with its
//!    key or not at all, and the batch sent again applies each report exactly once (those already
//!    stored are its duplicates). This is the relaxation of "all or nothing" that
//!    [`UsageStore::ingest`] allows a store that cannot write a batch in one transaction; its
//!    other consequence is that a seal or another batch using the same package between two of its
//!    transactions can refuse the rest (`WindowReported`, `QuotaExceeded`) after the first chunks
//!    were stored: the refusal is returned, and what was stored stays applied, once.
//! 5. A transaction cancelled by a failed condition or a conflicting transaction means a
//!    concurrent writer (another batch, a seal): the batch is read and applied again from step 1,
//!    at most [`MAX_INGEST_ATTEMPTS`] times, then `StoreError::Conflict` (retryable). Reports that
//!    this call stored in an earlier attempt are counted as applied, not as duplicates.
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
        UsageWindow, WindowKey,
        ingest::{self, Applied, Loaded},
        record,
    },
};

use self::keys::*;
use crate::dynamo::{
    CONDITION_FAILED, DynamoStore, Item, MAX_BATCH_GET_KEYS, MAX_TRANSACTION_ITEMS,
    MAX_UNPROCESSED_RETRIES, TRANSACTION_CONFLICT, backoff, cancellation_reasons, json_text,
    keys::{DATA, PK, SK, TTL, VERSION},
    n, number_attr, put_if, reason_codes, s, string_attr, unavailable,
};

/// How many times a batch is read and applied again after losing to a concurrent writer.
pub const MAX_INGEST_ATTEMPTS: u32 = 10;

/// How many of [`UsageStore::save_windows`]'s conditional puts are in flight at once.
pub const SAVE_CONCURRENCY: usize = 32;

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
    largest_item_bytes: u64,
}

/// How a batch's writes ended.
enum Written {
    All,
    /// A transaction lost to a concurrent writer (its cancellation codes).
    Contended(String),
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

    /// What the batch touches, as stored (`version` from the attribute).
    async fn load(
        &self,
        reports: &[UsageReport],
        quotas: &PackageQuotas,
    ) -> Result<Loaded, StoreError> {
        let (windows, keys, packages) = ingest::touched(reports, quotas);
        let mut request = Vec::with_capacity(windows.len() + keys.len() + packages.len());
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
        let mut loaded = Loaded::default();
        for item in self.batch_get(request).await? {
            let pk = string_attr(&item, PK).map_err(StoreError::Corrupt)?;
            if let Some(key) = pk.strip_prefix(KEY_PK_PREFIX) {
                let data = string_attr(&item, DATA)
                    .map_err(|m| StoreError::Corrupt(format!("usage key item {pk}: {m}")))?;
                loaded
                    .keys
                    .insert(key.to_owned(), record::decode_key(data.as_bytes())?);
            } else if pk.starts_with(PACKAGE_PK_PREFIX) {
                let p = decode_package_item(&item)?;
                loaded.packages.insert(p.package_instance_id.clone(), p);
            } else {
                let w = decode_window_item(&item)?;
                loaded.windows.insert(w.key(), w);
            }
        }
        Ok(loaded)
    }

    /// A conditional `Put` for a batch's transaction: on the stored version, or on the item
    /// being new.
    fn put(&self, item: Item, stored_version: Option<u64>) -> Result<Put, StoreError> {
        let put = Put::builder().table_name(&self.table).set_item(Some(item));
        let put = match stored_version {
            Some(v) => put
                .condition_expression("#v = :v")
                .expression_attribute_names("#v", VERSION)
                .expression_attribute_values(":v", n(v)),
            None => put
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PK),
        };
        put.build()
            .map_err(|e| StoreError::Unavailable(format!("cannot build DynamoDB Put: {e}")))
    }

    /// The batch's writes, cut into transactions of at most 100 items (see the module docs).
    /// `loaded` is what was read, `applied` and `whole` what [`ingest::apply`] made of the whole
    /// batch.
    fn plan(
        &self,
        reports: &[UsageReport],
        quotas: &PackageQuotas,
        loaded: &Loaded,
        applied: &Applied,
        whole: &Loaded,
        now: DateTime<Utc>,
    ) -> Result<Vec<Chunk>, IngestError> {
        // The reports applied: the first report of each new key.
        let mut fresh: HashSet<&str> = applied.new_keys.iter().map(|(k, _)| k.as_str()).collect();
        let mut todo: Vec<&UsageReport> = reports
            .iter()
            .filter(|r| fresh.remove(r.idempotency_key.as_str()))
            .collect();
        let fits = applied.new_keys.len() + applied.changed.len() + applied.changed_packages.len()
            <= MAX_TRANSACTION_ITEMS;
        let groups: Vec<Vec<UsageReport>> = if fits {
            vec![todo.into_iter().cloned().collect()]
        } else {
            // Stable: a window's reports keep their order.
            todo.sort_by_cached_key(|r| (r.package_instance_id.clone(), r.window(quotas)));
            let mut groups = Vec::new();
            let mut group: Vec<UsageReport> = Vec::new();
            let mut windows = HashSet::new();
            let mut packages = HashSet::new();
            for r in todo {
                let window = r.window(quotas);
                let cost = |windows: &HashSet<WindowKey>, packages: &HashSet<String>| {
                    1 + usize::from(!windows.contains(&window))
                        + usize::from(
                            r.package_instance_id
                                .as_ref()
                                .is_some_and(|p| !packages.contains(p)),
                        )
                };
                let items = group.len() + windows.len() + packages.len();
                if items + cost(&windows, &packages) > MAX_TRANSACTION_ITEMS {
                    groups.push(std::mem::take(&mut group));
                    windows.clear();
                    packages.clear();
                }
                windows.insert(window);
                if let Some(p) = &r.package_instance_id {
                    packages.insert(p.clone());
                }
                group.push(r.clone());
            }
            groups.push(group);
            groups
        };

        let internal = |what: &str| {
            IngestError::Store(StoreError::Corrupt(format!(
                "usage batch: {what} (a bug: the chunks differ from the batch)"
            )))
        };
        let mut state = copy(loaded);
        let mut stored_windows: HashSet<WindowKey> = loaded.windows.keys().cloned().collect();
        let mut stored_packages: HashSet<String> = loaded.packages.keys().cloned().collect();
        let mut chunks = Vec::with_capacity(groups.len());
        for group in groups {
            let a = ingest::apply(&group, quotas, &mut state, now)?;
            if a.outcome.applied != group.len() {
                return Err(internal("a chunk applied fewer reports than planned"));
            }
            let mut chunk = Chunk {
                items: Vec::with_capacity(MAX_TRANSACTION_ITEMS),
                keys: Vec::with_capacity(a.new_keys.len()),
                largest_item_bytes: 0,
            };
            let push = |chunk: &mut Chunk, item: Item, version: Option<u64>| {
                chunk.largest_item_bytes = chunk.largest_item_bytes.max(item_bytes(&item));
                let put = self.put(item, version)?;
                chunk
                    .items
                    .push(TransactWriteItem::builder().put(put).build());
                Ok::<(), StoreError>(())
            };
            for key in &a.changed {
                let w = state
                    .windows
                    .get_mut(key)
                    .ok_or_else(|| internal("a changed window is missing"))?;
                let stored = stored_windows.contains(key).then_some(w.version);
                w.version += 1;
                push(&mut chunk, window_item(w)?, stored)?;
                stored_windows.insert(key.clone());
            }
            for id in &a.changed_packages {
                let p = state
                    .packages
                    .get_mut(id)
                    .ok_or_else(|| internal("a changed package is missing"))?;
                let stored = stored_packages.contains(id).then_some(p.version);
                p.version += 1;
                push(&mut chunk, package_item(p)?, stored)?;
                stored_packages.insert(id.clone());
            }
            for (key, rec) in &a.new_keys {
                let item = HashMap::from([
                    (PK.to_owned(), s(key_pk(key))),
                    (SK.to_owned(), s(KEY_SK)),
                    (DATA.to_owned(), s(json_text(record::encode_key(rec)?)?)),
                    // DynamoDB deletes it once its retention is over (ingest's module docs).
                    (TTL.to_owned(), n(rec.keep_until().timestamp())),
                ]);
                push(&mut chunk, item, None)?;
                chunk.keys.push(key.clone());
            }
            state.keys.extend(a.new_keys);
            chunks.push(chunk);
        }
        // The chunks must add up to what the whole batch makes (versions aside).
        for key in &applied.changed {
            let (Some(a), Some(b)) = (state.windows.get(key), whole.windows.get(key)) else {
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
        for id in &applied.changed_packages {
            let (Some(a), Some(b)) = (state.packages.get(id), whole.packages.get(id)) else {
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
        Ok(chunks)
    }

    /// Sends the chunks in order. `committed` counts this call's committed transactions, `own`
    /// collects the keys they stored.
    async fn write(
        &self,
        chunks: Vec<Chunk>,
        fault: Option<u64>,
        committed: &mut u64,
        own: &mut HashSet<String>,
    ) -> Result<Written, StoreError> {
        let total = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            if fault == Some(*committed) {
                return Err(StoreError::Unavailable(format!(
                    "injected fault: usage batch stopped after {committed} transactions ({i} of {total} in this attempt)"
                )));
            }
            self.count_write(chunk.items.len(), chunk.largest_item_bytes);
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(chunk.items))
                .client_request_token(request_token())
                .send()
                .await;
            let err = match sent {
                Ok(_) => {
                    *committed += 1;
                    own.extend(chunk.keys);
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

fn copy(l: &Loaded) -> Loaded {
    Loaded {
        windows: l.windows.clone(),
        keys: l.keys.clone(),
        packages: l.packages.clone(),
    }
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

fn package_item(p: &PackageUsage) -> Result<Item, StoreError> {
    Ok(HashMap::from([
        (PK.to_owned(), s(package_pk(&p.package_instance_id))),
        (SK.to_owned(), s(PACKAGE_SK)),
        (VERSION.to_owned(), n(p.version)),
        (DATA.to_owned(), s(json_text(record::encode_package(p)?)?)),
    ]))
}

fn decode_package_item(item: &Item) -> Result<PackageUsage, StoreError> {
    let pk = string_attr(item, PK).map_err(StoreError::Corrupt)?;
    let corrupt = |m: String| StoreError::Corrupt(format!("usage package item {pk}: {m}"));
    let data = string_attr(item, DATA).map_err(corrupt)?;
    let version: u64 = number_attr(item, VERSION).map_err(corrupt)?;
    let mut p = record::decode_package(data.as_bytes()).map_err(|e| corrupt(e.to_string()))?;
    if package_pk(&p.package_instance_id) != pk {
        return Err(corrupt(format!(
            "data holds package {} instead",
            p.package_instance_id
        )));
    }
    p.version = version;
    Ok(p)
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
fn request_token() -> String {
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
        let mut own = HashSet::new();
        let mut committed = 0;
        let mut attempt = 0;
        loop {
            let loaded = self.load(reports, quotas).await?;
            let mut whole = copy(&loaded);
            let applied = ingest::apply(reports, quotas, &mut whole, now)?;
            let outcome = credit_own(applied.outcome.clone(), reports, &own);
            if applied.new_keys.is_empty() {
                return Ok(outcome);
            }
            let chunks = self.plan(reports, quotas, &loaded, &applied, &whole, now)?;
            match self.write(chunks, fault, &mut committed, &mut own).await? {
                Written::All => return Ok(outcome),
                Written::Contended(codes) => {
                    self.counters.contended.fetch_add(1, Ordering::Relaxed);
                    attempt += 1;
                    if attempt >= MAX_INGEST_ATTEMPTS {
                        tracing::warn!(attempt, codes, "usage batch still contended; giving up");
                        return Err(IngestError::Store(StoreError::Conflict));
                    }
                    tokio::time::sleep(backoff(attempt)).await;
                }
            }
        }
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
            .condition_expression("#v = :expected")
            .expression_attribute_names("#v", VERSION)
            .expression_attribute_values(":expected", n(window.version));
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
        self.get_item(package_pk(package_instance_id), PACKAGE_SK)
            .await?
            .map(|item| decode_package_item(&item))
            .transpose()
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
        assert_eq!(decode_package_item(&item).unwrap(), p);
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
