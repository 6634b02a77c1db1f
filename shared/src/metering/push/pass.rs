//! One push pass (docs/protocol/openapi.md §3, docs/protocol/decisions.md §8): round after round,
//! the windows due are sealed (the hour an instance started in begins at its start, the hour it
//! was released in ends at its release, rule 3), those past KooGallery's 21-day horizon are kept
//! as rejected, and the rest are pushed, oldest first, until none is left, a push fails or the
//! deadline nears.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::refusals::Halt;
use super::{PassError, PushError, PushReport, ROUND_RESERVE, UsagePusher};
use crate::metering::{HORIZON, MAX_RECORDS_PER_PUSH, UsageWindow, WINDOW, WindowState};
use crate::{metrics::Metric, storage::StoreError};

/// When an instance started (the order reached this service: usage before it is refused at
/// ingestion) and, if released, was released.
struct Lifetime {
    started_at: DateTime<Utc>,
    released_at: Option<DateTime<Utc>>,
}

impl UsagePusher {
    pub(super) async fn pass(
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
            let read = due.len();
            // A round that settles nothing (every write lost a race) ends the pass: the next
            // pass reads the windows again.
            let progress = (report.sealed, report.accepted, report.rejected);
            let lifetimes = self.lifetimes(&due).await?;
            let (mut ready, sealed) = self.seal_due(due, now, &lifetimes).await?;
            report.sealed += sealed;
            ready.sort_by_key(|w| (w.end(), w.key()));
            let batch = self.set_expired_aside(ready, now, &mut report).await?;
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
            // Fewer windows than asked for are all the store had due, and each one settled: a
            // next round would read nothing. (One that turns due since is the next pass's, as
            // one the index lags on is.)
            let settled = report.accepted + report.rejected - progress.1 - progress.2;
            if read < MAX_RECORDS_PER_PUSH && settled == read {
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

    /// Seals the open windows among `due` (a package's window with its siblings, as stored and as
    /// sealed just now), each from its instance's start and to its release, and saves them. The
    /// windows ready to push: those already sealed, then those saved now; and how many were sealed.
    async fn seal_due(
        &self,
        due: Vec<UsageWindow>,
        now: DateTime<Utc>,
        lifetimes: &HashMap<String, Lifetime>,
    ) -> Result<(Vec<UsageWindow>, usize), StoreError> {
        // Sealed, rejected and kept in memory first, then saved in one call.
        let mut sealing: Vec<UsageWindow> = Vec::new();
        let mut ready: Vec<UsageWindow> = Vec::new();
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
                                    w.instance_id == window.instance_id && w.start == window.start
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
            if let Some(released_at) = lifetimes.get(&w.instance_id).and_then(|l| l.released_at) {
                w.close_at(released_at);
            }
        }
        let saved = self.save_all(&mut sealing).await?;
        let sealed = saved.len();
        ready.extend(saved);
        Ok((ready, sealed))
    }

    /// Keeps the windows past KooGallery's 21-day horizon as rejected (it would refuse them,
    /// `MKT.9004`) and counts those near it; returns the rest, to push.
    async fn set_expired_aside(
        &self,
        ready: Vec<UsageWindow>,
        now: DateTime<Utc>,
        report: &mut PushReport,
    ) -> Result<Vec<UsageWindow>, StoreError> {
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
        Ok(batch)
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
                lifetimes.insert(i.instance_id.clone().into(), lifetime);
            }
        }
        Ok(lifetimes)
    }
}
