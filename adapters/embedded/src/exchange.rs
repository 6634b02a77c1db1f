//! The exchange log ([`ExchangeLog`], docs/operations.md) in a redb file of its own, beside the
//! store file (`exchanges.redb` in the data directory): its writes never wait for the store's
//! writer, which KooGallery's calls use, and it can be deleted without touching an order.
//!
//! # Batches
//!
//! Records are kept a batch to a value: an append writes one batch per *bucket* it touches (the
//! 100 ms of time an exchange id's milliseconds fall in, [`BUCKET_MS`]), and one index entry per
//! instance and per order in that batch. An exchange thus costs a copy of its record, not the
//! four B-tree inserts a record per key would (the log is written for every call KooGallery
//! makes, so its cost is the load figure's: BENCHMARKS.md, "The exchange log's cost on
//! queryInstance").
//!
//! | table                         | key                         | value             |
//! |-------------------------------|-----------------------------|-------------------|
//! | `exchange_batches`            | (bucket, seq)               | a batch (below)   |
//! | `exchange_batches_by_instance`| (instanceId, bucket, seq)   | `()`              |
//! | `exchange_batches_by_order`   | (orderId, bucket, seq)      | `()`              |
//! | `exchange_batches_of_actions` | (bucket, seq)               | `()`: the batch holds an operator's action or a reconciler pass |
//!
//! `seq` orders a bucket's batches by when they were appended. A batch, framing 1 (pinned by
//! `adapters/embedded/tests/fixtures/exchange_batch_v1.bin`): `XB1\n`, a header of JSON
//! (`{"records":n,"expires_at_ms":…,"instances":[…],"orders":[…],"actions":bool}`: the latest
//! expiry in it and what it is indexed under), `\n`, then each record (`koogallery::exchange::record`, `v` 1) as
//! its length (u32, little-endian) and its bytes.
//!
//! # Reads
//!
//! Buckets are read newest first, every batch of a bucket at once: within it the exchanges are
//! sorted by id, and an id appended twice is answered as first kept (a retried append is not
//! doubled). Every id of a bucket sorts after every id of the buckets before it, so a page ends
//! at the first bucket that fills it.
//!
//! # Retention
//!
//! Each durable commit (below) also removes up to [`PURGE_PER_APPEND`] of the oldest batches whose
//! exchanges have all expired by the newest appended one's time, so the file stays at about the
//! retention's worth;
//! expired exchanges not yet removed are never answered. A commit is durable (an fsync) when it is
//! small or [`DURABLE_EVERY`] has passed since the last durable one, and else not (redb writes it
//! with the next durable commit): under load the log costs one fsync a second, never the store's
//! disk time, and a crash loses at most that second of it. Dropping the last handle makes
//! everything durable.
//!
//! A file written before batches (one record per key, tables `exchanges`, `exchanges_by_*`,
//! `exchanges_expiry`) is moved into batches when opened.

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use koogallery::{
    StoreError,
    exchange::{Exchange, ExchangeFilter, ExchangeLog, ExchangeQuery, Kept, id_millis, record},
};
use redb::{Database, ReadableTable, TableDefinition, TableHandle};
use serde::{Deserialize, Serialize};

use crate::{Db, Fault, millis, open_file, run_blocking};

type BatchKey = (i64, u64);
const BATCHES: TableDefinition<BatchKey, &[u8]> = TableDefinition::new("exchange_batches");
const BY_INSTANCE: TableDefinition<(&str, i64, u64), ()> =
    TableDefinition::new("exchange_batches_by_instance");
const BY_ORDER: TableDefinition<(&str, i64, u64), ()> =
    TableDefinition::new("exchange_batches_by_order");
const ACTIONS: TableDefinition<BatchKey, ()> = TableDefinition::new("exchange_batches_of_actions");

/// The tables of a file written before batches, moved into batches when it is opened.
mod legacy {
    use redb::TableDefinition;
    pub const EXCHANGES: TableDefinition<&str, &[u8]> = TableDefinition::new("exchanges");
    pub const INDEXES: [&str; 3] = [
        "exchanges_by_instance",
        "exchanges_by_order",
        "exchanges_expiry",
    ];
}

/// The span of time one bucket holds, in milliseconds.
pub const BUCKET_MS: i64 = 100;
/// Batches of expired exchanges removed by one purge, at most (a purge runs with each durable
/// commit: at least once a second under load, more often than batches are written).
pub const PURGE_PER_APPEND: usize = 256;
/// The longest a batch stays not yet durable.
pub const DURABLE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// An append this small is made durable at once (low traffic: the fsync costs nothing there).
pub const SMALL_BATCH: usize = 16;

/// What a batch starts with: its framing's version.
const MAGIC: &[u8] = b"XB1\n";

/// The header of a batch.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Header {
    records: usize,
    expires_at_ms: i64,
    instances: Vec<String>,
    orders: Vec<String>,
    /// It holds an operator's action or a reconciler pass.
    actions: bool,
}

/// The bucket an exchange is kept in: its id's milliseconds (its time for an id not made by
/// `koogallery::exchange::new_id`), in [`BUCKET_MS`].
fn bucket_of(id: &str, at: DateTime<Utc>) -> i64 {
    id_millis(id)
        .unwrap_or_else(|| millis(at))
        .div_euclid(BUCKET_MS)
}

/// The batch of `records` (one bucket's).
fn encode_batch(records: &[&Kept]) -> (Header, Vec<u8>) {
    let distinct = |of: fn(&Kept) -> Option<&str>| -> Vec<String> {
        let set: std::collections::BTreeSet<&str> = records.iter().filter_map(|k| of(k)).collect();
        set.into_iter().map(str::to_owned).collect()
    };
    let header = Header {
        records: records.len(),
        expires_at_ms: records
            .iter()
            .map(|k| millis(k.expires_at))
            .max()
            .unwrap_or(0),
        instances: distinct(|k| k.instance_id.as_deref()),
        orders: distinct(|k| k.order_id.as_deref()),
        actions: records.iter().any(|k| k.action),
    };
    let size: usize = records.iter().map(|k| k.record.len() + 4).sum();
    let mut out = Vec::with_capacity(size + 128);
    out.extend_from_slice(MAGIC);
    serde_json::to_writer(&mut out, &header).expect("a header always serialises");
    out.push(b'\n');
    for k in records {
        let len = u32::try_from(k.record.len()).expect("a record is far under 4 GiB");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&k.record);
    }
    (header, out)
}

/// A batch's header and its records' bytes.
fn decode_batch(bytes: &[u8]) -> Result<(Header, Vec<&[u8]>), Fault> {
    let corrupt = |why: &str| Fault::Corrupt(format!("exchange batch: {why}"));
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| corrupt("not framing 1"))?;
    let end = rest
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| corrupt("no header"))?;
    let header: Header =
        serde_json::from_slice(&rest[..end]).map_err(|e| corrupt(&format!("header: {e}")))?;
    let mut records = Vec::with_capacity(header.records);
    let mut rest = &rest[end + 1..];
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt("cut length"))?;
        let len = u32::from_le_bytes(*len) as usize;
        if tail.len() < len {
            return Err(corrupt("cut record"));
        }
        records.push(&tail[..len]);
        rest = &tail[len..];
    }
    if records.len() != header.records {
        return Err(corrupt("record count"));
    }
    Ok((header, records))
}

/// One batch ready to be written: its bucket, header and bytes.
type Encoded = (i64, Header, Vec<u8>);

/// `records` as batches, one per bucket.
fn batches_of(records: &[Kept]) -> Vec<Encoded> {
    let mut buckets: BTreeMap<i64, Vec<&Kept>> = BTreeMap::new();
    for k in records {
        buckets.entry(bucket_of(&k.id, k.at)).or_default().push(k);
    }
    buckets
        .into_iter()
        .map(|(bucket, records)| {
            let (header, bytes) = encode_batch(&records);
            (bucket, header, bytes)
        })
        .collect()
}

/// Writes `batches`, each under the next `seq`, with their index entries.
fn insert_batches(
    txn: &redb::WriteTransaction,
    batches: &[Encoded],
    seq: &AtomicU64,
) -> Result<(), Fault> {
    let mut table = txn.open_table(BATCHES)?;
    let mut by_instance = txn.open_table(BY_INSTANCE)?;
    let mut by_order = txn.open_table(BY_ORDER)?;
    let mut actions = txn.open_table(ACTIONS)?;
    for (bucket, header, bytes) in batches {
        let seq = seq.fetch_add(1, Ordering::Relaxed);
        table.insert((*bucket, seq), bytes.as_slice())?;
        for i in &header.instances {
            by_instance.insert((i.as_str(), *bucket, seq), ())?;
        }
        for o in &header.orders {
            by_order.insert((o.as_str(), *bucket, seq), ())?;
        }
        if header.actions {
            actions.insert((*bucket, seq), ())?;
        }
    }
    Ok(())
}

/// The file and when its last durable commit was.
struct LogFile {
    db: Arc<Db>,
    last_durable: std::sync::Mutex<std::time::Instant>,
    /// The next batch's `seq`: from the clock at opening, so it grows across restarts too.
    next_seq: AtomicU64,
}

impl Drop for LogFile {
    /// The commits not yet durable become so (an empty durable commit persists them).
    fn drop(&mut self) {
        if let Ok(txn) = self.db.begin_write()
            && let Err(e) = txn.commit()
        {
            tracing::warn!(error = %e, "the exchange log's last commits may not be on disk");
        }
    }
}

/// The exchange log's own file; cheap to clone.
#[derive(Clone)]
pub struct EmbeddedExchangeLog {
    file: Arc<LogFile>,
}

impl std::fmt::Debug for EmbeddedExchangeLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedExchangeLog")
            .finish_non_exhaustive()
    }
}

impl EmbeddedExchangeLog {
    /// The file name in the data directory.
    pub const FILE: &'static str = "exchanges.redb";

    /// Opens (or creates, owner-only) the log file at `path`, with its tables; a file written
    /// before batches has its exchanges moved into batches.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let owned = path.to_owned();
        let db = open_file(path, Box::new(move || Database::create(&owned)))?;
        let next_seq = AtomicU64::new(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX / 2)),
        );
        let txn = db.begin_write()?;
        {
            txn.open_table(BATCHES).map_err(Fault::from)?;
            txn.open_table(BY_INSTANCE).map_err(Fault::from)?;
            txn.open_table(BY_ORDER).map_err(Fault::from)?;
            txn.open_table(ACTIONS).map_err(Fault::from)?;
        }
        move_legacy(&txn, &next_seq)?;
        txn.commit().map_err(Fault::from)?;
        Ok(Self {
            file: Arc::new(LogFile {
                db: Arc::new(db),
                last_durable: std::sync::Mutex::new(std::time::Instant::now()),
                next_seq,
            }),
        })
    }

    /// Whether this append's commit must be durable (and if so, counts it as the last durable).
    fn durable_now(&self, records: usize) -> bool {
        let mut last = self
            .file
            .last_durable
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let due = records <= SMALL_BATCH || last.elapsed() >= DURABLE_EVERY;
        if due {
            *last = std::time::Instant::now();
        }
        due
    }

    /// Exchanges kept (expired ones not yet purged included, an id appended twice counted twice).
    pub fn len(&self) -> Result<u64, StoreError> {
        let read = self.file.db.begin_read()?;
        let table = read.open_table(BATCHES).map_err(Fault::from)?;
        let mut n = 0;
        for entry in table.iter().map_err(Fault::from)? {
            let (_, batch) = entry.map_err(Fault::from)?;
            n += decode_batch(batch.value())?.0.records as u64;
        }
        Ok(n)
    }

    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }
}

/// Moves the exchanges of a file written before batches into batches, and drops its tables.
fn move_legacy(txn: &redb::WriteTransaction, seq: &AtomicU64) -> Result<(), Fault> {
    let legacy_tables: Vec<_> = txn
        .list_tables()?
        .filter(|t| t.name() == legacy::EXCHANGES.name() || legacy::INDEXES.contains(&t.name()))
        .collect();
    if !legacy_tables
        .iter()
        .any(|t| t.name() == legacy::EXCHANGES.name())
    {
        return Ok(());
    }
    let mut moved = Vec::new();
    {
        let table = txn.open_table(legacy::EXCHANGES)?;
        for entry in table.iter()? {
            let (_, bytes) = entry?;
            // A record that no longer decodes cannot be filed by instance or time: it goes.
            if let Ok(e) = record::decode(bytes.value()) {
                moved.push(Kept {
                    id: e.id,
                    at: e.at,
                    instance_id: e.instance_id,
                    order_id: e.order_id,
                    action: e.direction == koogallery::exchange::Direction::Operator,
                    expires_at: e.expires_at,
                    record: bytes.value().to_vec(),
                });
            }
        }
    }
    for chunk in moved.chunks(koogallery::exchange::recorder::BATCH) {
        insert_batches(txn, &batches_of(chunk), seq)?;
    }
    for table in legacy_tables {
        txn.delete_table(table)?;
    }
    tracing::info!(
        exchanges = moved.len(),
        "exchange log: records moved into batches"
    );
    Ok(())
}

#[async_trait]
impl ExchangeLog for EmbeddedExchangeLog {
    async fn append(&self, records: &[Kept]) -> Result<(), StoreError> {
        let Some(newest) = records.iter().map(|k| k.at).max() else {
            return Ok(());
        };
        // Encoded here, on the writer's thread: the blocking task gets the bytes, not a copy of
        // the records.
        let batches = batches_of(records);
        let durable = self.durable_now(records.len());
        let file = self.file.clone();
        Ok(run_blocking(self.file.db.clone(), move |db| {
            let mut txn = db.begin_write()?;
            if !durable {
                txn.set_durability(redb::Durability::None).map_err(|e| {
                    Fault::Db(redb::Error::from(redb::StorageError::from(
                        std::io::Error::other(e.to_string()),
                    )))
                })?;
            }
            insert_batches(&txn, &batches, &file.next_seq)?;
            // With the durable commits only (at most once a second under load): what expired
            // reads the oldest batches, which is no work for every append.
            if durable {
                purge(&txn, millis(newest))?;
            }
            txn.commit()?;
            Ok(())
        })
        .await?)
    }

    async fn find(
        &self,
        query: &ExchangeQuery,
        now: DateTime<Utc>,
    ) -> Result<Vec<Exchange>, StoreError> {
        let query = query.clone();
        Ok(run_blocking(self.file.db.clone(), move |db| {
            let read = db.begin_read()?;
            let batches = read.open_table(BATCHES)?;
            let limit = query.bounded_limit();
            // The last bucket that can hold an id below `before` (none: every bucket).
            let last = query
                .before
                .as_deref()
                .and_then(id_millis)
                .map_or(i64::MAX, |ms| ms.div_euclid(BUCKET_MS));
            let mut page = Page {
                query: &query,
                now,
                limit,
                found: Vec::with_capacity(limit.min(64)),
                bucket: None,
                pending: Vec::new(),
            };
            match &query.filter {
                ExchangeFilter::All => {
                    for entry in batches.range(..=(last, u64::MAX))?.rev() {
                        let (key, batch) = entry?;
                        let (bucket, seq) = key.value();
                        if page.enter(bucket)? {
                            break;
                        }
                        page.take(seq, batch.value())?;
                    }
                }
                ExchangeFilter::Actions => {
                    let index = read.open_table(ACTIONS)?;
                    for entry in index.range(..=(last, u64::MAX))?.rev() {
                        let (key, _) = entry?;
                        let (bucket, seq) = key.value();
                        if page.enter(bucket)? {
                            break;
                        }
                        if let Some(batch) = batches.get((bucket, seq))? {
                            page.take(seq, batch.value())?;
                        }
                    }
                }
                ExchangeFilter::Instance(owner) | ExchangeFilter::Order(owner) => {
                    let index = read.open_table(match &query.filter {
                        ExchangeFilter::Instance(_) => BY_INSTANCE,
                        _ => BY_ORDER,
                    })?;
                    let range = (owner.as_str(), i64::MIN, 0)..=(owner.as_str(), last, u64::MAX);
                    for entry in index.range(range)?.rev() {
                        let (key, _) = entry?;
                        let (_, bucket, seq) = key.value();
                        if page.enter(bucket)? {
                            break;
                        }
                        if let Some(batch) = batches.get((bucket, seq))? {
                            page.take(seq, batch.value())?;
                        }
                    }
                }
            }
            page.enter(i64::MIN)?;
            Ok(page.found)
        })
        .await?)
    }
}

/// A page being gathered, a bucket at a time.
struct Page<'q> {
    query: &'q ExchangeQuery,
    now: DateTime<Utc>,
    limit: usize,
    found: Vec<Exchange>,
    /// The bucket being read, and its exchanges so far (with their batch's `seq`).
    bucket: Option<i64>,
    pending: Vec<(Exchange, u64)>,
}

impl Page<'_> {
    /// Moves on to `bucket`: the bucket before it is done, its exchanges go to the page newest
    /// first. Whether the page is full.
    fn enter(&mut self, bucket: i64) -> Result<bool, Fault> {
        if self.bucket == Some(bucket) {
            return Ok(false);
        }
        self.bucket = Some(bucket);
        // Newest first; of an id appended twice, the first kept (the lowest seq).
        self.pending
            .sort_by(|(a, sa), (b, sb)| b.id.cmp(&a.id).then(sa.cmp(sb)));
        let mut last: Option<String> = None;
        for (e, _) in self.pending.drain(..) {
            if self.found.len() >= self.limit {
                break;
            }
            if last.as_deref() == Some(e.id.as_str()) {
                continue;
            }
            last = Some(e.id.clone());
            self.found.push(e);
        }
        Ok(self.found.len() >= self.limit)
    }

    /// The exchanges of one batch of the current bucket that the query asks for.
    fn take(&mut self, seq: u64, batch: &[u8]) -> Result<(), Fault> {
        let (_, records) = decode_batch(batch)?;
        for bytes in records {
            let e = record::decode(bytes).map_err(|e| Fault::Corrupt(e.to_string()))?;
            if e.expires_at > self.now && self.query.matches(&e) {
                self.pending.push((e, seq));
            }
        }
        Ok(())
    }
}

/// Removes up to [`PURGE_PER_APPEND`] of the oldest batches whose exchanges all expired at or
/// before `now_ms`, with their index entries. Batches go by time, and with them (a retention
/// being one length for all) their expiry: the first one not yet expired ends the purge.
fn purge(txn: &redb::WriteTransaction, now_ms: i64) -> Result<(), Fault> {
    let mut batches = txn.open_table(BATCHES)?;
    let mut expired = Vec::new();
    for entry in batches.iter()?.take(PURGE_PER_APPEND) {
        let (key, batch) = entry?;
        let header = match decode_batch(batch.value()) {
            Ok((header, _)) => Some(header),
            // A batch that no longer decodes goes; index entries may stay behind (they point
            // at nothing and are skipped).
            Err(_) => None,
        };
        if header.as_ref().is_some_and(|h| h.expires_at_ms > now_ms) {
            break;
        }
        expired.push((key.value(), header));
    }
    if expired.is_empty() {
        return Ok(());
    }
    let mut by_instance = txn.open_table(BY_INSTANCE)?;
    let mut by_order = txn.open_table(BY_ORDER)?;
    let mut actions = txn.open_table(ACTIONS)?;
    for ((bucket, seq), header) in expired {
        batches.remove((bucket, seq))?;
        if let Some(h) = header {
            for i in &h.instances {
                by_instance.remove((i.as_str(), bucket, seq))?;
            }
            for o in &h.orders {
                by_order.remove((o.as_str(), bucket, seq))?;
            }
            if h.actions {
                actions.remove((bucket, seq))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use koogallery::{
        exchange::{Direction, new_id},
        testing::{MemoryExchangeLog, contract::exchange_log_contract},
    };
    use redb::ReadableTableMetadata;

    fn t0() -> DateTime<Utc> {
        koogallery::protocol::time::parse_compact("20260101000000").unwrap()
    }

    fn make(at: DateTime<Utc>, instance: &str, keep: chrono::Duration) -> Exchange {
        Exchange {
            id: new_id(at),
            at,
            direction: Direction::Inbound,
            family: "v2_basic".into(),
            activity: "queryInstance".into(),
            instance_id: Some(instance.into()),
            order_id: Some(format!("CS-{instance}")),
            tenant_id: None,
            request: serde_json::json!({"instanceId": instance}),
            response: serde_json::Value::Null,
            result_code: None,
            http_status: None,
            latency_ms: 0.0,
            key: None,
            attempt: None,
            test: false,
            expires_at: at + keep,
            error: None,
        }
    }

    #[tokio::test]
    async fn the_embedded_log_passes_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedExchangeLog::open(dir.path().join(EmbeddedExchangeLog::FILE)).unwrap();
        exchange_log_contract(Arc::new(log)).await;
    }

    /// Exchanges arriving out of order (an outbound call is kept when it ends, under the time
    /// it began), in appends of every size, some appended twice, across many buckets: every page
    /// is the memory log's, by time and by instance, newest first.
    #[tokio::test]
    async fn pages_are_the_reference_logs_whatever_the_order_of_arrival() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedExchangeLog::open(dir.path().join("x.redb")).unwrap();
        let reference = MemoryExchangeLog::new();
        let day = chrono::Duration::days(1);
        let mut all: Vec<Exchange> = (0..600)
            .map(|n| {
                let at = t0() + chrono::Duration::milliseconds(rand::random_range(0..3_000));
                make(at, &format!("i-{}", n % 7), day)
            })
            .collect();
        // Some arrive seconds late; some are appended again with another outcome.
        all.sort_by_cached_key(|e| {
            e.at + chrono::Duration::milliseconds(rand::random_range(0..2_000))
        });
        let mut i = 0;
        while i < all.len() {
            let n = rand::random_range(1..40).min(all.len() - i);
            let mut chunk = Kept::all(&all[i..i + n]);
            if n > 3 {
                // The last of the previous append (of this one, the first time).
                let mut again = all[i.saturating_sub(1)].clone();
                again.result_code = Some("000005".into());
                chunk.push(Kept::of(&again));
            }
            log.append(&chunk).await.unwrap();
            reference.append(&chunk).await.unwrap();
            i += n;
        }
        let now = t0() + chrono::Duration::hours(1);
        for filter in [
            ExchangeFilter::All,
            ExchangeFilter::Instance("i-3".into()),
            ExchangeFilter::Order("CS-i-5".into()),
        ] {
            let mut query = ExchangeQuery::newest(filter.clone(), 37);
            let mut pages = 0;
            loop {
                let page = log.find(&query, now).await.unwrap();
                assert_eq!(
                    page,
                    reference.find(&query, now).await.unwrap(),
                    "{filter:?}, page {pages}"
                );
                let Some(last) = page.last() else { break };
                query.before = Some(last.id.clone());
                pages += 1;
            }
            assert!(pages > 1, "{filter:?} spans pages");
        }
    }

    /// What expired is removed by later appends, index entries with it; the rest stays.
    #[tokio::test]
    async fn appends_purge_what_expired() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedExchangeLog::open(dir.path().join("x.redb")).unwrap();
        let secs = chrono::Duration::seconds;
        let at = |s: i64| t0() + secs(s);
        log.append(&Kept::all(&[
            make(at(0), "i-1", secs(10)),
            make(at(1), "i-1", secs(10)),
            make(at(2), "i-1", secs(100)),
        ]))
        .await
        .unwrap();
        assert_eq!(log.len().unwrap(), 3);
        log.append(&Kept::all(&[make(at(50), "i-1", secs(100))]))
            .await
            .unwrap();
        assert_eq!(log.len().unwrap(), 2, "the two expired by t0+50s are gone");
        let q = ExchangeQuery::newest(ExchangeFilter::Instance("i-1".into()), 10);
        assert_eq!(log.find(&q, at(60)).await.unwrap().len(), 2);
        let read = log.file.db.begin_read().unwrap();
        assert_eq!(read.open_table(BATCHES).unwrap().len().unwrap(), 2);
        assert_eq!(read.open_table(BY_INSTANCE).unwrap().len().unwrap(), 2);
        assert_eq!(read.open_table(BY_ORDER).unwrap().len().unwrap(), 2);
    }

    /// The batch framing is a versioned contract: the bytes written are the pinned ones, and
    /// the pinned ones read back.
    #[test]
    fn the_batch_framing_is_pinned() {
        let at = t0();
        let mut first = make(at, "i-1", chrono::Duration::days(14));
        first.id = "1767225600000-0000000000000001".into();
        let mut second = make(at, "i-2", chrono::Duration::days(15));
        second.id = "1767225600000-0000000000000002".into();
        second.order_id = None;
        second.direction = Direction::Operator;
        let kept = Kept::all(&[first, second]);
        let (_, batch) = encode_batch(&kept.iter().collect::<Vec<_>>());
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/exchange_batch_v1.bin");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&fixture, &batch).unwrap();
        }
        let pinned = std::fs::read(&fixture).unwrap();
        assert_eq!(
            batch, pinned,
            "exchange_batch_v1.bin changed: it is a versioned contract"
        );
        let (header, records) = decode_batch(&pinned).unwrap();
        assert_eq!(
            header,
            Header {
                records: 2,
                expires_at_ms: millis(at + chrono::Duration::days(15)),
                instances: vec!["i-1".into(), "i-2".into()],
                orders: vec!["CS-i-1".into()],
                actions: true,
            }
        );
        assert_eq!(records, [&kept[0].record[..], &kept[1].record[..]]);
        assert!(
            decode_batch(&pinned[..pinned.len() - 1]).is_err(),
            "a cut batch is refused"
        );
    }

    /// A file written before batches (a record per key) is read after opening as before.
    #[tokio::test]
    async fn a_file_of_single_records_is_moved_into_batches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.redb");
        let old = [
            make(t0(), "i-1", chrono::Duration::days(1)),
            make(
                t0() + chrono::Duration::seconds(1),
                "i-2",
                chrono::Duration::days(1),
            ),
        ];
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut table = txn.open_table(legacy::EXCHANGES).unwrap();
                let mut by_instance = txn
                    .open_table(TableDefinition::<(&str, &str), ()>::new(
                        "exchanges_by_instance",
                    ))
                    .unwrap();
                let mut expiry = txn
                    .open_table(TableDefinition::<(i64, &str), ()>::new("exchanges_expiry"))
                    .unwrap();
                for e in &old {
                    table
                        .insert(e.id.as_str(), record::encode(e).as_slice())
                        .unwrap();
                    by_instance
                        .insert((e.instance_id.as_deref().unwrap(), e.id.as_str()), ())
                        .unwrap();
                    expiry
                        .insert((millis(e.expires_at), e.id.as_str()), ())
                        .unwrap();
                }
            }
            txn.commit().unwrap();
        }
        let log = EmbeddedExchangeLog::open(&path).unwrap();
        let now = t0() + chrono::Duration::hours(1);
        let q = ExchangeQuery::newest(ExchangeFilter::All, 10);
        assert_eq!(
            log.find(&q, now).await.unwrap(),
            [old[1].clone(), old[0].clone()]
        );
        let q = ExchangeQuery::newest(ExchangeFilter::Instance("i-1".into()), 10);
        assert_eq!(log.find(&q, now).await.unwrap(), [old[0].clone()]);
        let read = log.file.db.begin_read().unwrap();
        let names: Vec<String> = read
            .list_tables()
            .unwrap()
            .map(|t| t.name().to_owned())
            .collect();
        assert!(
            !names.iter().any(|n| n.starts_with("exchanges")),
            "{names:?}"
        );
    }
}
