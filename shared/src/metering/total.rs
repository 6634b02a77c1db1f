//! An instance's usage in all (docs/protocol/callbacks.md §6.2 `usageInfo`): the sum of its
//! hourly windows, kept in the same write as the windows it sums.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::UsageWindow;

/// What an instance used in all: the sum of its windows (its own and its packages'), kept by the
/// store in the same write as the windows it sums, so that queryInstance's `usageInfo` reads one
/// record per instance however many hours it has (docs/protocol/callbacks.md §6.2).
#[derive(Debug, Clone, PartialEq)]
pub struct UsageTotal {
    pub instance_id: String,
    /// The sum of the windows' totals.
    pub total: Decimal,
    /// The sum of the windows' reports.
    pub reports: u64,
    /// How many windows there are.
    pub windows: u64,
    /// The latest of the windows' `last_reported_at`.
    pub last_reported_at: DateTime<Utc>,
    /// Optimistic concurrency, as for windows: bumped by every save.
    pub version: u64,
}

impl UsageTotal {
    /// Nothing reported yet.
    pub fn new(instance_id: &str, now: DateTime<Utc>) -> Self {
        Self {
            instance_id: instance_id.to_owned(),
            total: Decimal::ZERO,
            reports: 0,
            windows: 0,
            last_reported_at: now,
            version: 0,
        }
    }

    /// The total of `windows` (an instance's, as [`UsageStore::windows_of`](super::UsageStore::windows_of) gives them): how a
    /// store builds the total of data written before totals were kept. `None` without windows.
    pub fn of_windows(instance_id: &str, windows: &[UsageWindow]) -> Option<Self> {
        let mut ours = windows.iter().filter(|w| w.instance_id == instance_id);
        let first = ours.next()?;
        let mut total = Self {
            last_reported_at: first.last_reported_at,
            ..Self::new(instance_id, first.last_reported_at)
        };
        for w in std::iter::once(first).chain(ours) {
            total.total += w.total;
            total.reports += w.reports;
            total.windows += 1;
            total.last_reported_at = total.last_reported_at.max(w.last_reported_at);
        }
        Some(total)
    }

    /// Whether it sums the same as `other`, versions aside.
    pub fn same_sums(&self, other: &Self) -> bool {
        Self {
            version: 0,
            ..self.clone()
        } == Self {
            version: 0,
            ..other.clone()
        }
    }
}
