//! Usage reports from the vendor's application: what a report is, the rules a batch must
//! pass before anything is stored, and how reports are applied to their windows.
//!
//! A batch is all or nothing: one bad report refuses the batch with its index and reason, and
//! nothing is stored. Each report carries the app's own idempotency key; a repeat of a key with the
//! same content is applied once (and counted as a duplicate), with other content it is refused.
//!
//! Keys are kept for [`KeyRecord::keep_until`]: 22 days after their report's hour. By then a
//! repeat is refused anyway, as too old to bill ([`Refusal::BeyondHorizon`]: KooGallery takes no
//! record more than 21 days old, docs/protocol/openapi.md §3), so dropping the key loses nothing.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{
    HORIZON, MAX_DECIMALS, PackageQuotas, PackageUsage, UsageTotal, UsageWindow, WindowKey,
    WindowState, max_window_value,
    package::{PackageQuotaList, is_package},
    window_start,
};
use crate::{
    instance::{Instance, InstanceId, InstanceState, Outcome},
    jobs::{Job, JobQueue},
    storage::StoreError,
};

/// At most this many reports per ingested batch.
pub const MAX_BATCH: usize = 1000;

/// The longest idempotency key accepted.
pub const MAX_KEY_LEN: usize = 128;

/// How far ahead of this host's clock a report's time may be (the app's clock may run ahead).
pub const FUTURE_TOLERANCE: Duration = Duration::seconds(5);

/// A report whose hour starts within this of KooGallery's 21-day horizon is refused: its record
/// could not be sealed and pushed before KooGallery stops taking it (`MKT.9004`).
pub const HORIZON_SLACK: Duration = Duration::hours(1);

/// How long after the horizon an idempotency key is still kept ([`KeyRecord::keep_until`]).
pub const KEY_MARGIN: Duration = Duration::days(1);

/// Keys past their retention a store drops per batch beyond the number the batch adds: purging
/// keeps pace with ingestion, and no batch does unbounded work.
pub const KEY_PURGE_BATCH: usize = 64;

/// One usage report: `quantity` of the instance's metered unit, used at `occurred_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageReport {
    pub instance_id: String,
    pub quantity: Decimal,
    pub occurred_at: DateTime<Utc>,
    /// The app's own key for this report: a repeat is applied once.
    pub idempotency_key: String,
    /// The package (an `ON_DEMAND_PKG` instance) the usage is deducted from, if any.
    pub package_instance_id: Option<String>,
}

impl UsageReport {
    /// The report's window: a stop-when-used-up package (one with a quota in `quotas`) is a
    /// dimension of its own; an on-demand package is not (KooGallery deducts from it).
    pub fn window(&self, quotas: &PackageQuotas) -> WindowKey {
        let package = self
            .package_instance_id
            .as_ref()
            .filter(|p| quotas.get(p.as_str()).is_some_and(Option::is_some))
            .cloned();
        WindowKey {
            instance_id: self.instance_id.clone(),
            start: window_start(self.occurred_at),
            package,
        }
    }

    fn key_record(&self) -> KeyRecord {
        KeyRecord {
            instance_id: self.instance_id.clone(),
            quantity: self.quantity.normalize(),
            occurred_at: self.occurred_at,
            package_instance_id: self.package_instance_id.clone(),
        }
    }
}

/// What an idempotency key was first used for: a repeat must match it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRecord {
    pub instance_id: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub quantity: Decimal,
    pub occurred_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_instance_id: Option<String>,
}

impl KeyRecord {
    /// Until when the key must be kept: [`KEY_MARGIN`] past the horizon of its report's hour.
    /// From [`HORIZON_SLACK`] before the horizon, [`check_batch`] refuses a repeat before any key
    /// is read, so a store may drop the key after this.
    pub fn keep_until(&self) -> DateTime<Utc> {
        window_start(self.occurred_at) + HORIZON + KEY_MARGIN
    }
}

/// What an ingested batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestOutcome {
    /// Reports added to their windows.
    pub applied: usize,
    /// Repeats of keys already applied: nothing added.
    pub duplicates: usize,
    /// Stop-when-used-up packages the batch names whose quota is now used up (by this batch or
    /// before): the service they pay for stops.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exhausted_packages: Vec<String>,
}

/// Why a batch was refused. Nothing of it was stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the batch has no reports")]
    Empty,
    #[error("the batch has {got} reports; at most {MAX_BATCH} per batch")]
    TooMany { got: usize },
    #[error("report {index}: {reason}")]
    Invalid { index: usize, reason: Refusal },
    /// The store could not be reached: worth retrying the whole batch (it is idempotent).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IngestError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Store(e) if e.is_retryable())
    }
}

/// Why one report is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("instance {0} is unknown")]
    UnknownInstance(String),
    #[error("instance {0} is released: it takes no usage from after its release")]
    Released(String),
    #[error("instance {0} is a debug instance: KooGallery bills no usage for it")]
    Debug(String),
    #[error("quantity must be greater than 0, got {0}")]
    NotPositive(String),
    #[error("quantity {0} has more than {MAX_DECIMALS} decimals")]
    TooManyDecimals(String),
    #[error("quantity {0} is larger than one hour's record can carry (Double(12,4))")]
    TooLarge(String),
    #[error("occurredAt {0} is in the future")]
    Future(String),
    #[error(
        "occurredAt {0} is too old: KooGallery bills no usage record older than 21 days, and this hour's could not reach it in time"
    )]
    BeyondHorizon(String),
    #[error("occurredAt {0} is before instance {1} was created")]
    BeforeInstance(String, String),
    #[error(
        "the hour starting {start} of instance {instance} was already reported to KooGallery; usage must arrive within the grace period after its hour"
    )]
    WindowReported { instance: String, start: String },
    #[error(
        "the hour starting {start} of instance {instance} would exceed what one record can carry"
    )]
    WindowFull { instance: String, start: String },
    #[error("idempotencyKey must be 1 to {MAX_KEY_LEN} characters")]
    BadKey,
    #[error("idempotencyKey {0} was already used for a different report")]
    KeyReused(String),
    #[error("packageInstanceId {0} is not a package instance (ON_DEMAND_PKG)")]
    NotAPackage(String),
    #[error("package {0} is used up: usage for it stops until the customer buys a new package")]
    QuotaExhausted(String),
    #[error(
        "package {package} has {left} left, the report needs {quantity}: report what it holds, and the rest against a new package"
    )]
    QuotaExceeded {
        package: String,
        left: String,
        quantity: String,
    },
}

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
    instances: &HashMap<InstanceId, Instance>,
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

/// What [`apply`] changed, for the adapter to write in one transaction.
#[derive(Debug, Default)]
pub struct Applied {
    pub outcome: IngestOutcome,
    /// Keys to remember.
    pub new_keys: Vec<(String, KeyRecord)>,
    /// Windows to write (created or added to).
    pub changed: Vec<WindowKey>,
    /// Packages to write (added to).
    pub changed_packages: Vec<String>,
    /// Instances whose [`UsageTotal`] to write (in the same transaction as their windows).
    pub changed_totals: Vec<String>,
}

/// What a store loads before [`apply`]: every stored window, idempotency key and package the
/// batch touches, and the [`UsageTotal`] of every instance it names (missing ones are simply
/// absent). A store that holds windows written before totals were kept must load the total it
/// builds from them ([`UsageTotal::of_windows`]) rather than leave it absent: absent means no
/// window at all.
#[derive(Debug, Default, Clone)]
pub struct Loaded {
    pub windows: HashMap<WindowKey, UsageWindow>,
    pub keys: HashMap<String, KeyRecord>,
    pub packages: HashMap<String, PackageUsage>,
    pub totals: HashMap<String, UsageTotal>,
}

/// The windows, keys and packages a batch touches, for the store to load.
pub fn touched(
    reports: &[UsageReport],
    quotas: &PackageQuotas,
) -> (Vec<WindowKey>, Vec<String>, Vec<String>) {
    let mut windows: Vec<WindowKey> = reports.iter().map(|r| r.window(quotas)).collect();
    windows.sort();
    windows.dedup();
    let mut keys: Vec<String> = reports.iter().map(|r| r.idempotency_key.clone()).collect();
    keys.sort();
    keys.dedup();
    let mut packages: Vec<String> = quotas.keys().cloned().collect();
    packages.sort();
    (windows, keys, packages)
}

/// The instances a batch names (whose [`UsageTotal`]s the store loads), sorted.
pub fn instances_of(reports: &[UsageReport]) -> Vec<String> {
    let mut ids: Vec<String> = reports.iter().map(|r| r.instance_id.clone()).collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Applies a checked batch to what the store loaded: missing windows and packages are opened.
/// Pure: on `Err` the caller writes nothing.
pub fn apply(
    reports: &[UsageReport],
    quotas: &PackageQuotas,
    loaded: &mut Loaded,
    now: DateTime<Utc>,
) -> Result<Applied, IngestError> {
    let Loaded {
        windows,
        keys: known,
        packages,
        totals,
    } = loaded;
    let mut applied = Applied::default();
    let mut batch_keys: HashMap<&str, KeyRecord> = HashMap::new();
    let mut changed = std::collections::HashSet::new();
    let mut changed_packages = std::collections::HashSet::new();
    let mut changed_totals = std::collections::HashSet::new();
    for (index, r) in reports.iter().enumerate() {
        let refuse = |reason| Err(IngestError::Invalid { index, reason });
        let record = r.key_record();
        let seen = known
            .get(&r.idempotency_key)
            .or_else(|| batch_keys.get(r.idempotency_key.as_str()));
        if let Some(seen) = seen {
            if *seen != record {
                return refuse(Refusal::KeyReused(r.idempotency_key.clone()));
            }
            applied.outcome.duplicates += 1;
            continue;
        }
        if let Some(package_id) = &r.package_instance_id {
            let quota = quotas.get(package_id).copied().flatten();
            let package = packages
                .entry(package_id.clone())
                .or_insert_with(|| PackageUsage::new(package_id, quota, now));
            // The quota as first seen stays the package's (a later change of configuration
            // does not rewrite what was sold).
            if let Some(left) = package.remaining() {
                if package.exhausted_at.is_some() || left.is_zero() {
                    return refuse(Refusal::QuotaExhausted(package_id.clone()));
                }
                if r.quantity > left {
                    return refuse(Refusal::QuotaExceeded {
                        package: package_id.clone(),
                        left: left.normalize().to_string(),
                        quantity: r.quantity.normalize().to_string(),
                    });
                }
            }
            *package.used.entry(r.instance_id.clone()).or_default() += r.quantity;
            package.reports += 1;
            package.last_reported_at = now;
            if package.remaining().is_some_and(|left| left.is_zero()) {
                package.exhausted_at = Some(now);
            }
            if changed_packages.insert(package_id.clone()) {
                applied.changed_packages.push(package_id.clone());
            }
        }
        let key = r.window(quotas);
        let window = windows
            .entry(key.clone())
            .or_insert_with(|| UsageWindow::open(&key, now));
        if window.state != WindowState::Open {
            return refuse(Refusal::WindowReported {
                instance: key.instance_id.clone(),
                start: key.start.to_rfc3339(),
            });
        }
        let total = window.total + r.quantity;
        if total > max_window_value() {
            return refuse(Refusal::WindowFull {
                instance: key.instance_id.clone(),
                start: key.start.to_rfc3339(),
            });
        }
        let new_window = window.reports == 0;
        window.total = total;
        if new_window {
            window.first_reported_at = now;
        }
        window.reports += 1;
        // The latest, whatever order batches with skewed clocks commit in: the instance's
        // total keeps the same maximum (`UsageTotal::last_reported_at`).
        window.last_reported_at = window.last_reported_at.max(now);
        let sum = totals
            .entry(r.instance_id.clone())
            .or_insert_with(|| UsageTotal::new(&r.instance_id, now));
        sum.total += r.quantity;
        sum.reports += 1;
        sum.windows += u64::from(new_window);
        sum.last_reported_at = sum.last_reported_at.max(now);
        if changed_totals.insert(r.instance_id.clone()) {
            applied.changed_totals.push(r.instance_id.clone());
        }
        if changed.insert(key.clone()) {
            applied.changed.push(key);
        }
        batch_keys.insert(&r.idempotency_key, record.clone());
        applied.new_keys.push((r.idempotency_key.clone(), record));
        applied.outcome.applied += 1;
    }
    applied.outcome.exhausted_packages = quotas
        .keys()
        .filter(|p| packages.get(*p).is_some_and(|u| u.exhausted_at.is_some()))
        .cloned()
        .collect();
    applied.outcome.exhausted_packages.sort();
    Ok(applied)
}

/// Ingests a batch: the batch checks, the instances and packages it names (read in one pass of
/// at most 100 IDs per read), then the store's atomic apply. Nothing is stored unless all of it
/// is. Every used-up package the batch names (now or before, or refused for it) gets its
/// `quotaExhausted` notice recorded, once, and the drain of its outbox queued on `jobs` so the
/// vendor hears it within seconds: a notice missed by a crash is made by the next batch that
/// names the package.
pub async fn ingest_batch(
    instances: &dyn crate::instance::InstanceStore,
    usage: &dyn super::UsageStore,
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
    usage: &dyn super::UsageStore,
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
