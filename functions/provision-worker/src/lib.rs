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
mod directory_notices;
#[cfg(feature = "lambda")]
pub mod lambda;
mod license_notices;
mod order_notice;
mod outbox;
mod provision;
pub mod provisioners;

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use koogallery::{
    ResultCode,
    clock::Clock,
    config::{
        ConfigError, MarketplaceSettings, OpenApiKeys, Settings, WorkerSettings,
        worker::CALLS_PER_DELIVERY,
    },
    instance::{DomainError, InstanceStore},
    jobs::Job,
    metrics::Metrics,
    order::notice::OrderNoticeStore,
    order::{MarketplaceClient, MarketplaceError, OrderId, OrderLineId},
    provisioning::{ProvisionError, Provisioner},
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
    /// An order-notice job names an order line with no recorded notice: retrying cannot help.
    #[error("no order notice recorded for {order_id}/{order_line_id}")]
    NoOrderNotice {
        order_id: OrderId,
        order_line_id: OrderLineId,
    },
    /// A directory notice reached a worker built without the tenant directory: a wiring error.
    #[error("this worker has no tenant directory to deliver directory events from")]
    NoDirectory,
    /// The license codes could not be read or updated.
    #[error("license store: {0}")]
    Licenses(#[source] koogallery::StoreError),
    /// A license notice reached a worker built without the license store: a wiring error.
    #[error("this worker has no license store to deliver license events from")]
    NoLicenses,
}

impl JobError {
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Domain(e) => e.is_retryable(),
            Self::Directory(e) | Self::Licenses(e) => e.is_retryable(),
            Self::NoDirectory | Self::NoLicenses | Self::NoOrderNotice { .. } => false,
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

/// What the queue should do with a delivery (the one type every consumer settles by).
pub use koogallery::jobs::consume::Disposition;

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
    /// Ends the SSO sessions a directory event ends, and tells their clients
    /// (docs/protocol/decisions.md §19); `None` without SSO.
    pub sessions: Option<Arc<dyn koogallery::sso::SessionEnder>>,
    /// The license codes whose events the worker delivers (docs/protocol/openapi.md §6).
    pub licenses: Option<Arc<dyn koogallery::license::LicenseStore>>,
}

/// The marketplace client `settings.marketplace` names: Query Order on KooGallery's open API
/// (signed with `keys`, each call kept in `exchanges`), or the offline client, which makes orders
/// up and says so in every answer.
pub fn marketplace(
    settings: &MarketplaceSettings,
    keys: Option<&OpenApiKeys>,
    clock: Arc<dyn Clock>,
    exchanges: &koogallery::exchange::ExchangeRecorder,
) -> Result<Arc<dyn MarketplaceClient>, ConfigError> {
    match koogallery_openapi::client_for(settings, keys, exchanges)? {
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
pub(crate) struct Budget(pub(crate) u32);

impl Budget {
    pub(crate) fn take(&mut self) -> bool {
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
            sessions: None,
            licenses: None,
        }
    }

    /// Delivers the license codes' events too.
    pub fn with_licenses(mut self, licenses: Arc<dyn koogallery::license::LicenseStore>) -> Self {
        self.licenses = Some(licenses);
        self
    }

    /// Ends SSO sessions as the directory events it delivers say (with SSO on).
    pub fn with_sessions(mut self, sessions: Arc<dyn koogallery::sso::SessionEnder>) -> Self {
        self.sessions = Some(sessions);
        self
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
                            tracing::warn!(instance_id = %instance_id, error = %koogallery::callbacks::error_chain(&notice), "release notice not delivered yet; the reconciler will retry it");
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
            Job::LicenseNotice { license } => self.license_notices(&license.0, &mut budget).await,
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

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// How long from now until `until` (at least a second, so a deferral never spins).
    pub(crate) fn wait_until(&self, until: DateTime<Utc>) -> Duration {
        (until - self.now())
            .to_std()
            .unwrap_or_default()
            .max(Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests;
