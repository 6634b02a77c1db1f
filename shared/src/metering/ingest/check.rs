//! The rules a batch of usage reports must pass before anything is stored: those that need only
//! the batch and the clock (size, idempotency key, quantity, time, KooGallery's 21-day horizon,
//! docs/protocol/openapi.md §3), then those against the instances and packages it names.

use std::{collections::HashMap, sync::Arc};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::{
    FUTURE_TOLERANCE, HORIZON_SLACK, IngestError, MAX_BATCH, MAX_KEY_LEN, Refusal, UsageReport,
};
use crate::instance::{Instance, InstanceId, InstanceState};
use crate::metering::{
    HORIZON, MAX_DECIMALS, PackageQuotas, max_window_value,
    package::{PackageQuotaList, is_package},
    window_start,
};

/// The checks that need nothing but the batch and the clock.
pub fn check_batch(reports: &[UsageReport], now: DateTime<Utc>) -> Result<(), IngestError> {
    if reports.is_empty() {
        return Err(IngestError::Empty);
    }
    if reports.len() > MAX_BATCH {
        return Err(IngestError::TooMany { got: reports.len() });
    }
    for (index, r) in reports.iter().enumerate() {
        let refuse = |reason| Err(IngestError::Invalid { index, reason });
        if r.idempotency_key.is_empty() || r.idempotency_key.chars().count() > MAX_KEY_LEN {
            return refuse(Refusal::BadKey);
        }
        if r.quantity <= Decimal::ZERO {
            return refuse(Refusal::NotPositive(r.quantity.to_string()));
        }
        if r.quantity.normalize().scale() > MAX_DECIMALS {
            return refuse(Refusal::TooManyDecimals(r.quantity.to_string()));
        }
        if r.quantity > max_window_value() {
            return refuse(Refusal::TooLarge(r.quantity.to_string()));
        }
        if r.occurred_at > now + FUTURE_TOLERANCE {
            return refuse(Refusal::Future(r.occurred_at.to_rfc3339()));
        }
        if window_start(r.occurred_at) <= now - HORIZON + HORIZON_SLACK {
            return refuse(Refusal::BeyondHorizon(r.occurred_at.to_rfc3339()));
        }
    }
    Ok(())
}

/// The checks against the instances the batch names (`instances`: those found, packages
/// included), and the packages' quotas (`quota_list`).
pub fn check_instances(
    reports: &[UsageReport],
    instances: &HashMap<InstanceId, Arc<Instance>>,
    quota_list: &PackageQuotaList,
) -> Result<PackageQuotas, IngestError> {
    let mut quotas = PackageQuotas::new();
    for (index, r) in reports.iter().enumerate() {
        let refuse = |reason| Err(IngestError::Invalid { index, reason });
        let Some(instance) = instances.get(r.instance_id.as_str()) else {
            return refuse(Refusal::UnknownInstance(r.instance_id.clone()));
        };
        if instance.test {
            return refuse(Refusal::Debug(r.instance_id.clone()));
        }
        // Usage from before the release may still arrive (the app batches, retries): it is
        // taken, and its hour's record ends at the release (docs/protocol/openapi.md §3 rule 3).
        if instance
            .released_at()
            .is_some_and(|released| r.occurred_at >= released)
        {
            return refuse(Refusal::Released(r.instance_id.clone()));
        }
        if r.occurred_at < instance.created_at {
            return refuse(Refusal::BeforeInstance(
                r.occurred_at.to_rfc3339(),
                r.instance_id.clone(),
            ));
        }
        let Some(package_id) = &r.package_instance_id else {
            continue;
        };
        let Some(package) = instances.get(package_id.as_str()) else {
            return refuse(Refusal::UnknownInstance(package_id.clone()));
        };
        if package.test {
            return refuse(Refusal::Debug(package_id.clone()));
        }
        if package.state == InstanceState::Released {
            return refuse(Refusal::Released(package_id.clone()));
        }
        if !is_package(package) {
            return refuse(Refusal::NotAPackage(package_id.clone()));
        }
        quotas
            .entry(package_id.clone())
            .or_insert_with(|| quota_list.quota_of(package));
    }
    Ok(quotas)
}
