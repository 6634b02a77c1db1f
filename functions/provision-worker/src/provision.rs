//! A `Provision` job: claim the instance, learn the order, call the provisioner, store what it
//! answered; retries until the provisioning deadline, measured from the order.

use crate::{Budget, JobError, JobOutcome, PROVISIONING_DEADLINE_PASSED, Worker};
use chrono::{DateTime, Utc};
use koogallery::{
    ResultCode,
    callbacks::query_instance::check_presentable,
    instance::{AccessInfo, Credential, DomainError, Instance, Outcome, mutate, mutate_from},
    metrics::Metric,
    provisioning::{ProvisionError, ProvisionRequest},
};

impl Worker {
    pub(crate) async fn provision(
        &self,
        instance_id: &str,
        token: &str,
        budget: &mut Budget,
    ) -> Result<JobOutcome, JobError> {
        let now = self.now();
        let lease = self.config.claim_lease();
        let claimed = mutate(self.store.as_ref(), instance_id, |i| {
            i.claim_provisioning(token, now, lease)
        })
        .await;
        let instance = match claimed {
            Ok((_, Outcome::Unchanged)) => return Ok(JobOutcome::AlreadyDone),
            Ok((instance, _)) => instance,
            Err(DomainError::Claimed { until, .. }) => {
                tracing::info!(instance_id, %until, "another delivery is provisioning; deferring");
                return Ok(JobOutcome::Deferred(self.wait_until(until)));
            }
            Err(e) => return Err(e.into()),
        };
        budget.take();
        let started = std::time::Instant::now();
        match self.provision_claimed(instance, token).await {
            Ok(outcome) => {
                self.metrics.record(Metric::ProvisioningSeconds {
                    seconds: started.elapsed().as_secs_f64(),
                });
                Ok(outcome)
            }
            Err(e) if e.is_retryable() => self.provisioning_failed(instance_id, token, e).await,
            Err(e) => Err(e),
        }
    }

    /// A retryable provisioning failure: let the claim go so the retry can take it, or, at the
    /// deadline measured from the order, fail the order.
    pub(crate) async fn provisioning_failed(
        &self,
        instance_id: &str,
        token: &str,
        error: JobError,
    ) -> Result<JobOutcome, JobError> {
        if let JobError::Provisioner(ProvisionError::Misconfigured(why)) = &error {
            tracing::error!(
                instance_id,
                why = %why,
                "the vendor's endpoint is misconfigured; provisioning keeps retrying"
            );
            self.metrics.record(Metric::ProvisionerMisconfigured);
        }
        self.metrics.record(Metric::ProvisioningRetries);
        let now = self.now();
        let deadline = self.config.provisioning_deadline;
        // KooGallery's `resultMsg` gets a fixed text: the cause (a webhook URL with its query,
        // a store's or a key service's words) goes to the log only.
        let message = PROVISIONING_DEADLINE_PASSED.to_owned();
        let cause = koogallery::callbacks::error_chain(&error);
        let (_, outcome) = mutate(self.store.as_ref(), instance_id, |i| {
            let past = (now - i.created_at).to_std().unwrap_or_default() >= deadline;
            if !past {
                return Ok(i.end_provisioning_claim(token));
            }
            // Only the claim holder (us) or anyone after its expiry may fail the order.
            i.ensure_provisioning_claim(token, now)?;
            Ok(i.fail(ResultCode::InternalError, message.clone(), now))
        })
        .await?;
        if matches!(outcome, Outcome::Changed(_)) {
            tracing::error!(instance_id, deadline_secs = deadline.as_secs(), error = %cause, "provisioning deadline passed; the order failed");
            self.metrics.record(Metric::ProvisioningDeadlinePassed);
            return Err(JobError::ProvisioningDeadline(Box::new(error)));
        }
        Err(error)
    }

    /// Provisioning under this delivery's claim.
    pub(crate) async fn provision_claimed(
        &self,
        instance: Instance,
        token: &str,
    ) -> Result<JobOutcome, JobError> {
        let instance = self.ensure_order_details(instance).await?;
        let request = ProvisionRequest {
            instance_id: instance.instance_id.clone().into(),
            order_id: instance.order_id.clone(),
            order_line_id: instance.order_line_id.clone(),
            order: instance.order.clone().unwrap_or_default(),
        };
        let answer = self.provisioner.provision(&request).await;
        let now = self.now();
        match answer {
            Ok(access) => self.activate_claimed(instance, access, token, now).await,
            Err(ProvisionError::Rejected { code, message }) => {
                self.fail_claimed(&instance.instance_id, token, now, code, message)
                    .await?;
                Ok(JobOutcome::ProvisioningRefused(code))
            }
            Err(e) => Err(JobError::Provisioner(e)),
        }
    }

    /// Stores what the vendor answered (its password sealed) on the instance this job holds the
    /// claim of, unless the answer cannot be sent to KooGallery: then the order fails now.
    /// `instance` is the record as this job last saved it: the save needs no read before it.
    async fn activate_claimed(
        &self,
        instance: Instance,
        mut access: AccessInfo,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<JobOutcome, JobError> {
        let instance_id = instance.instance_id.as_str();
        if let Err(problem) = check_presentable(&access, self.credential_encryption) {
            // Refuse now, clearly, rather than fail every queryInstance poll later; the
            // vendor hears `released` and removes what it created.
            // `problem` names the field and its length only, never its value.
            let message = format!("the vendor's answer cannot be sent to KooGallery: {problem}");
            tracing::error!(%instance_id, %message, "provisioning refused");
            self.fail_claimed(instance_id, token, now, ResultCode::InternalError, message)
                .await?;
            return Ok(JobOutcome::ProvisioningRefused(ResultCode::InternalError));
        }
        // The password is stored sealed; only queryInstance opens it.
        if let Some(Credential::Plain(password)) = &access.password {
            access.password = Some(Credential::Sealed(
                self.sealer.seal(instance_id, password).await?,
            ));
        }
        let (_, outcome) = mutate_from(self.store.as_ref(), instance.clone(), |i| {
            if i.state == koogallery::instance::InstanceState::Released {
                // Released while the call was in flight: drop the claim, and the outbox
                // tells the vendor `released` (the drain that follows this job).
                return Ok(i.end_provisioning_claim(token));
            }
            i.activate(access.clone(), now)
        })
        .await?;
        Ok(match outcome {
            Outcome::Changed(_) => JobOutcome::Provisioned,
            _ => JobOutcome::AlreadyDone,
        })
    }

    /// Fails the order of the instance this job holds the claim of, with KooGallery's `code`.
    async fn fail_claimed(
        &self,
        instance_id: &str,
        token: &str,
        now: DateTime<Utc>,
        code: ResultCode,
        message: String,
    ) -> Result<(), JobError> {
        mutate(self.store.as_ref(), instance_id, |i| {
            i.ensure_provisioning_claim(token, now)?;
            Ok(i.fail(code, message.clone(), now))
        })
        .await?;
        Ok(())
    }

    /// Reads the order once per instance; the answer is kept on the record.
    pub(crate) async fn ensure_order_details(
        &self,
        instance: Instance,
    ) -> Result<Instance, JobError> {
        if instance.order.is_some() {
            return Ok(instance);
        }
        let order = match self
            .marketplace
            .query_order(&instance.order_id, &instance.order_line_id)
            .await
        {
            Ok(o) => o,
            Err(e) if e.is_retryable() => return Err(e.into()),
            Err(e) => {
                // KooGallery does not know the order it just told us about: fail it rather than
                // guess.
                let msg = format!("order {} cannot be read: {e}", instance.order_id);
                let now = self.now();
                mutate(self.store.as_ref(), &instance.instance_id, |i| {
                    Ok(i.fail(ResultCode::InternalError, msg.clone(), now))
                })
                .await?;
                return Err(e.into());
            }
        };
        // The record as the claim saved it: no read before the save.
        let (instance, _) = mutate_from(self.store.as_ref(), instance, |i| {
            if i.order.is_some() {
                return Ok(Outcome::Unchanged);
            }
            if i.expire_time.is_none() {
                i.expire_time = order.expire_time;
            }
            i.order = Some(order.clone());
            Ok(Outcome::Quiet)
        })
        .await?;
        Ok(instance)
    }
}
