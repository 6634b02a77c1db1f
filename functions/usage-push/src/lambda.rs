//! The usage push on AWS Lambda: EventBridge Scheduler's invocations (any payload), one pass each.

use std::sync::Arc;

use koogallery::{
    config::{Env, MarketplaceSettings},
    metering::UsageStore,
};
use koogallery_lambda::{Deployment, Error, Load};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

use crate::{NOT_CONFIGURED, pass, pusher};

/// What the function loads: the secrets (the AK/SK, and the interconnection key that signs the
/// push's body); it queues nothing.
pub const LOAD: Load = Load {
    secrets: true,
    queue: false,
    sealer: false,
};

/// Serves the schedule: any payload runs one pass. A store failure fails the invocation (the
/// function's errors alarm); push failures are in the answer and the metrics.
pub async fn run(deployment: Deployment, usage: Arc<dyn UsageStore>) -> Result<(), Error> {
    let secrets = deployment
        .secrets
        .as_ref()
        .ok_or("the usage push needs the keys secret (KOOGALLERY_SECRET_ID)")?;
    let mut settings = deployment.settings.clone();
    // As for the worker: on AWS an offline marketplace must be chosen explicitly.
    settings.marketplace =
        MarketplaceSettings::read(&Env::process(), secrets.open_api.is_some(), true)?;
    let pusher = pusher(
        &settings,
        secrets,
        usage,
        deployment.store.clone(),
        deployment.clock.clone(),
        Arc::new(koogallery::metrics::EmfStdout::from_env()),
    )?;
    if pusher.is_none() {
        tracing::warn!("{NOT_CONFIGURED}");
    }
    let pusher = pusher.as_ref();
    lambda_runtime::run(service_fn(move |_: LambdaEvent<Value>| async move {
        Ok::<_, Error>(pass(pusher).await?)
    }))
    .await
}
