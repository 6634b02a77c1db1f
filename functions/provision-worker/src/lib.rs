//! The provisioning worker: drains the job queue (at-least-once delivery) and makes each job take
//! effect exactly once.
//!
//! - `Provision`: claim the instance (one delivery at a time), learn the order from the marketplace,
//!   call the provisioner, store the access information → active. A vendor's "no" fails the instance
//!   with its result code (KooGallery then refunds, Decisions §5). Transient failures retry with
//!   backoff; the last attempt marks the instance failed (`000005`) and the job is dead-lettered.
//! - `Notify`: deliver one lifecycle event from the instance's outbox to the provisioner, once.
//!
//! [`Worker::process`] returns what happened; [`Worker::disposition`] turns that into the queue action
//! (ack, retry after a delay, dead-letter); [`consume`] applies it for whichever queue delivered it.

pub mod consume;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod provisioners;

use std::{sync::Arc, time::Duration};

use koogallery::{
    ResultCode,
    callbacks::query_instance::check_presentable,
    clock::Clock,
    config::{Settings, WorkerSettings},
    instance::{
        AccessInfo, Claim, DomainError, EventKind, Instance, InstanceState, InstanceStore, Outcome,
        mutate,
    },
    jobs::Job,
    order::{MarketplaceClient, MarketplaceError},
    provisioning::{LifecycleNotice, ProvisionError, ProvisionRequest, Provisioner},
    security::credential_cipher::EncryptType,
};

/// One delivery of a job.
#[derive(Debug, Clone)]
pub struct JobDelivery {
    pub job: Job,
    /// 1-based receive count (SQS `ApproximateReceiveCount`, the embedded queue's own count).
    pub attempt: u32,
    /// Stable across redeliveries of the same message (SQS message ID, embedded queue ID): a
    /// redelivery may take over its own claim at once.
    pub delivery_id: String,
}

/// Why a job did not finish; each keeps its cause. Retryable or not decides between backoff and
/// the dead-letter queue.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Provisioner(ProvisionError),
    #[error(transparent)]
    Marketplace(#[from] MarketplaceError),
    /// Telling the vendor to remove what it created for a released instance: always retried.
    #[error("release notice not delivered: {0}")]
    ReleaseNotice(#[source] ProvisionError),
    /// The job names something that is not there (an event missing from the history).
    #[error("{0}")]
    Gone(String),
}

impl JobError {
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Domain(e) => e.is_retryable(),
            Self::Provisioner(e) => e.is_retryable(),
            Self::Marketplace(e) => e.is_retryable(),
            Self::ReleaseNotice(_) => true,
            Self::Gone(_) => false,
        }
    }
}

/// What a finished job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    Provisioned,
    /// The vendor refused; the instance failed with this code.
    ProvisioningRefused(ResultCode),
    /// Nothing to do (already provisioned, failed, released, or notice already delivered).
    AlreadyDone,
    Notified,
    /// The vendor refused a notice; it will not be retried.
    NoticeRefused,
}

/// What the queue should do with a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    Ack,
    RetryAfter(Duration),
    DeadLetter(String),
}

pub struct Worker {
    pub store: Arc<dyn InstanceStore>,
    pub provisioner: Arc<dyn Provisioner>,
    pub marketplace: Arc<dyn MarketplaceClient>,
    pub clock: Arc<dyn Clock>,
    pub config: WorkerSettings,
    /// How queryInstance will present credentials: their limits are checked, encrypted lengths
    /// included, when the vendor answers (`check_presentable`).
    pub credential_encryption: Option<EncryptType>,
}

impl Worker {
    /// A worker reading orders through the offline marketplace client, with its retry policy and
    /// the credential encryption queryInstance will present with, both from `settings`. Query Order
    /// against KooGallery arrives in a later release; until then orders are synthesised and every
    /// answer says so in the logs.
    pub fn with_offline_marketplace(
        store: Arc<dyn InstanceStore>,
        provisioner: Arc<dyn Provisioner>,
        clock: Arc<dyn Clock>,
        settings: &Settings,
    ) -> Self {
        let marketplace = Arc::new(koogallery::order::offline::OfflineMarketplace::new(
            clock.clone(),
        ));
        Self {
            store,
            provisioner,
            marketplace,
            clock,
            config: settings.worker,
            credential_encryption: settings.callbacks.credential_encryption,
        }
    }

    /// Checks the vendor's appInfo against the limits of credentials presented encrypted as `kind`.
    pub fn with_credential_encryption(mut self, kind: Option<EncryptType>) -> Self {
        self.credential_encryption = kind;
        self
    }

    /// Runs one delivery. On the last allowed attempt a still-retryable provisioning failure becomes
    /// permanent for the instance (failed, `000005`) so KooGallery stops polling and refunds.
    pub async fn process(&self, d: &JobDelivery) -> Result<JobOutcome, JobError> {
        let result = match &d.job {
            Job::Provision { instance_id } => self.provision(instance_id, d).await,
            Job::Notify { instance_id, seq } => self.notify(instance_id, *seq).await,
        };
        match &result {
            Ok(outcome) => tracing::info!(job = ?d.job, attempt = d.attempt, ?outcome, "job done"),
            Err(e) => {
                tracing::warn!(job = ?d.job, attempt = d.attempt, error = %koogallery::callbacks::error_chain(e), retryable = e.is_retryable(), "job failed")
            }
        }
        if let (Err(e), Job::Provision { instance_id }) = (&result, &d.job)
            && e.is_retryable()
            && d.attempt >= self.config.max_attempts
        {
            let message = format!("provisioning failed after {} attempts: {e}", d.attempt);
            let now = self.clock.now();
            if let Err(mark) = mutate(self.store.as_ref(), instance_id, |i| {
                Ok(i.fail(ResultCode::InternalError, message.clone(), now))
            })
            .await
            {
                tracing::error!(instance_id, error = %mark, "could not mark the instance failed; the dead letter keeps the job");
            }
        }
        result
    }

    /// The queue action for a delivery's result.
    pub fn disposition(
        &self,
        d: &JobDelivery,
        result: &Result<JobOutcome, JobError>,
    ) -> Disposition {
        match result {
            Ok(_) => Disposition::Ack,
            Err(e) if !e.is_retryable() => Disposition::DeadLetter(e.to_string()),
            Err(e) if d.attempt >= self.config.max_attempts => {
                Disposition::DeadLetter(format!("gave up after {} attempts: {e}", d.attempt))
            }
            Err(_) => Disposition::RetryAfter(self.config.backoff(d.attempt)),
        }
    }

    async fn provision(&self, instance_id: &str, d: &JobDelivery) -> Result<JobOutcome, JobError> {
        let now = self.clock.now();
        let lease = self.config.claim_lease();
        let token = d.delivery_id.clone();
        let (instance, claimed) = mutate(self.store.as_ref(), instance_id, |i| {
            claim(i, &token, now, lease)
        })
        .await?;
        if matches!(claimed, Outcome::Unchanged) {
            return Ok(JobOutcome::AlreadyDone);
        }

        let instance = self.ensure_order_details(instance).await?;
        let request = ProvisionRequest {
            instance_id: instance.instance_id.clone(),
            order_id: instance.order_id.clone(),
            order_line_id: instance.order_line_id.clone(),
            order: instance.order.clone().unwrap_or_default(),
        };
        match self.provisioner.provision(&request).await {
            Ok(access) => {
                let now = self.clock.now();
                if let Err(problem) = check_presentable(&access, self.credential_encryption) {
                    // Refuse now, clearly, rather than fail every queryInstance poll later.
                    let message =
                        format!("the vendor's answer cannot be sent to KooGallery: {problem}");
                    tracing::error!(instance_id, %message, "provisioning refused");
                    mutate(self.store.as_ref(), instance_id, |i| {
                        Ok(i.fail(ResultCode::InternalError, message.clone(), now))
                    })
                    .await?;
                    return Ok(JobOutcome::ProvisioningRefused(ResultCode::InternalError));
                }
                match mutate(self.store.as_ref(), instance_id, |i| {
                    i.activate(access.clone(), now)
                })
                .await
                {
                    Ok(_) => Ok(JobOutcome::Provisioned),
                    Err(e) => self.released_meanwhile(instance_id, access, e).await,
                }
            }
            Err(ProvisionError::Rejected { code, message }) => {
                let now = self.clock.now();
                mutate(self.store.as_ref(), instance_id, |i| {
                    Ok(i.fail(code, message.clone(), now))
                })
                .await?;
                Ok(JobOutcome::ProvisioningRefused(code))
            }
            Err(e @ ProvisionError::Transient(_)) => Err(JobError::Provisioner(e)),
        }
    }

    /// Reads the order once per instance; the answer is kept on the record.
    async fn ensure_order_details(&self, instance: Instance) -> Result<Instance, JobError> {
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
                // KooGallery does not know the order it just told us about: fail it rather than guess.
                let msg = format!("order {} cannot be read: {e}", instance.order_id);
                let now = self.clock.now();
                mutate(self.store.as_ref(), &instance.instance_id, |i| {
                    Ok(i.fail(ResultCode::InternalError, msg.clone(), now))
                })
                .await?;
                return Err(e.into());
            }
        };
        let (instance, _) = mutate(self.store.as_ref(), &instance.instance_id, |i| {
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

    /// Provisioning finished but KooGallery released the instance meanwhile: tell the vendor so the
    /// resources just created are removed too.
    async fn released_meanwhile(
        &self,
        instance_id: &str,
        access: AccessInfo,
        activation_error: DomainError,
    ) -> Result<JobOutcome, JobError> {
        let Some(mut instance) = self
            .store
            .get(instance_id)
            .await
            .map_err(DomainError::from)?
        else {
            return Err(activation_error.into());
        };
        if instance.state != InstanceState::Released {
            return Err(activation_error.into());
        }
        let events = self
            .store
            .events(instance_id)
            .await
            .map_err(DomainError::from)?;
        let Some(event) = events
            .into_iter()
            .rev()
            .find(|e| matches!(e.kind, EventKind::Released { .. }))
        else {
            return Err(activation_error.into());
        };
        instance.access = Some(access);
        self.provisioner
            .notify(&LifecycleNotice { instance, event })
            .await
            .map_err(JobError::ReleaseNotice)?;
        Ok(JobOutcome::AlreadyDone)
    }

    async fn notify(&self, instance_id: &str, seq: u64) -> Result<JobOutcome, JobError> {
        let Some(instance) = self
            .store
            .get(instance_id)
            .await
            .map_err(DomainError::from)?
        else {
            return Err(DomainError::NotFound(instance_id.to_owned()).into());
        };
        if !instance.pending_notices.contains(&seq) {
            return Ok(JobOutcome::AlreadyDone);
        }
        let events = self
            .store
            .events(instance_id)
            .await
            .map_err(DomainError::from)?;
        let Some(event) = events.into_iter().find(|e| e.seq == seq) else {
            return Err(JobError::Gone(format!(
                "event {seq} of instance {instance_id} is missing"
            )));
        };
        let mut instance = instance;
        if let EventKind::Upgraded {
            order_id,
            order_line_id,
        } = &event.kind
        {
            // The upgrade order carries the new spec (callbacks §6.6); read it before telling the vendor.
            match self.marketplace.query_order(order_id, order_line_id).await {
                Ok(order) => {
                    let (updated, _) = mutate(self.store.as_ref(), instance_id, |i| {
                        i.order = Some(order.clone());
                        Ok(Outcome::Quiet)
                    })
                    .await?;
                    instance = updated;
                }
                Err(e) if e.is_retryable() => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(instance_id, order_id, error = %e, "upgrade order unreadable; notifying without it")
                }
            }
        }
        let outcome = match self
            .provisioner
            .notify(&LifecycleNotice { instance, event })
            .await
        {
            Ok(()) => JobOutcome::Notified,
            Err(ProvisionError::Rejected { code, message }) => {
                tracing::warn!(instance_id, seq, %code, message, "vendor refused a lifecycle notice; not retried");
                JobOutcome::NoticeRefused
            }
            Err(e @ ProvisionError::Transient(_)) => return Err(JobError::Provisioner(e)),
        };
        mutate(self.store.as_ref(), instance_id, |i| {
            Ok(if i.pending_notices.remove(&seq) {
                Outcome::Quiet
            } else {
                Outcome::Unchanged
            })
        })
        .await?;
        Ok(outcome)
    }
}

/// Takes the right to provision for this delivery: only while provisioning, and only when no other
/// delivery holds an unexpired claim. `Unchanged` means there is nothing left to do.
fn claim(
    i: &mut Instance,
    token: &str,
    now: chrono::DateTime<chrono::Utc>,
    lease: chrono::Duration,
) -> Result<Outcome, DomainError> {
    if i.state != InstanceState::Provisioning {
        return Ok(Outcome::Unchanged);
    }
    if let Some(c) = &i.provisioning.claim
        && c.token != token
        && c.until > now
    {
        return Err(DomainError::Claimed(i.instance_id.clone()));
    }
    i.provisioning.claim = Some(Claim {
        token: token.to_owned(),
        // Total even at the edge of time: a claim never overflows into a panic.
        until: now.checked_add_signed(lease).unwrap_or(now),
    });
    i.provisioning.attempts += 1;
    let attempt = i.provisioning.attempts;
    Ok(Outcome::Changed(
        i.note(EventKind::ProvisioningStarted { attempt }, now),
    ))
}

#[cfg(test)]
mod tests;
