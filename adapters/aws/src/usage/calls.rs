//! What the store sent DynamoDB ([`Calls`]), counted across clones, for the figures in
//! BENCHMARKS.md and the tests.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{
    DynamoUsageStore,
    faults::{NO_FAULT, PauseAt},
};

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
pub(super) struct Counters {
    pub(super) writes: AtomicU64,
    pub(super) items: AtomicU64,
    pub(super) reads: AtomicU64,
    pub(super) contended: AtomicU64,
    pub(super) largest_item_bytes: AtomicU64,
    /// Fault injection: see [`DynamoUsageStore::fail_next_ingest_after`]; `u64::MAX` when off.
    pub(super) fail_after: AtomicU64,
    /// See [`DynamoUsageStore::pause_next_ingest_after`].
    pub(super) pause: std::sync::Mutex<Option<PauseAt>>,
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

impl DynamoUsageStore {
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

    pub(super) fn count_read(&self) {
        self.counters.reads.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn count_write(&self, items: usize, largest_item_bytes: u64) {
        let c = &self.counters;
        c.writes.fetch_add(1, Ordering::Relaxed);
        c.items.fetch_add(items as u64, Ordering::Relaxed);
        c.largest_item_bytes
            .fetch_max(largest_item_bytes, Ordering::Relaxed);
    }
}
