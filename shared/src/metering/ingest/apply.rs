//! Applying a checked batch of usage reports to what the store loaded: each report added once (a
//! repeat of its idempotency key is a duplicate), to its hourly window, its instance's total and
//! its package's quota. Pure: the store writes the result in one transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{IngestError, IngestOutcome, KeyRecord, Refusal, UsageReport};
use crate::metering::{
    PackageQuotas, PackageUsage, UsageTotal, UsageWindow, WindowKey, WindowState, max_window_value,
};

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
            if let Err(reason) = charge_package(packages, package_id, quotas, r, now) {
                return refuse(reason);
            }
            if changed_packages.insert(package_id.clone()) {
                applied.changed_packages.push(package_id.clone());
            }
        }
        let key = r.window(quotas);
        let new_window = match add_to_window(windows, &key, r, now) {
            Ok(new_window) => new_window,
            Err(reason) => return refuse(reason),
        };
        add_to_total(totals, r, new_window, now);
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
    applied.outcome.exhausted_packages = exhausted_packages(quotas, packages);
    Ok(applied)
}

/// Adds `r` to its instance's total (opened if missing), with one window more when `r` opened
/// its window.
fn add_to_total(
    totals: &mut HashMap<String, UsageTotal>,
    r: &UsageReport,
    new_window: bool,
    now: DateTime<Utc>,
) {
    let sum = totals
        .entry(r.instance_id.clone())
        .or_insert_with(|| UsageTotal::new(&r.instance_id, now));
    sum.total += r.quantity;
    sum.reports += 1;
    sum.windows += u64::from(new_window);
    sum.last_reported_at = sum.last_reported_at.max(now);
}

/// The packages the batch names (`quotas`) whose quota is used up, by this batch or before,
/// sorted: the service they pay for stops.
fn exhausted_packages(
    quotas: &PackageQuotas,
    packages: &HashMap<String, PackageUsage>,
) -> Vec<String> {
    let mut exhausted: Vec<String> = quotas
        .keys()
        .filter(|p| packages.get(*p).is_some_and(|u| u.exhausted_at.is_some()))
        .cloned()
        .collect();
    exhausted.sort();
    exhausted
}

/// Deducts `r` from its package's quota (the package opened if missing); notes when the package
/// is used up. Refused when it is used up already or holds less than `r`.
fn charge_package(
    packages: &mut HashMap<String, PackageUsage>,
    package_id: &str,
    quotas: &PackageQuotas,
    r: &UsageReport,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    let quota = quotas.get(package_id).copied().flatten();
    let package = packages
        .entry(package_id.to_owned())
        .or_insert_with(|| PackageUsage::new(package_id, quota, now));
    // The quota as first seen stays the package's (a later change of configuration
    // does not rewrite what was sold).
    if let Some(left) = package.remaining() {
        if package.exhausted_at.is_some() || left.is_zero() {
            return Err(Refusal::QuotaExhausted(package_id.to_owned()));
        }
        if r.quantity > left {
            return Err(Refusal::QuotaExceeded {
                package: package_id.to_owned(),
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
    Ok(())
}

/// Adds `r` to the window `key` (opened if missing); `true` when the window is new. Refused when
/// the window is sealed already or its record would overflow.
fn add_to_window(
    windows: &mut HashMap<WindowKey, UsageWindow>,
    key: &WindowKey,
    r: &UsageReport,
    now: DateTime<Utc>,
) -> Result<bool, Refusal> {
    let window = windows
        .entry(key.clone())
        .or_insert_with(|| UsageWindow::open(key, now));
    if window.state != WindowState::Open {
        return Err(Refusal::WindowReported {
            instance: key.instance_id.clone(),
            start: key.start.to_rfc3339(),
        });
    }
    let total = window.total + r.quantity;
    if total > max_window_value() {
        return Err(Refusal::WindowFull {
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
    Ok(new_window)
}
