//! The requests the directory sends through its [`Table`](crate::dynamo::sdk::Table): its
//! transaction puts (checked for size), the queries of a tenant's partition, and batches of
//! reads and writes (step 1 of the module docs) at its own pace.

use aws_sdk_dynamodb::types::{TransactWriteItem, WriteRequest};
use koogallery::StoreError;

use super::{BATCH_CONCURRENCY, DynamoDirectory, MAX_UNPROCESSED_ROUNDS, items::check_size};
use crate::dynamo::{
    attr::{Item, key_from, s},
    keys::{PK, SK},
    sdk::{BatchGet, BatchWrite, Condition, MAX_BATCH_GET_KEYS, delete_request},
};

/// The sort key range of a [`DynamoDirectory::query`].
#[derive(Clone, Copy)]
pub(super) enum SkRange<'a> {
    Prefix(&'a str),
    /// Inclusive.
    Between(&'a str, &'a str),
}

impl std::fmt::Display for SkRange<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Prefix(p) => write!(f, "{p}…"),
            Self::Between(lo, hi) => write!(f, "{lo} to {hi}"),
        }
    }
}

impl DynamoDirectory {
    /// A transaction's put of `item` (refused up front when over DynamoDB's item size), on
    /// `condition` if there is one.
    pub(super) fn tx_put(
        &self,
        item: Item,
        condition: Option<Condition>,
    ) -> Result<TransactWriteItem, StoreError> {
        check_size(&item)?;
        self.table.tx_put(item, condition)
    }

    /// Every item of the partition whose sort key is in `range` (strongly consistent, page after
    /// page), ascending; at most `limit`; only `pk` and `sk` when `keys_only`.
    pub(super) async fn query(
        &self,
        pk: &str,
        range: SkRange<'_>,
        keys_only: bool,
        limit: Option<usize>,
    ) -> Result<Vec<Item>, StoreError> {
        let query = match range {
            SkRange::Prefix(prefix) => self.table.query_prefix(pk, prefix),
            SkRange::Between(lo, hi) => self
                .table
                .query()
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :lo AND :hi")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":pk", s(pk))
                .expression_attribute_values(":lo", s(lo))
                .expression_attribute_values(":hi", s(hi))
                .consistent_read(true),
        };
        let mut query = query.scan_index_forward(true);
        if keys_only {
            query = query.projection_expression("#pk, #sk");
        }
        let what = format!("Query {pk} ({range})");
        self.table.query_all(query, limit, &what).await
    }

    /// Every item `keys` names that exists (strongly consistent), in no particular order: 100
    /// keys per `BatchGetItem`, [`BATCH_CONCURRENCY`] in flight, `UnprocessedKeys` retried.
    pub(super) async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        self.batch_get_by(keys, MAX_BATCH_GET_KEYS).await
    }

    /// [`Self::batch_get`] with `per_request` keys per `BatchGetItem`.
    pub(super) async fn batch_get_by(
        &self,
        keys: Vec<Item>,
        per_request: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let how = BatchGet {
            what: "BatchGetItem (directory)",
            per_request,
            in_flight: BATCH_CONCURRENCY,
            retries: MAX_UNPROCESSED_ROUNDS,
        };
        self.table.batch_get(keys, how).await
    }

    /// Sends `requests` in `BatchWriteItem`s of 25, [`BATCH_CONCURRENCY`] in flight. Every
    /// request is written or the call fails: `UnprocessedItems` are retried with backoff, and what
    /// is left after [`MAX_UNPROCESSED_ROUNDS`] is `Unavailable`, never dropped.
    pub(super) async fn batch_write(
        &self,
        requests: Vec<WriteRequest>,
        what: &str,
    ) -> Result<(), StoreError> {
        let how = BatchWrite {
            in_flight: BATCH_CONCURRENCY,
            retries: MAX_UNPROCESSED_ROUNDS,
        };
        self.table.batch_write(requests, how, what).await
    }

    /// Deletes every item of the partition under each of `prefixes` (keys read first, page after
    /// page; the queries concurrent).
    pub(super) async fn sweep(
        &self,
        pk: &str,
        prefixes: &[&str],
        what: &str,
    ) -> Result<(), StoreError> {
        let found = futures_util::future::try_join_all(
            prefixes
                .iter()
                .map(|p| self.query(pk, SkRange::Prefix(p), true, None)),
        )
        .await?;
        let deletes = found
            .iter()
            .flatten()
            .map(|item| delete_request(key_from(item)?))
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_write(deletes, what).await
    }
}
