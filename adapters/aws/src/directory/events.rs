//! The pending events: read in delivery order, deleted once delivered.

use koogallery::{
    StoreError,
    directory::{DirectoryEvent, TenantKey},
};

use super::{DynamoDirectory, items::decode_event_item, keys::*, requests::SkRange};
use crate::dynamo::{attr::key_from, sdk::delete_request};

impl DynamoDirectory {
    pub(super) async fn read_pending(
        &self,
        key: &TenantKey,
        limit: usize,
    ) -> Result<Vec<DirectoryEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.query(
            &tenant_pk(key),
            SkRange::Prefix(EVENT_SK_PREFIX),
            false,
            Some(limit),
        )
        .await?
        .iter()
        .map(decode_event_item)
        .collect()
    }

    pub(super) async fn drop_delivered(&self, key: &TenantKey, seq: u64) -> Result<(), StoreError> {
        if seq == 0 {
            return Ok(());
        }
        let pk = tenant_pk(key);
        let upto = event_sk(seq);
        let delivered = self
            .query(&pk, SkRange::Between(EVENT_SK_PREFIX, &upto), true, None)
            .await?;
        let deletes = delivered
            .iter()
            .map(|item| delete_request(key_from(item)?))
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_write(deletes, "delivered events").await
    }
}
