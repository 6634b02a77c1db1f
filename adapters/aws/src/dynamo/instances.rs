//! [`InstanceStore`] on the table: the order line, the instance and its events, written
//! conditionally (module docs, Writes), and read back consistently.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use koogallery::{
    StoreError,
    instance::{CreateOutcome, Instance, InstanceEvent, InstanceStore},
};

use super::{
    DynamoStore,
    attr::{Item, n, s, string_attr},
    items::{decode_event, decode_instance, event_item, instance_item},
    keys::*,
    sdk::{
        CONDITION_FAILED, MAX_BATCH_GET_KEYS, MAX_TRANSACTION_ITEMS, MAX_UNPROCESSED_RETRIES,
        TRANSACTION_CONFLICT, backoff, cancellation_reasons, put_if, query_all, reason_codes,
        unavailable,
    },
};

impl DynamoStore {
    pub(super) fn put(
        &self,
        item: Item,
        condition: &str,
        names: &[(&str, &str)],
        values: &[(&str, AttributeValue)],
    ) -> Result<Put, StoreError> {
        self.put_returning(item, condition, names, values, None)
    }

    /// A conditional `Put` for a transaction; `on_failure` asks for the old item in the
    /// cancellation reason when the condition fails.
    pub(super) fn put_returning(
        &self,
        item: Item,
        condition: &str,
        names: &[(&str, &str)],
        values: &[(&str, AttributeValue)],
        on_failure: Option<ReturnValuesOnConditionCheckFailure>,
    ) -> Result<Put, StoreError> {
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_return_values_on_condition_check_failure(on_failure);
        for (k, v) in names {
            put = put.expression_attribute_names(*k, *v);
        }
        for (k, v) in values {
            put = put.expression_attribute_values(*k, v.clone());
        }
        put.build()
            .map_err(|e| StoreError::Unavailable(format!("cannot build DynamoDB Put: {e}")))
    }
}

pub(super) fn too_many_events(op: &str, events: usize, fixed: usize) -> StoreError {
    // Retrying cannot help, so this is not reported as `Unavailable`.
    StoreError::Corrupt(format!(
        "{op} of {events} events exceeds one DynamoDB transaction ({} actions including {fixed} for the records)",
        MAX_TRANSACTION_ITEMS
    ))
}

#[async_trait]
impl InstanceStore for DynamoStore {
    async fn create_for_order_line(
        &self,
        instance: &Instance,
        events: &[InstanceEvent],
    ) -> Result<CreateOutcome, StoreError> {
        self.create(instance, events).await
    }

    async fn get(&self, instance_id: &str) -> Result<Option<Instance>, StoreError> {
        self.get_item(instance_pk(instance_id), INSTANCE_SK)
            .await?
            .map(|item| decode_instance(&item))
            .transpose()
    }

    async fn get_many(&self, instance_ids: &[&str]) -> Result<Vec<Instance>, StoreError> {
        // BatchGetItem refuses duplicate keys: ask once per ID, answer in the caller's order.
        let mut seen = HashSet::new();
        let unique: Vec<&str> = instance_ids
            .iter()
            .copied()
            .filter(|id| seen.insert(*id))
            .collect();
        let mut found: HashMap<String, Instance> = HashMap::with_capacity(unique.len());
        for chunk in unique.chunks(MAX_BATCH_GET_KEYS) {
            let mut pending: Vec<Item> = chunk
                .iter()
                .map(|id| {
                    HashMap::from([
                        (PK.to_owned(), s(instance_pk(id))),
                        (SK.to_owned(), s(INSTANCE_SK)),
                    ])
                })
                .collect();
            let mut retries = 0;
            while !pending.is_empty() {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| {
                        StoreError::Unavailable(format!("cannot build BatchGetItem keys: {e}"))
                    })?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| unavailable("BatchGetItem", &e))?;
                for item in out
                    .responses()
                    .and_then(|r| r.get(&self.table))
                    .into_iter()
                    .flatten()
                {
                    let instance = decode_instance(item)?;
                    found.insert(instance.instance_id.clone(), instance);
                }
                pending = out
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.table))
                    .map(|k| k.keys().to_vec())
                    .unwrap_or_default();
                if !pending.is_empty() {
                    if retries >= MAX_UNPROCESSED_RETRIES {
                        return Err(StoreError::Unavailable(format!(
                            "BatchGetItem: {} keys still unprocessed after {retries} retries",
                            pending.len()
                        )));
                    }
                    retries += 1;
                    tokio::time::sleep(backoff(retries)).await;
                }
            }
        }
        Ok(instance_ids
            .iter()
            .filter_map(|id| found.get(*id).cloned())
            .collect())
    }

    async fn save(
        &self,
        instance: &Instance,
        expected_version: u64,
        events: &[InstanceEvent],
    ) -> Result<(), StoreError> {
        if events.len() + 1 > MAX_TRANSACTION_ITEMS {
            return Err(too_many_events("save", events.len(), 1));
        }
        let id = &instance.instance_id;
        let mut stored = instance.clone();
        stored.version = expected_version + 1;
        let condition = "#v = :expected";
        let names = [("#v", VERSION)];
        let values = [(":expected", n(expected_version))];

        if events.is_empty() {
            let mut put = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(instance_item(&stored)?))
                .condition_expression(condition);
            for (k, v) in names {
                put = put.expression_attribute_names(k, v);
            }
            for (k, v) in values {
                put = put.expression_attribute_values(k, v);
            }
            return match put_if(put, &format!("PutItem (save instance {id})")).await? {
                true => Ok(()),
                false => Err(StoreError::Conflict),
            };
        }

        let mut items = vec![
            TransactWriteItem::builder()
                .put(self.put(instance_item(&stored)?, condition, &names, &values)?)
                .build(),
        ];
        for ev in events {
            // History is append-only: a seq already stored fails the whole save.
            let put = self.put(
                event_item(id, ev)?,
                "attribute_not_exists(#sk)",
                &[("#sk", SK)],
                &[],
            )?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        let err = match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => return Ok(()),
            Err(err) => err,
        };
        match cancellation_reasons(&err) {
            // Another writer was first, or is writing right now: the caller reloads and retries.
            Some(reasons)
                if reasons
                    .iter()
                    .any(|(c, _)| c == CONDITION_FAILED || c == TRANSACTION_CONFLICT) =>
            {
                if reasons.iter().skip(1).any(|(c, _)| c == CONDITION_FAILED) {
                    tracing::error!(instance_id = %id, "event seq already stored; save refused");
                }
                Err(StoreError::Conflict)
            }
            Some(reasons) => Err(StoreError::Unavailable(format!(
                "save instance {id}: transaction cancelled ({})",
                reason_codes(&reasons)
            ))),
            None => Err(unavailable(
                &format!("TransactWriteItems (save instance {id})"),
                &err,
            )),
        }
    }

    async fn events(&self, instance_id: &str) -> Result<Vec<InstanceEvent>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(instance_pk(instance_id)))
            .expression_attribute_values(":prefix", s(EVENT_SK_PREFIX))
            .consistent_read(true);
        query_all(query, &format!("Query (events of {instance_id})"))
            .await?
            .iter()
            .map(decode_event)
            .collect()
    }

    /// The keys in the sparse index, all shards queried at once, and those still in the legacy
    /// index of earlier releases; then the instances themselves, read consistently (the index
    /// projects keys only, and lags the table a little: what settled meanwhile is left out).
    async fn unsettled(&self) -> Result<Vec<Instance>, StoreError> {
        let shard = |key: String| {
            self.client
                .query()
                .table_name(&self.table)
                .index_name(UNSETTLED_INDEX)
                .key_condition_expression("#u = :u")
                .expression_attribute_names("#u", UNSETTLED_SHARD)
                .expression_attribute_values(":u", s(key))
        };
        let legacy = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(LEGACY_UNSETTLED_INDEX)
            .key_condition_expression("#u = :u")
            .expression_attribute_names("#u", LEGACY_UNSETTLED)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":u", s(LEGACY_UNSETTLED_KEY))
            // Every attribute is projected there; only the key is needed.
            .projection_expression("#pk");
        let shards = (0..UNSETTLED_SHARDS).map(|k| shard(k.to_string()));
        let (pages, legacy) = futures_util::future::try_join(
            futures_util::future::try_join_all(
                shards.map(|q| query_all(q, "Query (unsettled instances)")),
            ),
            query_all(legacy, "Query (unsettled instances, legacy index)"),
        )
        .await?;
        if !legacy.is_empty() {
            tracing::info!(
                instances = legacy.len(),
                "unsettled instances still in the legacy index {LEGACY_UNSETTLED_INDEX}; each moves at its next save"
            );
        }
        let mut ids = Vec::new();
        for item in pages.iter().flatten().chain(&legacy) {
            let pk = string_attr(item, PK).map_err(StoreError::Corrupt)?;
            let id = instance_id_of(pk)
                .ok_or_else(|| StoreError::Corrupt(format!("{pk} in the unsettled index")))?;
            ids.push(id);
        }
        // `get_many` asks once per ID (an item may be in both indexes while it moves).
        Ok(self
            .get_many(&ids)
            .await?
            .into_iter()
            .filter(Instance::is_unsettled)
            .collect())
    }
}
