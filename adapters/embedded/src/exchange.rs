//! The exchange log ([`ExchangeLog`], docs/operations.md) in files of its own beside the store
//! file: an index (`exchanges.redb`) and the records, appended to segment files
//! (`exchanges.segments/`). Its writes never wait for the store's writer, which KooGallery's
//! calls use, and it can be deleted without touching an order.
//!
//! # Batches and segments
//!
//! Records are written a batch at a time: an append writes one batch per *bucket* it touches (the
//! 100 ms of time an exchange id's milliseconds fall in, [`BUCKET_MS`]) to the end of the segment
//! being written, and files it in the index with one entry per instance, per order and (for an
//! operator's action or a reconciler pass) in the actions. An exchange thus costs a copy of its
//! record to a file, not a B-tree insert per key, nor the copy-on-write pages a B-tree value
//! would cost (the log is written for every call KooGallery makes, so its cost is the load
//! figure's: BENCHMARKS.md, "The exchange log's cost on queryInstance").
//!
//! | table                         | key                         | value             |
//! |-------------------------------|-----------------------------|-------------------|
//! | `exchange_batches`            | (bucket, seq)               | where the batch is (segment, offset, length: u64 little-endian each) and its header |
//! | `exchange_batches_by_instance`| (instanceId, bucket, seq)   | `()`              |
//! | `exchange_batches_by_order`   | (orderId, bucket, seq)      | `()`              |
//! | `exchange_batches_of_actions` | (bucket, seq)               | `()`              |
//! | `exchange_segments`           | segment number              | batches filed in it |
//!
//! `seq` orders a bucket's batches by when they were appended. A batch, framing 1 (pinned by
//! `adapters/embedded/tests/fixtures/exchange_batch_v1.bin`): `XB1\n`, a header of JSON
//! (`{"records":n,"expires_at_ms":…,"instances":[…],"orders":[…],"actions":bool}`: the latest
//! expiry in it and what it is filed under), `\n`, then each record (`koogallery::exchange::record`,
//! `v` 1) as its length (u32, little-endian) and its bytes. A segment (`{number:020}.seg`) is
//! batches end to end; each opening starts a new one, as does one past [`SEGMENT_BYTES`].
//!
//! # Reads
//!
//! Buckets are read newest first, every batch of a bucket at once: within it the exchanges are
//! sorted by id, and an id appended twice is answered as first kept (a retried append is not
//! doubled). Every id of a bucket sorts after every id of the buckets before it, so a page ends
//! at the first bucket that fills it.
//!
//! # Durability and retention
//!
//! A commit is durable when its append is small or [`DURABLE_EVERY`] has passed since the last
//! durable one, and else not: under load the log costs one fsync of the segment and one of the
//! index a second, never the store's disk time. The segment is synced before every durable
//! commit, so what the index holds after a crash (its last durable commit) is on disk; a crash
//! loses at most the last second, and bytes a crash left unfiled are never read. Dropping the
//! last handle makes everything durable.
//!
//! Each durable commit also removes up to [`PURGE_PER_APPEND`] of the oldest batches whose
//! exchanges have all expired by the newest appended one's time, and deletes a segment once none
//! of its batches is filed, so the files hold about the retention's worth; expired exchanges not
//! yet removed are never answered. An opening deletes the segments nothing is filed in.
//!
//! A file written before batches (one record per key, tables `exchanges`, `exchanges_by_*`,
//! `exchanges_expiry`) is moved into batches when opened.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
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
/// Segment → batches filed in it: a segment no batch is filed in any more is deleted.
const SEGMENTS: TableDefinition<u64, u64> = TableDefinition::new("exchange_segments");

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
/// A segment file is closed and a new one started past this size.
pub const SEGMENT_BYTES: u64 = 64 << 20;

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

/// The batch of `records` (one bucket's), its header, and where the header's JSON ends in it.
fn encode_batch(records: &[&Kept]) -> (Header, Vec<u8>, usize) {
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
    let header_end = out.len();
    out.push(b'\n');
    for k in records {
        let len = u32::try_from(k.record.len()).expect("a record is far under 4 GiB");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&k.record);
    }
    (header, out, header_end)
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
struct Encoded {
    bucket: i64,
    header: Header,
    bytes: Vec<u8>,
    /// The header's JSON is `bytes[MAGIC.len()..header_end]` (the index keeps it too).
    header_end: usize,
}

impl Encoded {
    fn header_json(&self) -> &[u8] {
        &self.bytes[MAGIC.len()..self.header_end]
    }
}

/// `records` as batches, one per bucket.
fn batches_of(records: &[Kept]) -> Vec<Encoded> {
    let mut buckets: BTreeMap<i64, Vec<&Kept>> = BTreeMap::new();
    for k in records {
        buckets.entry(bucket_of(&k.id, k.at)).or_default().push(k);
    }
    buckets
        .into_iter()
        .map(|(bucket, records)| {
            let (header, bytes, header_end) = encode_batch(&records);
            Encoded {
                bucket,
                header,
                bytes,
                header_end,
            }
        })
        .collect()
}

/// Where a batch's bytes are: its segment, offset and length (the value of `exchange_batches`,
/// followed by the batch's header, so that the purge and the indexes need no segment read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Locator {
    segment: u64,
    offset: u64,
    len: u64,
}

impl Locator {
    const SIZE: usize = 24;

    /// The value stored for a batch at `self` with `header` (its JSON).
    fn value(&self, header: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::SIZE + header.len());
        for n in [self.segment, self.offset, self.len] {
            v.extend_from_slice(&n.to_le_bytes());
        }
        v.extend_from_slice(header);
        v
    }

    /// A stored value's locator and header.
    fn read(value: &[u8]) -> Result<(Self, Header), Fault> {
        let corrupt = |why: String| Fault::Corrupt(format!("exchange batch locator: {why}"));
        if value.len() < Self::SIZE {
            return Err(corrupt("cut".into()));
        }
        let n = |i: usize| u64::from_le_bytes(value[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        let header = serde_json::from_slice(&value[Self::SIZE..])
            .map_err(|e| corrupt(format!("header: {e}")))?;
        Ok((
            Self {
                segment: n(0),
                offset: n(1),
                len: n(2),
            },
            header,
        ))
    }
}

/// Appends `batches` to the segment being written, then files each under the next `seq` with
/// its index entries and counts it in its segment's live batches.
fn insert_batches(
    txn: &redb::WriteTransaction,
    batches: &[Encoded],
    seq: &AtomicU64,
    segments: &Segments,
) -> Result<(), Fault> {
    let mut table = txn.open_table(BATCHES)?;
    let mut by_instance = txn.open_table(BY_INSTANCE)?;
    let mut by_order = txn.open_table(BY_ORDER)?;
    let mut actions = txn.open_table(ACTIONS)?;
    let mut live = txn.open_table(SEGMENTS)?;
    for batch in batches {
        let (bucket, header) = (&batch.bucket, &batch.header);
        let at = segments.append(&batch.bytes)?;
        let seq = seq.fetch_add(1, Ordering::Relaxed);
        table.insert((*bucket, seq), at.value(batch.header_json()).as_slice())?;
        let count = live.get(at.segment)?.map_or(0, |c| c.value());
        live.insert(at.segment, count + 1)?;
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

/// The segment files beside the index: one written at a time (a new one per opening and per
/// [`SEGMENT_BYTES`]), each read by offset.
struct Segments {
    dir: PathBuf,
    /// [`SEGMENT_BYTES`], but in tests.
    max_bytes: u64,
    current: std::sync::Mutex<Current>,
    next_id: AtomicU64,
}

/// The segment being written.
struct Current {
    id: u64,
    file: std::fs::File,
    len: u64,
    /// Segments written up to a rotation and not yet synced with a durable commit.
    unsynced: Vec<std::fs::File>,
}

impl Segments {
    fn name(id: u64) -> String {
        format!("{id:020}.seg")
    }

    fn create(dir: &Path, id: u64) -> Result<std::fs::File, Fault> {
        crate::new_private_file()
            .append(true)
            .open(dir.join(Self::name(id)))
            .map_err(io_fault)
    }

    /// Opens the segments' directory and starts a new segment numbered from `first_id`.
    fn open(dir: PathBuf, first_id: u64, max_bytes: u64) -> Result<Self, Fault> {
        std::fs::create_dir_all(&dir).map_err(io_fault)?;
        let file = Self::create(&dir, first_id)?;
        Ok(Self {
            dir,
            max_bytes,
            current: std::sync::Mutex::new(Current {
                id: first_id,
                file,
                len: 0,
                unsynced: Vec::new(),
            }),
            next_id: AtomicU64::new(first_id + 1),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `bytes` to the current segment (rotating first when it is full); where they are.
    fn append(&self, bytes: &[u8]) -> Result<Locator, Fault> {
        use std::io::Write;
        let mut c = self.lock();
        if c.len >= self.max_bytes {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let file = Self::create(&self.dir, id)?;
            let full = std::mem::replace(&mut c.file, file);
            c.unsynced.push(full);
            c.id = id;
            c.len = 0;
        }
        let at = Locator {
            segment: c.id,
            offset: c.len,
            len: bytes.len() as u64,
        };
        c.file.write_all(bytes).map_err(io_fault)?;
        c.len += at.len;
        Ok(at)
    }

    /// Makes what was appended durable (before a durable commit that refers to it).
    fn sync(&self) -> Result<(), Fault> {
        let mut c = self.lock();
        for f in c.unsynced.drain(..) {
            f.sync_data().map_err(io_fault)?;
        }
        c.file.sync_data().map_err(io_fault)
    }

    /// The bytes at `at`.
    fn read(&self, at: &Locator) -> Result<Vec<u8>, Fault> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(self.dir.join(Self::name(at.segment))).map_err(io_fault)?;
        f.seek(SeekFrom::Start(at.offset)).map_err(io_fault)?;
        let mut bytes =
            vec![0; usize::try_from(at.len).map_err(|_| Fault::Corrupt("batch length".into()))?];
        f.read_exact(&mut bytes).map_err(io_fault)?;
        Ok(bytes)
    }

    /// Deletes segment `id` (none of its batches is filed any more), unless it is being written.
    fn remove(&self, id: u64) {
        if self.lock().id == id {
            return;
        }
        if let Err(e) = std::fs::remove_file(self.dir.join(Self::name(id)))
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(error = %e, segment = id, "exchange log: an expired segment could not be deleted");
        }
    }

    /// Deletes the segment files no batch refers to (left by a purge whose deletion did not
    /// happen, or by appends a crash undid), except the one being written.
    fn remove_unreferenced(&self, live: &std::collections::BTreeSet<u64>) -> Result<(), Fault> {
        for entry in std::fs::read_dir(&self.dir).map_err(io_fault)? {
            let name = entry.map_err(io_fault)?.file_name();
            let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".seg"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if !live.contains(&id) {
                self.remove(id);
            }
        }
        Ok(())
    }
}

fn io_fault(e: std::io::Error) -> Fault {
    Fault::Db(redb::Error::Io(e))
}

/// The file and when its last durable commit was.
struct LogFile {
    db: Arc<Db>,
    segments: Segments,
    last_durable: std::sync::Mutex<std::time::Instant>,
    /// The next batch's `seq`: from the clock at opening, so it grows across restarts too.
    next_seq: AtomicU64,
}

impl Drop for LogFile {
    /// The commits not yet durable become so (the segments synced, then an empty durable commit
    /// persists them).
    fn drop(&mut self) {
        let synced = self.segments.sync();
        if let Err(e) = synced
            .map_err(StoreError::from)
            .and_then(|()| self.db.begin_write().map_err(StoreError::from))
            .and_then(|txn| txn.commit().map_err(|e| StoreError::from(Fault::from(e))))
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
        Self::open_with(path.as_ref(), SEGMENT_BYTES)
    }

    /// The segments' folder beside the index file at `path` (`exchanges.segments`).
    pub fn segments_dir(path: impl AsRef<Path>) -> PathBuf {
        path.as_ref().with_extension("segments")
    }

    fn open_with(path: &Path, segment_bytes: u64) -> Result<Self, StoreError> {
        let owned = path.to_owned();
        let db = open_file(path, Box::new(move || Database::create(&owned)))?;
        let next_seq = AtomicU64::new(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX / 2)),
        );
        let segments = Segments::open(
            Self::segments_dir(path),
            next_seq.load(Ordering::Relaxed),
            segment_bytes,
        )?;
        let txn = db.begin_write()?;
        {
            txn.open_table(BATCHES).map_err(Fault::from)?;
            txn.open_table(BY_INSTANCE).map_err(Fault::from)?;
            txn.open_table(BY_ORDER).map_err(Fault::from)?;
            txn.open_table(ACTIONS).map_err(Fault::from)?;
            txn.open_table(SEGMENTS).map_err(Fault::from)?;
        }
        // Batch numbers after the segment just created's (each a number of the same clock).
        next_seq.fetch_add(1 << 20, Ordering::Relaxed);
        move_legacy(&txn, &next_seq, &segments)?;
        let live = txn
            .open_table(SEGMENTS)
            .map_err(Fault::from)?
            .iter()
            .map_err(Fault::from)?
            .map(|e| e.map(|(k, _)| k.value()))
            .collect::<Result<std::collections::BTreeSet<u64>, _>>()
            .map_err(Fault::from)?;
        segments.sync()?;
        txn.commit().map_err(Fault::from)?;
        segments.remove_unreferenced(&live)?;
        Ok(Self {
            file: Arc::new(LogFile {
                db: Arc::new(db),
                segments,
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
            n += Locator::read(batch.value())?.1.records as u64;
        }
        Ok(n)
    }

    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }
}

/// Moves the exchanges of a file written before batches into batches, and drops its tables.
fn move_legacy(
    txn: &redb::WriteTransaction,
    seq: &AtomicU64,
    segments: &Segments,
) -> Result<(), Fault> {
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
        insert_batches(txn, &batches_of(chunk), seq, segments)?;
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
            insert_batches(&txn, &batches, &file.next_seq, &file.segments)?;
            // With the durable commits only (at most once a second under load): what expired
            // reads the oldest batches, which is no work for every append.
            let emptied = if durable {
                file.segments.sync()?;
                purge(&txn, millis(newest))?
            } else {
                Vec::new()
            };
            txn.commit()?;
            for id in emptied {
                file.segments.remove(id);
            }
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
        let file = self.file.clone();
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
                segments: &file.segments,
                now,
                limit,
                found: Vec::with_capacity(limit.min(64)),
                bucket: None,
                pending: Vec::new(),
            };
            // The batches to read, newest first: every one, or those an index names.
            let actions = read.open_table(ACTIONS)?;
            let by_owner = read.open_table(match &query.filter {
                ExchangeFilter::Order(_) => BY_ORDER,
                _ => BY_INSTANCE,
            })?;
            let keys: Box<dyn Iterator<Item = Result<BatchKey, redb::StorageError>>> =
                match &query.filter {
                    ExchangeFilter::All => Box::new(
                        batches
                            .range(..=(last, u64::MAX))?
                            .rev()
                            .map(|e| e.map(|(k, _)| k.value())),
                    ),
                    ExchangeFilter::Actions => Box::new(
                        actions
                            .range(..=(last, u64::MAX))?
                            .rev()
                            .map(|e| e.map(|(k, _)| k.value())),
                    ),
                    ExchangeFilter::Instance(owner) | ExchangeFilter::Order(owner) => {
                        let owner = owner.as_str();
                        Box::new(
                            by_owner
                                .range((owner, i64::MIN, 0)..=(owner, last, u64::MAX))?
                                .rev()
                                .map(|e| e.map(|(k, _)| (k.value().1, k.value().2))),
                        )
                    }
                };
            for key in keys {
                let (bucket, seq) = key?;
                if page.enter(bucket)? {
                    break;
                }
                if let Some(batch) = batches.get((bucket, seq))? {
                    page.take(seq, batch.value())?;
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
    segments: &'q Segments,
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
    fn take(&mut self, seq: u64, value: &[u8]) -> Result<(), Fault> {
        let (at, _) = Locator::read(value)?;
        let batch = match self.segments.read(&at) {
            Ok(batch) => batch,
            // Purged (expired) since this read's snapshot was taken.
            Err(Fault::Db(redb::Error::Io(e))) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let (_, records) = decode_batch(&batch)?;
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
fn purge(txn: &redb::WriteTransaction, now_ms: i64) -> Result<Vec<u64>, Fault> {
    let mut batches = txn.open_table(BATCHES)?;
    let mut expired = Vec::new();
    for entry in batches.iter()?.take(PURGE_PER_APPEND) {
        let (key, value) = entry?;
        let found = Locator::read(value.value()).ok();
        if found
            .as_ref()
            .is_some_and(|(_, h)| h.expires_at_ms > now_ms)
        {
            break;
        }
        // A locator that no longer decodes goes too; its index entries may stay behind (they
        // point at nothing and are skipped).
        expired.push((key.value(), found));
    }
    let mut emptied = Vec::new();
    if expired.is_empty() {
        return Ok(emptied);
    }
    let mut by_instance = txn.open_table(BY_INSTANCE)?;
    let mut by_order = txn.open_table(BY_ORDER)?;
    let mut actions = txn.open_table(ACTIONS)?;
    let mut live = txn.open_table(SEGMENTS)?;
    for ((bucket, seq), found) in expired {
        batches.remove((bucket, seq))?;
        let Some((at, h)) = found else { continue };
        for i in &h.instances {
            by_instance.remove((i.as_str(), bucket, seq))?;
        }
        for o in &h.orders {
            by_order.remove((o.as_str(), bucket, seq))?;
        }
        if h.actions {
            actions.remove((bucket, seq))?;
        }
        let count = live.get(at.segment)?.map_or(0, |c| c.value());
        if count <= 1 {
            live.remove(at.segment)?;
            emptied.push(at.segment);
        } else {
            live.insert(at.segment, count - 1)?;
        }
    }
    Ok(emptied)
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

    /// A segment goes once none of its batches is filed any more; what is filed survives a
    /// reopening, and a reopening deletes the segments nothing refers to.
    #[tokio::test]
    async fn expired_segments_are_deleted_and_the_rest_read_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.redb");
        let segment_files = || {
            std::fs::read_dir(EmbeddedExchangeLog::segments_dir(&path))
                .unwrap()
                .count()
        };
        let secs = chrono::Duration::seconds;
        let at = |s: i64| t0() + secs(s);
        let kept = {
            // One byte a segment: each append starts a new one.
            let log = EmbeddedExchangeLog::open_with(&path, 1).unwrap();
            for (s, keep) in [(0, 10), (1, 10), (2, 100)] {
                log.append(&Kept::all(&[make(at(s), "i-1", secs(keep))]))
                    .await
                    .unwrap();
            }
            assert_eq!(segment_files(), 3);
            let last = make(at(50), "i-1", secs(100));
            log.append(&Kept::all(std::slice::from_ref(&last)))
                .await
                .unwrap();
            assert_eq!(segment_files(), 2, "the two expired segments are gone");
            log.find(&ExchangeQuery::newest(ExchangeFilter::All, 10), at(60))
                .await
                .unwrap()
        };
        assert_eq!(kept.len(), 2);
        let log = EmbeddedExchangeLog::open(&path).unwrap();
        assert_eq!(
            log.find(&ExchangeQuery::newest(ExchangeFilter::All, 10), at(60))
                .await
                .unwrap(),
            kept
        );
        assert_eq!(segment_files(), 3, "the two kept and the one being written");
        drop(log);
        std::fs::write(
            EmbeddedExchangeLog::segments_dir(&path).join("00000000000000000001.seg"),
            b"x",
        )
        .unwrap();
        let _log = EmbeddedExchangeLog::open(&path).unwrap();
        assert_eq!(
            segment_files(),
            3,
            "the empty one and the stray one deleted; a new one"
        );
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
        let (_, batch, _) = encode_batch(&kept.iter().collect::<Vec<_>>());
        let pinned = koogallery::testing::golden::check_bytes_in(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"),
            "exchange_batch_v1.bin",
            &batch,
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
