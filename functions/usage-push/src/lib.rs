//! The usage push as a scheduled function: each pass of [`UsagePusher`]
//! (`koogallery::metering::push`) seals closed hours and pushes them to KooGallery's open API,
//! oldest first; a pass that meets an outage stops and the next one resumes. On AWS,
//! EventBridge Scheduler invokes the Lambda function ([`lambda`], feature `lambda`) on the
//! template's `UsagePushSchedule`; the local host on the AWS adapters builds its pusher with
//! [`pusher`] too and runs it on a timer.

#[cfg(feature = "lambda")]
pub mod lambda;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use koogallery::{
    clock::Clock,
    config::{ConfigError, HeldSecrets, SecretBundle, Settings},
    exchange::ExchangeRecorder,
    instance::InstanceStore,
    metering::{UsagePusher, UsageStore, push::PassError},
    metrics::Metrics,
    security::KeyUsed,
};
use serde_json::{Value, json};

/// What a pass answers when usage cannot reach KooGallery.
pub const NOT_CONFIGURED: &str = "usage is recorded but not pushed: the open API is not configured (KOOGALLERY_MARKETPLACE=offline)";

/// The pusher over `usage` (and `instances`, for released instances' release times), when usage
/// can reach KooGallery: the open API configured (`settings.marketplace`, with the AK/SK of
/// `secrets`). `None` when the marketplace is offline: usage is then kept, unpushed. Each push
/// is kept in `exchanges` (the exchange log).
pub fn pusher(
    settings: &Settings,
    secrets: &SecretBundle,
    usage: Arc<dyn UsageStore>,
    instances: Arc<dyn InstanceStore>,
    clock: Arc<dyn Clock>,
    metrics: Arc<dyn Metrics>,
    exchanges: &ExchangeRecorder,
) -> Result<Option<UsagePusher>, ConfigError> {
    pusher_from(
        settings,
        &secrets.held(),
        usage,
        instances,
        clock,
        metrics,
        exchanges,
    )
}

/// [`pusher`] from the parts of the secrets a function holds (on AWS: the callback keys and the
/// open API's AK/SK, each from its own secret).
pub fn pusher_from(
    settings: &Settings,
    secrets: &HeldSecrets,
    usage: Arc<dyn UsageStore>,
    instances: Arc<dyn InstanceStore>,
    clock: Arc<dyn Clock>,
    metrics: Arc<dyn Metrics>,
    exchanges: &ExchangeRecorder,
) -> Result<Option<UsagePusher>, ConfigError> {
    let Some(api) = koogallery_openapi::client_for(
        &settings.marketplace,
        secrets.open_api.as_ref(),
        exchanges,
    )?
    else {
        return Ok(None);
    };
    let sink = koogallery_openapi::usage::UsagePushClient {
        api,
        // The usage push's body signature is keyed with the basic interfaces' key
        // (docs/protocol/openapi.md §3).
        key: secrets.keys()?.basic.key(KeyUsed::Current).clone(),
    };
    Ok(Some(UsagePusher {
        store: usage,
        sink: Arc::new(sink),
        clock,
        metrics,
        settings: settings.metering.push,
        instances: Some(instances),
    }))
}

/// One scheduled pass, holding the push until `deadline` (the invocation's, on Lambda; `None`:
/// [`UsagePusher::run_once`]'s); its report is the invocation's answer. A store failure fails
/// the invocation (the function's errors alarm); push failures are in the report and the metrics.
pub async fn pass(
    pusher: Option<&UsagePusher>,
    deadline: Option<DateTime<Utc>>,
) -> Result<Value, PassError> {
    let Some(pusher) = pusher else {
        return Ok(json!({ "pushed": false, "why": NOT_CONFIGURED }));
    };
    let report = match deadline {
        Some(deadline) => pusher.run_until(deadline).await?,
        None => pusher.run_once().await?,
    };
    if report.pushes > 0 || report.stopped.is_some() || report.near_horizon > 0 {
        tracing::info!(?report, "usage push pass");
    }
    Ok(serde_json::to_value(&report).unwrap_or_default())
}

#[cfg(test)]
mod tests;
