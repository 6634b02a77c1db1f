//! The embedded, file-backed adapter: one [redb] database file holds the instance store and a
//! durable job queue, and the nonce replay guard keeps a journal beside it
//! (`koogallery.redb.nonces/`, see `nonces`), so the local host keeps everything across restarts
//! without any external service.
//!
//! - [`EmbeddedStore`] implements [`InstanceStore`](koogallery::ports::InstanceStore) and
//!   [`NonceStore`](koogallery::ports::NonceStore) with the exact semantics of
//!   [`koogallery::testing::MemoryStore`] (conditional create, compare-and-set on `version`).
//! - [`EmbeddedQueue`] implements [`JobQueue`](koogallery::ports::JobQueue) and offers the consumer
//!   side (receive with a visibility lease, ack, retry later, dead letters, redrive) the worker
//!   uses.
//! - [`EmbeddedStore`] also implements [`TenantDirectory`](koogallery::directory::TenantDirectory)
//!   (the Kit syncs' tenant directory, docs/protocol/decisions.md §16) with the semantics of
//!   [`koogallery::testing::MemoryDirectory`], and
//!   [`TenantLocator`](koogallery::sso::TenantLocator) over it.
//! - [`EmbeddedStore`] implements the SSO stores ([`SsoStore`](koogallery::sso::SsoStore):
//!   sessions, grants, OIDC clients, signing keys; docs/protocol/decisions.md §19) with the
//!   semantics of `koogallery::testing::MemorySso` (see [`sso`]).
//! - [`EmbeddedStore`] implements [`LicenseStore`](koogallery::license::LicenseStore) (license
//!   codes and their daily usage; docs/protocol/decisions.md §21) with the semantics of
//!   `koogallery::testing::license::MemoryLicenses` (see `license`).
//! - [`EmbeddedExchangeLog`] keeps the exchange log ([`ExchangeLog`](koogallery::exchange::ExchangeLog))
//!   in a file of its own beside the store's (see `exchange`).
//! - [`EmbeddedStore`] lists instances and [`EmbeddedQueue`] redrives and discards dead letters for
//!   the operator ([`koogallery::operator`]; see `operator`).
//! - [`EmbeddedStore::backup_to`] copies every table, as of one read transaction, into a fresh
//!   file while the store serves (see `backup`).
//!
//! # Key layout
//!
//! | table              | key                        | value                                              |
//! |--------------------|----------------------------|----------------------------------------------------|
//! | `instances`        | instanceId                 | `Instance` as JSON                                 |
//! | `order_lines`      | (orderId, orderLineId)     | instanceId                                         |
//! | `events`           | (instanceId, seq)          | `InstanceEvent` as JSON                            |
//! | `jobs`             | job id                     | (receives, enqueued_at ms, visible_at ms, job JSON) |
//! | `jobs_due`         | (visible_at ms, job id)    | `()` — index, so `receive` is a range scan         |
//! | `jobs_dead`        | job id                     | (attempts, enqueued_at ms, at ms, reason, job JSON) |
//! | `meta`             | name (`next_job_id`)       | u64                                                |
//! | `usage_windows`    | (instanceId, start ms)     | usage window as JSON (`metering::record`)          |
//! | `usage_due`        | (end ms, instanceId)       | `()` — index of unsettled windows, oldest first     |
//! | `usage_keys`       | idempotency key            | what the key was applied to, as JSON               |
//! | `usage_packages`   | package instanceId         | what was used of the package, as JSON              |
//! | `usage_totals`     | instanceId                 | the sum of its windows, as JSON (written with them; built on open for older files) |
//! | `dir_tenants`      | (instanceId, tenantId)     | tenant (`directory::record`, `v` 1)                |
//! | `dir_apps`         | (instanceId, tenantId, appId) | app, its client secret sealed (`directory::record`) |
//! | `dir_users`        | (instanceId, tenantId, appId, userName) | user (`directory::record`)            |
//! | `dir_departments`  | (instanceId, tenantId, orgCode) | department (`directory::record`)              |
//! | `dir_last_seq`     | (instanceId, tenantId)     | the last event seq numbered, u64 (kept after the tenant's deletion) |
//! | `dir_events`       | (instanceId, tenantId, seq) | undelivered `DirectoryEvent` (`directory::record`) |
//! | `sso_sessions`     | session key (SHA-256 of the cookie) | SSO session (`sso::record`, `schema` 1)   |
//! | `sso_session_index` | (instanceId, tenantId, appId, userName, session key) | `()` — sessions by user, by tenant |
//! | `sso_session_expiry` | (refresh_expires_at ms, session key) | `()` — index for bounded purging       |
//! | `sso_grants`       | (kind, key: SHA-256 of the opaque value) | (encoded grant, expires_at ms)        |
//! | `sso_grant_expiry` | (expires_at ms, kind, key) | `()` — index for bounded purging                   |
//! | `sso_clients`      | clientId                   | OIDC client (`sso::record`)                        |
//! | `sso_signing_keys` | kid                        | signing key, private key sealed (`sso::record`)    |
//! | `licenses`         | license code               | `License` as JSON (schema 1, `shared/tests/fixtures/license_record_v1.json`) |
//! | `license_usage`    | (day: days since CE, code, clientId) | `()` — a day's clients not yet reported, oldest day first |
//! | `license_reported` | (day, code)                | `()` — the day was reported; its later uses are not recorded |
//!
//! Every write is one redb write transaction committed with the default (immediate, fsync'd)
//! durability: when a call returns `Ok`, a crash or restart loses nothing.

mod backup;
mod consumer;
mod directory;
mod exchange;
mod license;
mod nonces;
mod operator;
#[cfg(test)]
mod purge_tests;
mod queue;
pub mod sso;
mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod usage;

use std::{
    ops::{Deref, DerefMut},
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use chrono::{DateTime, Utc};
use koogallery::{StoreError, failure::Detail, jobs::QueueError};
use redb::{Database, ReadableDatabase, TableDefinition, WriteTransaction};
use tokio::sync::Notify;

pub use backup::BackupSummary;
pub use consumer::EmbeddedConsumer;
pub use exchange::EmbeddedExchangeLog;
pub use nonces::{MAX_UNPERSISTED, MAX_UNPERSISTED_FOR};
pub use queue::{DeadLetter, Delivery, EmbeddedQueue, QueueDepth};

pub(crate) const INSTANCES: TableDefinition<&str, &[u8]> = TableDefinition::new("instances");
pub(crate) const ORDER_LINES: TableDefinition<(&str, &str), &str> =
    TableDefinition::new("order_lines");
pub(crate) const EVENTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("events");
/// A queued message: (receive count, enqueued_at ms, visible_at ms, job JSON). Binary metadata
/// keeps a message manageable (ack, dead-letter) even when its JSON cannot be decoded.
pub(crate) type JobRecord = (u32, i64, i64, &'static [u8]);
pub(crate) const JOBS: TableDefinition<u64, JobRecord> = TableDefinition::new("jobs");
pub(crate) const JOBS_DUE: TableDefinition<(i64, u64), ()> = TableDefinition::new("jobs_due");
/// A dead letter: (attempts, enqueued_at ms, dead-lettered at ms, reason UTF-8, job JSON).
pub(crate) type DeadRecord = (u32, i64, i64, &'static [u8], &'static [u8]);
pub(crate) const JOBS_DEAD: TableDefinition<u64, DeadRecord> = TableDefinition::new("jobs_dead");
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Usage windows by (series: instanceId, or instanceId `\n` package; window start ms):
/// `koogallery::metering::record` (schema 1).
pub(crate) const USAGE_WINDOWS: TableDefinition<(&str, i64), &[u8]> =
    TableDefinition::new("usage_windows");
/// Unsettled usage windows by (window end ms, series): what the push reads, oldest first.
pub(crate) const USAGE_DUE: TableDefinition<(i64, &str), ()> = TableDefinition::new("usage_due");
/// Idempotency keys of applied usage reports: their `KeyRecord` JSON.
pub(crate) const USAGE_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("usage_keys");
/// The usage keys by (keep until ms, key): those past their retention
/// (`KeyRecord::keep_until`) are dropped a few per batch.
pub(crate) const USAGE_KEY_EXPIRY: TableDefinition<(i64, &str), ()> =
    TableDefinition::new("usage_key_expiry");
/// Package instance ID → what was used of it (`metering::record::encode_package`).
pub(crate) const USAGE_PACKAGES: TableDefinition<&str, &[u8]> =
    TableDefinition::new("usage_packages");
/// instanceId → its usage total as JSON (`metering::record::encode_total`), written with its
/// windows.
pub(crate) const USAGE_TOTALS: TableDefinition<&str, &[u8]> = TableDefinition::new("usage_totals");
/// Order notices by (orderId, orderLineId): the versioned record of `order::notice::record`.
pub(crate) const ORDER_NOTICES: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("order_notices");

// The tenant directory (docs/protocol/decisions.md §16; `directory`). Keys are redb tuples,
// compared element by element with each element's length stored, so a tenant's range never takes in
// another whose ids merely extend its own ("t1" and "t10"), and an empty instanceId (the seller's
// credential) is a key like any other; no separator character is needed.
pub(crate) const DIR_TENANTS: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("dir_tenants");
pub(crate) const DIR_APPS: TableDefinition<(&str, &str, &str), &[u8]> =
    TableDefinition::new("dir_apps");
pub(crate) const DIR_USERS: TableDefinition<(&str, &str, &str, &str), &[u8]> =
    TableDefinition::new("dir_users");
pub(crate) const DIR_DEPARTMENTS: TableDefinition<(&str, &str, &str), &[u8]> =
    TableDefinition::new("dir_departments");
/// A tenant's last event seq: its own table, so numbering survives the tenant's deletion and the
/// delivery of every event.
pub(crate) const DIR_LAST_SEQ: TableDefinition<(&str, &str), u64> =
    TableDefinition::new("dir_last_seq");
pub(crate) const DIR_EVENTS: TableDefinition<(&str, &str, u64), &[u8]> =
    TableDefinition::new("dir_events");

// SSO (docs/protocol/decisions.md §19; `sso`). Values are `koogallery::sso::record`'s JSON.
pub(crate) const SSO_SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sso_sessions");
/// (instanceId, tenantId, appId, userName, session key): a user's or a tenant's sessions are a
/// range; written in the session's transaction.
pub(crate) const SSO_SESSION_INDEX: TableDefinition<(&str, &str, &str, &str, &str), ()> =
    TableDefinition::new("sso_session_index");
/// (refresh_expires_at ms, session key): the ended sessions, oldest first, for the purge.
pub(crate) const SSO_SESSION_EXPIRY: TableDefinition<(i64, &str), ()> =
    TableDefinition::new("sso_session_expiry");
/// (kind, key) → (the encoded grant, expires_at ms).
pub(crate) const SSO_GRANTS: TableDefinition<(&str, &str), (&str, i64)> =
    TableDefinition::new("sso_grants");
/// (expires_at ms, kind, key): the expired grants, oldest first, for the purge.
pub(crate) const SSO_GRANT_EXPIRY: TableDefinition<(i64, &str, &str), ()> =
    TableDefinition::new("sso_grant_expiry");
pub(crate) const SSO_CLIENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("sso_clients");
pub(crate) const SSO_SIGNING_KEYS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("sso_signing_keys");

// License codes (docs/protocol/openapi.md §5–§6, docs/protocol/decisions.md §21; `license`).
/// Code → the `License` JSON (`shared/tests/fixtures/license_record_v1.json`).
pub(crate) const LICENSES: TableDefinition<&str, &[u8]> = TableDefinition::new("licenses");
/// (day: days since the Common Era, code, clientId): the clients of a code's day not yet reported,
/// oldest day first.
pub(crate) const LICENSE_USAGE: TableDefinition<(i32, &str, &str), ()> =
    TableDefinition::new("license_usage");
/// (day, code): the code's day was reported; later uses of that day are not recorded.
pub(crate) const LICENSE_REPORTED: TableDefinition<(i32, &str), ()> =
    TableDefinition::new("license_reported");

/// How a [`Db`] (re)opens its file: redb latches an I/O failure (a full disk, say) and refuses
/// every later transaction until the file is closed and opened again.
pub(crate) type Opener = Box<dyn Fn() -> Result<Database, redb::DatabaseError> + Send + Sync>;

/// After an I/O failure the file is reopened at most this often, so a disk that stays full costs a
/// failed open per interval, not one per request.
const REOPEN_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// The open file, or none while it is closed after an I/O failure; `generation` counts reopens,
/// so two callers that met the same failure reopen once.
struct Handle {
    db: Option<Arc<Database>>,
    generation: u64,
    last_attempt: Option<std::time::Instant>,
}

/// The database file and what every handle on it shares: the count of durable commits (how "one
/// commit per newInstance" is checked) and the wake-up of the worker when a job is queued, by the
/// queue or with an instance ([`EmbeddedStore`]'s `OrderLineIntake`).
pub(crate) struct Db {
    handle: std::sync::RwLock<Handle>,
    /// None for a database that cannot be opened again (an in-memory one, in tests).
    opener: Option<Opener>,
    commits: AtomicU64,
    pub(crate) jobs_queued: Notify,
    /// The usage push's claim (`UsageStore::claim_push`), in memory: redb locks the file, so
    /// every pusher of this file is in this process, and a claim must not outlive a crash.
    pub(crate) push_claim: std::sync::Mutex<Option<koogallery::metering::store::PushClaim>>,
}

impl Db {
    fn with_opener(inner: Database, opener: Option<Opener>) -> Self {
        Self {
            handle: std::sync::RwLock::new(Handle {
                db: Some(Arc::new(inner)),
                generation: 0,
                last_attempt: None,
            }),
            opener,
            commits: AtomicU64::new(0),
            jobs_queued: Notify::new(),
            push_claim: std::sync::Mutex::new(None),
        }
    }

    /// A write transaction whose commit is counted: no write can bypass the count.
    pub(crate) fn begin_write(&self) -> Result<Write<'_>, Fault> {
        let txn = self.on_open_file(|db| db.begin_write().map_err(Fault::from))?;
        Ok(Write { txn, db: self })
    }

    /// A read of the last committed state.
    pub(crate) fn begin_read(&self) -> Result<redb::ReadTransaction, Fault> {
        self.on_open_file(|db| db.begin_read().map_err(Fault::from))
    }

    /// Runs `begin` on the open file; after a latched I/O failure, reopens the file (at most once
    /// per [`REOPEN_EVERY`]) and runs it once more. Nothing half-written survives the reopen: redb
    /// opens at the last durable commit. No lock is held while `begin` waits (a write waits for
    /// the writer before it).
    fn on_open_file<T>(&self, begin: impl Fn(&Database) -> Result<T, Fault>) -> Result<T, Fault> {
        let (db, seen) = self.current();
        if let Some(db) = db {
            match begin(&db) {
                Err(e) if e.is_latched_io_failure() && self.opener.is_some() => {}
                done => return done,
            }
        }
        self.reopen(seen);
        match self.current().0 {
            Some(db) => begin(&db),
            None => Err(Fault::Db(redb::Error::Io(std::io::Error::other(
                "the store file is closed after an I/O failure; it is reopened on a later call",
            )))),
        }
    }

    fn current(&self) -> (Option<Arc<Database>>, u64) {
        let handle = self.handle.read().unwrap_or_else(|p| p.into_inner());
        (handle.db.clone(), handle.generation)
    }

    /// Closes the file of generation `seen` and opens it again, unless another caller did already
    /// or the last attempt was too recent.
    fn reopen(&self, seen: u64) {
        let Some(opener) = &self.opener else { return };
        let mut handle = self.handle.write().unwrap_or_else(|p| p.into_inner());
        if handle.generation != seen {
            return;
        }
        let now = std::time::Instant::now();
        if handle
            .last_attempt
            .is_some_and(|at| now.duration_since(at) < REOPEN_EVERY)
        {
            return;
        }
        handle.last_attempt = Some(now);
        // Closed first: redb opens a file once per process. A caller still beginning a transaction
        // on the failed file, or a write transaction still running on it, keeps it open a moment;
        // this attempt then fails, a later one not.
        drop(handle.db.take());
        match opener() {
            Ok(db) => {
                handle.db = Some(Arc::new(db));
                handle.generation += 1;
                tracing::warn!("store file reopened after an I/O failure");
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot reopen the store file; retrying on a later call")
            }
        }
    }
}

/// A redb write transaction of a [`Db`]; see [`Db::begin_write`].
pub(crate) struct Write<'a> {
    txn: WriteTransaction,
    db: &'a Db,
}

impl Write<'_> {
    /// Commits durably (fsync'd) and counts the commit.
    pub(crate) fn commit(self) -> Result<(), redb::CommitError> {
        self.txn.commit()?;
        self.db.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

impl Deref for Write<'_> {
    type Target = WriteTransaction;
    fn deref(&self) -> &WriteTransaction {
        &self.txn
    }
}

impl DerefMut for Write<'_> {
    fn deref_mut(&mut self) -> &mut WriteTransaction {
        &mut self.txn
    }
}

/// How long the replay guard gathers nonces before one durable append to its journal (see
/// `nonces`).
pub const NONCE_GROUP_EVERY: std::time::Duration = std::time::Duration::from_millis(2);

/// Instances, order lines, events, jobs and the rest in one redb file, and the replay guard's
/// nonces in a journal beside it (`koogallery.redb.nonces/`); cheap to clone (shares the
/// database).
///
/// redb allows a file to be open once per process: open it once and clone the handle (or call
/// [`EmbeddedStore::queue`]) wherever it is needed.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Db>,
    nonces: Arc<nonces::NonceGuard>,
    decoded: Arc<store::DecodedInstances>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens the database file at `path`, creating it (and its parent directories) if missing, and
    /// creates any missing table so later read transactions never meet an absent one.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, NONCE_GROUP_EVERY)
    }

    /// [`Self::open`], with the replay guard gathering nonces for `nonce_group` before each
    /// durable append.
    pub fn open_with(
        path: impl AsRef<Path>,
        nonce_group: std::time::Duration,
    ) -> Result<Self, StoreError> {
        let owned = path.as_ref().to_owned();
        Self::open_by(
            path.as_ref(),
            nonce_group,
            Box::new(move || Database::create(&owned)),
            nonces::files(),
        )
    }

    /// [`Self::open`], with the file on `disk` (outage tests: a disk that fills up).
    #[cfg(any(test, feature = "testing"))]
    pub fn open_on(
        path: impl AsRef<Path>,
        disk: &testing::LimitedDisk,
    ) -> Result<Self, StoreError> {
        let (owned, segments, disk) = (path.as_ref().to_owned(), disk.segments(), disk.clone());
        Self::open_by(
            path.as_ref(),
            NONCE_GROUP_EVERY,
            Box::new(move || redb::Builder::new().create_with_backend(disk.backend(&owned)?)),
            segments,
        )
    }

    /// The file at `path`, opened (and after an I/O failure, reopened) by `opener`.
    fn open_by(
        path: &Path,
        nonce_group: std::time::Duration,
        opener: Opener,
        segments: nonces::SegmentOpener,
    ) -> Result<Self, StoreError> {
        let db = open_file(path, opener)?;
        let txn = db.begin_write()?;
        {
            txn.open_table(INSTANCES).map_err(Fault::from)?;
            txn.open_table(ORDER_LINES).map_err(Fault::from)?;
            txn.open_table(EVENTS).map_err(Fault::from)?;
            txn.open_table(JOBS).map_err(Fault::from)?;
            txn.open_table(JOBS_DUE).map_err(Fault::from)?;
            txn.open_table(JOBS_DEAD).map_err(Fault::from)?;
            txn.open_table(META).map_err(Fault::from)?;
            txn.open_table(ORDER_NOTICES).map_err(Fault::from)?;
            txn.open_table(USAGE_WINDOWS).map_err(Fault::from)?;
            txn.open_table(USAGE_DUE).map_err(Fault::from)?;
            txn.open_table(USAGE_KEYS).map_err(Fault::from)?;
            txn.open_table(USAGE_KEY_EXPIRY).map_err(Fault::from)?;
            usage::index_key_expiry(&txn)?;
            txn.open_table(USAGE_PACKAGES).map_err(Fault::from)?;
            usage::build_usage_totals(&txn)?;
            // Created here, like the others, so a file written before the directory existed
            // opens with an empty one.
            txn.open_table(DIR_TENANTS).map_err(Fault::from)?;
            txn.open_table(DIR_APPS).map_err(Fault::from)?;
            txn.open_table(DIR_USERS).map_err(Fault::from)?;
            txn.open_table(DIR_DEPARTMENTS).map_err(Fault::from)?;
            txn.open_table(DIR_LAST_SEQ).map_err(Fault::from)?;
            txn.open_table(DIR_EVENTS).map_err(Fault::from)?;
            txn.open_table(SSO_SESSIONS).map_err(Fault::from)?;
            txn.open_table(SSO_SESSION_INDEX).map_err(Fault::from)?;
            txn.open_table(SSO_SESSION_EXPIRY).map_err(Fault::from)?;
            txn.open_table(SSO_GRANTS).map_err(Fault::from)?;
            txn.open_table(SSO_GRANT_EXPIRY).map_err(Fault::from)?;
            txn.open_table(SSO_CLIENTS).map_err(Fault::from)?;
            txn.open_table(SSO_SIGNING_KEYS).map_err(Fault::from)?;
            txn.open_table(LICENSES).map_err(Fault::from)?;
            txn.open_table(LICENSE_USAGE).map_err(Fault::from)?;
            txn.open_table(LICENSE_REPORTED).map_err(Fault::from)?;
        }
        txn.commit().map_err(Fault::from)?;
        let db = Arc::new(db);
        let nonces = nonces::NonceGuard::start(
            &db,
            &nonces::journal_dir(path),
            segments,
            nonces::Limits::every(nonce_group),
        )?;
        Ok(Self {
            db,
            nonces,
            decoded: Arc::default(),
        })
    }

    /// Writes the nonces accepted since the last group append now (tests, and a shutdown that
    /// cannot wait for the last clone to drop).
    pub fn flush_nonces(&self) -> Result<usize, StoreError> {
        Ok(self.nonces.flush()?)
    }

    /// Nonces accepted and not yet on disk.
    pub fn unflushed_nonces(&self) -> usize {
        self.nonces.pending()
    }

    /// Durable commits made on this file since it was opened (every handle's: store, queue,
    /// replay guard). What the tests count writes per callback with.
    pub fn durable_commits(&self) -> u64 {
        self.db.commits.load(Ordering::Relaxed)
    }

    pub(crate) fn nonce_guard(&self) -> &nonces::NonceGuard {
        &self.nonces
    }

    /// The job queue kept in the same file, stamping enqueued jobs with the wall clock.
    pub fn queue(&self) -> EmbeddedQueue {
        EmbeddedQueue::new(self.db.clone())
    }

    /// Runs synchronous database work off the async runtime.
    ///
    /// Why `spawn_blocking` rather than inline: every write commits with immediate durability,
    /// i.e. an fsync, which takes milliseconds on a good SSD and far longer on a busy or network
    /// disk; concurrent writers also wait for each other inside `begin_write`. Doing that on a
    /// runtime worker would stall unrelated requests. Reads go the same way for uniformity (they
    /// may fault pages in from disk); the hop costs microseconds.
    pub(crate) async fn blocking<T, F>(&self, work: F) -> Result<T, Fault>
    where
        T: Send + 'static,
        F: FnOnce(&Db) -> Result<T, Fault> + Send + 'static,
    {
        run_blocking(self.db.clone(), work).await
    }

    pub(crate) fn database_ref(&self) -> &Db {
        &self.db
    }
}

/// The file at `path` (its parent directories created, owner-only), opened by `opener`, which
/// also reopens it after an I/O failure: the store's file and the exchange log's.
pub(crate) fn open_file(path: &Path, opener: Opener) -> Result<Db, StoreError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| {
            StoreError::Unavailable(Detail::caused_by(
                format!("cannot create {}", parent.display()),
                e,
            ))
        })?;
    }
    owner_only(path)?;
    let db = opener().map_err(|e| {
        StoreError::Unavailable(Detail::caused_by(
            format!("cannot open {}", path.display()),
            e,
        ))
    })?;
    Ok(Db::with_opener(db, Some(opener)))
}

/// See [`EmbeddedStore::blocking`].
/// The store file holds customers' records and credentials: it is created readable and writable
/// by its owner only (0600), and an existing one is tightened to that.
fn owner_only(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let denied = |e: std::io::Error| {
            StoreError::Unavailable(Detail::caused_by(
                format!("cannot secure {}", path.display()),
                e,
            ))
        };
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(denied)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(denied)?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// How a new file beside the store is opened (a journal's segment, the exchange log's): it must
/// not exist yet, and it is readable and writable by its owner only, as the store file is.
pub(crate) fn new_private_file() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

pub(crate) async fn run_blocking<T, F>(db: Arc<Db>, work: F) -> Result<T, Fault>
where
    T: Send + 'static,
    F: FnOnce(&Db) -> Result<T, Fault> + Send + 'static,
{
    tokio::task::spawn_blocking(move || work(&db))
        .await
        .map_err(|e| Fault::Task(e.to_string()))?
}

/// Internal failure, mapped onto the port error types at the boundary.
#[derive(Debug)]
pub(crate) enum Fault {
    /// redb failed (I/O, storage, transaction): worth retrying.
    Db(redb::Error),
    /// A stored record cannot be decoded (or a record cannot be encoded).
    Corrupt(String),
    /// A file outside redb (the replay guard's journal) failed: worth retrying.
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    /// A conditional write found the record changed or taken.
    Conflict,
    /// The blocking task panicked or was cancelled.
    Task(String),
}

impl Fault {
    /// redb refuses every transaction after an I/O failure until the file is opened again.
    fn is_latched_io_failure(&self) -> bool {
        matches!(self, Fault::Db(redb::Error::PreviousIo))
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Fault {
            fn from(e: $t) -> Self {
                Fault::Db(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl From<Fault> for StoreError {
    fn from(f: Fault) -> Self {
        match f {
            Fault::Db(e) => StoreError::Unavailable(Detail::caused_by("redb failed", e)),
            Fault::Corrupt(m) => StoreError::Corrupt(m.into()),
            Fault::Io { what, source } => StoreError::Unavailable(Detail::caused_by(what, source)),
            Fault::Conflict => StoreError::Conflict,
            Fault::Task(m) => StoreError::Unavailable(format!("storage task failed: {m}").into()),
        }
    }
}

impl From<Fault> for QueueError {
    fn from(f: Fault) -> Self {
        match f {
            Fault::Db(e) => QueueError::Unavailable(Detail::caused_by("redb failed", e)),
            Fault::Corrupt(m) => QueueError::Corrupt(m.into()),
            Fault::Io { what, source } => QueueError::Unavailable(Detail::caused_by(what, source)),
            // The queue's writes are not conditional: a conflict is a race worth retrying.
            Fault::Conflict => QueueError::Unavailable("queue write conflict".into()),
            Fault::Task(m) => QueueError::Unavailable(format!("queue task failed: {m}").into()),
        }
    }
}

/// Removes up to `limit` entries of an expiry index (expiry ms, key) that expired at or before
/// `now_ms`, with the keys they index in `table` (the nonces, the usage keys).
pub(crate) fn purge_expired<V: redb::Value + 'static>(
    index: &mut redb::Table<(i64, &'static str), ()>,
    table: &mut redb::Table<&'static str, V>,
    now_ms: i64,
    limit: usize,
) -> Result<(), Fault> {
    use redb::ReadableTable;
    // Everything below (now+1, "") expired at or before now: "" sorts before every other key.
    let expired: Vec<(i64, String)> = index
        .range(..(now_ms.saturating_add(1), ""))?
        .take(limit)
        .map(|r| r.map(|(k, _)| (k.value().0, k.value().1.to_owned())))
        .collect::<Result<_, _>>()?;
    for (at, key) in &expired {
        index.remove((*at, key.as_str()))?;
        table.remove(key.as_str())?;
    }
    Ok(())
}

/// Unix millis: the resolution of every stored time (ordering keys, nonce expiries).
pub(crate) fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// `t + d` in Unix millis, saturating instead of overflowing on absurd durations.
pub(crate) fn millis_after(t: DateTime<Utc>, d: std::time::Duration) -> i64 {
    let d = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    millis(t).saturating_add(d)
}

/// Back from stored millis; out of range only if the record is damaged.
pub(crate) fn from_millis(ms: i64) -> Result<DateTime<Utc>, String> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| format!("timestamp {ms} ms out of range"))
}
