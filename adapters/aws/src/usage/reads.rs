//! The store's reads of single items and of batches of keys.

use std::sync::{Arc, atomic::Ordering};

use aws_sdk_dynamodb::{Client, types::KeysAndAttributes};
use koogallery::StoreError;

use super::{DynamoUsageStore, calls::Counters};
use crate::dynamo::{
    attr::{Item, s},
    keys::{PK, SK},
    sdk::{MAX_BATCH_GET_KEYS, MAX_UNPROCESSED_RETRIES, backoff, unavailable},
};

impl DynamoUsageStore {
    pub(super) async fn get_item(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        self.count_read();
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(pk.clone()))
            .key(SK, s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable(&format!("GetItem {pk}"), &e))?;
        Ok(out.item)
    }

    /// Every item `keys` names that exists (strongly consistent), in no particular order: 100
    /// keys per `BatchGetItem`, the calls concurrent.
    pub(super) async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        if keys.len() <= MAX_BATCH_GET_KEYS {
            return batch_get_chunk(
                self.client.clone(),
                self.table.clone(),
                self.counters.clone(),
                keys,
            )
            .await;
        }
        let mut calls = tokio::task::JoinSet::new();
        for chunk in keys.chunks(MAX_BATCH_GET_KEYS) {
            calls.spawn(batch_get_chunk(
                self.client.clone(),
                self.table.clone(),
                self.counters.clone(),
                chunk.to_vec(),
            ));
        }
        let mut items = Vec::with_capacity(keys.len());
        while let Some(done) = calls.join_next().await {
            let got = done
                .map_err(|e| StoreError::Unavailable(format!("BatchGetItem task failed: {e}")))??;
            items.extend(got);
        }
        Ok(items)
    }
}

/// One chunk of a `BatchGetItem`, its `UnprocessedKeys` retried with backoff.
async fn batch_get_chunk(
    client: Client,
    table: String,
    counters: Arc<Counters>,
    mut pending: Vec<Item>,
) -> Result<Vec<Item>, StoreError> {
    let mut items = Vec::with_capacity(pending.len());
    let mut retries = 0;
    while !pending.is_empty() {
        let request = KeysAndAttributes::builder()
            .set_keys(Some(std::mem::take(&mut pending)))
            .consistent_read(true)
            .build()
            .map_err(|e| StoreError::Unavailable(format!("cannot build BatchGetItem keys: {e}")))?;
        counters.reads.fetch_add(1, Ordering::Relaxed);
        let out = client
            .batch_get_item()
            .request_items(&table, request)
            .send()
            .await
            .map_err(|e| unavailable("BatchGetItem (usage)", &e))?;
        items.extend(
            out.responses()
                .and_then(|r| r.get(&table))
                .into_iter()
                .flatten()
                .cloned(),
        );
        pending = out
            .unprocessed_keys()
            .and_then(|u| u.get(&table))
            .map(|k| k.keys().to_vec())
            .unwrap_or_default();
        if !pending.is_empty() {
            if retries >= MAX_UNPROCESSED_RETRIES {
                return Err(StoreError::Unavailable(format!(
                    "BatchGetItem (usage): {} keys still unprocessed after {retries} retries",
                    pending.len()
                )));
            }
            retries += 1;
            tokio::time::sleep(backoff(retries)).await;
        }
    }
    Ok(items)
}
