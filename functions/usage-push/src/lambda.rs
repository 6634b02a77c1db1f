//! The usage push on AWS Lambda: EventBridge Scheduler's invocations (any payload), one pass each.

use std::sync::Arc;

use koogallery::{config::SecretPart, metering::UsageStore};
use koogallery_lambda::{Deployment, Error, Load, flush_exchanges};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

use crate::{NOT_CONFIGURED, pass, pusher_from};

/// What the function loads: the open API's AK/SK, and the callback keys (the basic-interface key
/// signs the push's body); it queues nothing.
pub const LOAD: Load = Load {
    secrets: &[SecretPart::CallbackKeys, SecretPart::OpenApi],
    queue: false,
    sealer: false,
};

/// Serves the schedule: any payload runs one pass. A store failure fails the invocation (the
/// function's errors alarm); push failures are in the answer and the metrics.
pub async fn run(deployment: Deployment, usage: Arc<dyn UsageStore>) -> Result<(), Error> {
    let secrets = &deployment.secrets;
    // The exchange log of the pushes, on the table.
    let exchanges = deployment.exchange_recorder();
    let pusher = pusher_from(
        &deployment.settings,
        secrets,
        usage,
        deployment.store.clone(),
        deployment.clock.clone(),
        Arc::new(koogallery::metrics::EmfStdout::from_env()),
        &exchanges,
    )?;
    if pusher.is_none() {
        tracing::warn!("{NOT_CONFIGURED}");
    }
    let (pusher, exchanges) = (pusher.as_ref(), &exchanges);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // The invocation's deadline (Unix millis): the pass holds the push until then, and the
        // function cannot outlive it, so passes never overlap (`UsagePusher::run_until`).
        let deadline = i64::try_from(event.context.deadline)
            .ok()
            .filter(|ms| *ms > 0)
            .and_then(chrono::DateTime::from_timestamp_millis);
        // The pass starts no round in its last 10 s (`ROUND_RESERVE`): the flush fits.
        let report = pass(pusher, deadline).await;
        flush_exchanges(exchanges).await;
        Ok::<_, Error>(report?)
    }))
    .await
}
