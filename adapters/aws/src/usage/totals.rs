//! Usage totals (module docs, Usage totals): an instance's total, kept beside its windows, and
//! summed from them for an instance written before totals.

use koogallery::{
    StoreError,
    metering::{UsageTotal, record},
};

use super::{
    DynamoUsageStore,
    items::{RecordItem, decode_record_item},
    keys::*,
};
use crate::dynamo::attr::key_of;

impl RecordItem for UsageTotal {
    const WHAT: &'static str = "usage total";
    const SK: &'static str = TOTAL_SK;

    fn owner(&self) -> (String, String) {
        let id = self.instance_id.clone();
        (usage_pk(&id), id)
    }

    fn version(&self) -> u64 {
        self.version
    }

    fn set_version(&mut self, version: u64) {
        self.version = version;
    }

    fn encode(&self) -> Result<Vec<u8>, StoreError> {
        record::encode_total(self)
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        record::decode_total(bytes).map_err(|e| e.to_string())
    }
}

impl DynamoUsageStore {
    /// One `BatchGetItem` per 100 instances (concurrent); an instance without a total (a table
    /// from before totals) is summed from its windows, [`SAVE_CONCURRENCY`] queries at a time.
    ///
    /// [`SAVE_CONCURRENCY`]: super::SAVE_CONCURRENCY
    pub(super) async fn read_totals(
        &self,
        instance_ids: &[&str],
    ) -> Result<Vec<UsageTotal>, StoreError> {
        let mut ids: Vec<&str> = instance_ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let keys = ids
            .iter()
            .map(|id| key_of(usage_pk(id), TOTAL_SK))
            .collect();
        let mut out = Vec::with_capacity(ids.len());
        for item in self.batch_get(keys).await? {
            if let Some(t) = decode_record_item::<UsageTotal>(&item)? {
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
