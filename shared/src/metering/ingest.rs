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

mod apply;
mod batch;
mod check;

pub use apply::{Applied, Loaded, apply, instances_of, touched};
pub use batch::ingest_batch;
pub use check::{check_batch, check_instances};

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{HORIZON, MAX_DECIMALS, PackageQuotas, WindowKey, window_start};
use crate::storage::StoreError;

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
