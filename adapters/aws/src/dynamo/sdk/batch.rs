//! The batched requests of a [`Table`]: `BatchGetItem` and `BatchWriteItem`, chunked and sent
//! at the pace each store asks for, what DynamoDB leaves unprocessed retried with backoff.

use std::future::Future;

use aws_sdk_dynamodb::types::{KeysAndAttributes, WriteRequest};
use futures_util::{StreamExt, stream};
use koogallery::StoreError;

use super::{
    MAX_BATCH_WRITE_ITEMS, backoff, build_error, counts::Request, table::Table, unavailable,
};
use crate::dynamo::attr::Item;

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

impl Table {
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
                .map_err(|e| unavailable(how.what, e))?;
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
            StoreError::Unavailable(
                format!(
                    "{}: {left} keys still unprocessed after {} retries",
                    how.what, how.retries
                )
                .into(),
            )
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
                .map_err(|e| unavailable(&format!("BatchWriteItem ({what})"), e))?;
            let left = out
                .unprocessed_items()
                .and_then(|u| u.get(&self.name))
                .cloned()
                .unwrap_or_default();
            Ok((Vec::<()>::new(), left))
        };
        until_processed(requests, how.retries, send, |left| {
            StoreError::Unavailable(
                format!(
                    "BatchWriteItem ({what}): {left} items still unprocessed after {} retries",
                    how.retries
                )
                .into(),
            )
        })
        .await?;
        Ok(())
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
