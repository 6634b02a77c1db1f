//! The worker on AWS Lambda: the SQS event source with partial batch failures.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use koogallery::config::{ConfigError, Env, SecretPart, catalog};
use koogallery::exchange::ExchangeRecorder;
use koogallery_aws::{SqsConsumer, from_lambda_event, sqs::batch_response};
use koogallery_lambda::{Deployment, Error, Load, flush_exchanges};
use lambda_runtime::{LambdaEvent, service_fn};

use crate::{Worker, consume::settle_batch, provisioners};

/// What the worker function loads: the open API's AK/SK (Query Order), the webhook signing
/// secret, the jobs queue and the sealer.
pub const LOAD: Load = Load {
    secrets: &[SecretPart::OpenApi, SecretPart::Webhook],
    queue: true,
    sealer: true,
};

/// The worker built from the deployment: the configured provisioner, the marketplace client, both
/// keeping their calls in `exchanges`.
pub fn worker(deployment: &Deployment, exchanges: &ExchangeRecorder) -> Result<Worker, Error> {
    let webhook_secret = deployment.secrets.webhook.clone();
    let keys = deployment.secrets.open_api.as_ref();
    let settings = &deployment.settings;
    // The template names the function's timeout and the queue's limits; without them a delivery
    // could outlive the function, or the deadlines the queue.
    let worker = &settings.worker;
    if worker.function_timeout.is_none() {
        return Err(ConfigError::not_set(&catalog::WORKER_TIMEOUT_SECS).into());
    }
    if worker.queue_limits.is_none() {
        return Err(ConfigError::not_set(&catalog::JOBS_MAX_RECEIVE_COUNT).into());
    }
    let worker = Worker::new(
        deployment.store.clone(),
        provisioners::from_settings(&deployment.settings.provisioner, webhook_secret, exchanges)?,
        crate::marketplace(
            &settings.marketplace,
            keys,
            deployment.clock.clone(),
            exchanges,
        )?,
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
    // The License callbacks' events (partition keys `LICENSE#`).
    Ok(worker
        .with_directory(deployment.directory())
        .with_licenses(deployment.licenses()))
}

/// Serves the SQS event source with partial batch failures.
pub async fn run(deployment: Deployment) -> Result<(), Error> {
    let function = WorkerFunction::new(&deployment, &Env::process()).await?;
    let function = &function;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(function.invoke(event.payload).await)
    }))
    .await
}

/// The worker's function, loaded: what [`run`] runs each batch of.
pub struct WorkerFunction {
    worker: Worker,
    settle: SqsConsumer,
    exchanges: ExchangeRecorder,
}

impl WorkerFunction {
    /// The worker on `deployment` (loaded with [`LOAD`]), the dead-letter queue and SSO's settings
    /// read from `env` (the process's on Lambda); called within the runtime (the exchange log's
    /// writer is a task of it).
    pub async fn new(deployment: &Deployment, env: &Env<'_>) -> Result<Self, Error> {
        // The exchange log of the calls the worker makes (the webhook, Query Order), on the table.
        let exchanges = deployment.exchange_recorder();
        let mut worker = worker(deployment, &exchanges)?;
        // With SSO, the sessions the directory events end (docs/protocol/decisions.md §19).
        if let Some(provider) = sso::lambda::for_worker(deployment, env).await? {
            worker = worker.with_sessions(std::sync::Arc::new(provider));
        }
        let queue = deployment
            .sqs
            .clone()
            .ok_or("KOOGALLERY_QUEUE_URL is not set (the SAM template sets it)")?;
        let settle = SqsConsumer {
            queue,
            dlq_url: env.required(&catalog::DLQ_URL)?,
            // The event source deletes what the batch response does not name.
            delete_on_ack: false,
        };
        Ok(Self {
            worker,
            settle,
            exchanges,
        })
    }

    /// One batch of the event source: the messages to leave on the queue.
    pub async fn invoke(&self, event: SqsEvent) -> SqsBatchResponse {
        let keep = settle_batch(&self.worker, &self.settle, from_lambda_event(event)).await;
        flush_exchanges(&self.exchanges).await;
        batch_response(keep)
    }
}
