//! One instance's usage in one UTC hour, and its way to KooGallery (docs/protocol/openapi.md §3,
//! docs/protocol/decisions.md §8): open, sealed (its record frozen before the first push),
//! accepted or rejected.

use chrono::{DateTime, Duration, DurationRound, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{WINDOW, WindowKey, metering_sn};

/// One instance's usage in one UTC hour, and how far it got towards KooGallery.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageWindow {
    pub instance_id: String,
    pub start: DateTime<Utc>,
    /// The stop-when-used-up package the usage was deducted from (`relate_pkg_instance`).
    pub package: Option<String>,
    /// The sum of the reports applied (each idempotency key once).
    pub total: Decimal,
    /// How many reports were applied.
    pub reports: u64,
    /// When the first and the last report were applied (ingestion time).
    pub first_reported_at: DateTime<Utc>,
    pub last_reported_at: DateTime<Utc>,
    pub state: WindowState,
    /// Optimistic concurrency, as for instances: bumped by every save.
    pub version: u64,
}

/// Where a window is on its way to KooGallery.
#[derive(Debug, Clone, PartialEq)]
pub enum WindowState {
    /// Still taking reports.
    Open,
    /// Frozen: this record, and nothing else, is what KooGallery gets for the window.
    Sealed(Sealed),
    /// KooGallery answered `MKT.0000` for a push carrying the record.
    Accepted { sealed: Sealed, at: DateTime<Utc> },
    /// KooGallery refused the record itself (alone in its push); kept and reported, not retried.
    Rejected {
        sealed: Sealed,
        code: String,
        message: String,
        at: DateTime<Utc>,
    },
}

/// A window's record as frozen at sealing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sealed {
    pub metering_sn: String,
    pub value: Decimal,
    /// `record_time`: when the record was made (sealing time), sent unchanged on every retry.
    pub record_time: DateTime<Utc>,
    /// `begin_time` is the hour's start plus this many seconds: 0, but for the first hour of an
    /// instance, which begins at the instance's start (docs/protocol/openapi.md §3 rule 3: see
    /// [`UsageWindow::seal_from`]), and for package windows (see [`UsageWindow::seal_package`]).
    pub begin_offset_secs: u32,
    /// `end_time` when the instance was released within the hour (docs/protocol/openapi.md §3 rule
    /// 3: a closed resource's records end by its close); otherwise the hour's end.
    pub ends_at: Option<DateTime<Utc>>,
    /// Push attempts that did not settle the window (outage, 5xx, fallback host down, …).
    pub failed_pushes: u32,
    /// The last failure, for the operator.
    pub last_error: Option<String>,
}

impl UsageWindow {
    /// A fresh, open window for `key`, first reported at `now`.
    pub fn open(key: &WindowKey, now: DateTime<Utc>) -> Self {
        Self {
            instance_id: key.instance_id.clone(),
            start: key.start,
            package: key.package.clone(),
            total: Decimal::ZERO,
            reports: 0,
            first_reported_at: now,
            last_reported_at: now,
            state: WindowState::Open,
            version: 0,
        }
    }

    pub fn key(&self) -> WindowKey {
        WindowKey {
            instance_id: self.instance_id.clone(),
            start: self.start,
            package: self.package.clone(),
        }
    }

    /// The window's end (exclusive), `end_time` of its record.
    pub fn end(&self) -> DateTime<Utc> {
        self.start + WINDOW
    }

    /// Whether `other` adds up to the same (total, reports and when they were reported). Only
    /// ingestion changes that; a save that would is refused ([`store::UsageStore::save_window`]),
    /// which keeps [`UsageTotal`] equal to the sum of the windows.
    pub fn same_usage(&self, other: &UsageWindow) -> bool {
        (
            self.total,
            self.reports,
            self.first_reported_at,
            self.last_reported_at,
        ) == (
            other.total,
            other.reports,
            other.first_reported_at,
            other.last_reported_at,
        )
    }

    /// Still owed to KooGallery: open, or sealed and not yet settled.
    pub fn is_unsettled(&self) -> bool {
        matches!(self.state, WindowState::Open | WindowState::Sealed(_))
    }

    /// The frozen record, once sealed.
    pub fn sealed(&self) -> Option<&Sealed> {
        match &self.state {
            WindowState::Open => None,
            WindowState::Sealed(s)
            | WindowState::Accepted { sealed: s, .. }
            | WindowState::Rejected { sealed: s, .. } => Some(s),
        }
    }

    /// Freezes the window's content (`true`), unless it is already sealed. An open window with no
    /// usage is not sealed: nothing is pushed for an empty hour (docs/protocol/openapi.md §3:
    /// `usage_value` > 0). The record spans the hour: [`Self::seal_from`] with the instance's start
    /// when it is known.
    pub fn seal(&mut self, now: DateTime<Utc>) -> bool {
        self.seal_from(now, None)
    }

    /// [`Self::seal`] for an instance that started at `started_at`: the record of the hour it
    /// started in begins then, not at the hour's start (docs/protocol/openapi.md §3 rule 3: while a
    /// resource is open, `begin_time` is not before its start). Usage from before the start is
    /// refused at ingestion, so none falls outside the record.
    pub fn seal_from(&mut self, now: DateTime<Utc>, started_at: Option<DateTime<Utc>>) -> bool {
        let offset = self.start_offset(started_at);
        self.seal_at(now, offset)
    }

    /// Seconds from the hour's start to `started_at` when it falls within the hour, else 0.
    /// Truncated to the second: `begin_time` has whole seconds, and KooGallery's own times
    /// (`yyyyMMddHHmmss`) count a resource started at 19:59:08.300 as started at 19:59:08;
    /// rounding up could move the begin to the hour's end.
    fn start_offset(&self, started_at: Option<DateTime<Utc>>) -> u32 {
        started_at
            .filter(|t| *t > self.start && *t < self.end())
            .and_then(|t| u32::try_from((t - self.start).num_seconds()).ok())
            .unwrap_or(0)
    }

    /// Seals a package window whose siblings (the instance's other windows of the same hour) are
    /// `siblings`, for an instance that started at `started_at` ([`Self::seal_from`]).
    /// KooGallery keeps only the first of an instance's records with the same `begin_time` and
    /// `end_time` (docs/protocol/openapi.md §3, rule 5; UNCONFIRMED whether `relate_pkg_instance`
    /// takes part), so a package's record must never share both with the instance's own record or
    /// another package's. Chosen: the instance's own record begins at the hour's start (or, in its
    /// first hour, at the instance's start); each package's begins that many whole seconds later,
    /// the smallest offset no sealed sibling uses. Frozen with the rest of the record. The siblings
    /// are read by the one pass holding the push ([`store::UsageStore::claim_push`]), so no other
    /// pass picks the same offset meanwhile.
    pub fn seal_package(
        &mut self,
        now: DateTime<Utc>,
        started_at: Option<DateTime<Utc>>,
        siblings: &[UsageWindow],
    ) -> bool {
        let used: std::collections::BTreeSet<u32> = siblings
            .iter()
            .filter(|w| w.start == self.start && w.package != self.package)
            .filter_map(|w| w.sealed().map(|s| s.begin_offset_secs))
            .collect();
        let base = self.start_offset(started_at);
        let last = u32::try_from(WINDOW.num_seconds() - 1).unwrap_or(u32::MAX);
        let free = |k: &u32| !used.contains(k);
        // Within the hour, after the instance's start. An instance started in the hour's last
        // seconds, with more packages used in them than seconds left (hardly ever), gets a begin
        // before its start rather than a sibling's range, which KooGallery would drop unbilled.
        let offset = (base + 1..=last)
            .find(free)
            .or_else(|| (1..).find(free))
            .unwrap_or(1);
        self.seal_at(now, offset)
    }

    fn seal_at(&mut self, now: DateTime<Utc>, begin_offset_secs: u32) -> bool {
        if self.state != WindowState::Open || self.total <= Decimal::ZERO {
            return false;
        }
        self.state = WindowState::Sealed(Sealed {
            metering_sn: metering_sn(&self.instance_id, self.package.as_deref(), self.start),
            value: self.total,
            record_time: now,
            begin_offset_secs,
            ends_at: None,
            failed_pushes: 0,
            last_error: None,
        });
        true
    }

    /// The instance was released at `released_at`: a record sealed for the hour it was released
    /// in ends then (rounded up to the second, after its begin), not at the hour's end. Only
    /// while still unpushed: a record once sealed is otherwise never changed.
    pub fn close_at(&mut self, released_at: DateTime<Utc>) {
        let start = self.start;
        let end = self.end();
        if let WindowState::Sealed(s) = &mut self.state
            && s.failed_pushes == 0
            && released_at > start
            && released_at < end
        {
            let begin = start + Duration::seconds(i64::from(s.begin_offset_secs));
            let up = released_at
                .duration_round_up(Duration::seconds(1))
                .unwrap_or(released_at);
            s.ends_at = Some(up.max(begin + Duration::seconds(1)).min(end));
        }
    }

    /// KooGallery accepted the window's record.
    pub fn accept(&mut self, now: DateTime<Utc>) {
        if let WindowState::Sealed(s) = &self.state {
            self.state = WindowState::Accepted {
                sealed: s.clone(),
                at: now,
            };
        }
    }

    /// KooGallery refused the window's record for good.
    pub fn reject(&mut self, code: &str, message: &str, now: DateTime<Utc>) {
        if let WindowState::Sealed(s) = &self.state {
            self.state = WindowState::Rejected {
                sealed: s.clone(),
                code: code.to_owned(),
                message: message.to_owned(),
                at: now,
            };
        }
    }

    /// A push carrying the record did not settle it; it is retried as it is.
    pub fn push_failed(&mut self, error: &str) {
        if let WindowState::Sealed(s) = &mut self.state {
            s.failed_pushes = s.failed_pushes.saturating_add(1);
            s.last_error = Some(error.chars().take(500).collect());
        }
    }
}
