//! Usage reports from the vendor's application (issue 9): what a report is, the rules a batch must
//! pass before anything is stored, and how reports are applied to their windows.
//!
//! A batch is all or nothing: one bad report refuses the batch with its index and reason, and
//! nothing is stored. Each report carries the app's own idempotency key; a repeat of a key with the
//! same content is applied once (and counted as a duplicate), with other content it is refused.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{MAX_DECIMALS, UsageWindow, WindowKey, WindowState, max_window_value, window_start};
use crate::{
    instance::{Instance, InstanceState},
    storage::StoreError,
};

/// At most this many reports per ingested batch.
pub const MAX_BATCH: usize = 1000;

/// The longest idempotency key accepted.
pub const MAX_KEY_LEN: usize = 128;

/// How far ahead of this host's clock a report's time may be (the app's clock may run ahead).
pub const FUTURE_TOLERANCE: Duration = Duration::seconds(5);

/// One usage report: `quantity` of the instance's metered unit, used at `occurred_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageReport {
    pub instance_id: String,
    pub quantity: Decimal,
    pub occurred_at: DateTime<Utc>,
    /// The app's own key for this report: a repeat is applied once.
    pub idempotency_key: String,
}

impl UsageReport {
    pub fn window(&self) -> WindowKey {
        WindowKey {
            instance_id: self.instance_id.clone(),
            start: window_start(self.occurred_at),
        }
    }

    fn key_record(&self) -> KeyRecord {
        KeyRecord {
            instance_id: self.instance_id.clone(),
            quantity: self.quantity.normalize(),
            occurred_at: self.occurred_at,
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
}

/// What an ingested batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IngestOutcome {
    /// Reports added to their windows.
    pub applied: usize,
    /// Repeats of keys already applied: nothing added.
    pub duplicates: usize,
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
    #[error("instance {0} is released: it takes no more usage")]
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
    }
    Ok(())
}

/// The checks against the instances the batch names (`instances`: those found).
pub fn check_instances(
    reports: &[UsageReport],
    instances: &HashMap<String, Instance>,
) -> Result<(), IngestError> {
    for (index, r) in reports.iter().enumerate() {
        let refuse = |reason| Err(IngestError::Invalid { index, reason });
        let Some(instance) = instances.get(&r.instance_id) else {
            return refuse(Refusal::UnknownInstance(r.instance_id.clone()));
        };
        if instance.test {
            return refuse(Refusal::Debug(r.instance_id.clone()));
        }
        if instance.state == InstanceState::Released {
            return refuse(Refusal::Released(r.instance_id.clone()));
        }
        if r.occurred_at < instance.created_at {
            return refuse(Refusal::BeforeInstance(
                r.occurred_at.to_rfc3339(),
                r.instance_id.clone(),
            ));
        }
    }
    Ok(())
}

/// What [`apply`] changed, for the adapter to write in one transaction.
#[derive(Debug, Default)]
pub struct Applied {
    pub outcome: IngestOutcome,
    /// Keys to remember.
    pub new_keys: Vec<(String, KeyRecord)>,
    /// Windows to write (created or added to).
    pub changed: Vec<WindowKey>,
}

/// Applies a checked batch to its windows. `windows` holds every stored window the batch touches
/// (the adapter loads them by [`UsageReport::window`]); missing ones are opened. `known` holds the
/// stored records of the batch's keys. Pure: on `Err` the caller writes nothing.
pub fn apply(
    reports: &[UsageReport],
    windows: &mut HashMap<WindowKey, UsageWindow>,
    known: &HashMap<String, KeyRecord>,
    now: DateTime<Utc>,
) -> Result<Applied, IngestError> {
    let mut applied = Applied::default();
    let mut batch_keys: HashMap<&str, KeyRecord> = HashMap::new();
    let mut changed = std::collections::HashSet::new();
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
        let key = r.window();
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
        window.total = total;
        if window.reports == 0 {
            window.first_reported_at = now;
        }
        window.reports += 1;
        window.last_reported_at = now;
        if changed.insert(key.clone()) {
            applied.changed.push(key);
        }
        batch_keys.insert(&r.idempotency_key, record.clone());
        applied.new_keys.push((r.idempotency_key.clone(), record));
        applied.outcome.applied += 1;
    }
    Ok(applied)
}

/// Ingests a batch: the batch checks, the instances it names (read in one pass of at most 100
/// IDs per read), then the store's atomic apply. Nothing is stored unless all of it is.
pub async fn ingest_batch(
    instances: &dyn crate::instance::InstanceStore,
    usage: &dyn super::UsageStore,
    reports: &[UsageReport],
    now: DateTime<Utc>,
) -> Result<IngestOutcome, IngestError> {
    check_batch(reports, now)?;
    let mut ids: Vec<&str> = reports.iter().map(|r| r.instance_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut found = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(100) {
        for instance in instances.get_many(chunk).await? {
            found.insert(instance.instance_id.clone(), instance);
        }
    }
    check_instances(reports, &found)?;
    usage.ingest(reports, now).await
}
