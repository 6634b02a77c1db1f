//! What the directory sent DynamoDB ([`DirectoryCalls`]), counted across clones: the figures of
//! the module docs (Calls), held by the tests.

use super::DynamoDirectory;
use crate::dynamo::sdk::Request;

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

impl DynamoDirectory {
    /// The requests sent since the last call (or since the directory was made), counters reset.
    /// Shared by clones.
    pub fn take_calls(&self) -> DirectoryCalls {
        let c = self.table.counts().take();
        DirectoryCalls {
            get_item: c.of(Request::GetItem),
            batch_get_item: c.of(Request::BatchGetItem),
            query: c.of(Request::Query),
            batch_write_item: c.of(Request::BatchWriteItem),
            transact_write_items: c.of(Request::TransactWriteItems),
        }
    }
}
