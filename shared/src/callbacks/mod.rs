//! The callbacks KooGallery makes on the production URL (docs/protocol/callbacks.md §6, the Kit
//! syncs §9): one module per callback (parse the request, apply it to the domain, answer), the
//! [`Callback`] abstraction they share, and the [`registry`] that every host routes with: the edge,
//! the local in-process dispatcher, the Lambda dispatcher and the Lambda functions all read the
//! same [`REGISTRY`].
//!
//! Errors are mapped to KooGallery result codes once, here ([`CallbackError::result_code`]).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::{
    ResultCode,
    clock::Clock,
    config::ConfigError,
    instance::{DomainError, Instance, InstanceStore, Outcome, mutate},
    jobs::{Job, JobQueue, QueueError},
    protocol::{
        Reply,
        request::{CallbackRequest, parse_request, test_flag_of},
    },
    security::{KeyUsed, credential_cipher::CryptoError},
};

pub mod all_org_sync;
pub mod application_sync;
pub mod auth_sync;
pub mod change_instance_check;
mod debug;
mod directory_sync;
pub mod get_license;
mod license_sync;
pub mod new_instance;
pub mod order_notify;
pub mod query_instance;
pub mod refresh_instance;
pub mod refresh_license_code;
pub mod registry;
pub mod release_instance;
pub mod release_license_code;
pub mod single_org_sync;
pub mod tenant_sync;
pub mod update_instance_status;
pub mod update_license_code_status;
pub mod upgrade_instance;

pub use registry::{
    Dispatcher, Family, Handler, InProcessDispatcher, Needs, REGISTRY, Registration, Resources,
    Route, StoreAccess,
};

/// `resultMsg` of a failure that a later retry may not meet.
pub const RETRY_LATER: &str = "temporary internal error; please retry";

/// Why a callback could not do what KooGallery asked. Each keeps its cause.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// The request is malformed beyond what its DTO catches.
    #[error("{0}")]
    InvalidParameter(String),
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// A credential too long to encrypt within KooGallery's 128 characters
    /// (docs/protocol/decisions.md §4).
    #[error("credential cannot be encrypted: {0}")]
    Credential(#[from] CryptoError),
    /// A stored credential cannot be opened (the key service is down, or the key is wrong).
    #[error(transparent)]
    AtRest(#[from] crate::security::at_rest::SealError),
    /// The tenant directory (Kit syncs) failed.
    #[error("tenant directory: {0}")]
    Directory(#[source] crate::storage::StoreError),
    /// A license code could not be read or written.
    #[error("license store: {0}")]
    License(#[source] crate::license::MutateError),
    /// applicationSync's `clientSecret` does not decrypt with the deployment's key
    /// (docs/protocol/decisions.md §14).
    #[error("clientSecret cannot be decrypted: {0}")]
    ClientSecret(#[source] crate::security::kit_client_secret::DecryptError),
}

impl CallbackError {
    /// True when KooGallery's own retry (hourly, for hours; docs/protocol/callbacks.md §5) may
    /// succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::InvalidParameter(_) | Self::Credential(_) => false,
            Self::Domain(e) => e.is_retryable(),
            Self::Queue(e) => e.is_retryable(),
            Self::AtRest(e) => e.is_retryable(),
            Self::Directory(e) => e.is_retryable(),
            Self::License(e) => e.is_retryable(),
            Self::ClientSecret(_) => false,
        }
    }

    /// The one mapping from an error to a KooGallery result code (docs/protocol/callbacks.md §4).
    pub fn result_code(&self) -> ResultCode {
        match self {
            Self::InvalidParameter(_) => ResultCode::InvalidParameter,
            Self::Domain(DomainError::NotFound(_) | DomainError::Released(_)) => {
                ResultCode::InstanceNotFound
            }
            // An upgrade of an instance that never got resources: "no instance resource available".
            Self::Domain(DomainError::ProvisioningFailed {
                change: crate::instance::Change::Upgrade,
                ..
            }) => ResultCode::NoResource,
            // The official sample's code for an undecryptable secret
            // (docs/protocol/callbacks.md §3.5).
            Self::ClientSecret(_) => ResultCode::MobileConflict,
            Self::Domain(_)
            | Self::Queue(_)
            | Self::Credential(_)
            | Self::AtRest(_)
            | Self::Directory(_)
            | Self::License(_) => ResultCode::InternalError,
        }
    }

    /// The reply KooGallery sees: a short fixed text per kind of failure. Infrastructure details
    /// (store and queue errors, key service answers) stay in the logs, never in `resultMsg`; the
    /// domain's own refusals name only what the request named.
    pub fn to_reply(&self) -> Reply {
        match self {
            Self::Domain(DomainError::Store(_))
            | Self::Queue(_)
            | Self::Directory(_)
            | Self::License(_) => Reply::new(ResultCode::InternalError, RETRY_LATER),
            // The sample's text; which check failed stays in the logs.
            Self::ClientSecret(_) => {
                Reply::new(ResultCode::MobileConflict, "something wrong with appSecret")
            }
            Self::AtRest(e) if e.is_retryable() => {
                Reply::new(ResultCode::InternalError, RETRY_LATER)
            }
            Self::AtRest(_) => Reply::new(
                ResultCode::InternalError,
                "internal error: the instance's stored credentials cannot be opened",
            ),
            Self::Credential(_) => Reply::new(
                ResultCode::InternalError,
                "internal error: the credentials do not fit KooGallery's 128 characters once encrypted",
            ),
            other => Reply::new(other.result_code(), other.to_string()),
        }
    }
}

/// One callback: its request type, what it is built from, and what it does.
#[async_trait]
pub trait Callback: Send + Sync + Sized + 'static {
    type Request: CallbackRequest + Send;

    /// A debug call (`testFlag` 1) is answered `000000` before its body is read, whatever it holds:
    /// the Kit syncs' rule (docs/protocol/decisions.md §15, §17). The basic interfaces parse first.
    const DEBUG_BEFORE_PARSE: bool = false;

    /// Takes from the process's resources only what this callback uses.
    fn from_resources(resources: &Resources) -> Result<Self, ConfigError>;

    /// A real call; `key` is the key that verified it (docs/protocol/decisions.md §13).
    async fn handle(&self, request: Self::Request, key: KeyUsed) -> Result<Reply, CallbackError>;

    /// A debug call (`testFlag=1`, docs/protocol/decisions.md §7): always `000000` with stable,
    /// plausible data, on debug records only ([`debug`]).
    async fn handle_debug(&self, request: Self::Request, key: KeyUsed) -> Reply;
}

/// Runs one callback on a verified body: parse and validate (`000002` on failure), handle, and turn
/// an error into its result code. Logs failures with their cause; the edge logs the summary line.
pub(crate) async fn serve<C: Callback>(
    name: &'static str,
    callback: &C,
    body: &Value,
    key: KeyUsed,
) -> Reply {
    if C::DEBUG_BEFORE_PARSE && test_flag_of(body.get("testFlag")) == Ok(true) {
        return Reply::success();
    }
    let request = match parse_request::<C::Request>(body) {
        Ok(r) => r,
        Err(msg) => return Reply::new(ResultCode::InvalidParameter, msg),
    };
    if request.is_test() {
        return callback.handle_debug(request, key).await;
    }
    match callback.handle(request, key).await {
        Ok(reply) => reply,
        Err(e) => {
            let cause = error_chain(&e);
            if e.is_retryable() {
                tracing::warn!(callback = name, error = %cause, retryable = true, "callback failed");
            } else {
                tracing::info!(callback = name, error = %cause, retryable = false, "callback refused");
            }
            e.to_reply()
        }
    }
}

/// An error and its sources, `: `-separated, for one log field or message (a source whose text is
/// already there, as with `#[error(transparent)]` or `{0}` wrappers, is not repeated).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Queues a drain of the instance's outbox when it holds undelivered lifecycle notices
/// ([`Job::drain`]). Called after a change, and again on KooGallery's repeat of the same call, so a
/// queue outage loses nothing: the failed call answers a retryable `000005` and its repeat queues
/// the drain.
pub(crate) async fn flush_notices(
    queue: &dyn JobQueue,
    instance: &Instance,
) -> Result<(), CallbackError> {
    if let Some(job) = Job::drain(instance) {
        queue.enqueue(&job).await?;
    }
    Ok(())
}

/// What the callbacks that change an instance's lifecycle share (refresh, status, release,
/// upgrade): change one instance through [`mutate`], queue the notices the change produced, answer
/// `000000`.
pub(crate) struct InstanceChanger {
    store: Arc<dyn InstanceStore>,
    queue: Arc<dyn JobQueue>,
    clock: Arc<dyn Clock>,
}

impl InstanceChanger {
    pub(crate) fn from_resources(r: &Resources) -> Result<Self, ConfigError> {
        Ok(Self {
            store: r.store.clone(),
            queue: r.queue()?,
            clock: r.clock.clone(),
        })
    }

    /// Applies `change` (given the time now) to one instance and queues its notices.
    pub(crate) async fn change<F>(
        &self,
        instance_id: &str,
        mut change: F,
    ) -> Result<Reply, CallbackError>
    where
        F: FnMut(&mut Instance, DateTime<Utc>) -> Result<Outcome, DomainError> + Send,
    {
        let now = self.clock.now();
        let (instance, _) = mutate(self.store.as_ref(), instance_id, |i| change(i, now)).await?;
        flush_notices(self.queue.as_ref(), &instance).await?;
        Ok(Reply::success())
    }

    /// The debug twin of [`Self::change`] (docs/protocol/decisions.md §7): applies `change` to the
    /// debug record of `instance_id`, if there is one and the change applies, and answers `000000`
    /// whatever happened. Debug records queue no notices, so nothing leaves the table.
    pub(crate) async fn change_debug<F>(&self, instance_id: &str, mut change: F) -> Reply
    where
        F: FnMut(&mut Instance, DateTime<Utc>) -> Result<Outcome, DomainError> + Send,
    {
        let now = self.clock.now();
        let record = debug::Keyspace::Debug.record_id(instance_id);
        if let Err(e) = mutate(self.store.as_ref(), &record, |i| change(i, now)).await {
            tracing::debug!(instance_id, error = %e, "debug call changed nothing");
        }
        Reply::success()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StoreError;

    #[test]
    fn errors_keep_their_cause_and_map_to_one_code_each() {
        let e = CallbackError::from(DomainError::from(StoreError::Unavailable(
            "connection reset".into(),
        )));
        assert!(e.is_retryable());
        assert_eq!(e.result_code(), ResultCode::InternalError);
        assert_eq!(
            error_chain(&e),
            "instance store: store unavailable: connection reset"
        );
        let reply = e.to_reply();
        assert_eq!(reply.result_msg, "temporary internal error; please retry");

        let corrupt = CallbackError::from(DomainError::from(StoreError::Corrupt("bad".into())));
        assert!(!corrupt.is_retryable(), "a corrupt record does not heal");

        let released = CallbackError::from(DomainError::Released("i-1".into()));
        assert_eq!(released.result_code(), ResultCode::InstanceNotFound);
        assert_eq!(
            released.to_reply().result_msg,
            "instance i-1 has been released"
        );

        let queue = CallbackError::from(QueueError::Unavailable("SQS down".into()));
        assert!(queue.is_retryable());
        assert!(!queue.to_reply().result_msg.contains("SQS"));

        // A key service's or a key file's own words never reach KooGallery.
        use crate::security::at_rest::SealError;
        for e in [
            SealError::Unavailable("kms: arn:aws:kms:eu-west-1:123:key/abc throttled".into()),
            SealError::Corrupt("authentication failed (arn:aws:kms:...)".into()),
            SealError::Key("/srv/secret/credentials.key: expected 32 bytes".into()),
        ] {
            let retryable = e.is_retryable();
            let reply = CallbackError::from(e).to_reply();
            assert_eq!(reply.result_code, ResultCode::InternalError);
            assert!(!reply.result_msg.contains("arn:"), "{}", reply.result_msg);
            assert!(!reply.result_msg.contains("/srv"), "{}", reply.result_msg);
            assert_eq!(reply.result_msg == RETRY_LATER, retryable);
        }
    }
}
