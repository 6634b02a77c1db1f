//! A `LicenseNotice` job: a license code's undelivered events (docs/protocol/openapi.md §6), in
//! sequence order, like the tenant directory's.

use std::time::Duration;

use crate::{Budget, JobError, JobOutcome, Worker};
use koogallery::{
    license::{LicenseCode, events_delivered},
    metrics::Metric,
    provisioning::{LicenseNotice, ProvisionError},
};

impl Worker {
    /// Delivers the code's pending events in `seq` order, each dropped from the record once the
    /// vendor took it (or refused it: a refusal is final, like a directory event's). A failure
    /// stops the pass, so nothing is delivered out of order; the job is retried with backoff.
    pub(crate) async fn license_notices(
        &self,
        license: &str,
        budget: &mut Budget,
    ) -> Result<JobOutcome, JobError> {
        let store = self.licenses.as_ref().ok_or(JobError::NoLicenses)?;
        let Ok(code) = LicenseCode::parse(license) else {
            tracing::warn!("a license notice names no valid code; dropped");
            return Ok(JobOutcome::AlreadyDone);
        };
        let Some(record) = store.get(&code).await.map_err(JobError::Licenses)? else {
            return Ok(JobOutcome::AlreadyDone);
        };
        let mut delivered = 0;
        for event in record.pending {
            if !budget.take() {
                return Ok(JobOutcome::Deferred(Duration::from_secs(1)));
            }
            let seq = event.seq;
            let notice = LicenseNotice {
                license: code.clone(),
                event,
            };
            match self.provisioner.license_changed(&notice).await {
                Ok(()) => {}
                Err(ProvisionError::Rejected { code: rc, message }) => {
                    tracing::warn!(license = %code.masked(), seq, code = %rc, message, "vendor refused a license event; not retried");
                }
                Err(e) => {
                    self.metrics.record(Metric::NoticeRetries);
                    return Err(JobError::Provisioner(e));
                }
            }
            events_delivered(store.as_ref(), &code, seq)
                .await
                .map_err(JobError::Licenses)?;
            delivered += 1;
            self.metrics.record(Metric::NoticeDelivered);
        }
        Ok(if delivered == 0 {
            JobOutcome::AlreadyDone
        } else {
            JobOutcome::Notified(delivered)
        })
    }
}
