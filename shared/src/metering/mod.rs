//! Pay-per-use metering (docs/protocol/openapi.md §3 and §3.2, docs/protocol/callbacks.md §6.2
//! and §8.2, docs/protocol/decisions.md §8): the usage the vendor's application reports, kept per
//! (instance, UTC hour) window, and pushed to KooGallery once per window so that no hour is billed
//! twice or lost.
//!
//! ```text
//! report ──ingest──▶ open window ──seal (hour over + grace)──▶ sealed ──push──▶ accepted
//!   (idempotency key,    (sum, counts)      content frozen:                 └─▶ rejected (MKT code
//!    applied once)                          metering_sn, value, record_time      kept, reported)
//! ```
//!
//! A window's content is frozen when it is sealed, before its first push: every retry resends the
//! very same record (same `metering_sn`, window and value; only `ts`, `nonce` and the signatures
//! are fresh), and usage reported for an hour already sealed is refused with a clear error rather
//! than changing what KooGallery may already hold.

use chrono::{DateTime, Duration, DurationRound, Utc};
use rust_decimal::Decimal;

pub mod api;
pub mod estimate;
pub mod ingest;
pub mod package;
pub mod pricing;
pub mod push;
pub mod record;
pub mod store;
mod total;
mod window;

pub use ingest::{IngestError, IngestOutcome, UsageReport};
pub use package::{PackageQuotas, PackageUsage};
pub use push::{PushAnswer, PushError, UsagePusher, UsageSink};
pub use store::{UsageStore, UsageStoreError};
pub use total::UsageTotal;
pub use window::{Sealed, UsageWindow, WindowState};

/// Metering windows are UTC hours (docs/protocol/openapi.md §3: hourly reporting; non-overlapping
/// windows).
pub const WINDOW: Duration = Duration::hours(1);

/// KooGallery refuses records whose `begin_time` is more than 21 days old (`MKT.9004`,
/// docs/protocol/openapi.md §3).
pub const HORIZON: Duration = Duration::days(21);

/// At most this many records per usage push (docs/protocol/openapi.md §3; `MKT.9003` beyond).
pub const MAX_RECORDS_PER_PUSH: usize = 1000;

/// `usage_value` is Double(12,4): at most 4 decimals (docs/protocol/openapi.md §3), and at most 8
/// integer digits.
pub const MAX_DECIMALS: u32 = 4;

/// The largest value one record (one window) can carry: 12 digits, 4 of them decimals.
pub fn max_window_value() -> Decimal {
    Decimal::new(999_999_999_999, MAX_DECIMALS)
}

/// The start of the UTC hour `t` falls in.
pub fn window_start(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(WINDOW).unwrap_or(t)
}

/// docs/protocol/decisions.md §8: `metering_sn` is UUIDv5 of (instance, dimension, window start),
/// so a retry, a restart or a second pusher computes the very same serial for the same window.
pub fn metering_sn(instance_id: &str, package: Option<&str>, start: DateTime<Utc>) -> String {
    /// This product's UUIDv5 namespace for metering serials (fixed: changing it would change the
    /// serials of windows already pushed).
    const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6b6f_6f67_616c_6c65_7279_2d75_7361_6765);
    let name = format!(
        "{instance_id}\n{}\n{}",
        package.unwrap_or(""),
        start.format("%Y%m%dT%H%M%SZ")
    );
    uuid::Uuid::new_v5(&NAMESPACE, name.as_bytes()).to_string()
}

/// The key of a window: the instance, the start of its hour and, for usage deducted from a
/// stop-when-used-up package, that package (its records carry `relate_pkg_instance`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WindowKey {
    pub instance_id: String,
    pub start: DateTime<Utc>,
    pub package: Option<String>,
}

impl WindowKey {
    /// The id a store keys the window's series by: the instance's, or `instance\npackage` for a
    /// package dimension (`\n` never occurs in KooGallery's IDs, and sorts before every printable
    /// character, so an instance's series are adjacent: see [`series_range`]).
    pub fn series(&self) -> String {
        series_id(&self.instance_id, self.package.as_deref())
    }
}

/// See [`WindowKey::series`].
pub fn series_id(instance_id: &str, package: Option<&str>) -> String {
    match package {
        None => instance_id.to_owned(),
        Some(p) => format!("{instance_id}\n{p}"),
    }
}

/// The bounds `[from, to)` of every series id of an instance (its own and its packages').
pub fn series_range(instance_id: &str) -> (String, String) {
    (instance_id.to_owned(), format!("{instance_id}\u{b}"))
}

#[cfg(test)]
mod tests;
