//! Ingesting a batch through the ports: the checks, the instances and packages it names, the
//! store's atomic apply, and each used-up package's `quotaExhausted` notice, recorded once and its
//! outbox drain queued.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{IngestError, IngestOutcome, Refusal, UsageReport, check_batch, check_instances};
use crate::instance::Outcome;
use crate::jobs::{Job, JobQueue};
use crate::metering::{PackageQuotas, PackageUsage, package::PackageQuotaList};

/// Ingests a batch: the batch checks, the instances and packages it names (read in one pass of
/// at most 100 IDs per read), then the store's atomic apply. Nothing is stored unless all of it
/// is. Every used-up package the batch names (now or before, or refused for it) gets its
/// `quotaExhausted` notice recorded, once, and the drain of its outbox queued on `jobs` so the
/// vendor hears it within seconds: a notice missed by a crash is made by the next batch that
/// names the package.
pub async fn ingest_batch(
    instances: &dyn crate::instance::InstanceStore,
    usage: &dyn crate::metering::UsageStore,
    jobs: &dyn JobQueue,
    quota_list: &PackageQuotaList,
    reports: &[UsageReport],
    now: DateTime<Utc>,
) -> Result<IngestOutcome, IngestError> {
    check_batch(reports, now)?;
    let mut ids: Vec<&str> = reports
        .iter()
        .flat_map(|r| {
            std::iter::once(r.instance_id.as_str()).chain(r.package_instance_id.as_deref())
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut found = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(100) {
        for instance in instances.get_many(chunk).await? {
            found.insert(instance.instance_id.clone(), instance);
        }
    }
    let quotas = check_instances(reports, &found, quota_list)?;
    match usage.ingest(reports, &quotas, now).await {
        Ok(outcome) => {
            for package in &outcome.exhausted_packages {
                notice_exhausted(instances, jobs, package, &quotas, now).await?;
            }
            Ok(outcome)
        }
        Err(IngestError::Invalid {
            index,
            reason: Refusal::QuotaExhausted(package),
        }) => {
            // Only a package used up as stored: one used up by the refused batch's own earlier
            // reports is not (nothing of the batch was stored), and its notice would stop a
            // service that still has quota.
            if used_up_as_stored(usage, &package, &quotas, now).await? {
                notice_exhausted(instances, jobs, &package, &quotas, now).await?;
            }
            Err(IngestError::Invalid {
                index,
                reason: Refusal::QuotaExhausted(package),
            })
        }
        Err(e) => Err(e),
    }
}

/// Whether `package` is used up as the store holds it (a package never used is, when its quota
/// is zero).
async fn used_up_as_stored(
    usage: &dyn crate::metering::UsageStore,
    package: &str,
    quotas: &PackageQuotas,
    now: DateTime<Utc>,
) -> Result<bool, IngestError> {
    let stored = usage
        .package(package)
        .await
        .map_err(IngestError::Store)?
        .unwrap_or_else(|| PackageUsage::new(package, quotas.get(package).copied().flatten(), now));
    Ok(stored.exhausted_at.is_some() || stored.remaining().is_some_and(|left| left.is_zero()))
}

/// Records a package's `quotaExhausted` notice (idempotent: the instance records it once) and,
/// when this call recorded it, queues the drain of the package's outbox.
async fn notice_exhausted(
    instances: &dyn crate::instance::InstanceStore,
    jobs: &dyn JobQueue,
    package: &str,
    quotas: &PackageQuotas,
    now: DateTime<Utc>,
) -> Result<(), IngestError> {
    let quota = quotas.get(package).copied().flatten().unwrap_or_default();
    let instance = match crate::instance::mutate(instances, package, |inst| {
        Ok(inst.quota_exhausted(quota, now))
    })
    .await
    {
        Ok((instance, Outcome::Changed(_))) => instance,
        // Recorded before: its drain was queued then (or the reconciler queues it).
        Ok(_) => return Ok(()),
        Err(crate::instance::DomainError::Store(e)) => return Err(IngestError::Store(e)),
        // Gone or released meanwhile: nothing left to stop.
        Err(_) => return Ok(()),
    };
    if let Some(job) = Job::drain(&instance)
        && let Err(e) = jobs.enqueue(&job).await
    {
        // The notice is in the package's outbox already, and the batch is applied: failing the
        // batch would not queue it again (a repeat finds the notice recorded). The reconciler
        // finds the undelivered notice and queues its drain; the vendor hears it minutes late,
        // never not at all.
        tracing::warn!(package_instance_id = package, error = %e,
            "could not queue the quotaExhausted notice; the reconciler will");
    }
    Ok(())
}
