//! [`InstanceStore`] and [`NonceStore`] on one DynamoDB table, with the exact semantics of
//! `koogallery::testing::MemoryStore` (conditional create, compare-and-set on `version`).
//!
//! # Key schema (single table)
//!
//! The table has a string partition key `pk` and a string sort key `sk`, on-demand capacity, and
//! time to live on the attribute `ttl`. Item kinds:
//!
//! | item        | `pk`                                   | `sk`                 | other attributes                                              |
//! |-------------|----------------------------------------|----------------------|---------------------------------------------------------------|
//! | instance    | `INSTANCE#{instanceId}`                | `INSTANCE`           | `version` (N), `data` (S, the `Instance` JSON), `state` (S), `order_id` (S), `order_line_id` (S), `unsettled_shard` (S, only while unsettled) |
//! | order line  | `ORDERLINE#{orderId}#{orderLineId}`    | `ORDERLINE`          | `instance_id` (S), `order_id` (S), `order_line_id` (S)        |
//! | event       | `INSTANCE#{instanceId}`                | `EVENT#{seq:020}`    | `data` (S, the `InstanceEvent` JSON), `seq` (N)               |
//! | nonce       | `NONCE#{nonce}`                        | `NONCE`              | `expires_ms` (N, Unix millis), `ttl` (N, Unix seconds)        |
//! | exchange by instance | `XLOG#I#{instanceId}`         | exchange id          | `data` (S, the `Exchange` record JSON), `ttl` (N, Unix seconds) |
//! | exchange by order    | `XLOG#O#{orderId}`            | exchange id          | as above                                                      |
//! | exchange by time     | `XLOG#T#{yyyymmdd}#{shard}`   | exchange id          | as above; `shard` `0` to `7`, a hash of the exchange id       |
//!
//! - An instance and its events share a partition; the zero-padded sequence number makes the sort
//!   key order the history order, so [`InstanceStore::events`] is one `Query` with
//!   `begins_with(sk, "EVENT#")` (paginated).
//! - In the order-line key, `%` and `#` inside the two IDs are percent-escaped (`%25`, `%23`) so
//!   no two (orderId, orderLineId) pairs share a key; KooGallery IDs contain neither, so in practice
//!   the key reads `ORDERLINE#CS1906666666ABCDE#CS1906666666ABCDE-000001`.
//! - `version` is authoritative for optimistic concurrency; the `data` JSON carries the same value.
//! - `unsettled_shard` (`"0"` to `"15"`, a hash of the instance ID) keys the sparse, keys-only index
//!   `unsettled-shard-index`: [`InstanceStore::unsettled`] queries its 16 shards at once, then reads
//!   the instances. Earlier releases wrote `unsettled` = `"1"` instead (index `unsettled-index`,
//!   one hot partition); an item loses it at its next save, and until then the legacy index is
//!   queried too ([`keys::LEGACY_UNSETTLED`]).
//! - A nonce counts only while `expires_ms > now`; `ttl` lets DynamoDB delete it eventually (TTL
//!   deletion lags by up to days, which is why the condition checks `expires_ms`, not presence).
//!   `ttl` is a reserved word: expressions name it through an expression attribute name.
//! - The exchange log ([`DynamoExchangeLog`], [`exchanges`]) keeps each exchange whole under the
//!   partitions it is found by: its instance's, its order's, and its day's time shard. The id
//!   sorts by time, so each is one `Query` backwards; `ttl` deletes them after the retention.
//!
//! # Writes
//!
//! - `create_for_order_line`: one `TransactWriteItems` — put the order line (`attribute_not_exists(pk)`),
//!   put the instance at version 1 (`attribute_not_exists(pk)`), put each event. The cancellation
//!   reasons say which condition failed: the order line → read it and its instance, answer
//!   `Existing`; only the instance ID → `Conflict` (a businessId reused by another order).
//!   Transactions that collide with another in-flight transaction are retried with backoff.
//! - `save`: put the instance at `expected + 1` if `version = expected` (a missing record fails too),
//!   and each event if its key is new, in one transaction (a single conditional `PutItem` when
//!   there are no events). Any failed condition is `Conflict`.
//! - `remember`: conditional `PutItem`, `attribute_not_exists(pk) OR expires_ms <= :now`.
//! - the exchange log's `append`: one `PutItem` per item on `attribute_not_exists(pk)`, a failed
//!   condition being an item kept already ([`exchanges`], Appends).
//!
//! Reads are strongly consistent, like the in-memory reference. The operator's listing
//! ([`InstanceListing`](koogallery::operator::InstanceListing)) is a consistent `Scan` of the
//! instance items (`listing.rs` says why, what it costs, and what would index customers).
//!
//! [`InstanceStore`]: koogallery::instance::InstanceStore
//! [`InstanceStore::events`]: koogallery::instance::InstanceStore::events
//! [`InstanceStore::unsettled`]: koogallery::instance::InstanceStore::unsettled
//! [`NonceStore`]: koogallery::security::replay::NonceStore

use aws_sdk_dynamodb::Client;

use self::sdk::{BatchGet, MAX_BATCH_GET_KEYS, MAX_UNPROCESSED_RETRIES, Table};

pub(crate) mod attr;
mod create;
pub mod exchanges;
mod iam;
mod instances;
mod items;
pub mod keys;
mod listing;
mod nonces;
mod order_notices;
pub(crate) mod sdk;

pub use exchanges::DynamoExchangeLog;
pub use iam::{
    EXCHANGE_LOG_ACTIONS, EXCHANGE_LOG_LEADING_KEYS, OPERATOR_DIRECTORY_ACTIONS,
    OPERATOR_EXCHANGE_LOG_ACTIONS, OPERATOR_LEADING_KEYS, OPERATOR_SESSION_ACTIONS,
    OPERATOR_SESSION_LEADING_KEYS, iam_actions, leading_keys, operator_iam_actions,
};

/// Instances, order lines, events and nonces in one DynamoDB table; cheap to clone.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    table: Table,
}

/// How the instance store reads batches of instances: a request at a time.
const BATCH_GET: BatchGet = BatchGet {
    what: "BatchGetItem",
    per_request: MAX_BATCH_GET_KEYS,
    in_flight: 1,
    retries: MAX_UNPROCESSED_RETRIES,
};

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            table: Table::new(client, table),
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        self.table.name()
    }

    /// The client, e.g. for [`crate::bootstrap::ensure_table`].
    pub fn client(&self) -> &Client {
        self.table.client()
    }
}

#[cfg(test)]
mod tests;
