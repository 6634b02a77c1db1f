//! Package usage: its item, one per package in its own partition, and its read.

use koogallery::{
    StoreError,
    metering::{PackageUsage, record},
};

use super::{
    DynamoUsageStore,
    items::{decode_record_item, record_item},
    keys::*,
};
use crate::dynamo::attr::Item;

pub(super) fn package_item(p: &PackageUsage) -> Result<Item, StoreError> {
    record_item(
        package_pk(&p.package_instance_id),
        PACKAGE_SK,
        p.version,
        record::encode_package(p)?,
    )
}

/// A package's usage from its item; `None` for a hold alone (no `data`).
pub(super) fn decode_package_item(item: &Item) -> Result<Option<PackageUsage>, StoreError> {
    decode_record_item(
        item,
        "usage package",
        |b| record::decode_package(b).map_err(|e| e.to_string()),
        |p: &PackageUsage| {
            let id = p.package_instance_id.clone();
            (package_pk(&id), id)
        },
        |p, v| p.version = v,
    )
}

impl DynamoUsageStore {
    pub(super) async fn read_package(
        &self,
        package_instance_id: &str,
    ) -> Result<Option<PackageUsage>, StoreError> {
        match self
            .get_item(package_pk(package_instance_id), PACKAGE_SK)
            .await?
        {
            Some(item) => decode_package_item(&item),
            None => Ok(None),
        }
    }
}
