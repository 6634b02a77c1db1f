//! [`InstanceStore`] on the table: the order line, the instance and its events, written
//! conditionally (module docs, Writes), and read back consistently.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use async_trait::async_trait;
use koogallery::{
    StoreError,
    instance::{CreateOutcome, Instance, InstanceEvent, InstanceStore},
};

use super::{
    BATCH_GET, DynamoStore,
    attr::{key_of, s, string_attr},
    items::{decode_event, decode_instance, event_item, instance_item},
    keys::*,
    sdk::{CONDITION_FAILED, Condition, MAX_TRANSACTION_ITEMS, cancelled, lost_to_a_writer},
};

pub(super) fn too_many_events(op: &str, events: usize, fixed: usize) -> StoreError {
    // Retrying cannot help, so this is not reported as `Unavailable`.
    StoreError::Corrupt(format!(
        "{op} of {events} events exceeds one DynamoDB transaction ({} actions including {fixed} for the records)",
        MAX_TRANSACTION_ITEMS
    ).into())
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
        self.table
            .get_item(&instance_pk(instance_id), INSTANCE_SK)
            .await?
            .map(|item| decode_instance(&item))
            .transpose()
    }

    async fn get_many(&self, instance_ids: &[&str]) -> Result<Vec<Arc<Instance>>, StoreError> {
        // BatchGetItem refuses duplicate keys: ask once per ID, answer in the caller's order.
        let mut seen = HashSet::new();
        let unique: Vec<&str> = instance_ids
            .iter()
            .copied()
            .filter(|id| seen.insert(*id))
            .collect();
        let keys = unique
            .iter()
            .map(|id| key_of(instance_pk(id), INSTANCE_SK))
            .collect();
        let mut found: HashMap<String, Arc<Instance>> = HashMap::with_capacity(unique.len());
        for item in self.table.batch_get(keys, BATCH_GET).await? {
            let instance = decode_instance(&item)?;
            found.insert(instance.instance_id.clone().into(), Arc::new(instance));
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
        let item = instance_item(&stored)?;
        let on_version = Condition::on_version(Some(expected_version));
        if events.is_empty() {
            let put = on_version.put_item(self.table.put_item().set_item(Some(item)));
            return match self
                .table
                .put_if(put, &format!("PutItem (save instance {id})"))
                .await?
            {
                true => Ok(()),
                false => Err(StoreError::Conflict),
            };
        }
        let mut items = vec![self.table.tx_put(item, Some(on_version))?];
        for ev in events {
            // History is append-only: a seq already stored fails the whole save.
            let new_seq = Condition::new("attribute_not_exists(#sk)").name("#sk", SK);
            items.push(self.table.tx_put(event_item(id, ev)?, Some(new_seq))?);
        }
        let what = format!("TransactWriteItems (save instance {id})");
        match self.table.transact(items, None, &what).await? {
            None => Ok(()),
            // Another writer was first, or is writing right now: the caller reloads and retries.
            Some(reasons) if lost_to_a_writer(&reasons) => {
                if reasons.iter().skip(1).any(|(c, _)| c == CONDITION_FAILED) {
                    tracing::error!(instance_id = %id, "event seq already stored; save refused");
                }
                Err(StoreError::Conflict)
            }
            Some(reasons) => Err(cancelled(&format!("save instance {id}"), &reasons)),
        }
    }

    async fn events(&self, instance_id: &str) -> Result<Vec<InstanceEvent>, StoreError> {
        let query = self
            .table
            .query_prefix(&instance_pk(instance_id), EVENT_SK_PREFIX);
        let what = format!("Query (events of {instance_id})");
        self.table
            .query_all(query, None, &what)
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
            self.table
                .query()
                .index_name(UNSETTLED_INDEX)
                .key_condition_expression("#u = :u")
                .expression_attribute_names("#u", UNSETTLED_SHARD)
                .expression_attribute_values(":u", s(key))
        };
        let legacy = self
            .table
            .query()
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
                shards.map(|q| self.table.query_all(q, None, "Query (unsettled instances)")),
            ),
            self.table
                .query_all(legacy, None, "Query (unsettled instances, legacy index)"),
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
            let pk = string_attr(item, PK).map_err(|m| StoreError::Corrupt(m.into()))?;
            let id = instance_id_of(pk).ok_or_else(|| {
                StoreError::Corrupt(format!("{pk} in the unsettled index").into())
            })?;
            ids.push(id);
        }
        // `get_many` asks once per ID (an item may be in both indexes while it moves).
        Ok(self
            .get_many(&ids)
            .await?
            .into_iter()
            .filter(|i| i.is_unsettled())
            .map(Arc::unwrap_or_clone)
            .collect())
    }
}
