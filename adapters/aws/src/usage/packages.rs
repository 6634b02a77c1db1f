//! Package usage: its item, one per package in its own partition, and its read.

use koogallery::{
    StoreError,
    metering::{PackageUsage, record},
};

use super::{
    DynamoUsageStore,
    items::{RecordItem, decode_record_item},
    keys::*,
};

impl RecordItem for PackageUsage {
    const WHAT: &'static str = "usage package";
    const SK: &'static str = PACKAGE_SK;

    fn owner(&self) -> (String, String) {
        let id = self.package_instance_id.clone();
        (package_pk(&id), id)
    }

    fn version(&self) -> u64 {
        self.version
    }

    fn set_version(&mut self, version: u64) {
        self.version = version;
    }

    fn encode(&self) -> Result<Vec<u8>, StoreError> {
        record::encode_package(self)
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        record::decode_package(bytes).map_err(|e| e.to_string())
    }
}

impl DynamoUsageStore {
    /// A package's usage; `None` also for a hold alone (no `data`).
    pub(super) async fn read_package(
        &self,
        package_instance_id: &str,
    ) -> Result<Option<PackageUsage>, StoreError> {
        match self
            .table
            .get_item(&package_pk(package_instance_id), PACKAGE_SK)
            .await?
        {
            Some(item) => decode_record_item(&item),
            None => Ok(None),
        }
    }
}
