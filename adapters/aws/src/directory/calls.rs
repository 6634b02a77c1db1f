//! What the directory sent DynamoDB ([`DirectoryCalls`]), counted across clones: the figures of
//! the module docs (Calls), held by the tests.

use std::sync::atomic::{AtomicU64, Ordering};

use super::DynamoDirectory;

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
pub(super) struct Counters {
    pub(super) get_item: AtomicU64,
    pub(super) batch_get_item: AtomicU64,
    pub(super) query: AtomicU64,
    pub(super) batch_write_item: AtomicU64,
    pub(super) transact_write_items: AtomicU64,
}

#[derive(Clone, Copy)]
pub(super) enum Call {
    GetItem,
    BatchGetItem,
    Query,
    BatchWriteItem,
    TransactWriteItems,
}

impl DynamoDirectory {
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

    pub(super) fn count(&self, call: Call) {
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
}
