//! The usage push on AWS Lambda: EventBridge Scheduler's invocations (any payload), one pass each.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use koogallery::{
    config::SecretPart,
    exchange::ExchangeRecorder,
    metering::{UsagePusher, UsageStore},
};
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
    let function = PushFunction::new(&deployment, usage)?;
    let function = &function;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // The invocation's deadline (Unix millis): the pass holds the push until then, and the
        // function cannot outlive it, so passes never overlap (`UsagePusher::run_until`).
        let deadline = i64::try_from(event.context.deadline)
            .ok()
            .filter(|ms| *ms > 0)
            .and_then(chrono::DateTime::from_timestamp_millis);
        function.invoke(deadline).await
    }))
    .await
}

/// The usage push's function, loaded: what [`run`] runs each invocation of.
pub struct PushFunction {
    /// `None` when the marketplace is offline: usage is kept, unpushed.
    pusher: Option<UsagePusher>,
    exchanges: ExchangeRecorder,
}

impl PushFunction {
    /// The pusher on `deployment` (loaded with [`LOAD`]) over `usage`; called within the runtime
    /// (the exchange log's writer is a task of it).
    pub fn new(deployment: &Deployment, usage: Arc<dyn UsageStore>) -> Result<Self, Error> {
        // The exchange log of the pushes, on the table.
        let exchanges = deployment.exchange_recorder();
        let pusher = pusher_from(
            &deployment.settings,
            &deployment.secrets,
            usage,
            deployment.store.clone(),
            deployment.clock.clone(),
            Arc::new(koogallery::metrics::EmfStdout::from_env()),
            &exchanges,
        )?;
        if pusher.is_none() {
            tracing::warn!("{NOT_CONFIGURED}");
        }
        Ok(Self { pusher, exchanges })
    }

    /// One pass holding the push until `deadline` (the invocation's); its report is the answer.
    pub async fn invoke(&self, deadline: Option<DateTime<Utc>>) -> Result<Value, Error> {
        // The pass starts no round in its last 10 s (`ROUND_RESERVE`): the flush fits.
        let report = pass(self.pusher.as_ref(), deadline).await;
        flush_exchanges(&self.exchanges).await;
        Ok(report?)
    }
}
