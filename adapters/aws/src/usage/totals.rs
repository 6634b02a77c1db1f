//! Usage totals (module docs, Usage totals): an instance's total, kept beside its windows, and
//! summed from them for an instance written before totals.

use koogallery::{
    StoreError,
    metering::{UsageTotal, record},
};

use super::{
    DynamoUsageStore,
    items::{decode_record_item, key_of, record_item},
    keys::*,
};
use crate::dynamo::attr::Item;

pub(super) fn total_item(t: &UsageTotal) -> Result<Item, StoreError> {
    record_item(
        usage_pk(&t.instance_id),
        TOTAL_SK,
        t.version,
        record::encode_total(t)?,
    )
}

/// An instance's usage total from its item; `None` for a hold alone (no `data`).
pub(super) fn decode_total_item(item: &Item) -> Result<Option<UsageTotal>, StoreError> {
    decode_record_item(
        item,
        "usage total",
        |b| record::decode_total(b).map_err(|e| e.to_string()),
        |t: &UsageTotal| {
            let id = t.instance_id.clone();
            (usage_pk(&id), id)
        },
        |t, v| t.version = v,
    )
}

impl DynamoUsageStore {
    /// One `BatchGetItem` per 100 instances (concurrent); an instance without a total (a table
    /// from before totals) is summed from its windows, [`SAVE_CONCURRENCY`] queries at a time.
    pub(super) async fn read_totals(
        &self,
        instance_ids: &[&str],
    ) -> Result<Vec<UsageTotal>, StoreError> {
        let mut ids: Vec<&str> = instance_ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let keys = ids
            .iter()
            .map(|id| key_of(usage_pk(id), TOTAL_SK.to_owned()))
            .collect();
        let mut out = Vec::with_capacity(ids.len());
        for item in self.batch_get(keys).await? {
            if let Some(t) = decode_total_item(&item)? {
                out.push(t);
            }
        }
        let missing: Vec<String> = ids
            .iter()
            .filter(|id| !out.iter().any(|t| t.instance_id == **id))
            .map(|id| (*id).to_owned())
            .collect();
        for (id, windows) in self.windows_of_many(missing).await? {
            out.extend(UsageTotal::of_windows(&id, &windows));
        }
        Ok(out)
    }
}
