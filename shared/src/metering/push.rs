//! The usage push (docs/protocol/openapi.md §3, docs/protocol/decisions.md §8): every window whose
//! hour is over (plus a grace period) is sealed and pushed, oldest first, at most 1000 records per
//! call, until KooGallery accepts or refuses it. A pass that meets an outage stops and the next
//! pass resumes from the oldest unsettled window, so an outage of any length is caught up.
//!
//! A refused push is split in halves until the records at fault are alone. KooGallery's refusal
//! codes do not say whether one record or the whole request is at fault (`MKT.0100` input
//! validation, `MKT.0101`, `MKT.0199`, docs/protocol/openapi.md §8), so the pusher tells them apart
//! by comparison: a record is rejected for good only when KooGallery refuses it alone both before
//! and after accepting another push of the batch (it singles that record out). A refusal that hits
//! every record tried, or refused pushes in a row beyond what isolating one record takes (then a
//! probe with the newest record is refused too), is systemic: the pass stops, the windows stay
//! pending and unchanged, `UsagePushSystemicRefusals` raises the alarm, and the next pass tries
//! again.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;

mod pass;
mod refusals;

pub use refusals::{SYSTEMIC_MARGIN, refusal_limit};

use super::{UsageStore, UsageWindow};
use crate::{clock::Clock, metrics::Metrics, storage::StoreError};

/// One record as KooGallery receives it (docs/protocol/openapi.md §3 `UsagePushData`), from a
/// sealed window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRecord {
    pub instance_id: String,
    pub metering_sn: String,
    pub value: Decimal,
    pub begin: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub record_time: DateTime<Utc>,
    /// `relate_pkg_instance`: the stop-when-used-up package the usage is deducted from.
    pub package: Option<String>,
}

impl PushRecord {
    /// The window's frozen record; `None` while it is open.
    pub fn of(window: &UsageWindow) -> Option<Self> {
        let sealed = window.sealed()?;
        Some(Self {
            instance_id: window.instance_id.clone(),
            metering_sn: sealed.metering_sn.clone(),
            value: sealed.value,
            begin: window.start + chrono::Duration::seconds(i64::from(sealed.begin_offset_secs)),
            end: sealed.ends_at.unwrap_or_else(|| window.end()),
            record_time: sealed.record_time,
            package: window.package.clone(),
        })
    }
}

/// KooGallery's answer to one push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushAnswer {
    /// `MKT.0000`: every record of the push was received.
    Accepted,
    /// A refusal about the push's content (`MKT.9001` unknown instance, `MKT.9002` invalid
    /// usage, `MKT.9004` out of range, `MKT.0150` another seller's instance, `MKT.01xx`
    /// parameters), of one record or of every record: the pusher tells which by splitting the
    /// push (see the module's documentation).
    Refused { code: String, message: String },
}

/// A push that settled nothing; the records are pushed again, unchanged, by a later pass.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// Network failure, timeout, 5xx, `MKT.0999` or `MKT.0250` on the primary and fallback hosts.
    #[error("KooGallery's usage push is unavailable: {0}")]
    Unavailable(String),
    /// KooGallery refused the credentials or the body signature (`MKT.0102`, `MKT.0151`,
    /// `MKT.0154`, HTTP 401/403): an operator must fix the keys.
    #[error("the usage push is misconfigured: {0}")]
    Misconfigured(String),
}

/// Where pushes go: KooGallery's open API (`koogallery-openapi`), or a fake.
#[async_trait]
pub trait UsageSink: Send + Sync {
    /// One usage push of at most [`MAX_RECORDS_PER_PUSH`] records, with fresh `ts`, `nonce` and
    /// signatures, on the fallback host when the primary cannot be reached.
    async fn push(&self, records: &[PushRecord]) -> Result<PushAnswer, PushError>;
}

/// How the pusher runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushSettings {
    /// How long after its hour a window still takes reports before it is sealed and pushed.
    /// KooGallery wants an hour's usage within minutes 0–15 of the next hour
    /// (docs/protocol/openapi.md §3).
    pub grace: Duration,
    /// Windows this close to the 21-day horizon raise `UsageNearHorizon` (days before it is lost).
    pub horizon_warning: Duration,
}

impl Default for PushSettings {
    fn default() -> Self {
        Self {
            grace: Duration::minutes(5),
            horizon_warning: Duration::days(3),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PushReport {
    pub sealed: usize,
    pub pushes: usize,
    pub accepted: usize,
    pub rejected: usize,
    /// Windows left for the next pass because a push failed.
    pub deferred: usize,
    /// Unsettled windows within `horizon_warning` of the 21-day horizon.
    pub near_horizon: usize,
    /// The pass stopped on an outage or a misconfiguration, or near its deadline.
    pub stopped: Option<String>,
    /// Another pass held the push: this one did nothing.
    pub skipped: bool,
}

/// The hourly push over a usage store and a sink.
pub struct UsagePusher {
    pub store: Arc<dyn UsageStore>,
    pub sink: Arc<dyn UsageSink>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<dyn Metrics>,
    pub settings: PushSettings,
    /// Where instances' start and release times are read, so the record of the hour an instance
    /// started in begins at its start, and that of the hour it was released in ends at its
    /// release (docs/protocol/openapi.md §3 rule 3). `None`: records span the hour.
    pub instances: Option<Arc<dyn crate::instance::InstanceStore>>,
}

/// Why a pass could not finish for a reason of its own (the store); push failures are reported.
#[derive(Debug, thiserror::Error)]
#[error("usage push pass failed: {0}")]
pub struct PassError(#[from] pub StoreError);

/// How long a pass started by [`UsagePusher::run_once`] holds the push (one process pushing: the
/// local hosts).
pub const PASS_CLAIM: Duration = Duration::minutes(5);

/// A pass starts no round (a push of up to 1000 records and its saves) this close to its deadline,
/// so it normally ends, and gives the claim up, before the deadline.
pub const ROUND_RESERVE: Duration = Duration::seconds(10);

impl UsagePusher {
    /// [`Self::run_until`] [`PASS_CLAIM`] from now.
    pub async fn run_once(&self) -> Result<PushReport, PassError> {
        self.run_until(self.clock.now() + PASS_CLAIM).await
    }

    /// Seals and pushes every due window, oldest first, until none is left, a push fails or
    /// `deadline` nears, holding the push ([`UsageStore::claim_push`]) until `deadline`. A pass
    /// that finds the push held by another does nothing (`skipped`). On Lambda the deadline is the
    /// invocation's: the function cannot outlive its claim, so two passes never overlap.
    pub async fn run_until(&self, deadline: DateTime<Utc>) -> Result<PushReport, PassError> {
        let holder = uuid::Uuid::new_v4().to_string();
        let now = self.clock.now();
        if !self.store.claim_push(&holder, now, deadline).await? {
            tracing::info!("another usage push pass holds the push; this one skips");
            return Ok(PushReport {
                skipped: true,
                ..PushReport::default()
            });
        }
        let report = self.pass(now, deadline).await;
        if let Err(e) = self.store.release_push(&holder).await {
            // The claim lapses at the deadline by itself.
            tracing::warn!(error = %e, "cannot give the usage push claim up");
        }
        report
    }

    /// Saves `windows` (each with compare-and-set) and returns those saved, their versions bumped;
    /// a window another writer changed first is dropped here and read again by the next round or
    /// pass.
    async fn save_all(
        &self,
        windows: &mut Vec<UsageWindow>,
    ) -> Result<Vec<UsageWindow>, StoreError> {
        if windows.is_empty() {
            return Ok(Vec::new());
        }
        let saved = self.store.save_windows(windows).await?;
        Ok(std::mem::take(windows)
            .into_iter()
            .zip(saved)
            .filter_map(|(mut w, ok)| {
                ok.then(|| {
                    w.version += 1;
                    w
                })
            })
            .collect())
    }

    /// Saves with compare-and-set; `false` when another writer was first (the window is read again
    /// by the next round or pass).
    async fn save(&self, window: &mut UsageWindow) -> Result<bool, StoreError> {
        match self.store.save_window(window).await {
            Ok(()) => {
                window.version += 1;
                Ok(true)
            }
            Err(StoreError::Conflict) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests;
