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

use std::{collections::HashMap, sync::Arc};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;

use super::{HORIZON, MAX_RECORDS_PER_PUSH, UsageStore, UsageWindow, WINDOW, WindowState};
use crate::{
    clock::Clock,
    metrics::{Metric, Metrics},
    storage::StoreError,
};

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

/// Refused pushes in a row a batch may meet beyond the `⌈log2 n⌉ + 1` that isolate one record of
/// `n`, before the pusher probes with the batch's newest record (a few records at fault next to
/// each other need a few more).
pub const SYSTEMIC_MARGIN: u32 = 4;

/// Refused pushes in a row after which a batch of `n` records probes, then stops as systemic.
pub fn refusal_limit(n: usize) -> u32 {
    let isolate = usize::BITS - n.saturating_sub(1).leading_zeros() + 1;
    isolate + SYSTEMIC_MARGIN
}

/// Why a batch's pushes stopped the pass.
#[derive(Debug, thiserror::Error)]
enum Halt {
    /// A push failed (outage, credentials).
    #[error(transparent)]
    Failed(PushError),
    /// KooGallery refused every record tried: nothing singles a record out.
    #[error(
        "KooGallery refused every usage record tried ({code} {message}); kept pending, retried by the next pass"
    )]
    Systemic { code: String, message: String },
}

/// A part of a batch to push: its windows, oldest first, and whether each of them was already
/// refused alone before KooGallery accepted another push (refused alone again, it is rejected).
struct Part {
    windows: Vec<UsageWindow>,
    recheck: bool,
}

/// When an instance started (the order reached this service: usage before it is refused at
/// ingestion) and, if released, was released.
struct Lifetime {
    started_at: DateTime<Utc>,
    released_at: Option<DateTime<Utc>>,
}

/// A record KooGallery refused alone, not yet judged.
struct Suspect {
    window: UsageWindow,
    code: String,
    message: String,
}

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

    async fn pass(
        &self,
        now: DateTime<Utc>,
        deadline: DateTime<Utc>,
    ) -> Result<PushReport, PassError> {
        let mut report = PushReport::default();
        let ended_by = now - self.settings.grace;
        loop {
            if self.clock.now() + ROUND_RESERVE >= deadline {
                report.stopped = Some("the pass's deadline is near; the next pass goes on".into());
                break;
            }
            let due = self.store.due(ended_by, MAX_RECORDS_PER_PUSH).await?;
            if due.is_empty() {
                break;
            }
            // A round that settles nothing (every write lost a race) ends the pass: the next
            // pass reads the windows again.
            let progress = (report.sealed, report.accepted, report.rejected);
            // Sealed, rejected and kept in memory first, then saved in one call.
            let mut sealing: Vec<UsageWindow> = Vec::new();
            let mut ready: Vec<UsageWindow> = Vec::new();
            let lifetimes = self.lifetimes(&due).await?;
            for mut window in due {
                if window.state == WindowState::Open {
                    let started_at = lifetimes.get(&window.instance_id).map(|l| l.started_at);
                    let sealed = match &window.package {
                        None => window.seal_from(now, started_at),
                        Some(_) => {
                            // The siblings as stored (earlier passes) and as sealed just now.
                            let mut siblings = self
                                .store
                                .windows_at(&window.instance_id, window.start)
                                .await?;
                            siblings.extend(
                                sealing
                                    .iter()
                                    .filter(|w| {
                                        w.instance_id == window.instance_id
                                            && w.start == window.start
                                    })
                                    .cloned(),
                            );
                            window.seal_package(now, started_at, &siblings)
                        }
                    };
                    if sealed {
                        sealing.push(window);
                    }
                    continue;
                }
                ready.push(window);
            }
            for w in &mut sealing {
                if let Some(released_at) = lifetimes.get(&w.instance_id).and_then(|l| l.released_at)
                {
                    w.close_at(released_at);
                }
            }
            let saved = self.save_all(&mut sealing).await?;
            report.sealed += saved.len();
            ready.extend(saved);
            ready.sort_by_key(|w| (w.end(), w.key()));
            let mut expired = Vec::new();
            let mut batch = Vec::with_capacity(ready.len());
            for mut window in ready {
                if window.start + WINDOW <= now - HORIZON {
                    // KooGallery would refuse it (`MKT.9004`): kept as rejected, not sent.
                    window.reject("MKT.9004", "not sent: older than the 21-day horizon", now);
                    expired.push(window);
                    continue;
                }
                if window.start + WINDOW <= now - (HORIZON - self.settings.horizon_warning) {
                    report.near_horizon += 1;
                }
                batch.push(window);
            }
            for _ in self.save_all(&mut expired).await? {
                report.rejected += 1;
                self.metrics.record(Metric::UsageRejected);
            }
            if !batch.is_empty()
                && let Err(halt) = self.push_split(batch, &mut report, now).await?
            {
                report.stopped = Some(halt.to_string());
                match halt {
                    Halt::Failed(PushError::Misconfigured(_)) => {
                        self.metrics.record(Metric::UsagePushMisconfigured)
                    }
                    Halt::Systemic { .. } => self.metrics.record(Metric::UsagePushSystemicRefusal),
                    Halt::Failed(_) => {}
                }
                break;
            }
            if progress == (report.sealed, report.accepted, report.rejected) {
                break;
            }
        }
        if report.near_horizon > 0 {
            tracing::error!(
                windows = report.near_horizon,
                "usage windows approach KooGallery's 21-day horizon unpushed"
            );
        }
        self.metrics.record(Metric::UsagePass {
            accepted: report.accepted as u64,
            rejected: report.rejected as u64,
            deferred: report.deferred as u64,
            near_horizon: report.near_horizon as u64,
        });
        Ok(report)
    }

    /// Pushes `batch` (oldest first); a refusal splits it in halves until the records at fault
    /// are alone, and a record refused alone is rejected only when KooGallery refuses it alone
    /// again after accepting another push (the module's documentation has the whole rule).
    /// `Ok(Err(_))`: the pass should stop; the windows not settled are marked and stay pending.
    async fn push_split(
        &self,
        batch: Vec<UsageWindow>,
        report: &mut PushReport,
        now: DateTime<Utc>,
    ) -> Result<Result<(), Halt>, StoreError> {
        let limit = refusal_limit(batch.len());
        let mut stack = vec![Part {
            windows: batch,
            recheck: false,
        }];
        // Refused alone, not yet judged: pushed again (`recheck`) after KooGallery next accepts.
        let mut suspects: Vec<Suspect> = Vec::new();
        // The last record KooGallery accepted: pushed again, unchanged (a duplicate KooGallery
        // drops, docs/protocol/openapi.md §3 rule 5, as for any retry), it shows whether KooGallery
        // still accepts records when nothing else is left to compare the suspects with.
        let mut witness: Option<UsageWindow> = None;
        // Refused pushes since the last accepted one.
        let mut streak = 0u32;
        let halt = loop {
            let probe = streak >= limit || (stack.is_empty() && !suspects.is_empty());
            let (mut part, is_witness) = if probe {
                // The newest record left alone, as far from the refusals as the batch goes, or
                // else the witness.
                if let Some(w) = stack.first_mut().and_then(|p| p.windows.pop()) {
                    let part = Part {
                        windows: vec![w],
                        recheck: false,
                    };
                    stack.retain(|p| !p.windows.is_empty());
                    (part, false)
                } else if let Some(w) = witness.take() {
                    let part = Part {
                        windows: vec![w],
                        recheck: false,
                    };
                    (part, true)
                } else {
                    // Every record tried was refused: nothing singles one out.
                    let (code, message) = suspects
                        .last()
                        .map(|s| (s.code.clone(), s.message.clone()))
                        .unwrap_or_default();
                    break Some(Halt::Systemic { code, message });
                }
            } else {
                match stack.pop() {
                    Some(part) => (part, false),
                    None => break None,
                }
            };
            let records: Vec<PushRecord> = part.windows.iter().filter_map(PushRecord::of).collect();
            report.pushes += 1;
            match self.sink.push(&records).await {
                Ok(PushAnswer::Accepted) => {
                    streak = 0;
                    if !is_witness {
                        for w in &mut part.windows {
                            w.accept(now);
                        }
                        part.windows = self.save_all(&mut part.windows).await?;
                        report.accepted += part.windows.len();
                    }
                    witness = part.windows.pop().or(witness);
                    if !suspects.is_empty() {
                        // Refused alone before this acceptance: once more, now.
                        stack.push(Part {
                            windows: suspects.drain(..).map(|s| s.window).collect(),
                            recheck: true,
                        });
                    }
                }
                Ok(PushAnswer::Refused { code, message }) => {
                    streak += 1;
                    if part.windows.len() > 1 {
                        let second = part.windows.split_off(part.windows.len() / 2);
                        // The older half first: the stack pops the last pushed.
                        stack.push(Part {
                            windows: second,
                            recheck: part.recheck,
                        });
                        stack.push(part);
                    } else if part.recheck {
                        // Refused alone before and after KooGallery accepted other records.
                        let w = &mut part.windows[0];
                        tracing::error!(instance_id = %w.instance_id, start = %w.start, %code, %message,
                            "KooGallery refused a usage record; kept as rejected");
                        w.reject(&code, &message, now);
                        if self.save(w).await? {
                            report.rejected += 1;
                            self.metrics.record(Metric::UsageRejected);
                        }
                    } else if !is_witness {
                        suspects.extend(part.windows.drain(..).map(|window| Suspect {
                            window,
                            code: code.clone(),
                            message: message.clone(),
                        }));
                    }
                    if probe {
                        break Some(Halt::Systemic { code, message });
                    }
                }
                Err(e) => {
                    if !is_witness {
                        stack.push(part);
                    }
                    break Some(Halt::Failed(e));
                }
            }
        };
        let Some(halt) = halt else {
            return Ok(Ok(()));
        };
        let mut left: Vec<UsageWindow> = suspects
            .into_iter()
            .map(|s| s.window)
            .chain(stack.into_iter().flat_map(|p| p.windows))
            .collect();
        match &halt {
            Halt::Failed(e) => {
                tracing::warn!(error = %e, records = left.len(), "usage push failed; retried by the next pass");
                self.metrics.record(Metric::UsagePushFailed);
            }
            Halt::Systemic { code, message } => {
                tracing::error!(%code, %message, records = left.len(), pushes = report.pushes,
                    "KooGallery refused every usage record tried; kept pending, retried by the next pass");
            }
        }
        let why = halt.to_string();
        for w in &mut left {
            w.push_failed(&why);
        }
        report.deferred += left.len();
        self.save_all(&mut left).await?;
        Ok(Err(halt))
    }

    /// When the instances of the open windows among `due` started and, if released, were
    /// released: the record of the hour an instance started in begins at its start, that of the
    /// hour it was released in ends at its release (docs/protocol/openapi.md §3 rule 3). Empty
    /// without [`Self::instances`] (records then span their hours).
    async fn lifetimes(
        &self,
        due: &[UsageWindow],
    ) -> Result<HashMap<String, Lifetime>, StoreError> {
        let mut lifetimes = HashMap::new();
        let Some(instances) = &self.instances else {
            return Ok(lifetimes);
        };
        let mut ids: Vec<&str> = due
            .iter()
            .filter(|w| w.state == WindowState::Open)
            .map(|w| w.instance_id.as_str())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        for chunk in ids.chunks(100) {
            for i in instances.get_many(chunk).await? {
                let lifetime = Lifetime {
                    started_at: i.created_at,
                    released_at: i.released_at(),
                };
                lifetimes.insert(i.instance_id.into(), lifetime);
            }
        }
        Ok(lifetimes)
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
