//! The provisioning worker: drains the job queue (at-least-once delivery) and makes each job take
//! effect exactly once.
//!
//! - `Provision`: claim the instance (one delivery at a time, a token per delivery), learn the
//!   order from the marketplace, call the provisioner, store the access information → active. A
//!   vendor's explicit "no" (a KooGallery result code) fails the instance with that code
//!   (KooGallery then refunds, docs/protocol/decisions.md §5). Anything else (an outage, a timeout,
//!   a misconfigured endpoint) retries with capped, jittered backoff until the provisioning
//!   deadline, measured from the order; only then does the order fail with `000005`. Another
//!   delivery's live claim defers the job without spending anything.
//! - `Notify`: drain the instance's outbox strictly in `seq` order: one drainer at a time, nothing
//!   while provisioning is in flight, each notice retried until the vendor acknowledges it or the
//!   notice deadline passes (then the job is dead-lettered and the outbox parked), nothing after
//!   `released`. Every job for an instance drains its outbox, so a `Provision` job that ends in a
//!   failed or released instance tells the vendor to clean up.
//!
//! [`Worker::process`] returns what happened; [`Worker::disposition`] turns that into the queue
//! action (ack, retry after a delay, dead-letter); [`consume`] applies it for whichever queue
//! delivered it.

pub mod consume;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod provisioners;

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use koogallery::{
    ResultCode,
    callbacks::query_instance::check_presentable,
    clock::Clock,
    config::{
        ConfigError, MarketplaceSettings, OpenApiKeys, Settings, WorkerSettings,
        worker::CALLS_PER_DELIVERY,
    },
    instance::{
        Credential, DomainError, EventKind, Instance, InstanceStore, NoticeStep, Outcome,
        RefreshScene, mutate,
    },
    jobs::Job,
    metrics::{Metric, Metrics},
    order::notice::OrderNoticeStore,
    order::{MarketplaceClient, MarketplaceError},
    provisioning::{LifecycleNotice, OrderPaid, ProvisionError, ProvisionRequest, Provisioner},
    security::{
        at_rest::{CredentialSealer, SealError},
        credential_cipher::EncryptType,
    },
};

/// `resultMsg` of an order whose provisioning kept failing until its deadline (the cause is
/// logged).
pub const PROVISIONING_DEADLINE_PASSED: &str =
    "provisioning did not succeed before its deadline; the order fails";

/// One delivery of a job.
#[derive(Debug, Clone)]
pub struct JobDelivery {
    pub job: Job,
    /// 1-based receive count (SQS `ApproximateReceiveCount`, the embedded queue's own count):
    /// it paces the backoff, it decides nothing.
    pub attempt: u32,
    /// The queue's message ID, for the logs. Two copies of one SQS message share it, so claims
    /// use a token of their own per delivery ([`Worker::process`]).
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
    /// Provisioning kept failing until its deadline: the order failed (`000005`).
    #[error("provisioning gave up at its deadline: {0}")]
    ProvisioningDeadline(#[source] Box<JobError>),
    /// The vendor's password could not be sealed for storage (the key service is down).
    #[error(transparent)]
    AtRest(#[from] SealError),
    /// An order notice could not be delivered before the notice deadline: dead-lettered (alarm).
    #[error("order notice not delivered before its deadline: {0}")]
    OrderNoticeDeadline(#[source] ProvisionError),
    /// The oldest notice of an instance could not be delivered before its deadline: the outbox is
    /// parked and the job dead-lettered; redriving it resumes delivery.
    #[error("notice {seq} not delivered before its deadline: {source}")]
    NoticeDeadline {
        seq: u64,
        #[source]
        source: ProvisionError,
    },
    /// The tenant directory (Kit syncs) could not be read or updated.
    #[error("tenant directory: {0}")]
    Directory(#[source] koogallery::StoreError),
    /// A directory notice reached a worker built without the tenant directory: a wiring error.
    #[error("this worker has no tenant directory to deliver directory events from")]
    NoDirectory,
}

impl JobError {
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Domain(e) => e.is_retryable(),
            Self::Directory(e) => e.is_retryable(),
            Self::NoDirectory => false,
            Self::Provisioner(e) => e.is_retryable(),
            Self::Marketplace(e) => e.is_retryable(),
            Self::AtRest(e) => e.is_retryable(),
            Self::ProvisioningDeadline(_)
            | Self::NoticeDeadline { .. }
            | Self::OrderNoticeDeadline(_) => false,
        }
    }
}

/// What a finished (or deferred) job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    Provisioned,
    /// The vendor refused; the instance failed with this code.
    ProvisioningRefused(ResultCode),
    /// Nothing to do (already provisioned, failed, released, or every notice delivered).
    AlreadyDone,
    /// This many notices were delivered (or refused by the vendor, which is final too).
    Notified(u32),
    /// Not now, and not a failure: another delivery holds the instance, provisioning is in flight
    /// before a notice, or this delivery used its calls. Comes back after the delay.
    Deferred(Duration),
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
    pub metrics: Arc<dyn Metrics>,
    /// Seals the vendor's password before it is stored (`security::at_rest`).
    pub sealer: Arc<dyn CredentialSealer>,
    /// Paid order lines (orderNotify) and what the worker has done with them.
    pub notices: Arc<dyn OrderNoticeStore>,
    /// The tenant directory whose events the worker delivers (the Kit syncs,
    /// docs/protocol/callbacks.md §9).
    pub directory: Option<Arc<dyn koogallery::directory::TenantDirectory>>,
}

/// The marketplace client `settings.marketplace` names: Query Order on KooGallery's open API
/// (signed with `keys`), or the offline client, which makes orders up and says so in every answer.
pub fn marketplace(
    settings: &MarketplaceSettings,
    keys: Option<&OpenApiKeys>,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn MarketplaceClient>, ConfigError> {
    match koogallery_openapi::client_for(settings, keys)? {
        Some(client) => Ok(client),
        None => {
            tracing::warn!("marketplace offline: orders are made up, not read from KooGallery");
            Ok(Arc::new(
                koogallery::order::offline::OfflineMarketplace::new(clock),
            ))
        }
    }
}

/// How a delivery spends its calls to the vendor (the worker's timeout covers
/// [`CALLS_PER_DELIVERY`]).
struct Budget(u32);

impl Budget {
    fn take(&mut self) -> bool {
        if self.0 == 0 {
            return false;
        }
        self.0 -= 1;
        true
    }
}

impl Worker {
    /// A worker reading orders through `marketplace` ([`marketplace`] builds the configured
    /// one), with its retry policy and the credential encryption queryInstance will present with,
    /// both from `settings`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn InstanceStore>,
        provisioner: Arc<dyn Provisioner>,
        marketplace: Arc<dyn MarketplaceClient>,
        clock: Arc<dyn Clock>,
        settings: &Settings,
        metrics: Arc<dyn Metrics>,
        sealer: Arc<dyn CredentialSealer>,
        notices: Arc<dyn OrderNoticeStore>,
    ) -> Self {
        Self {
            store,
            provisioner,
            marketplace,
            clock,
            config: settings.worker,
            credential_encryption: settings.callbacks.credential_encryption,
            metrics,
            sealer,
            notices,
            directory: None,
        }
    }

    /// Delivers the tenant directory's events too.
    pub fn with_directory(
        mut self,
        directory: Arc<dyn koogallery::directory::TenantDirectory>,
    ) -> Self {
        self.directory = Some(directory);
        self
    }

    /// Checks the vendor's appInfo against the limits of credentials presented encrypted as `kind`.
    pub fn with_credential_encryption(mut self, kind: Option<EncryptType>) -> Self {
        self.credential_encryption = kind;
        self
    }

    /// Runs one delivery: a `Provision` job provisions, then (like a `Notify` job) drains the
    /// instance's outbox.
    pub async fn process(&self, d: &JobDelivery) -> Result<JobOutcome, JobError> {
        // A token of its own per delivery: two copies of one SQS message share their MessageId, and
        // must not both believe they hold the claim.
        let token = format!("{}#{}", d.delivery_id, uuid::Uuid::new_v4().simple());
        let mut budget = Budget(CALLS_PER_DELIVERY);
        let result = match &d.job {
            Job::Provision { instance_id } => {
                match self.provision(instance_id, &token, &mut budget).await {
                    Ok(JobOutcome::Deferred(wait)) => Ok(JobOutcome::Deferred(wait)),
                    Ok(done) => self
                        .drain(instance_id, &token, &mut budget)
                        .await
                        .map(|drained| match drained {
                            JobOutcome::Deferred(_) => drained,
                            _ => done,
                        }),
                    // Still provisioning: its notices wait for the retry.
                    Err(e) if e.is_retryable() => Err(e),
                    Err(e) => {
                        // The order failed for good: tell the vendor now if we can (a release
                        // notice); if not, the notice stays in the outbox for the reconciler.
                        if let Err(notice) = self.drain(instance_id, &token, &mut budget).await {
                            tracing::warn!(instance_id, error = %koogallery::callbacks::error_chain(&notice), "release notice not delivered yet; the reconciler will retry it");
                        }
                        Err(e)
                    }
                }
            }
            Job::Notify { instance_id, .. } => self.drain(instance_id, &token, &mut budget).await,
            Job::OrderNotice {
                order_id,
                order_line_id,
            } => self.order_notice(order_id, order_line_id).await,
            Job::DirectoryNotice {
                instance_id,
                tenant_id,
            } => {
                let key = koogallery::directory::TenantKey::new(instance_id, tenant_id);
                self.directory_notices(&key, &mut budget).await
            }
        };
        match &result {
            Ok(outcome) => tracing::info!(job = ?d.job, attempt = d.attempt, ?outcome, "job done"),
            Err(e) => {
                tracing::warn!(job = ?d.job, attempt = d.attempt, error = %koogallery::callbacks::error_chain(e), retryable = e.is_retryable(), "job failed")
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
            Ok(JobOutcome::Deferred(wait)) => Disposition::RetryAfter(*wait),
            Ok(_) => Disposition::Ack,
            Err(e) if !e.is_retryable() => {
                Disposition::DeadLetter(koogallery::callbacks::error_chain(e))
            }
            Err(_) => Disposition::RetryAfter(self.config.backoff(d.attempt)),
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// How long from now until `until` (at least a second, so a deferral never spins).
    fn wait_until(&self, until: DateTime<Utc>) -> Duration {
        (until - self.now())
            .to_std()
            .unwrap_or_default()
            .max(Duration::from_secs(1))
    }

    async fn provision(
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
    async fn provisioning_failed(
        &self,
        instance_id: &str,
        token: &str,
        error: JobError,
    ) -> Result<JobOutcome, JobError> {
        if let JobError::Provisioner(ProvisionError::Misconfigured(why)) = &error {
            tracing::error!(
                instance_id,
                why,
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
    async fn provision_claimed(
        &self,
        instance: Instance,
        token: &str,
    ) -> Result<JobOutcome, JobError> {
        let instance_id = instance.instance_id.clone();
        let instance = self.ensure_order_details(instance).await?;
        let request = ProvisionRequest {
            instance_id: instance.instance_id.clone(),
            order_id: instance.order_id.clone(),
            order_line_id: instance.order_line_id.clone(),
            order: instance.order.clone().unwrap_or_default(),
        };
        let answer = self.provisioner.provision(&request).await;
        let now = self.now();
        let fail = |code: ResultCode, message: String| {
            let store = self.store.clone();
            let instance_id = instance_id.clone();
            async move {
                mutate(store.as_ref(), &instance_id, |i| {
                    i.ensure_provisioning_claim(token, now)?;
                    Ok(i.fail(code, message.clone(), now))
                })
                .await
            }
        };
        match answer {
            Ok(access) => {
                if let Err(problem) = check_presentable(&access, self.credential_encryption) {
                    // Refuse now, clearly, rather than fail every queryInstance poll later; the
                    // vendor hears `released` and removes what it created.
                    // `problem` names the field and its length only, never its value.
                    let message =
                        format!("the vendor's answer cannot be sent to KooGallery: {problem}");
                    tracing::error!(instance_id, %message, "provisioning refused");
                    fail(ResultCode::InternalError, message).await?;
                    return Ok(JobOutcome::ProvisioningRefused(ResultCode::InternalError));
                }
                // The password is stored sealed; only queryInstance opens it.
                let mut access = access;
                if let Some(Credential::Plain(password)) = &access.password {
                    access.password = Some(Credential::Sealed(
                        self.sealer.seal(&instance_id, password).await?,
                    ));
                }
                let (_, outcome) = mutate(self.store.as_ref(), &instance_id, |i| {
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
            Err(ProvisionError::Rejected { code, message }) => {
                fail(code, message).await?;
                Ok(JobOutcome::ProvisioningRefused(code))
            }
            Err(e) => Err(JobError::Provisioner(e)),
        }
    }

    /// A paid order line: read the order once (kept on the notice), tell the vendor once. Retried
    /// like a lifecycle notice, until the notice deadline from when KooGallery told us.
    async fn order_notice(
        &self,
        order_id: &str,
        order_line_id: &str,
    ) -> Result<JobOutcome, JobError> {
        let Some(mut notice) = self
            .notices
            .notice(order_id, order_line_id)
            .await
            .map_err(DomainError::from)?
        else {
            return Err(
                DomainError::NotFound(format!("order notice {order_id}/{order_line_id}")).into(),
            );
        };
        if notice.delivered_at.is_some() {
            return Ok(JobOutcome::AlreadyDone);
        }
        let order = match notice.order.clone() {
            Some(order) => order,
            None => {
                let order = self
                    .marketplace
                    .query_order(order_id, order_line_id)
                    .await?;
                notice.order = Some(order.clone());
                self.notices
                    .update_notice(&notice)
                    .await
                    .map_err(DomainError::from)?;
                order
            }
        };
        let paid = OrderPaid {
            order_id: order_id.to_owned(),
            order_line_id: order_line_id.to_owned(),
            order,
        };
        match self.provisioner.order_paid(&paid).await {
            Ok(()) => {}
            Err(ProvisionError::Rejected { code, message }) => {
                tracing::warn!(order_id, order_line_id, %code, message, "vendor refused an order notice; not retried");
            }
            Err(e) => {
                self.metrics.record(Metric::NoticeRetries);
                let waited = (self.now() - notice.received_at)
                    .to_std()
                    .unwrap_or_default();
                if waited >= self.config.notice_deadline {
                    self.metrics.record(Metric::NoticeDeadlinePassed);
                    return Err(JobError::OrderNoticeDeadline(e));
                }
                return Err(JobError::Provisioner(e));
            }
        }
        notice.delivered_at = Some(self.now());
        self.notices
            .update_notice(&notice)
            .await
            .map_err(DomainError::from)?;
        self.metrics.record(Metric::NoticeDelivered);
        Ok(JobOutcome::Notified(1))
    }

    /// Delivers the tenant's pending directory events in `seq` order, each marked delivered once
    /// the vendor took it (or refused it: a refusal is final, like an order notice's). A failure
    /// stops the pass, so nothing is delivered out of order; the job is retried with backoff.
    async fn directory_notices(
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
                let notice = koogallery::provisioning::DirectoryNotice {
                    tenant: key.clone(),
                    event,
                };
                match self.provisioner.directory_changed(&notice).await {
                    Ok(()) => {}
                    Err(ProvisionError::Rejected { code, message }) => {
                        tracing::warn!(tenant_id = key.tenant_id, seq, %code, message, "vendor refused a directory event; not retried");
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

    /// Delivers the instance's pending notices in `seq` order, as far as this delivery's budget of
    /// calls goes.
    async fn drain(
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
    async fn deliver(&self, instance: Instance, seq: u64, token: &str) -> Result<(), JobError> {
        let instance_id = instance.instance_id.clone();
        let events = self
            .store
            .events(&instance_id)
            .await
            .map_err(DomainError::from)?;
        let Some(event) = events.into_iter().find(|e| e.seq == seq) else {
            // A pending notice without its event would block the outbox for ever: drop it, loudly.
            tracing::error!(
                instance_id,
                seq,
                "pending notice has no event in the history; skipped"
            );
            mutate(self.store.as_ref(), &instance_id, |i| {
                Ok(i.notice_delivered(seq, false))
            })
            .await?;
            return Ok(());
        };
        let mut instance = instance;
        // The orders that change what the buyer has are read again before the vendor is told
        // (docs/protocol/callbacks.md §6.3, §6.6): an upgrade's order, a trial turned paid, a
        // renewal that changes the spec. The instance keeps the new expiry, SKU and quantity; the
        // event carries them.
        let reread = match &event.kind {
            EventKind::Upgraded {
                order_id,
                order_line_id,
            } => Some((order_id.clone(), order_line_id.clone())),
            EventKind::Refreshed {
                scene: RefreshScene::TrialToFormal | RefreshScene::RenewalChange,
                order_id,
                ..
            } => Some((order_id.clone(), String::new())),
            _ => None,
        };
        if let Some((order_id, order_line_id)) = reread {
            match self
                .marketplace
                .query_order(&order_id, &order_line_id)
                .await
            {
                Ok(order) => {
                    let (updated, _) = mutate(self.store.as_ref(), &instance_id, |i| {
                        i.order = Some(order.clone());
                        Ok(Outcome::Quiet)
                    })
                    .await?;
                    instance = updated;
                }
                Err(e) if e.is_retryable() => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(instance_id, order_id, error = %e, "changed order unreadable; notifying without it")
                }
            }
        }
        let was_final = event.kind.is_final_notice();
        let sent = self
            .provisioner
            .notify(&LifecycleNotice { instance, event })
            .await;
        let now = self.now();
        match sent {
            Ok(()) => {}
            Err(ProvisionError::Rejected { code, message }) => {
                tracing::warn!(instance_id, seq, %code, message, "vendor refused a lifecycle notice; not retried");
            }
            Err(e) => {
                if let ProvisionError::Misconfigured(why) = &e {
                    tracing::error!(
                        instance_id,
                        why,
                        "the vendor's endpoint is misconfigured; notices keep retrying"
                    );
                    self.metrics.record(Metric::ProvisionerMisconfigured);
                }
                self.metrics.record(Metric::NoticeRetries);
                let deadline = self.config.notice_deadline;
                let mut parked = false;
                mutate(self.store.as_ref(), &instance_id, |i| {
                    let since = i.notice_failed(token, now);
                    parked = (now - since).to_std().unwrap_or_default() >= deadline;
                    Ok(if parked {
                        i.park_outbox()
                    } else {
                        Outcome::Quiet
                    })
                })
                .await?;
                if parked {
                    tracing::error!(
                        instance_id,
                        seq,
                        "notice not delivered before its deadline; the job is dead-lettered and the outbox parked until it is redriven"
                    );
                    self.metrics.record(Metric::NoticeDeadlinePassed);
                    return Err(JobError::NoticeDeadline { seq, source: e });
                }
                return Err(JobError::Provisioner(e));
            }
        }
        mutate(self.store.as_ref(), &instance_id, |i| {
            Ok(i.notice_delivered(seq, was_final))
        })
        .await?;
        self.metrics.record(Metric::NoticeDelivered);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
