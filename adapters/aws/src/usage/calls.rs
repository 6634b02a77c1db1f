//! What the store sent DynamoDB ([`Calls`]), counted across clones, for the figures in
//! BENCHMARKS.md and the tests.

use std::sync::atomic::Ordering;

use super::DynamoUsageStore;
use crate::dynamo::sdk::Request;

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

impl DynamoUsageStore {
    /// The requests sent and items written since the last call (or since the store was made),
    /// counters reset. Shared by clones.
    pub fn take_calls(&self) -> Calls {
        let c = self.table.counts().take();
        Calls {
            writes: c.of(Request::TransactWriteItems)
                + c.of(Request::PutItem)
                + c.of(Request::BatchWriteItem),
            items: c.items,
            reads: c.of(Request::GetItem) + c.of(Request::Query) + c.of(Request::BatchGetItem),
            contended: self.ingests.contended.swap(0, Ordering::Relaxed),
            largest_item_bytes: c.largest_item_bytes,
        }
    }
}
