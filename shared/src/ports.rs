//! The narrow traits the callbacks and the worker depend on. Adapters implement them: in-process
//! ([`crate::memory`]), embedded file store (`koogallery-embedded`), and AWS (DynamoDB, SQS, Secrets Manager).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    ResultCode, StoreError,
    domain::{Instance, InstanceEvent, OrderDetails},
    error::QueueError,
    signing::KeyRing,
    wire::AppInfo,
};

/// Result of the conditional create keyed by (`orderId`, `orderLineId`).
#[derive(Debug, Clone, PartialEq)]
pub enum CreateOutcome {
    /// This call created the record (and its first event).
    Created,
    /// The order line was already recorded; here is its instance, whatever this call's `businessId`.
    Existing(Box<Instance>),
}

/// Instances, their order-line idempotency records and their event history.
#[async_trait]
pub trait InstanceStore: Send + Sync {
    /// Atomically records the order line and creates the instance with its first events, unless the
    /// order line exists already (then nothing is written). Exactly one of any number of concurrent callers gets `Created`.
    async fn create_for_order_line(
        &self,
        instance: &Instance,
        events: &[InstanceEvent],
    ) -> Result<CreateOutcome, StoreError>;

    async fn get(&self, instance_id: &str) -> Result<Option<Instance>, StoreError>;

    /// Reads several instances at once (queryInstance takes up to 100); unknown IDs are left out.
    async fn get_many(&self, instance_ids: &[&str]) -> Result<Vec<Instance>, StoreError>;

    /// Writes `instance` if the stored version is still `expected_version` (bumping it by one) and
    /// appends `events`, all or nothing. `StoreError::Conflict` when another writer was first.
    async fn save(
        &self,
        instance: &Instance,
        expected_version: u64,
        events: &[InstanceEvent],
    ) -> Result<(), StoreError>;

    /// The instance's history, oldest first.
    async fn events(&self, instance_id: &str) -> Result<Vec<InstanceEvent>, StoreError>;
}

/// The replay guard for request nonces (Decisions §1).
#[async_trait]
pub trait NonceStore: Send + Sync {
    /// Remembers `nonce` until `expires_at`. Returns false if it is already remembered and unexpired.
    async fn remember(
        &self,
        nonce: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}

/// Work for the worker, delivered at least once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Job {
    /// Provision a newly ordered instance.
    Provision { instance_id: String },
    /// Tell the provisioner about lifecycle event `seq` (renewal, freeze, upgrade, release, …).
    Notify { instance_id: String, seq: u64 },
}

impl Job {
    pub fn instance_id(&self) -> &str {
        match self {
            Self::Provision { instance_id } | Self::Notify { instance_id, .. } => instance_id,
        }
    }
}

/// The producer side of the job queue. Consumers are adapter-specific (SQS event source, embedded runner).
#[async_trait]
pub trait JobQueue: Send + Sync {
    async fn enqueue(&self, job: &Job) -> Result<(), QueueError>;
}

/// What the provisioner needs to create an instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvisionRequest {
    pub instance_id: String,
    pub order_id: String,
    pub order_line_id: String,
    pub order: OrderDetails,
}

/// A lifecycle change after provisioning, for the vendor's own systems.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LifecycleNotice {
    pub instance: Instance,
    pub event: InstanceEvent,
}

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The vendor said no for good: the order fails with `code` and KooGallery refunds it.
    #[error("provisioning rejected ({code}): {message}")]
    Rejected { code: ResultCode, message: String },
    /// Could not reach or finish: retry with backoff.
    #[error("provisioning temporarily failed: {0}")]
    Transient(String),
}

impl ProvisionError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Transient(_))
    }
}

/// Creates the vendor's resources for an instance and hears about its later changes.
#[async_trait]
pub trait Provisioner: Send + Sync {
    /// Creates (or, if it exists already, returns) the instance's resources. Must be idempotent per
    /// `instance_id`: a retried job may call it again after a crash.
    async fn provision(&self, request: &ProvisionRequest) -> Result<AppInfo, ProvisionError>;

    /// A lifecycle change of a provisioned instance. Idempotent per (`instance_id`, `event.seq`).
    async fn notify(&self, notice: &LifecycleNotice) -> Result<(), ProvisionError>;
}

#[derive(Debug, thiserror::Error)]
pub enum MarketplaceError {
    /// KooGallery knows no such order (or line): retrying will not help.
    #[error("order not found: {0}")]
    NotFound(String),
    /// Network, throttling or server errors: retry.
    #[error("marketplace unavailable: {0}")]
    Unavailable(String),
}

impl MarketplaceError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// Calls KooGallery's open APIs (Query Order today; usage push and License later).
#[async_trait]
pub trait MarketplaceClient: Send + Sync {
    async fn query_order(
        &self,
        order_id: &str,
        order_line_id: &str,
    ) -> Result<OrderDetails, MarketplaceError>;
}

/// The time, injectable so tests control timestamp windows, nonce expiry and backoff.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// Hands a verified request to the callback that serves its `activity`: an in-process call locally,
/// a synchronous invocation of that callback's own function on AWS.
#[async_trait]
pub trait Dispatcher: Send + Sync {
    async fn dispatch(
        &self,
        activity: crate::wire::Activity,
        body: &serde_json::Value,
    ) -> crate::wire::Reply;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The signing keys: basic and Kit are separate settings, each with an optional previous key (Decisions §2).
#[derive(Debug, Clone)]
pub struct Keys {
    pub basic: KeyRing,
    pub kit: KeyRing,
}

#[derive(Debug, thiserror::Error)]
#[error("secrets unavailable: {0}")]
pub struct SecretsError(pub String);

/// Where keys come from (environment locally, Secrets Manager on AWS); read once and cached by callers.
#[async_trait]
pub trait Secrets: Send + Sync {
    async fn keys(&self) -> Result<Keys, SecretsError>;
}

/// Keys fixed at start-up (configuration, tests).
#[derive(Debug, Clone)]
pub struct StaticSecrets(pub Keys);

#[async_trait]
impl Secrets for StaticSecrets {
    async fn keys(&self) -> Result<Keys, SecretsError> {
        Ok(self.0.clone())
    }
}
