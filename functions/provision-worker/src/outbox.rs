//! Each instance's outbox of lifecycle notices, drained strictly in `seq` order by one delivery at
//! a time.

use std::time::Duration;

use crate::{Budget, JobError, JobOutcome, Worker};
use koogallery::{
    instance::{
        DomainError, EventKind, Instance, InstanceEvent, NoticeStep, Outcome, RefreshScene, mutate,
    },
    metrics::Metric,
    provisioning::{LifecycleNotice, ProvisionError},
};

impl Worker {
    /// Delivers the instance's pending notices in `seq` order, as far as this delivery's budget of
    /// calls goes.
    pub(crate) async fn drain(
        &self,
        instance_id: &str,
        token: &str,
        budget: &mut Budget,
    ) -> Result<JobOutcome, JobError> {
        let lease = self.config.claim_lease();
        let mut delivered = 0;
        loop {
            let now = self.now();
            let mut step = NoticeStep::Idle;
            let taken = mutate(self.store.as_ref(), instance_id, |i| {
                step = i.next_notice(now);
                match step {
                    NoticeStep::Deliver(_) => i.claim_outbox(token, now, lease),
                    _ => Ok(Outcome::Unchanged),
                }
            })
            .await;
            let instance = match taken {
                Ok((instance, _)) => instance,
                Err(DomainError::Claimed { until, .. }) => {
                    return Ok(JobOutcome::Deferred(self.wait_until(until)));
                }
                Err(DomainError::NotFound(_)) if delivered > 0 => break,
                Err(e) => return Err(e.into()),
            };
            let seq = match step {
                NoticeStep::Idle => break,
                NoticeStep::WaitUntil(until) => {
                    return Ok(JobOutcome::Deferred(self.wait_until(until)));
                }
                // The provisioning job drains the outbox when it ends; this one (and, if it is
                // lost, the reconciler) looks again after the longest backoff.
                NoticeStep::AfterProvisioning => {
                    return Ok(JobOutcome::Deferred(self.config.backoff_max));
                }
                NoticeStep::Deliver(seq) => seq,
            };
            if !budget.take() {
                // This delivery made its calls; the next one continues where it stopped.
                mutate(self.store.as_ref(), instance_id, |i| {
                    Ok(i.release_outbox(token, now))
                })
                .await?;
                return Ok(JobOutcome::Deferred(Duration::from_secs(1)));
            }
            self.deliver(instance, seq, token).await?;
            delivered += 1;
        }
        Ok(if delivered > 0 {
            JobOutcome::Notified(delivered)
        } else {
            JobOutcome::AlreadyDone
        })
    }

    /// Delivers notice `seq` (the oldest pending) of `instance`, under this delivery's outbox
    /// claim.
    pub(crate) async fn deliver(
        &self,
        instance: Instance,
        seq: u64,
        token: &str,
    ) -> Result<(), JobError> {
        let instance_id = instance.instance_id.clone();
        let events = self
            .store
            .events(&instance_id)
            .await
            .map_err(DomainError::from)?;
        let Some(event) = events.into_iter().find(|e| e.seq == seq) else {
            // A pending notice without its event would block the outbox for ever: drop it, loudly.
            tracing::error!(
                instance_id = %instance_id,
                seq,
                "pending notice has no event in the history; skipped"
            );
            mutate(self.store.as_ref(), &instance_id, |i| {
                Ok(i.notice_delivered(seq, false))
            })
            .await?;
            return Ok(());
        };
        let instance = self.reread_changed_order(instance, &event).await?;
        let was_final = event.kind.is_final_notice();
        let sent = self
            .provisioner
            .notify(&LifecycleNotice { instance, event })
            .await;
        match sent {
            Ok(()) => {}
            Err(ProvisionError::Rejected { code, message }) => {
                tracing::warn!(instance_id = %instance_id, seq, %code, message, "vendor refused a lifecycle notice; not retried");
            }
            Err(e) => return Err(self.notice_failed(&instance_id, seq, token, e).await),
        }
        mutate(self.store.as_ref(), &instance_id, |i| {
            Ok(i.notice_delivered(seq, was_final))
        })
        .await?;
        self.metrics.record(Metric::NoticeDelivered);
        Ok(())
    }

    /// The orders that change what the buyer has are read again before the vendor is told
    /// (docs/protocol/callbacks.md §6.3, §6.6): an upgrade's order, a trial turned paid, a renewal
    /// that changes the spec. The instance keeps the new expiry, SKU and quantity; the event carries
    /// them.
    async fn reread_changed_order(
        &self,
        instance: Instance,
        event: &InstanceEvent,
    ) -> Result<Instance, JobError> {
        let reread = match &event.kind {
            EventKind::Upgraded {
                order_id,
                order_line_id,
            } => Some((order_id.clone(), order_line_id.clone())),
            // The refresh's own line; without one (an event kept before lines were), the
            // order's first line.
            EventKind::Refreshed {
                scene: RefreshScene::TrialToFormal | RefreshScene::RenewalChange,
                order_id,
                order_line_id,
                ..
            } => Some((order_id.clone(), order_line_id.clone().unwrap_or_default())),
            _ => None,
        };
        let Some((order_id, order_line_id)) = reread else {
            return Ok(instance);
        };
        // A V1 order is kept from the calls themselves (docs/protocol/callbacks.md §11).
        if instance.order.as_ref().is_some_and(|o| o.v1) {
            return Ok(instance);
        }
        match self
            .marketplace
            .query_order(&order_id, &order_line_id)
            .await
        {
            Ok(order) => {
                let (updated, _) = mutate(self.store.as_ref(), &instance.instance_id, |i| {
                    i.order = Some(order.clone());
                    Ok(Outcome::Quiet)
                })
                .await?;
                Ok(updated)
            }
            Err(e) if e.is_retryable() => Err(e.into()),
            Err(e) => {
                tracing::warn!(instance_id = %instance.instance_id, order_id = order_id.as_str(), error = %e, "changed order unreadable; notifying without it");
                Ok(instance)
            }
        }
    }

    /// A notice the vendor could not take: retried, until the notice deadline parks the outbox and
    /// dead-letters the job. Returns the job's error.
    async fn notice_failed(
        &self,
        instance_id: &str,
        seq: u64,
        token: &str,
        e: ProvisionError,
    ) -> JobError {
        let now = self.now();
        if let ProvisionError::Misconfigured(why) = &e {
            tracing::error!(
                instance_id = %instance_id,
                why = %why,
                "the vendor's endpoint is misconfigured; notices keep retrying"
            );
            self.metrics.record(Metric::ProvisionerMisconfigured);
        }
        self.metrics.record(Metric::NoticeRetries);
        let deadline = self.config.notice_deadline;
        let mut parked = false;
        let stored = mutate(self.store.as_ref(), instance_id, |i| {
            let since = i.notice_failed(token, now);
            parked = (now - since).to_std().unwrap_or_default() >= deadline;
            Ok(if parked {
                i.park_outbox()
            } else {
                Outcome::Quiet
            })
        })
        .await;
        if let Err(e) = stored {
            return e.into();
        }
        if parked {
            tracing::error!(
                instance_id = %instance_id,
                seq,
                "notice not delivered before its deadline; the job is dead-lettered and the outbox parked until it is redriven"
            );
            self.metrics.record(Metric::NoticeDeadlinePassed);
            return JobError::NoticeDeadline { seq, source: e };
        }
        JobError::Provisioner(e)
    }
}
