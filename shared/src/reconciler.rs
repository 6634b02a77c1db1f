//! The reconciler (docs/operations.md): a scheduled pass (EventBridge Scheduler on AWS, a timer in
//! the local host) that finds what the job queue lost and queues it again. A job can die outside
//! the worker (a crash loop at start-up, a redrive policy, a message that expired, an enqueue that
//! failed after the record was written); the record still says what is owed, so nothing stays
//! stuck: an instance provisioning with no claim and no recent attempt gets a `Provision` job, an
//! outbox with pending notices and no recent attempt a `Notify` job. Parked outboxes (a notice past
//! its deadline, waiting for an operator's redrive) are reported, not retried.
//!
//! Queuing again is always safe: the worker's claims make a duplicate job a no-op.

use std::{sync::Arc, time::Duration};

use crate::{
    clock::Clock,
    config::WorkerSettings,
    instance::{InstanceId, InstanceState, InstanceStore},
    jobs::{Job, JobQueue, QueueError},
    metrics::{Metric, Metrics},
    storage::StoreError,
};

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("cannot list unsettled instances: {0}")]
    Store(#[from] StoreError),
    #[error("cannot queue a job again: {0}")]
    Queue(#[from] QueueError),
}

/// What one pass found (and re-queued), by instance ID.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub stuck_provisioning: Vec<InstanceId>,
    pub undelivered_notices: Vec<InstanceId>,
    pub parked_outboxes: Vec<InstanceId>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.stuck_provisioning.is_empty()
            && self.undelivered_notices.is_empty()
            && self.parked_outboxes.is_empty()
    }
}

pub struct Reconciler {
    pub store: Arc<dyn InstanceStore>,
    pub queue: Arc<dyn JobQueue>,
    pub clock: Arc<dyn Clock>,
    pub settings: WorkerSettings,
    pub metrics: Arc<dyn Metrics>,
}

impl Reconciler {
    /// How long an instance may go untouched while something is owed before it counts as lost:
    /// longer than the longest backoff plus a claim, so a job that is merely waiting for its retry
    /// is left alone.
    pub fn stale_after(&self) -> Duration {
        self.settings.backoff_max + self.settings.claim_duration + self.settings.reconcile_grace
    }

    /// One pass: queue again what is stuck, report it in the log and as metrics.
    pub async fn run_once(&self) -> Result<Report, ReconcileError> {
        let now = self.clock.now();
        let stale =
            chrono::Duration::from_std(self.stale_after()).unwrap_or(chrono::Duration::hours(1));
        let mut report = Report::default();
        for instance in self.store.unsettled().await? {
            if now - instance.last_activity() < stale {
                continue;
            }
            let id = instance.instance_id.clone();
            if instance.state == InstanceState::Provisioning {
                self.queue
                    .enqueue(&Job::Provision {
                        instance_id: id.clone(),
                    })
                    .await?;
                report.stuck_provisioning.push(id);
            } else if let Some(&seq) = instance.outbox.pending.first() {
                if instance.outbox.parked {
                    report.parked_outboxes.push(id);
                    continue;
                }
                self.queue
                    .enqueue(&Job::Notify {
                        instance_id: id.clone(),
                        seq,
                    })
                    .await?;
                report.undelivered_notices.push(id);
            }
        }
        self.metrics.record(Metric::Reconciled {
            stuck_provisioning: report.stuck_provisioning.len() as u64,
            undelivered_notices: report.undelivered_notices.len() as u64,
            parked_outboxes: report.parked_outboxes.len() as u64,
        });
        if report.is_clean() {
            tracing::info!("reconciler: nothing stuck");
        } else {
            tracing::warn!(
                stuck_provisioning = ?report.stuck_provisioning,
                undelivered_notices = ?report.undelivered_notices,
                parked_outboxes = ?report.parked_outboxes,
                "reconciler: re-queued lost jobs; parked outboxes wait for a redrive of their dead letter"
            );
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        instance::{Instance, mutate},
        testing::{ManualClock, MemoryQueue, MemoryStore, RecordedMetrics, sample_access},
    };

    struct Bed {
        store: Arc<MemoryStore>,
        queue: Arc<MemoryQueue>,
        clock: Arc<ManualClock>,
        metrics: Arc<RecordedMetrics>,
        reconciler: Reconciler,
    }

    fn bed() -> Bed {
        let store = Arc::new(MemoryStore::new());
        let queue = Arc::new(MemoryQueue::new());
        let clock = Arc::new(ManualClock::at(
            crate::protocol::time::parse_compact("20261121000000").unwrap(),
        ));
        let metrics = Arc::new(RecordedMetrics::default());
        let reconciler = Reconciler {
            store: store.clone(),
            queue: queue.clone(),
            clock: clock.clone(),
            settings: WorkerSettings::default(),
            metrics: metrics.clone(),
        };
        Bed {
            store,
            queue,
            clock,
            metrics,
            reconciler,
        }
    }

    async fn create(b: &Bed, id: &str, test: bool) {
        let (i, ev) = Instance::new_provisioning(&id.into(), &"L".into(), id, test, b.clock.now());
        b.store.create_for_order_line(&i, &[ev]).await.unwrap();
    }

    /// A provisioning job that died outside the worker (its instance still
    /// provisioning, "enqueued", nobody working on it) is queued again, and so is an undelivered
    /// notice; what is merely waiting for its retry, and debug records, are left alone.
    #[tokio::test]
    async fn lost_jobs_are_queued_again_and_reported() {
        let b = bed();
        create(&b, "stuck", false).await;
        create(&b, "debug", true).await;
        create(&b, "notice", false).await;
        let now = b.clock.now();
        mutate(b.store.as_ref(), "notice", |i| {
            i.activate(sample_access("notice"), now)?;
            i.freeze(now)
        })
        .await
        .unwrap();
        // Fresh: everything may still be in the queue.
        assert!(b.reconciler.run_once().await.unwrap().is_clean());
        assert!(b.queue.is_empty());

        b.clock.advance(chrono::Duration::minutes(30));
        create(&b, "fresh", false).await;
        let report = b.reconciler.run_once().await.unwrap();
        assert_eq!(report.stuck_provisioning, ["stuck"]);
        assert_eq!(report.undelivered_notices, ["notice"]);
        let jobs = b.queue.take_all();
        assert!(jobs.contains(&Job::Provision {
            instance_id: "stuck".into()
        }));
        assert!(
            jobs.iter()
                .any(|j| matches!(j, Job::Notify { instance_id, .. } if instance_id == "notice"))
        );
        assert_eq!(
            jobs.len(),
            2,
            "not the fresh one, not the debug one: {jobs:?}"
        );
        assert_eq!(
            b.metrics.count(&Metric::Reconciled {
                stuck_provisioning: 1,
                undelivered_notices: 1,
                parked_outboxes: 0
            }),
            1
        );
    }

    /// A worker claim still running (or recently let go) means a job is alive: not stuck.
    #[tokio::test]
    async fn live_claims_and_parked_outboxes_are_not_requeued() {
        let b = bed();
        create(&b, "claimed", false).await;
        create(&b, "parked", false).await;
        b.clock.advance(chrono::Duration::hours(1));
        let now = b.clock.now();
        mutate(b.store.as_ref(), "claimed", |i| {
            i.claim_provisioning("t", now, chrono::Duration::minutes(2))
        })
        .await
        .unwrap();
        mutate(b.store.as_ref(), "parked", |i| {
            i.activate(sample_access("parked"), now)?;
            i.freeze(now)?;
            Ok(i.park_outbox())
        })
        .await
        .unwrap();
        b.clock.advance(chrono::Duration::minutes(1));
        let report = b.reconciler.run_once().await.unwrap();
        assert!(report.stuck_provisioning.is_empty(), "{report:?}");
        b.clock.advance(chrono::Duration::minutes(30));
        let report = b.reconciler.run_once().await.unwrap();
        assert_eq!(
            report.stuck_provisioning,
            ["claimed"],
            "the claim expired long ago"
        );
        assert_eq!(report.parked_outboxes, ["parked"]);
        assert!(report.undelivered_notices.is_empty());
        assert!(
            !b.queue
                .take_all()
                .iter()
                .any(|j| j.instance_id() == Some("parked"))
        );
    }
}
