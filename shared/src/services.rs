//! What every callback gets: the ports it may use and the configuration, built once per process.

use std::sync::Arc;

use crate::{
    CallbackError,
    config::Config,
    ports::{Clock, InstanceStore, JobQueue},
    wire::{CallbackRequest, Reply, parse_request},
};

#[derive(Clone)]
pub struct Services {
    pub store: Arc<dyn InstanceStore>,
    pub queue: Arc<dyn JobQueue>,
    pub clock: Arc<dyn Clock>,
    pub config: Arc<Config>,
}

/// Runs one callback: parse and validate the verified body (`000002` on failure), call `f`, and turn an
/// error into its result code. Logs failures with their cause; the edge logs the summary line.
pub async fn run_callback<R, F, Fut>(
    activity: &'static str,
    body: &serde_json::Value,
    f: F,
) -> Reply
where
    R: CallbackRequest,
    F: FnOnce(R) -> Fut,
    Fut: std::future::Future<Output = Result<Reply, CallbackError>>,
{
    let request = match parse_request::<R>(body) {
        Ok(r) => r,
        Err(msg) => return Reply::new(crate::ResultCode::InvalidParameter, msg),
    };
    match f(request).await {
        Ok(reply) => reply,
        Err(e) => {
            if e.is_retryable() {
                tracing::warn!(activity, error = %e, retryable = true, "callback failed");
            } else {
                tracing::info!(activity, error = %e, retryable = false, "callback refused");
            }
            e.to_reply()
        }
    }
}

/// Queues the instance's undelivered lifecycle notices (the outbox the domain keeps). Called after a
/// change, and again on KooGallery's repeat of the same call, so a queue outage loses nothing: the
/// failed call answers a retryable `000005` and its repeat delivers. The worker drops duplicates.
pub async fn flush_notices(
    svc: &Services,
    instance: &crate::domain::Instance,
) -> Result<(), CallbackError> {
    for seq in &instance.pending_notices {
        let job = crate::ports::Job::Notify {
            instance_id: instance.instance_id.clone(),
            seq: *seq,
        };
        svc.queue.enqueue(&job).await?;
    }
    Ok(())
}

/// Applies a state change to one instance, queues its notices, and answers `000000`.
pub async fn change_instance<F>(
    svc: &Services,
    instance_id: &str,
    change: F,
) -> Result<Reply, CallbackError>
where
    F: FnMut(&mut crate::domain::Instance) -> Result<crate::domain::Outcome, CallbackError> + Send,
{
    let (instance, _) = crate::domain::mutate(svc.store.as_ref(), instance_id, change).await?;
    flush_notices(svc, &instance).await?;
    Ok(Reply::success())
}
