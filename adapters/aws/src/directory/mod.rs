//! [`TenantDirectory`] and [`TenantLocator`] on DynamoDB: the tenant directory of the Kit syncs
//! (docs/protocol/callbacks.md §9; docs/protocol/decisions.md §15–17) in the single table of
//! [`crate::dynamo`], with the semantics of the memory directory
//! (`koogallery::testing::MemoryDirectory`).
//!
//! # Items
//!
//! One partition per tenant (docs/protocol/decisions.md §16: a tenant is (instanceId, tenantId)):
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
//! | tenant locator    | `DIR#{tenantId}`                 | `TENANT#{instanceId}`               | `instance_id` (S), `data` (S, [`record::encode_tenant`]) |
//!
//! - Every ID in a key (instanceId, tenantId, appId, userName, orgCode) has `%` and `#`
//!   percent-escaped (`%25`, `%23`), so `#` only ever separates components and no two IDs share a
//!   key. An empty instanceId (the seller's own credential, docs/protocol/callbacks.md §9) is
//!   valid: `DIR##{tenantId}`.
//! - The **tenant locator** answers [`TenantLocator`] (the unified login names only the tenantId,
//!   docs/protocol/callbacks.md §10) with one `Query`, never a `Scan`: a copy of the tenant record
//!   per instance the tenant is stored under, put in the same transaction as `TENANT` and deleted
//!   with it. Its partition holds one `#` where a tenant's holds two, so the two never meet, and
//!   it is under `DIR#`, the directory's IAM condition. A tenant stored by a release before the
//!   locator has none until its next tenantSync (or a one-off backfill from its `TENANT` item).
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
//!
//! The operator's look at an instance's tenants (`koogallery::operator::KitTenants`) has no
//! key of its own: it scans the table (`instance_tenants.rs` says why and what it costs).
//!
//! [`record::encode_tenant`]: koogallery::directory::record::encode_tenant
//! [`record::encode_app`]: koogallery::directory::record::encode_app
//! [`record::encode_user`]: koogallery::directory::record::encode_user
//! [`record::encode_department_chunk`]: koogallery::directory::record::encode_department_chunk
//! [`record::encode_department`]: koogallery::directory::record::encode_department
//! [`record::encode_event`]: koogallery::directory::record::encode_event
//! [`FIRST_GENERATION`]: keys::FIRST_GENERATION

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use koogallery::{
    StoreError,
    directory::{
        App, Applied, Department, DirectoryChange, DirectoryEvent, Tenant, TenantDirectory,
        TenantKey, User,
    },
    sso::TenantLocator,
};

use crate::dynamo::{DynamoStore, sdk::Table};

mod apply;
mod calls;
mod departments;
mod events;
mod instance_tenants;
mod items;
pub mod keys;
mod numbering;
mod records;
mod requests;

pub use calls::DirectoryCalls;

pub use crate::dynamo::sdk::MAX_BATCH_WRITE_ITEMS;
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
/// The actions of the numbering transaction besides the events: `SEQ` with `ORGSET`, or with one
/// record (an app), or with a tenant's record and its locator.
const FIXED_ACTIONS: usize = 3;

/// The tenant directory in the single DynamoDB table; cheap to clone (clones share their
/// counters).
#[derive(Debug, Clone)]
pub struct DynamoDirectory {
    table: Table,
}

impl From<&DynamoStore> for DynamoDirectory {
    /// The directory on the instance store's table.
    fn from(store: &DynamoStore) -> Self {
        Self::new(store.client().clone(), store.table())
    }
}

impl DynamoDirectory {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            table: Table::new(client, table),
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        self.table.name()
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
        self.apply_change(key, change, now).await
    }

    async fn tenant(&self, key: &TenantKey) -> Result<Option<Tenant>, StoreError> {
        self.read_tenant(key).await
    }

    async fn apps(&self, key: &TenantKey) -> Result<Vec<App>, StoreError> {
        self.read_apps(key).await
    }

    async fn user(
        &self,
        key: &TenantKey,
        app_id: &str,
        user_name: &str,
    ) -> Result<Option<User>, StoreError> {
        self.read_user(key, app_id, user_name).await
    }

    async fn users(&self, key: &TenantKey, app_id: &str) -> Result<Vec<User>, StoreError> {
        self.read_users(key, app_id).await
    }

    async fn departments(&self, key: &TenantKey) -> Result<Vec<Department>, StoreError> {
        self.read_departments(key).await
    }

    async fn pending_events(
        &self,
        key: &TenantKey,
        limit: usize,
    ) -> Result<Vec<DirectoryEvent>, StoreError> {
        self.read_pending(key, limit).await
    }

    async fn events_delivered(&self, key: &TenantKey, seq: u64) -> Result<(), StoreError> {
        self.drop_delivered(key, seq).await
    }
}

#[async_trait]
impl TenantLocator for DynamoDirectory {
    async fn tenants_by_id(&self, tenant_id: &str) -> Result<Vec<(TenantKey, Tenant)>, StoreError> {
        self.read_tenants_by_id(tenant_id).await
    }
}

#[cfg(test)]
mod tests;
