//! Usage packages (docs/protocol/openapi.md §3.2, docs/protocol/callbacks.md §6.2 and §8.2): 按需套餐包
//! (on-demand package: KooGallery deducts usage from the package, overage billed on demand) and
//! 用完即停 (stop when used up: the vendor deducts, and stops the service when the quota is gone).
//!
//! The vendor's app names the package a report consumes (`packageInstanceId`, beside the on-demand
//! `instanceId`). Every package keeps what was used from it per on-demand instance: queryInstance
//! on the package reports one `usageInfo` entry per instance (`relatedInstanceId`). A package
//! whose quota is known is a stop-when-used-up package: its usage gets windows of its own (records
//! with `relate_pkg_instance`), a report that needs more than is left is refused, and the report
//! that uses the last of it makes the vendor hear `quotaExhausted`.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::{instance::Instance, order::ChargingMode};

/// The packages a batch names, each with its quota: `Some` for a stop-when-used-up package,
/// `None` for an on-demand package (KooGallery deducts; nothing to enforce here).
pub type PackageQuotas = HashMap<String, Option<Decimal>>;

/// What has been used from one package.
#[derive(Debug, Clone, PartialEq)]
pub struct PackageUsage {
    pub package_instance_id: String,
    /// Stop-when-used-up packages only: how much the package holds.
    pub quota: Option<Decimal>,
    /// Used per on-demand instance (queryInstance's `relatedInstanceId`).
    pub used: BTreeMap<String, Decimal>,
    /// Reports applied.
    pub reports: u64,
    pub last_reported_at: DateTime<Utc>,
    /// When the last of the quota was used.
    pub exhausted_at: Option<DateTime<Utc>>,
    /// Optimistic concurrency: bumped by every save.
    pub version: u64,
}

impl PackageUsage {
    /// Nothing used yet.
    pub fn new(package_instance_id: &str, quota: Option<Decimal>, now: DateTime<Utc>) -> Self {
        Self {
            package_instance_id: package_instance_id.to_owned(),
            quota,
            used: BTreeMap::new(),
            reports: 0,
            last_reported_at: now,
            exhausted_at: None,
            version: 0,
        }
    }

    pub fn used_total(&self) -> Decimal {
        self.used.values().copied().sum()
    }

    /// What is left of a stop-when-used-up package's quota.
    pub fn remaining(&self) -> Option<Decimal> {
        self.quota
            .map(|q| (q - self.used_total()).max(Decimal::ZERO))
    }
}

/// The extension parameter a package order may carry its quota in (liberal: UNCONFIRMED whether
/// KooGallery sends one; docs/protocol/openapi.md §3.2 only says the quota comes with the package).
pub const QUOTA_PARAM: &str = "packageQuota";

/// The quota per unit of each stop-when-used-up package SKU (`KOOGALLERY_PACKAGE_QUOTAS`, a JSON
/// object of SKU code to a decimal string): what one unit of the SKU holds, in the on-demand
/// SKU's metering unit. A package order's quota is that times the order's quantity (1 if none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageQuotaList(pub BTreeMap<String, String>);

impl PackageQuotaList {
    /// Parses and checks a quota list: every quota a positive decimal.
    pub fn from_json(json: &str) -> Result<Self, String> {
        let list: Self = serde_json::from_str(json).map_err(|e| e.to_string())?;
        for (sku, quota) in &list.0 {
            match quota.parse::<Decimal>() {
                Ok(q) if q > Decimal::ZERO => {}
                _ => {
                    return Err(format!(
                        "SKU {sku}: quota {quota:?} is not a positive decimal"
                    ));
                }
            }
        }
        Ok(list)
    }

    /// The quota of a package instance: the order's own `packageQuota` parameter when it carries
    /// one, else the SKU's quota per unit times the order's quantity. `None`: an on-demand
    /// package (or a stop-when-used-up SKU nobody configured: its records then go without
    /// `relate_pkg_instance`, and KooGallery's refusal is kept and reported like any other).
    pub fn quota_of(&self, package: &Instance) -> Option<Decimal> {
        let order = package.order.as_ref()?;
        let from_order = order
            .extend_params
            .iter()
            .find(|(name, _)| name == QUOTA_PARAM)
            .and_then(|(_, v)| v.trim().parse::<Decimal>().ok())
            .filter(|q| *q > Decimal::ZERO);
        if from_order.is_some() {
            return from_order;
        }
        let per_unit: Decimal = self.0.get(order.sku_code.as_deref()?)?.parse().ok()?;
        let units = order
            .quantity
            .and_then(|q| Decimal::try_from(q).ok())
            .filter(|q| *q > Decimal::ZERO)
            .unwrap_or(Decimal::ONE);
        // The quantity is KooGallery's order data: a product past what a decimal holds is a quota
        // no usage can reach, not a panic.
        Some(per_unit.checked_mul(units).unwrap_or(Decimal::MAX))
    }
}

/// Whether an instance was bought as a package (`ON_DEMAND_PKG`, chargingMode 5).
pub fn is_package(instance: &Instance) -> bool {
    instance
        .order
        .as_ref()
        .is_some_and(|o| o.charging_mode == Some(ChargingMode::OnDemandPkg))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An order quantity near what a decimal holds, times the SKU's quota per unit, overflowed.
    #[test]
    fn a_huge_order_quantity_gives_a_huge_quota_not_a_panic() {
        let list = PackageQuotaList::from_json(r#"{"sku-pkg":"1000"}"#).unwrap();
        let (mut package, _) =
            Instance::new_provisioning(&"O".into(), &"O-1".into(), "pkg", false, Utc::now());
        package.order = Some(crate::order::OrderDetails {
            charging_mode: Some(ChargingMode::OnDemandPkg),
            sku_code: Some("sku-pkg".into()),
            quantity: Some(5e28),
            ..Default::default()
        });
        assert_eq!(list.quota_of(&package), Some(Decimal::MAX));
        package.order.as_mut().unwrap().quantity = Some(3.0);
        assert_eq!(list.quota_of(&package), Some(Decimal::from(3000)));
    }
}
