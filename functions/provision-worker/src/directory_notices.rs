//! A `DirectoryNotice` job: the tenant directory's undelivered events, in sequence order; the SSO
//! sessions an event ends are ended first (docs/protocol/decisions.md §19).

use std::time::Duration;

use crate::{Budget, JobError, JobOutcome, Worker};
use koogallery::{metrics::Metric, provisioning::ProvisionError};

impl Worker {
    /// Delivers the tenant's pending directory events in `seq` order, each marked delivered once
    /// the vendor took it (or refused it: a refusal is final, like an order notice's). A failure
    /// stops the pass, so nothing is delivered out of order; the job is retried with backoff.
    pub(crate) async fn directory_notices(
        &self,
        key: &koogallery::directory::TenantKey,
        budget: &mut Budget,
    ) -> Result<JobOutcome, JobError> {
        let directory = self.directory.as_ref().ok_or(JobError::NoDirectory)?;
        let mut delivered = 0;
        loop {
            let pending = directory
                .pending_events(key, 20)
                .await
                .map_err(JobError::Directory)?;
            if pending.is_empty() {
                break;
            }
            for event in pending {
                if !budget.take() {
                    return Ok(JobOutcome::Deferred(Duration::from_secs(1)));
                }
                let seq = event.seq;
                // Sessions end before the vendor hears the change: a retry of this pass ends none
                // twice, and a vendor webhook that is down does not keep a revoked user signed in.
                if let (Some(sessions), Some(scope)) =
                    (&self.sessions, koogallery::sso::EndScope::of(&event.body))
                {
                    let ended = sessions
                        .end_sessions(key, &scope)
                        .await
                        .map_err(JobError::Directory)?;
                    if ended > 0 {
                        tracing::info!(
                            tenant_id = key.tenant_id.as_str(),
                            seq,
                            ended,
                            "SSO sessions ended by a directory event"
                        );
                    }
                }
                let notice = koogallery::provisioning::DirectoryNotice {
                    tenant: key.clone(),
                    event,
                };
                match self.provisioner.directory_changed(&notice).await {
                    Ok(()) => {}
                    Err(ProvisionError::Rejected { code, message }) => {
                        tracing::warn!(tenant_id = key.tenant_id.as_str(), seq, %code, message, "vendor refused a directory event; not retried");
                    }
                    Err(e) => {
                        self.metrics.record(Metric::NoticeRetries);
                        return Err(JobError::Provisioner(e));
                    }
                }
                directory
                    .events_delivered(key, seq)
                    .await
                    .map_err(JobError::Directory)?;
                delivered += 1;
                self.metrics.record(Metric::NoticeDelivered);
            }
        }
        Ok(if delivered == 0 {
            JobOutcome::AlreadyDone
        } else {
            JobOutcome::Notified(delivered)
        })
    }
}
