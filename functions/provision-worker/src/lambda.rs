//! The worker on AWS Lambda: the SQS event source with partial batch failures.

use aws_lambda_events::event::sqs::SqsEvent;
use koogallery::config::SecretPart;
use koogallery_aws::{SqsConsumer, from_lambda_event, sqs::batch_response};
use koogallery_lambda::{Deployment, Error, Load, required};
use lambda_runtime::{LambdaEvent, service_fn};

use crate::{Worker, consume::settle_batch, provisioners};

/// What the worker function loads: the open API's AK/SK (Query Order), the webhook signing
/// secret, the jobs queue and the sealer.
pub const LOAD: Load = Load {
    secrets: &[SecretPart::OpenApi, SecretPart::Webhook],
    queue: true,
    sealer: true,
};

/// The worker built from the deployment: the configured provisioner, the marketplace client.
pub fn worker(deployment: &Deployment) -> Result<Worker, Error> {
    let webhook_secret = deployment.secrets.webhook.clone();
    let keys = deployment.secrets.open_api.as_ref();
    // On AWS an offline marketplace must be chosen explicitly (KOOGALLERY_MARKETPLACE=offline).
    let mut settings = deployment.settings.clone();
    settings.marketplace = koogallery::config::MarketplaceSettings::read(
        &koogallery::config::Env::process(),
        keys.is_some(),
        true,
    )?;
    // A delivery's Query Order calls, now known, must fit the function's timeout too.
    settings.check_delivery()?;
    // The template names the queue's limits; without them the deadlines could outlive the queue.
    for name in [
        "KOOGALLERY_WORKER_TIMEOUT_SECS",
        "KOOGALLERY_JOBS_MAX_RECEIVE_COUNT",
        "KOOGALLERY_JOBS_RETENTION_SECS",
    ] {
        required(name)?;
    }
    let worker = Worker::new(
        deployment.store.clone(),
        provisioners::from_settings(&deployment.settings.provisioner, webhook_secret)?,
        crate::marketplace(&settings.marketplace, keys, deployment.clock.clone())?,
        deployment.clock.clone(),
        &deployment.settings,
        std::sync::Arc::new(koogallery::metrics::EmfStdout::from_env()),
        deployment
            .sealer
            .clone()
            .ok_or("the worker seals passwords: KOOGALLERY_CREDENTIALS_KEY_ID")?,
        deployment.store.clone(),
    );
    // The Kit syncs' directory events (partition keys `DIR#`).
    Ok(worker.with_directory(deployment.directory()))
}

/// Serves the SQS event source with partial batch failures.
pub async fn run(deployment: Deployment) -> Result<(), Error> {
    let worker = worker(&deployment)?;
    let queue = deployment
        .sqs
        .clone()
        .ok_or("KOOGALLERY_QUEUE_URL is not set (the SAM template sets it)")?;
    let settle = SqsConsumer {
        queue,
        dlq_url: required("KOOGALLERY_DLQ_URL")?,
        // The event source deletes what the batch response does not name.
        delete_on_ack: false,
    };
    let (worker, settle) = (&worker, &settle);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let keep = settle_batch(worker, settle, from_lambda_event(event.payload)).await;
        Ok::<_, Error>(batch_response(keep))
    }))
    .await
}
