//! The replay guard's nonces on the embedded store, checked in memory and persisted in groups.
//!
//! A request's nonce is checked and recorded in memory, and the answer does not wait for the
//! disk. A flusher thread writes the nonces recorded since its last pass in one durable commit, at
//! most [`NonceGuard::every`] after the first of them, which is one fsync per group instead of
//! one per request. On open, the unexpired nonces on disk are loaded back (the expiry index is
//! read from now on: expired ones cost nothing).
//!
//! A group is one row (`nonce_groups`, its encoding pinned by
//! `adapters/embedded/tests/fixtures/nonce_group_v1.bin`), filed under its latest expiry
//! (`nonce_group_expiry`): a commit costs two B-tree inserts and the copy of one value, however
//! many nonces the group holds. A row per nonce (and one more per nonce in an expiry index) made
//! the flusher a third of the host's CPU at full rate (BENCHMARKS.md, "Close to the machine's
//! ceiling"). A file of one row per nonce (`nonces`, `nonce_expiry`) has its unexpired nonces moved
//! into a group when opened.
//!
//! What a crash can forget: the nonces not yet on disk, those of the group being gathered (`every`,
//! 2 ms by default) and of the commit in flight. The guard bounds them whatever the disk does: at
//! most [`MAX_UNPERSISTED`] nonces, none accepted more than [`MAX_UNPERSISTED_FOR`] ago, and
//! after a failed commit none new until a commit succeeds again. A nonce it cannot take so is
//! refused (`StoreError::Unavailable`: the edge answers a signed, retryable `000005`, and
//! KooGallery retries) rather than accepted unpersisted. A replay of a forgotten nonce is still
//! refused by the timestamp window once it passes (±60 s). Until then it reaches a callback, and
//! every callback is idempotent, so the replay changes nothing. A clean shutdown flushes
//! everything (`Drop`).
//!
//! Expired nonces leave as fast as new ones arrive, off the calls' path: each commit first drops
//! from memory the nonces expired by the latest request's time (in arrival order, see `Held`),
//! and from disk up to
//! [`DISK_PURGE_GROUPS`] groups whose every nonce has expired, against the one it adds (which also
//! clears, commit by commit, those left by an earlier run). A group stays on disk until its last
//! nonce expires.
//!
//! The nonces held are in [`SHARDS`] maps, each under a lock of its own, so a map's growth holds
//! up only the calls whose nonce falls in its shard.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Condvar, Mutex, Weak},
    time::{Duration, Instant},
};

use koogallery::StoreError;
use redb::{ReadableTable, TableDefinition, TableHandle};

use crate::{Db, Fault, NONCE_GROUP_EXPIRY, NONCE_GROUPS};

/// A file's nonces before groups: one row per nonce, and an expiry index.
const LEGACY_NONCES: TableDefinition<&str, i64> = TableDefinition::new("nonces");
const LEGACY_NONCE_EXPIRY: TableDefinition<(i64, &str), ()> = TableDefinition::new("nonce_expiry");

/// The version byte a group's encoding starts with.
const GROUP_V1: u8 = 1;

/// Expired groups a commit drops from disk, against the one it writes: more than one, so what an
/// earlier run left is cleared too.
pub(crate) const DISK_PURGE_GROUPS: usize = 4;

/// The most nonces accepted and not yet on disk (the group gathered and the commit in flight):
/// about 140 ms of the local host's full rate, far above a group behind a long write.
pub const MAX_UNPERSISTED: usize = 4096;

/// The longest a nonce accepted may wait for the disk before the guard takes no new one.
pub const MAX_UNPERSISTED_FOR: Duration = Duration::from_secs(1);

/// After a failed commit the flusher tries again after this, doubling up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(1);

/// How much the guard lets wait for the disk (see the module docs).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) every: Duration,
    pub(crate) max_unpersisted: usize,
    pub(crate) max_unpersisted_for: Duration,
}

impl Limits {
    pub(crate) fn every(every: Duration) -> Self {
        Self {
            every,
            max_unpersisted: MAX_UNPERSISTED,
            max_unpersisted_for: MAX_UNPERSISTED_FOR,
        }
    }
}

/// A nonce, held once for the map, the expiry order and the group that writes it.
type Nonce = Arc<str>;

/// The nonces held are split in this many shards, each under a lock of its own. A map that grows
/// moves every entry it holds while its lock is held; one map for all of them stalled every call
/// for 30 ms at 100 000 nonces (and would for far longer at a full `nonce_ttl` of a busy host).
/// A shard's growth moves a sixty-fourth of them, and holds up only the calls whose nonce falls
/// in that shard.
const SHARDS: usize = 64;

/// Nonces a shard is made for before it first grows (65 536 in all): at a steady rate the shards
/// stop growing once the first nonces expire.
const SHARD_CAPACITY: usize = 1024;

/// Hashed with foldhash (seeded per process): a nonce is only remembered once its call's
/// signature is verified, so the keys are not an attacker's to choose freely.
type Hasher = foldhash::fast::RandomState;

/// One shard of the nonces held, and their expiries.
///
/// A nonce's expiry is its acceptance time plus one fixed `nonce_ttl`, so nonces expire in about
/// the order they arrive: they queue in arrival order (`by_arrival`) and leave from its front,
/// which costs a push and a pop, where an ordered set cost a B-tree insert with string
/// comparisons on every call. The order can be off (calls racing for a shard, the clock stepped
/// back, a nonce kept again with a later expiry, the groups loaded at start): the front then
/// holds back, until it expires, some nonces expired behind it. Those stay in memory longer
/// than needed, never less: a nonce leaves only once the map's expiry for it is past.
struct Held {
    live: HashMap<Nonce, i64, Hasher>,
    by_arrival: VecDeque<(i64, Nonce)>,
}

impl Held {
    /// Holds `nonce` until `exp_ms` (a later expiry than one it already has wins).
    fn keep(&mut self, nonce: Nonce, exp_ms: i64) {
        match self.live.get_mut(&nonce) {
            Some(known) if *known >= exp_ms => {}
            Some(known) => {
                // Its earlier place in the queue is left: popped, it finds this later expiry.
                *known = exp_ms;
                self.by_arrival.push_back((exp_ms, nonce));
            }
            None => {
                self.live.insert(nonce.clone(), exp_ms);
                self.by_arrival.push_back((exp_ms, nonce));
            }
        }
    }

    /// Drops the nonces expired at `now_ms` (up to the first in arrival order that is not).
    fn purge(&mut self, now_ms: i64) {
        while let Some((_, nonce)) = self.by_arrival.pop_front_if(|(exp, _)| *exp <= now_ms) {
            if self.live.get(&nonce).is_some_and(|exp| *exp <= now_ms) {
                self.live.remove(&nonce);
            }
        }
    }
}

/// The nonces held, by shard. A nonce's shard is chosen with a hasher of its own, not the maps'
/// (whose low bits pick a bucket: a shard of nonces alike in those bits would use a
/// sixty-fourth of its buckets).
struct Nonces {
    choose: Hasher,
    shards: Box<[Mutex<Held>]>,
}

impl Nonces {
    fn new() -> Self {
        Self {
            choose: Hasher::default(),
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Held {
                        live: HashMap::with_capacity_and_hasher(SHARD_CAPACITY, Hasher::default()),
                        by_arrival: VecDeque::with_capacity(SHARD_CAPACITY),
                    })
                })
                .collect(),
        }
    }

    fn shard(&self, nonce: &str) -> std::sync::MutexGuard<'_, Held> {
        use std::hash::BuildHasher;
        let i = (self.choose.hash_one(nonce) % SHARDS as u64) as usize;
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    fn keep(&self, nonce: Nonce, exp_ms: i64) {
        self.shard(&nonce).keep(nonce, exp_ms);
    }

    /// Drops every nonce expired at `now_ms`, a shard at a time.
    fn purge(&self, now_ms: i64) {
        for shard in self.shards.iter() {
            shard
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .purge(now_ms);
        }
    }
}

#[derive(Default)]
struct State {
    /// Accepted since the last group was taken: (nonce, expiry ms).
    pending: Vec<(Nonce, i64)>,
    /// The key of the next group written.
    next_group: u64,
    /// When the first of `pending` was accepted.
    pending_since: Option<Instant>,
    /// The commit in flight: how many nonces it writes, and when the first of them was accepted.
    committing: usize,
    committing_since: Option<Instant>,
    /// The last commit failed: no new nonce is taken until one succeeds.
    failed: bool,
    /// The latest request time seen (ms): expiry is judged on the requests' clock, so the disk
    /// is purged on it too.
    clock_ms: i64,
    /// Set by the close, under the same lock as the flusher's checks: a flag changed outside
    /// the lock can land between the flusher's check and its wait, and that wake-up is lost
    /// (the close then waits out a whole group interval).
    closed: bool,
}

impl State {
    /// Why a new nonce cannot be taken now, if it cannot.
    fn refusal(&self, limits: &Limits) -> Option<String> {
        if self.failed {
            return Some("the replay guard cannot persist nonces: its last commit failed".into());
        }
        let waiting = self.pending.len() + self.committing;
        if waiting >= limits.max_unpersisted {
            return Some(format!(
                "the replay guard has {waiting} nonces waiting for the disk"
            ));
        }
        let oldest = self.committing_since.or(self.pending_since);
        if oldest.is_some_and(|t| t.elapsed() >= limits.max_unpersisted_for) {
            return Some(format!(
                "the replay guard's nonces have waited for the disk over {:?}",
                limits.max_unpersisted_for
            ));
        }
        None
    }
}

/// What the flusher thread shares with the store: never the database itself, which it borrows
/// (a `Weak`) only for the moment of a commit, so closing the store closes the file at once.
struct Shared {
    /// The nonces held. A call locks its nonce's shard, then `state`, never the other way round.
    held: Nonces,
    state: Mutex<State>,
    wake: Condvar,
    /// One commit at a time (the flusher's, a forced flush, the close's), so the commit in flight
    /// is one group.
    committing: Mutex<()>,
    limits: Limits,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) struct NonceGuard {
    db: Arc<Db>,
    shared: Arc<Shared>,
    /// Joined on drop, so the file is closed when the last store clone is gone.
    flusher: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl NonceGuard {
    /// Loads the unexpired nonces of `db` (moving those of a file written before groups into
    /// one) and starts the flusher.
    pub(crate) fn start(db: Arc<Db>, limits: Limits) -> Result<Arc<Self>, Fault> {
        let now_ms = now_ms();
        let mut state = State {
            // Nothing is purged from disk before the first request says what time it is.
            clock_ms: i64::MIN,
            ..State::default()
        };
        let held = Nonces::new();
        {
            let read = db.begin_read()?;
            let groups = read.open_table(NONCE_GROUPS)?;
            state.next_group = groups.last()?.map_or(0, |(k, _)| k.value() + 1);
            let index = read.open_table(NONCE_GROUP_EXPIRY)?;
            // Only the groups with a nonce expiring after now.
            for entry in index.range((now_ms.saturating_add(1), 0)..)? {
                let (key, _) = entry?;
                let (_, group) = key.value();
                let Some(bytes) = groups.get(group)? else {
                    continue;
                };
                for (nonce, exp) in decode_group(bytes.value())? {
                    if exp > now_ms {
                        held.keep(nonce.into(), exp);
                    }
                }
            }
        }
        move_legacy(&db, &mut state, &held, now_ms)?;
        let shared = Arc::new(Shared {
            held,
            state: Mutex::new(state),
            wake: Condvar::new(),
            committing: Mutex::new(()),
            limits,
        });
        let (thread_shared, thread_db) = (shared.clone(), Arc::downgrade(&db));
        let handle = std::thread::Builder::new()
            .name("nonce-flusher".into())
            .spawn(move || flusher(thread_shared, thread_db))
            .map_err(|e| Fault::Task(format!("cannot start the nonce flusher: {e}")))?;
        Ok(Arc::new(Self {
            db,
            shared,
            flusher: Mutex::new(Some(handle)),
        }))
    }

    /// True the first time `nonce` is seen while unexpired at `now_ms`; an error when it is new
    /// and the guard cannot take it without letting more wait for the disk than it promises.
    pub(crate) fn remember(
        &self,
        nonce: &str,
        now_ms: i64,
        exp_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut held = self.shared.held.shard(nonce);
        if held.live.get(nonce).is_some_and(|exp| *exp > now_ms) {
            return Ok(false);
        }
        let nonce: Nonce = nonce.into();
        {
            let mut s = self.shared.lock();
            s.clock_ms = s.clock_ms.max(now_ms);
            if let Some(why) = s.refusal(&self.shared.limits) {
                return Err(StoreError::Unavailable(why.into()));
            }
            s.pending.push((nonce.clone(), exp_ms));
            if s.pending.len() == 1 {
                s.pending_since = Some(Instant::now());
                self.shared.wake.notify_one();
            }
        }
        held.keep(nonce, exp_ms);
        Ok(true)
    }

    /// Writes the pending group in one durable commit, dropping expired ones from disk as it goes.
    pub(crate) fn flush(&self) -> Result<usize, Fault> {
        flush(&self.shared, &self.db)
    }

    /// Nonces accepted and not yet on disk.
    pub(crate) fn pending(&self) -> usize {
        let s = self.shared.lock();
        s.pending.len() + s.committing
    }

    /// Nonces held in memory (live, and expired ones not yet dropped).
    #[cfg(test)]
    pub(crate) fn in_memory(&self) -> usize {
        self.shared
            .held
            .shards
            .iter()
            .map(|h| h.lock().unwrap_or_else(|p| p.into_inner()).live.len())
            .sum()
    }
}

fn flush(shared: &Shared, db: &Db) -> Result<usize, Fault> {
    let _one = shared.committing.lock().unwrap_or_else(|p| p.into_inner());
    // Expired nonces leave memory here, off the calls' path, as they leave the disk below.
    let clock_ms = shared.lock().clock_ms;
    shared.held.purge(clock_ms);
    let (group, key, now_ms) = {
        let mut s = shared.lock();
        let group = std::mem::take(&mut s.pending);
        if group.is_empty() {
            return Ok(0);
        }
        s.committing = group.len();
        s.committing_since = s.pending_since.take();
        (group, s.next_group, s.clock_ms)
    };
    let written = commit(db, key, &group, now_ms);
    let mut s = shared.lock();
    s.committing = 0;
    let since = s.committing_since.take();
    match written {
        Ok(()) => {
            s.next_group = key + 1;
            if std::mem::take(&mut s.failed) {
                tracing::warn!("nonces persisted again; the replay guard takes new ones");
            }
            Ok(group.len())
        }
        Err(e) => {
            // Kept for the next pass: nothing accepted is dropped for a failed commit, and
            // nothing new is taken until one succeeds.
            let mut again = group;
            again.append(&mut s.pending);
            s.pending = again;
            s.pending_since = since.or(s.pending_since);
            s.failed = true;
            Err(e)
        }
    }
}

/// `group` as row `key` in one durable commit, with up to [`DISK_PURGE_GROUPS`] groups whose
/// nonces have all expired dropped.
fn commit(db: &Db, key: u64, group: &[(Nonce, i64)], now_ms: i64) -> Result<(), Fault> {
    let txn = db.begin_write()?;
    {
        let mut groups = txn.open_table(NONCE_GROUPS)?;
        let mut index = txn.open_table(NONCE_GROUP_EXPIRY)?;
        // Every group filed below (now+1, 0) has expired at or before now.
        let expired: Vec<(i64, u64)> = index
            .range(..(now_ms.saturating_add(1), 0))?
            .take(DISK_PURGE_GROUPS)
            .map(|r| r.map(|(k, _)| k.value()))
            .collect::<Result<_, _>>()?;
        for (exp, old) in expired {
            index.remove((exp, old))?;
            groups.remove(old)?;
        }
        file_group(&mut groups, &mut index, key, group)?;
    }
    txn.commit()?;
    Ok(())
}

/// Writes `group` as row `key`, filed under its latest expiry.
fn file_group(
    groups: &mut redb::Table<u64, &[u8]>,
    index: &mut redb::Table<(i64, u64), ()>,
    key: u64,
    group: &[(Nonce, i64)],
) -> Result<(), Fault> {
    let latest = group.iter().map(|(_, exp)| *exp).max().unwrap_or(i64::MIN);
    groups.insert(
        key,
        encode_group(group.iter().map(|(n, e)| (&**n, *e))).as_slice(),
    )?;
    index.insert((latest, key), ())?;
    Ok(())
}

/// A group's row, encoding 1: the version byte, the count (u32), then each nonce as its expiry
/// (Unix ms, i64), its length (u32) and its UTF-8 bytes; integers little-endian.
fn encode_group<'a>(group: impl ExactSizeIterator<Item = (&'a str, i64)>) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(5 + group.len() * 48);
    bytes.push(GROUP_V1);
    bytes.extend_from_slice(&(group.len() as u32).to_le_bytes());
    for (nonce, exp) in group {
        bytes.extend_from_slice(&exp.to_le_bytes());
        bytes.extend_from_slice(&(nonce.len() as u32).to_le_bytes());
        bytes.extend_from_slice(nonce.as_bytes());
    }
    bytes
}

/// The nonces of a group's row, with their expiries.
fn decode_group(bytes: &[u8]) -> Result<Vec<(&str, i64)>, Fault> {
    let corrupt = |what: &str| Fault::Corrupt(format!("a nonce group: {what}"));
    let mut rest = match bytes.split_first() {
        Some((&GROUP_V1, rest)) => rest,
        Some((v, _)) => return Err(corrupt(&format!("unknown encoding {v}"))),
        None => return Err(corrupt("empty")),
    };
    let mut take = |n: usize| -> Result<&[u8], Fault> {
        if rest.len() < n {
            return Err(corrupt("truncated"));
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let count = u32::from_le_bytes(take(4)?.try_into().map_err(|_| corrupt("count"))?);
    let mut group = Vec::with_capacity(count.min(1 << 16) as usize);
    for _ in 0..count {
        let exp = i64::from_le_bytes(take(8)?.try_into().map_err(|_| corrupt("expiry"))?);
        let len = u32::from_le_bytes(take(4)?.try_into().map_err(|_| corrupt("length"))?);
        let nonce = std::str::from_utf8(take(len as usize)?).map_err(|_| corrupt("not UTF-8"))?;
        group.push((nonce, exp));
    }
    Ok(group)
}

/// A file written before groups: its unexpired nonces become one group (and are held), and its
/// two tables are deleted, in one durable commit. Nothing to do on any other file.
fn move_legacy(db: &Db, state: &mut State, held: &Nonces, now_ms: i64) -> Result<(), Fault> {
    let read = db.begin_read()?;
    let has_legacy = read
        .list_tables()?
        .any(|t| t.name() == LEGACY_NONCES.name() || t.name() == LEGACY_NONCE_EXPIRY.name());
    if !has_legacy {
        return Ok(());
    }
    let mut moved: Vec<(Nonce, i64)> = Vec::new();
    if let Ok(index) = read.open_table(LEGACY_NONCE_EXPIRY) {
        // Only those expiring after now: "" sorts before every nonce.
        for entry in index.range((now_ms.saturating_add(1), "")..)? {
            let (key, _) = entry?;
            let (exp, nonce) = key.value();
            moved.push((nonce.into(), exp));
        }
    }
    drop(read);
    let txn = db.begin_write()?;
    if !moved.is_empty() {
        let mut groups = txn.open_table(NONCE_GROUPS)?;
        let mut index = txn.open_table(NONCE_GROUP_EXPIRY)?;
        file_group(&mut groups, &mut index, state.next_group, &moved)?;
        state.next_group += 1;
    }
    txn.delete_table(LEGACY_NONCES)?;
    txn.delete_table(LEGACY_NONCE_EXPIRY)?;
    txn.commit()?;
    for (nonce, exp) in moved {
        held.keep(nonce, exp);
    }
    Ok(())
}

/// The nonces on disk (every group's, expired or not), with their expiries.
#[cfg(test)]
pub(crate) fn on_disk(read: &redb::ReadTransaction) -> Vec<(String, i64)> {
    let groups = read.open_table(NONCE_GROUPS).unwrap();
    let mut all = Vec::new();
    for entry in groups.iter().unwrap() {
        let (_, bytes) = entry.unwrap();
        for (nonce, exp) in decode_group(bytes.value()).unwrap() {
            all.push((nonce.to_owned(), exp));
        }
    }
    all
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Waits for a group to start, gathers it for `every`, commits it; ends with the store. After a
/// failed commit it waits (longer each time, up to [`RETRY_MAX`]) and commits the kept group again.
fn flusher(shared: Arc<Shared>, db: Weak<Db>) {
    let every = shared.limits.every;
    let mut retry = RETRY_FIRST;
    loop {
        {
            let s = shared.lock();
            let (s, _) = shared
                .wake
                .wait_timeout_while(s, Duration::from_millis(200), |s| {
                    s.pending.is_empty() && !s.closed
                })
                .unwrap_or_else(|p| p.into_inner());
            if s.closed {
                // The close flushes by itself.
                return;
            }
            if s.pending.is_empty() {
                continue;
            }
            // Gather the group for `every`; a close cuts the wait short.
            let (s, _) = shared
                .wake
                .wait_timeout_while(s, every, |s| {
                    #[cfg(test)]
                    tests::between_check_and_wait();
                    !s.closed
                })
                .unwrap_or_else(|p| p.into_inner());
            if s.closed {
                return;
            }
        }
        let Some(db) = db.upgrade() else { return };
        let flushed = flush(&shared, &db);
        drop(db);
        match flushed {
            Ok(_) => retry = RETRY_FIRST,
            Err(e) => {
                tracing::error!(error = ?e, retry_in = ?retry, "cannot persist nonces; new ones are refused until a commit succeeds");
                let s = shared.lock();
                let (s, _) = shared
                    .wake
                    .wait_timeout_while(s, retry, |s| !s.closed)
                    .unwrap_or_else(|p| p.into_inner());
                if s.closed {
                    return;
                }
                retry = (retry * 2).min(RETRY_MAX);
            }
        }
    }
}

impl Drop for NonceGuard {
    /// A clean shutdown keeps every nonce accepted; the flusher stops.
    fn drop(&mut self) {
        {
            let mut s = self.shared.lock();
            s.closed = true;
            self.shared.wake.notify_all();
        }
        let handle = self.flusher.lock().ok().and_then(|mut h| h.take());
        if let Some(handle) = handle {
            // It stops within one wait (it holds the database only while committing).
            let _ = handle.join();
        }
        if let Err(e) = self.flush() {
            tracing::error!(error = ?e, "nonces accepted since the last group are not on disk");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use redb::ReadableTableMetadata;

    use super::*;

    /// How long the flusher lingers between checking for a close and starting to wait: a
    /// window the scheduler opens rarely (CI hit it once) held open on purpose.
    static LINGER_MS: AtomicU64 = AtomicU64::new(0);

    pub(super) fn between_check_and_wait() {
        std::thread::sleep(Duration::from_millis(LINGER_MS.load(Ordering::SeqCst)));
    }

    const HOUR: Duration = Duration::from_secs(3600);

    fn with_tables(db: redb::Database, opener: Option<crate::Opener>) -> Arc<Db> {
        let db = Db::with_opener(db, opener);
        let txn = db.begin_write().unwrap();
        txn.open_table(NONCE_GROUPS).unwrap();
        txn.open_table(NONCE_GROUP_EXPIRY).unwrap();
        txn.commit().unwrap();
        Arc::new(db)
    }

    fn memory_db() -> Arc<Db> {
        let db = redb::Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .unwrap();
        with_tables(db, None)
    }

    fn file_db(path: &std::path::Path) -> Arc<Db> {
        with_tables(redb::Database::create(path).unwrap(), None)
    }

    /// The nonces on disk; the groups and their expiry index agree.
    fn on_disk(db: &Db) -> u64 {
        let read = db.begin_read().unwrap();
        let g = read.open_table(NONCE_GROUPS).unwrap().len().unwrap();
        let i = read.open_table(NONCE_GROUP_EXPIRY).unwrap().len().unwrap();
        assert_eq!(g, i, "the groups and their expiry index agree");
        super::on_disk(&read).len() as u64
    }

    fn nonce_on_disk(db: &Db, nonce: &str) -> bool {
        super::on_disk(&db.begin_read().unwrap())
            .iter()
            .any(|(n, _)| n == nonce)
    }

    /// A close wakes a flusher that is gathering a group, however the two interleave. CI once
    /// lost that wake-up: the close set its flag and notified outside the lock, between the
    /// flusher's check and its wait, and the store's drop waited out a whole group interval
    /// (an hour in that test). Here the flusher lingers in that window every time; a drop that
    /// has not returned well within the interval is the lost wake-up.
    #[test]
    fn a_close_always_wakes_the_flusher_and_keeps_the_last_group() {
        LINGER_MS.store(20, Ordering::SeqCst);
        for round in 0..10 {
            let db = memory_db();
            let guard = NonceGuard::start(db.clone(), Limits::every(HOUR)).unwrap();
            assert!(guard.remember("n", 0, i64::MAX).unwrap());
            // The flusher is now in (or about to enter) the window.
            std::thread::sleep(Duration::from_millis(5));
            let (done, closed) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                drop(guard);
                let _ = done.send(());
            });
            closed
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("round {round}: closing the guard hung"));
            assert!(
                nonce_on_disk(&db, "n"),
                "round {round}: the group is on disk"
            );
        }
    }

    /// Ten simulated minutes of steady load on the store's own clock (the requests' time), with
    /// the edge's nonce lifetime (5 × 60 s): groups of 100 nonces, about what a group holds at
    /// the local host's full rate (2 ms of gathering plus the commit at ~29 000 calls/s), one per
    /// simulated second (the rate itself does not matter here: what must hold is that a commit
    /// drops at least the group it writes). Once the first nonces expire, disk and memory hold
    /// exactly the nonces of the last 5 minutes, and the file stops growing. (A purge of a fixed
    /// 32 nonces per commit, in the days of a row per nonce, left 4 080 too many on disk a minute
    /// after the first expiries, and 4 080 more each minute.)
    #[test]
    fn at_steady_state_as_many_nonces_leave_as_arrive_in_memory_and_on_disk() {
        const TTL_MS: i64 = 300_000;
        const GROUP: usize = 100;
        const GROUP_MS: i64 = 1000;
        const PER_MINUTE: i64 = 60_000 / GROUP_MS;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nonces.redb");
        let db = file_db(&path);
        let guard = NonceGuard::start(db.clone(), Limits::every(HOUR)).unwrap();
        let t0: i64 = 1_800_000_000_000;
        // Accepted within the last TTL: what the guard must keep, and all it may keep.
        let live = (TTL_MS / GROUP_MS) as u64 * GROUP as u64;
        let mut file_sizes = Vec::new();
        for g in 0..10 * PER_MINUTE {
            let now = t0 + g * GROUP_MS;
            for i in 0..GROUP {
                assert!(
                    guard
                        .remember(&format!("{g}-{i}"), now, now + TTL_MS)
                        .unwrap()
                );
            }
            assert_eq!(guard.flush().unwrap(), GROUP);
            let minute = (g + 1) / PER_MINUTE;
            if (g + 1) % PER_MINUTE == 0 && minute >= 5 {
                assert_eq!(on_disk(&db), live, "minute {minute}: on disk");
                assert_eq!(guard.in_memory() as u64, live, "minute {minute}: in memory");
                file_sizes.push(std::fs::metadata(&path).unwrap().len());
            }
        }
        // The file grows while the live set does (the first 5 minutes), then no more: freed
        // pages are reused.
        let (at_6, at_10) = (file_sizes[1], file_sizes[5]);
        assert!(
            at_10 <= at_6,
            "the file kept growing at steady state: {file_sizes:?}"
        );
    }

    /// Only the groups with an unexpired nonce are read on open, and only the unexpired nonces
    /// held; the expired groups leave the disk with the next commits, a few per commit.
    #[test]
    fn only_unexpired_nonces_are_loaded_on_open() {
        let db = memory_db();
        let now = now_ms();
        let group = |prefix: &str, n: usize, exp: i64| -> Vec<(Nonce, i64)> {
            (0..n)
                .map(|i| (format!("{prefix}-{i}").into(), exp))
                .collect()
        };
        for g in 0..10 {
            commit(
                &db,
                g,
                &group(&format!("old{g}"), 100, now - 1000 - g as i64),
                i64::MIN,
            )
            .unwrap();
        }
        // A group with one nonce still live holds the expired ones beside it on disk, never in
        // memory.
        let mut mixed = group("gone", 5, now - 1000);
        mixed.push(("live-mixed".into(), now + 300_000));
        commit(&db, 10, &mixed, i64::MIN).unwrap();
        commit(&db, 11, &group("live", 10, now + 300_000), i64::MIN).unwrap();
        assert_eq!(on_disk(&db), 1016);

        let guard = NonceGuard::start(db.clone(), Limits::every(HOUR)).unwrap();
        assert_eq!(guard.in_memory(), 11);
        assert!(!guard.remember("live-3", now, now + 300_000).unwrap());
        assert!(!guard.remember("live-mixed", now, now + 300_000).unwrap());
        assert!(guard.remember("old3-3", now, now + 300_000).unwrap());
        assert!(guard.remember("gone-1", now, now + 300_000).unwrap());
        guard.flush().unwrap();
        // Two written (a group of its own, numbered after the file's last), the oldest
        // DISK_PURGE_GROUPS groups of 100 dropped.
        assert_eq!(on_disk(&db), 1016 + 2 - 100 * DISK_PURGE_GROUPS as u64);
        let read = db.begin_read().unwrap();
        let groups = read.open_table(NONCE_GROUPS).unwrap();
        assert_eq!(groups.last().unwrap().unwrap().0.value(), 12);
    }

    /// A file of one row per nonce, as written before groups: its unexpired nonces are moved into
    /// a group when it is opened (and held), its two tables deleted; a replay of one of them is
    /// still refused after another restart.
    #[test]
    fn a_file_of_one_row_per_nonce_has_its_unexpired_nonces_moved_into_a_group() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.redb");
        let now = now_ms();
        {
            let db = redb::Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            let mut nonces = txn.open_table(LEGACY_NONCES).unwrap();
            let mut index = txn.open_table(LEGACY_NONCE_EXPIRY).unwrap();
            for i in 0..1000 {
                let (nonce, exp) = (format!("old-{i}"), now - 1000 - i);
                nonces.insert(nonce.as_str(), exp).unwrap();
                index.insert((exp, nonce.as_str()), ()).unwrap();
            }
            for i in 0..10 {
                let (nonce, exp) = (format!("live-{i}"), now + 300_000);
                nonces.insert(nonce.as_str(), exp).unwrap();
                index.insert((exp, nonce.as_str()), ()).unwrap();
            }
            drop((nonces, index));
            txn.commit().unwrap();
        }
        for opening in 0..2 {
            let db = file_db(&path);
            let guard = NonceGuard::start(db.clone(), Limits::every(HOUR)).unwrap();
            assert_eq!(guard.in_memory(), 10, "opening {opening}");
            assert_eq!(on_disk(&db), 10, "opening {opening}");
            assert!(!guard.remember("live-3", now, now + 300_000).unwrap());
            let read = db.begin_read().unwrap();
            let names: Vec<String> = read
                .list_tables()
                .unwrap()
                .map(|t| t.name().to_owned())
                .collect();
            assert!(
                !names.iter().any(|n| n == "nonces" || n == "nonce_expiry"),
                "{names:?}"
            );
        }
    }

    /// The nonces held spread over every shard, none holding far more than its share: a shard
    /// chosen by the maps' own hash bits (or a hash that ignores part of the nonce) would pile
    /// them into a few, and a growth would stall most calls again.
    #[test]
    fn nonces_held_spread_evenly_over_the_shards() {
        let limits = Limits {
            every: HOUR,
            max_unpersisted: usize::MAX,
            max_unpersisted_for: HOUR,
        };
        let guard = NonceGuard::start(memory_db(), limits).unwrap();
        let now = 1_800_000_000_000;
        // Nonces as KooGallery's differ: a common prefix, a counter.
        for i in 0..(SHARDS * 1000) {
            assert!(
                guard
                    .remember(&format!("nonce-{i:08}"), now, now + 1000)
                    .unwrap()
            );
        }
        let sizes: Vec<usize> = guard
            .shared
            .held
            .shards
            .iter()
            .map(|h| h.lock().unwrap().live.len())
            .collect();
        let (least, most) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
        assert!(*least >= 800 && *most <= 1200, "{sizes:?}");
        assert!(
            !guard.remember("nonce-00000042", now, now + 1000).unwrap(),
            "a replay"
        );
    }

    fn held() -> Held {
        Held {
            live: HashMap::default(),
            by_arrival: VecDeque::new(),
        }
    }

    /// Nonces that arrive out of their expiries' order (calls racing for a shard, a clock
    /// stepped back) are each held until their own expiry, never less; once every one has
    /// expired, none is left.
    #[test]
    fn a_nonce_queued_behind_a_later_expiry_is_held_until_its_own() {
        let mut h = held();
        h.keep("late".into(), 2_000);
        h.keep("early".into(), 1_000);
        h.keep("last".into(), 3_000);
        h.purge(1_500);
        // "early" has expired but waits behind "late"; nothing unexpired left.
        assert!(h.live.contains_key("late") && h.live.contains_key("last"));
        h.purge(2_000);
        assert!(!h.live.contains_key("late") && !h.live.contains_key("early"));
        assert!(h.live.contains_key("last"), "not expired yet");
        h.purge(3_000);
        assert!(h.live.is_empty() && h.by_arrival.is_empty());
    }

    /// A nonce kept again with a later expiry outlives its first one: its first place in the
    /// queue, reached, does not drop it.
    #[test]
    fn a_nonce_kept_again_with_a_later_expiry_outlives_the_first() {
        let mut h = held();
        h.keep("n".into(), 1_000);
        h.keep("other".into(), 1_500);
        h.keep("n".into(), 5_000);
        h.keep("n".into(), 4_000); // an earlier expiry changes nothing
        h.purge(2_000);
        assert_eq!(h.live.get("n"), Some(&5_000));
        assert!(!h.live.contains_key("other"));
        h.purge(5_000);
        assert!(h.live.is_empty() && h.by_arrival.is_empty());
    }

    /// A shard whose lock is held for long (its map growing: every entry moved) holds up only the
    /// calls whose nonce falls in it: another nonce is remembered meanwhile. With one lock for
    /// all nonces, that call waited out the whole growth (30 ms at 100 000 nonces).
    #[test]
    fn a_shard_held_for_long_holds_up_no_other_shard() {
        let guard = NonceGuard::start(memory_db(), Limits::every(HOUR)).unwrap();
        let now = 1_800_000_000_000;
        let shard_of = |n: &str| {
            use std::hash::BuildHasher;
            (guard.shared.held.choose.hash_one(n) % SHARDS as u64) as usize
        };
        let busy = shard_of("busy");
        let other = (0..)
            .map(|i| format!("other-{i}"))
            .find(|n| shard_of(n) != busy)
            .unwrap();
        let (done, remembered) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            // Taken in the scope, so a failure below lets the blocked call go before the join.
            let growing = guard.shared.held.shard("busy");
            scope.spawn(|| {
                let _ = done.send(guard.remember(&other, now, now + 1000));
            });
            let answer = remembered
                .recv_timeout(Duration::from_secs(10))
                .expect("a nonce of another shard is remembered while one shard is held");
            assert!(answer.unwrap());
            drop(growing);
        });
    }

    /// A group's row is a versioned contract: what a file holds must open after an upgrade.
    #[test]
    fn a_group_row_is_pinned_by_its_golden_file() {
        let row = encode_group(
            [
                ("a1b2c3d4-nonce", 1_800_000_300_000_i64),
                ("\u{4e91}\u{5546}\u{5e97}", -1),
            ]
            .into_iter(),
        );
        let pinned = koogallery::testing::golden::check_bytes_in(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"),
            "nonce_group_v1.bin",
            &row,
        );
        assert_eq!(
            decode_group(&pinned).unwrap(),
            vec![
                ("a1b2c3d4-nonce", 1_800_000_300_000),
                ("\u{4e91}\u{5546}\u{5e97}", -1)
            ]
        );
        // A row cut short, or of an encoding this build does not know, is refused, not misread.
        assert!(decode_group(&pinned[..pinned.len() - 1]).is_err());
        let mut unknown = pinned.clone();
        unknown[0] = 2;
        assert!(decode_group(&unknown).is_err());
        assert!(decode_group(&[]).is_err());
    }

    /// A commit stuck behind a long write (here, a write transaction held open) lets nonces wait
    /// for the disk; the guard takes no more than it promises, then refuses until the commit is
    /// through. A replay is still told apart.
    ///
    /// Each bound has a guard of its own, the other bound out of reach: the count is checked with
    /// no age bound that a slow machine could reach mid-way (which would refuse early, for the
    /// wrong reason), and the age with no count bound; each refusal must name its own reason.
    #[test]
    fn nonces_waiting_behind_a_long_write_are_bounded_in_number_and_age() {
        let now = 1_800_000_000_000;

        // By number: ten wait, the eleventh is refused.
        let db = memory_db();
        let guard = NonceGuard::start(
            db.clone(),
            Limits {
                every: Duration::from_millis(1),
                max_unpersisted: 10,
                max_unpersisted_for: HOUR,
            },
        )
        .unwrap();
        let long_write = db.begin_write().unwrap();
        for i in 0..10 {
            assert!(guard.remember(&format!("n{i}"), now, now + 1000).unwrap());
        }
        match guard.remember("n10", now, now + 1000) {
            Err(StoreError::Unavailable(why)) => {
                assert!(
                    why.what().contains("10 nonces waiting for the disk"),
                    "{why}"
                )
            }
            other => panic!("the eleventh nonce is refused by number: {other:?}"),
        }
        assert!(!guard.remember("n3", now, now + 1000).unwrap(), "a replay");
        assert_eq!(guard.pending(), 10);
        drop(long_write);
        wait_until(|| guard.pending() == 0);
        assert!(guard.remember("n10", now, now + 1000).unwrap());
        wait_until(|| guard.pending() == 0);
        assert_eq!(on_disk(&db), 11);

        // By age: one nonce waits longer than the bound (the sleep is a lower bound: load only
        // makes it wait longer).
        let db = memory_db();
        let limits = Limits {
            every: Duration::from_millis(1),
            max_unpersisted: MAX_UNPERSISTED,
            max_unpersisted_for: Duration::from_millis(300),
        };
        let guard = NonceGuard::start(db.clone(), limits).unwrap();
        let long_write = db.begin_write().unwrap();
        assert!(guard.remember("a", now, now + 1000).unwrap());
        std::thread::sleep(limits.max_unpersisted_for);
        match guard.remember("b", now, now + 1000) {
            Err(StoreError::Unavailable(why)) => {
                assert!(why.what().contains("waited for the disk over"), "{why}")
            }
            other => panic!("a nonce is refused once the oldest waited too long: {other:?}"),
        }
        assert!(!guard.remember("a", now, now + 1000).unwrap(), "a replay");
        drop(long_write);
        wait_until(|| guard.pending() == 0);
        assert!(guard.remember("b", now, now + 1000).unwrap());
        wait_until(|| guard.pending() == 0);
        assert_eq!(on_disk(&db), 2);
    }

    pub(crate) fn wait_until(mut done: impl FnMut() -> bool) {
        for _ in 0..1000 {
            if done() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("timed out");
    }
}
