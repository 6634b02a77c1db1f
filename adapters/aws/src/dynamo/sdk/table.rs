//! [`Table`]: the one table every store holds, and the requests they all send, each counted:
//! single reads, paged queries, batched reads and writes (unprocessed keys and items retried),
//! conditional puts and transactions.

use std::sync::Arc;

use aws_sdk_dynamodb::{
    Client,
    operation::{put_item::builders::PutItemFluentBuilder, query::builders::QueryFluentBuilder},
    types::{
        ConditionCheck, Delete, KeysAndAttributes, Put, ReturnValuesOnConditionCheckFailure,
        TransactWriteItem, WriteRequest,
    },
};
use futures_util::{StreamExt, stream};
use koogallery::StoreError;

use super::{
    MAX_BATCH_WRITE_ITEMS, Reasons, backoff, build_error, cancellation_reasons,
    condition::Condition,
    counts::{Counts, Request},
    put_if, unavailable,
};
use crate::dynamo::{
    attr::{Item, item_bytes, key_of, s},
    keys::{PK, SK},
};

/// How a store reads batches of keys with `BatchGetItem`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchGet {
    /// Names the reads in errors, e.g. `BatchGetItem (usage)`.
    pub(crate) what: &'static str,
    /// Keys per request (at most DynamoDB's 100).
    pub(crate) per_request: usize,
    /// Requests in flight at once.
    pub(crate) in_flight: usize,
    /// Rounds of `UnprocessedKeys` retried (with backoff) before the read fails as unavailable.
    pub(crate) retries: u32,
}

/// How a store writes batches of puts and deletes with `BatchWriteItem` (25 requests each).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchWrite {
    /// Requests in flight at once.
    pub(crate) in_flight: usize,
    /// Rounds of `UnprocessedItems` retried (with backoff) before the write fails as unavailable.
    pub(crate) retries: u32,
}

/// One table of one client, and the counts of the requests sent to it. Cheap to clone; clones
/// share the counts.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    client: Client,
    name: String,
    counts: Arc<Counts>,
}

impl Table {
    pub(crate) fn new(client: Client, name: impl Into<String>) -> Self {
        Self {
            client,
            name: name.into(),
            counts: Arc::default(),
        }
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn counts(&self) -> &Counts {
        &self.counts
    }

    /// A `Query` of this table, to be sent with [`Self::query_all`] or [`Self::query_page`].
    pub(crate) fn query(&self) -> QueryFluentBuilder {
        self.client.query().table_name(&self.name)
    }

    /// A consistent `Query` of the items of partition `pk` whose sort key starts with `prefix`.
    pub(crate) fn query_prefix(&self, pk: &str, prefix: &str) -> QueryFluentBuilder {
        self.query()
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":prefix", s(prefix))
            .consistent_read(true)
    }

    /// A `PutItem` into this table, to be sent with [`Self::put_if`].
    pub(crate) fn put_item(&self) -> PutItemFluentBuilder {
        self.client.put_item().table_name(&self.name)
    }

    /// The item under (`pk`, `sk`), strongly consistent.
    pub(crate) async fn get_item(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        self.counts.sent(Request::GetItem);
        let out = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(key_of(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable(&format!("GetItem {pk}/{sk}"), &e))?;
        Ok(out.item)
    }

    /// One page of `query` from `start`: its items, and where the next page starts (`None`
    /// after the last).
    pub(crate) async fn query_page(
        &self,
        query: QueryFluentBuilder,
        start: Option<Item>,
        what: &str,
    ) -> Result<(Vec<Item>, Option<Item>), StoreError> {
        self.counts.sent(Request::Query);
        let out = query
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| unavailable(what, &e))?;
        let next = out.last_evaluated_key().filter(|k| !k.is_empty()).cloned();
        Ok((out.items.unwrap_or_default(), next))
    }

    /// Every item `query` matches, page after page; at most `limit` (each page asks for no
    /// more than are still wanted).
    pub(crate) async fn query_all(
        &self,
        query: QueryFluentBuilder,
        limit: Option<usize>,
        what: &str,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut page = query.clone();
            if let Some(limit) = limit {
                let left = limit.saturating_sub(items.len());
                page = page.limit(i32::try_from(left).unwrap_or(i32::MAX));
            }
            let (found, next) = self.query_page(page, start, what).await?;
            items.extend(found);
            if limit.is_some_and(|l| items.len() >= l) {
                break;
            }
            match next {
                Some(key) => start = Some(key),
                None => break,
            }
        }
        if let Some(limit) = limit {
            items.truncate(limit);
        }
        Ok(items)
    }

    /// Every item `keys` names that exists (strongly consistent), in no particular order:
    /// `how.per_request` keys per `BatchGetItem`, `how.in_flight` of them at once.
    pub(crate) async fn batch_get(
        &self,
        keys: Vec<Item>,
        how: BatchGet,
    ) -> Result<Vec<Item>, StoreError> {
        let calls: Vec<_> = keys
            .chunks(how.per_request)
            .map(|chunk| self.batch_get_chunk(chunk.to_vec(), how))
            .collect();
        let mut calls = stream::iter(calls).buffer_unordered(how.in_flight);
        let mut items = Vec::with_capacity(keys.len());
        while let Some(got) = calls.next().await {
            items.extend(got?);
        }
        Ok(items)
    }

    /// One `BatchGetItem`, its `UnprocessedKeys` retried with backoff.
    async fn batch_get_chunk(
        &self,
        keys: Vec<Item>,
        how: BatchGet,
    ) -> Result<Vec<Item>, StoreError> {
        let send = |keys: Vec<Item>| async move {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(|e| build_error("BatchGetItem keys", e))?;
            self.counts.sent(Request::BatchGetItem);
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.name, request)
                .send()
                .await
                .map_err(|e| unavailable(how.what, &e))?;
            let found = out
                .responses()
                .and_then(|r| r.get(&self.name))
                .cloned()
                .unwrap_or_default();
            let left = out
                .unprocessed_keys()
                .and_then(|u| u.get(&self.name))
                .map(|k| k.keys().to_vec())
                .unwrap_or_default();
            Ok((found, left))
        };
        until_processed(keys, how.retries, send, |left| {
            StoreError::Unavailable(format!(
                "{}: {left} keys still unprocessed after {} retries",
                how.what, how.retries
            ))
        })
        .await
    }

    /// Sends `requests` in `BatchWriteItem`s of 25, `how.in_flight` at once. Every request is
    /// written or the call fails: `UnprocessedItems` are retried with backoff, and what is left
    /// after `how.retries` rounds is `Unavailable`, never dropped. `what` names the writes.
    pub(crate) async fn batch_write(
        &self,
        requests: Vec<WriteRequest>,
        how: BatchWrite,
        what: &str,
    ) -> Result<(), StoreError> {
        let calls: Vec<_> = requests
            .chunks(MAX_BATCH_WRITE_ITEMS)
            .map(|chunk| self.batch_write_chunk(chunk.to_vec(), how, what))
            .collect();
        let mut calls = stream::iter(calls).buffer_unordered(how.in_flight);
        while let Some(done) = calls.next().await {
            // The batches still in flight are dropped: the caller fails, and is sent again.
            done?;
        }
        Ok(())
    }

    async fn batch_write_chunk(
        &self,
        requests: Vec<WriteRequest>,
        how: BatchWrite,
        what: &str,
    ) -> Result<(), StoreError> {
        let send = |requests: Vec<WriteRequest>| async move {
            self.counts
                .wrote(Request::BatchWriteItem, requests.len(), 0);
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.name, requests)
                .send()
                .await
                .map_err(|e| unavailable(&format!("BatchWriteItem ({what})"), &e))?;
            let left = out
                .unprocessed_items()
                .and_then(|u| u.get(&self.name))
                .cloned()
                .unwrap_or_default();
            Ok((Vec::<()>::new(), left))
        };
        until_processed(requests, how.retries, send, |left| {
            StoreError::Unavailable(format!(
                "BatchWriteItem ({what}): {left} items still unprocessed after {} retries",
                how.retries
            ))
        })
        .await?;
        Ok(())
    }

    /// Sends a `PutItem` built by [`Self::put_item`], counted with its item's size: true when
    /// written, false when its condition failed.
    pub(crate) async fn put_if(
        &self,
        put: PutItemFluentBuilder,
        what: &str,
    ) -> Result<bool, StoreError> {
        let bytes = put.as_input().get_item().as_ref().map_or(0, item_bytes);
        self.counts.wrote(Request::PutItem, 1, bytes);
        put_if(put, what).await
    }

    /// A transaction's put of `item` into this table, on `condition` if there is one.
    pub(crate) fn tx_put(
        &self,
        item: Item,
        condition: Option<Condition>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut put = Put::builder().table_name(&self.name).set_item(Some(item));
        if let Some(c) = condition {
            put = put
                .condition_expression(c.expression())
                .set_expression_attribute_names(c.names())
                .set_expression_attribute_values(c.values())
                .set_return_values_on_condition_check_failure(
                    c.return_old
                        .then_some(ReturnValuesOnConditionCheckFailure::AllOld),
                );
        }
        let put = put.build().map_err(|e| build_error("Put", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// A transaction's delete of the item under `key`.
    pub(crate) fn tx_delete(&self, key: Item) -> Result<TransactWriteItem, StoreError> {
        let delete = Delete::builder()
            .table_name(&self.name)
            .set_key(Some(key))
            .build()
            .map_err(|e| build_error("Delete", e))?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// A transaction's check of `condition` on the item under `key`.
    pub(crate) fn tx_check(
        &self,
        key: Item,
        condition: Condition,
    ) -> Result<TransactWriteItem, StoreError> {
        let check = ConditionCheck::builder()
            .table_name(&self.name)
            .set_key(Some(key))
            .condition_expression(condition.expression())
            .set_expression_attribute_names(condition.names())
            .set_expression_attribute_values(condition.values())
            .build()
            .map_err(|e| build_error("ConditionCheck", e))?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    /// Sends a `TransactWriteItems` (with `token` as its `ClientRequestToken`, if any), counted
    /// with its items and the largest item it puts: `Ok(None)` when it committed, `Ok(Some(..))`
    /// with the cancellation reasons when it was cancelled. Any other failure is `Unavailable`,
    /// `what` naming the transaction.
    pub(crate) async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
        token: Option<String>,
        what: &str,
    ) -> Result<Option<Reasons>, StoreError> {
        let largest = items
            .iter()
            .filter_map(|i| i.put())
            .map(|p| item_bytes(p.item()))
            .max()
            .unwrap_or(0);
        self.counts
            .wrote(Request::TransactWriteItems, items.len(), largest);
        let err = match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .set_client_request_token(token)
            .send()
            .await
        {
            Ok(_) => return Ok(None),
            Err(err) => err,
        };
        match cancellation_reasons(&err) {
            Some(reasons) => Ok(Some(reasons)),
            None => Err(unavailable(what, &err)),
        }
    }
}

/// Sends `pending` (keys to read, requests to write) and what DynamoDB leaves unprocessed again,
/// with backoff, until nothing is left: what each send found, all together. After `retries`
/// rounds what is still left fails the call (`gave_up`, told how many), never dropped.
async fn until_processed<T, R, F, Fut>(
    mut pending: Vec<T>,
    retries: u32,
    mut send: F,
    gave_up: impl FnOnce(usize) -> StoreError,
) -> Result<Vec<R>, StoreError>
where
    F: FnMut(Vec<T>) -> Fut,
    Fut: Future<Output = Result<(Vec<R>, Vec<T>), StoreError>>,
{
    let mut found = Vec::with_capacity(pending.len());
    let mut round = 0;
    while !pending.is_empty() {
        let (got, left) = send(std::mem::take(&mut pending)).await?;
        found.extend(got);
        pending = left;
        if !pending.is_empty() {
            round += 1;
            if round > retries {
                return Err(gave_up(pending.len()));
            }
            tokio::time::sleep(backoff(round)).await;
        }
    }
    Ok(found)
}
