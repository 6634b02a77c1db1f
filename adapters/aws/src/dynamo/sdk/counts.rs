//! The requests a table was sent, by kind, and what its writes put: counted across the clones of
//! a store, taken (and reset) by the store's `take_calls`. One store's requests, each once
//! whatever the SDK's retries, with the items written and their sizes; every request of the
//! process on the wire, of every service, is `crate::calls`'s to count (the wire cannot tell two
//! stores on one client apart, nor see items).

use std::sync::atomic::{AtomicU64, Ordering};

/// A kind of DynamoDB request, as counted.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Request {
    GetItem,
    BatchGetItem,
    Query,
    PutItem,
    BatchWriteItem,
    TransactWriteItems,
}

const KINDS: usize = 6;

/// The counts since they were last taken.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    /// By [`Request`] (each page of a `Query`, each round of unprocessed retries counts).
    requests: [AtomicU64; KINDS],
    /// The items the write requests put (or deleted).
    items: AtomicU64,
    /// The largest item put (see [`item_bytes`](crate::dynamo::attr::item_bytes)).
    largest_item_bytes: AtomicU64,
}

/// [`Counts`] as taken.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counted {
    requests: [u64; KINDS],
    pub(crate) items: u64,
    pub(crate) largest_item_bytes: u64,
}

impl Counted {
    /// The requests of `kind` sent.
    pub(crate) fn of(&self, kind: Request) -> u64 {
        self.requests[kind as usize]
    }
}

impl Counts {
    /// A request that writes nothing was sent.
    pub(crate) fn sent(&self, kind: Request) {
        self.requests[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A write request was sent: `items` items, the largest of them `largest_item_bytes`.
    pub(crate) fn wrote(&self, kind: Request, items: usize, largest_item_bytes: usize) {
        self.sent(kind);
        self.items.fetch_add(items as u64, Ordering::Relaxed);
        self.largest_item_bytes
            .fetch_max(largest_item_bytes as u64, Ordering::Relaxed);
    }

    /// The counts so far; they start again from zero.
    pub(crate) fn take(&self) -> Counted {
        Counted {
            requests: std::array::from_fn(|k| self.requests[k].swap(0, Ordering::Relaxed)),
            items: self.items.swap(0, Ordering::Relaxed),
            largest_item_bytes: self.largest_item_bytes.swap(0, Ordering::Relaxed),
        }
    }
}
