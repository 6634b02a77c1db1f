//! The requests the directory sends, each counted: transaction actions, single reads, paged
//! queries of a tenant's partition, and batches of reads and writes (step 1 of the module docs),
//! their unprocessed keys and items retried.

use aws_sdk_dynamodb::types::{
    ConditionCheck, Delete, KeysAndAttributes, Put, TransactWriteItem, WriteRequest,
};
use futures_util::{StreamExt, stream};
use koogallery::StoreError;

use super::{
    BATCH_CONCURRENCY, DynamoDirectory, MAX_BATCH_WRITE_ITEMS, MAX_UNPROCESSED_ROUNDS,
    calls::Call,
    items::{build_error, check_size, delete_request, key_from},
    numbering::Cond,
};
use crate::dynamo::{
    attr::{Item, s},
    keys::{PK, SK},
    sdk::{MAX_BATCH_GET_KEYS, backoff, unavailable},
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
    pub(super) fn tx_put(
        &self,
        item: Item,
        cond: Option<Cond>,
    ) -> Result<TransactWriteItem, StoreError> {
        check_size(&item)?;
        let mut put = Put::builder().table_name(&self.table).set_item(Some(item));
        if let Some(c) = cond {
            put = put
                .condition_expression(c.expression)
                .set_expression_attribute_names(c.names())
                .set_expression_attribute_values(c.values());
        }
        let put = put.build().map_err(|e| build_error("Put", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    pub(super) fn tx_delete(&self, key: Item) -> Result<TransactWriteItem, StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .build()
            .map_err(|e| build_error("Delete", e))?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    pub(super) fn tx_check(&self, key: Item, c: Cond) -> Result<TransactWriteItem, StoreError> {
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .condition_expression(c.expression)
            .set_expression_attribute_names(c.names())
            .set_expression_attribute_values(c.values())
            .build()
            .map_err(|e| build_error("ConditionCheck", e))?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    pub(super) async fn get_item(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        self.count(Call::GetItem);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(pk))
            .key(SK, s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable(&format!("GetItem {pk}/{sk}"), &e))?;
        Ok(out.item)
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
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(pk))
            .scan_index_forward(true)
            .consistent_read(true);
        query = match range {
            SkRange::Prefix(prefix) => query
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_values(":prefix", s(prefix)),
            SkRange::Between(lo, hi) => query
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :lo AND :hi")
                .expression_attribute_values(":lo", s(lo))
                .expression_attribute_values(":hi", s(hi)),
        };
        if keys_only {
            query = query.projection_expression("#pk, #sk");
        }
        let what = format!("Query {pk} ({range})");
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut page = query.clone().set_exclusive_start_key(start.take());
            if let Some(limit) = limit {
                let left = limit.saturating_sub(items.len());
                page = page.limit(i32::try_from(left).unwrap_or(i32::MAX));
            }
            self.count(Call::Query);
            let out = page.send().await.map_err(|e| unavailable(&what, &e))?;
            items.extend(out.items().iter().cloned());
            if limit.is_some_and(|l| items.len() >= l) {
                break;
            }
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        if let Some(limit) = limit {
            items.truncate(limit);
        }
        Ok(items)
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
        let chunks: Vec<Vec<Item>> = keys.chunks(per_request).map(<[_]>::to_vec).collect();
        let calls: Vec<_> = chunks
            .into_iter()
            .map(|chunk| self.batch_get_chunk(chunk))
            .collect();
        let mut calls = stream::iter(calls).buffer_unordered(BATCH_CONCURRENCY);
        let mut items = Vec::with_capacity(keys.len());
        while let Some(got) = calls.next().await {
            items.extend(got?);
        }
        Ok(items)
    }

    async fn batch_get_chunk(&self, mut pending: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::with_capacity(pending.len());
        let mut round = 0;
        while !pending.is_empty() {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut pending)))
                .consistent_read(true)
                .build()
                .map_err(|e| build_error("BatchGetItem keys", e))?;
            self.count(Call::BatchGetItem);
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(|e| unavailable("BatchGetItem (directory)", &e))?;
            if let Some(found) = out.responses().and_then(|r| r.get(&self.table)) {
                items.extend(found.iter().cloned());
            }
            pending = out
                .unprocessed_keys()
                .and_then(|u| u.get(&self.table))
                .map(|k| k.keys().to_vec())
                .unwrap_or_default();
            if !pending.is_empty() {
                round += 1;
                if round > MAX_UNPROCESSED_ROUNDS {
                    return Err(StoreError::Unavailable(format!(
                        "BatchGetItem (directory): {} keys still unprocessed after {MAX_UNPROCESSED_ROUNDS} retries",
                        pending.len()
                    )));
                }
                tokio::time::sleep(backoff(round)).await;
            }
        }
        Ok(items)
    }

    /// Sends `requests` in `BatchWriteItem`s of 25, [`BATCH_CONCURRENCY`] in flight. Every
    /// request is written or the call fails: `UnprocessedItems` are retried with backoff, and what
    /// is left after [`MAX_UNPROCESSED_ROUNDS`] is `Unavailable`, never dropped.
    pub(super) async fn batch_write(
        &self,
        requests: Vec<WriteRequest>,
        what: &str,
    ) -> Result<(), StoreError> {
        let chunks: Vec<Vec<WriteRequest>> = requests
            .chunks(MAX_BATCH_WRITE_ITEMS)
            .map(<[_]>::to_vec)
            .collect();
        let calls: Vec<_> = chunks
            .into_iter()
            .map(|chunk| self.batch_write_chunk(chunk, what))
            .collect();
        let mut calls = stream::iter(calls).buffer_unordered(BATCH_CONCURRENCY);
        while let Some(done) = calls.next().await {
            // The batches still in flight are dropped: the sync fails and is sent again.
            done?;
        }
        Ok(())
    }

    async fn batch_write_chunk(
        &self,
        mut pending: Vec<WriteRequest>,
        what: &str,
    ) -> Result<(), StoreError> {
        let mut round = 0;
        while !pending.is_empty() {
            self.count(Call::BatchWriteItem);
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, std::mem::take(&mut pending))
                .send()
                .await
                .map_err(|e| unavailable(&format!("BatchWriteItem ({what})"), &e))?;
            pending = out
                .unprocessed_items()
                .and_then(|u| u.get(&self.table))
                .cloned()
                .unwrap_or_default();
            if !pending.is_empty() {
                round += 1;
                if round > MAX_UNPROCESSED_ROUNDS {
                    return Err(StoreError::Unavailable(format!(
                        "BatchWriteItem ({what}): {} items still unprocessed after {MAX_UNPROCESSED_ROUNDS} retries",
                        pending.len()
                    )));
                }
                tokio::time::sleep(backoff(round)).await;
            }
        }
        Ok(())
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
