//! The usage queue on AWS Lambda: the SQS event source with partial batch failures, the usage
//! dead-letter queue for refused batches.

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use koogallery::{config::catalog, metering::UsageStore};
use koogallery_aws::{SqsConsumer, SqsQueue, from_lambda_event, sqs::batch_response};
use koogallery_lambda::{Deployment, Error, Load, required};
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
    let queue = usage_queue(&deployment, usage)?;
    let settle = SqsConsumer {
        queue: SqsQueue::new(
            aws_sdk_sqs::Client::new(&deployment.sdk),
            required(&catalog::USAGE_QUEUE_URL)?,
        ),
        dlq_url: required(&catalog::USAGE_DLQ_URL)?,
        // The event source deletes what the batch response does not name.
        delete_on_ack: false,
    };
    let (queue, settle) = (&queue, &settle);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let keep = settle_batch(queue, settle, from_lambda_event(event.payload)).await;
        Ok::<_, Error>(batch_response(keep))
    }))
    .await
}
