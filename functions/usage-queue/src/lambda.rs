//! The usage queue on AWS Lambda: the SQS event source with partial batch failures, the usage
//! dead-letter queue for refused batches.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use koogallery::{
    config::{Env, catalog},
    metering::UsageStore,
};
use koogallery_aws::{SqsConsumer, SqsQueue, from_lambda_event, sqs::batch_response};
use koogallery_lambda::{Deployment, Error, Load};
use lambda_runtime::{LambdaEvent, service_fn};

use crate::{QueuedUsage, settle_batch};

/// What the function loads: the table and the jobs queue (a used-up package's `quotaExhausted`
/// notice); no keys: IAM on the usage queue authorizes senders.
pub const LOAD: Load = Load {
    secrets: &[],
    queue: true,
    sealer: false,
};

/// The ingestion over the deployment's table and settings.
pub fn usage_queue(
    deployment: &Deployment,
    usage: Arc<dyn UsageStore>,
) -> Result<QueuedUsage, Error> {
    Ok(QueuedUsage {
        instances: deployment.store.clone(),
        usage,
        jobs: deployment.job_queue()?,
        quotas: Arc::new(deployment.settings.metering.package_quotas.clone()),
        clock: deployment.clock.clone(),
        metrics: Arc::new(koogallery::metrics::EmfStdout::from_env()),
    })
}

/// Serves the usage queue's event source (`KOOGALLERY_USAGE_QUEUE_URL`), dead-lettering refused
/// batches to `KOOGALLERY_USAGE_DLQ_URL`.
pub async fn run(deployment: Deployment, usage: Arc<dyn UsageStore>) -> Result<(), Error> {
    let function = QueueFunction::new(&deployment, usage, &Env::process())?;
    let function = &function;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(function.invoke(event.payload).await)
    }))
    .await
}

/// The usage queue's function, loaded: what [`run`] runs each batch of.
pub struct QueueFunction {
    queue: QueuedUsage,
    settle: SqsConsumer,
}

impl QueueFunction {
    /// The ingestion on `deployment` (loaded with [`LOAD`]) over `usage`, the usage queue and its
    /// dead-letter queue read from `env` (the process's on Lambda).
    pub fn new(
        deployment: &Deployment,
        usage: Arc<dyn UsageStore>,
        env: &Env<'_>,
    ) -> Result<Self, Error> {
        let queue = usage_queue(deployment, usage)?;
        let settle = SqsConsumer {
            queue: SqsQueue::new(
                aws_sdk_sqs::Client::new(&deployment.sdk),
                env.required(&catalog::USAGE_QUEUE_URL)?,
            ),
            dlq_url: env.required(&catalog::USAGE_DLQ_URL)?,
            // The event source deletes what the batch response does not name.
            delete_on_ack: false,
        };
        Ok(Self { queue, settle })
    }

    /// One batch of the event source: the messages to leave on the queue.
    pub async fn invoke(&self, event: SqsEvent) -> SqsBatchResponse {
        let keep = settle_batch(&self.queue, &self.settle, from_lambda_event(event)).await;
        batch_response(keep)
    }
}
