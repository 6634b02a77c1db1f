//! The local host on the AWS adapters: DynamoDB for the store and SQS for the queue, reached at
//! `AWS_ENDPOINT_URL` (the emulator that `make run-aws-local` starts). The same edge, callbacks and
//! worker; the worker long-polls SQS and settles messages exactly as the Lambda event source does.

use std::{sync::Arc, time::Duration};

use koogallery::{
    config::Config,
    ports::{Clock, Provisioner, SystemClock},
};
use koogallery_aws::{DynamoStore, SqsQueue, bootstrap};
use provision_worker::{
    Worker,
    batch::{Message, process_batch},
    lambda::SqsSettle,
};
use tokio::sync::watch;

use super::{LocalSettings, Running, StartError, assemble, serve};

/// Table and queue names on the emulator.
#[derive(Debug, Clone)]
pub struct AwsSettings {
    pub table: String,
    pub queue: String,
}

impl AwsSettings {
    /// `KOOGALLERY_TABLE` (default `koogallery-local`) and `KOOGALLERY_QUEUE` (default `koogallery-jobs`).
    pub fn from_env() -> Self {
        let var = |k: &str, d: &str| {
            std::env::var(k)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| d.into())
        };
        Self {
            table: var("KOOGALLERY_TABLE", "koogallery-local"),
            queue: var("KOOGALLERY_QUEUE", "koogallery-jobs"),
        }
    }
}

/// The AWS backend: the DynamoDB store, the jobs queue and the dead-letter queue's URL.
pub struct Aws {
    pub store: Arc<DynamoStore>,
    pub sqs: SqsQueue,
    pub dlq_url: String,
}

/// The local host on the AWS adapters.
pub type RunningAwsHost = Running<Aws>;

/// Creates the table and queues if needed (SAM does this on AWS), then serves.
pub async fn start_aws(
    config: Config,
    settings: LocalSettings,
    aws: AwsSettings,
    provisioner: Option<Arc<dyn Provisioner>>,
) -> Result<RunningAwsHost, StartError> {
    let sdk = koogallery_aws::sdk_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let sqs_client = aws_sdk_sqs::Client::new(&sdk);
    bootstrap::ensure_table(&dynamo, &aws.table)
        .await
        .map_err(|e| StartError::Aws(e.to_string()))?;
    let (queue_url, dlq_url) =
        bootstrap::ensure_queues(&sqs_client, &aws.queue, config.worker.max_attempts)
            .await
            .map_err(|e| StartError::Aws(e.to_string()))?;
    let store = Arc::new(DynamoStore::new(dynamo, aws.table.clone()));
    let sqs = SqsQueue::new(sqs_client, queue_url);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let config = Arc::new(config);
    let (worker, edge) = assemble(
        store.clone(),
        Arc::new(sqs.clone()),
        clock,
        config.clone(),
        provisioner,
    )?;
    let (addr, stop, stopped, server) = serve(edge, &settings, config.max_body_bytes).await?;
    let settle = SqsSettle {
        queue: sqs.clone(),
        dlq_url: dlq_url.clone(),
    };
    let worker_task = tokio::spawn(poll_sqs(worker, settle, stopped));
    tracing::info!(%addr, table = %aws.table, queue = %aws.queue, "local host ready on the AWS adapters: POST http://{addr}/produce");
    Ok(Running {
        addr,
        backend: Aws {
            store,
            sqs,
            dlq_url,
        },
        stop,
        tasks: vec![server, worker_task],
    })
}

/// Long-polls the jobs queue and settles each batch as the Lambda event source would: the messages
/// `process_batch` does not keep are deleted.
async fn poll_sqs(worker: Arc<Worker>, settle: SqsSettle, mut stopped: watch::Receiver<bool>) {
    let visibility = worker.config.claim_duration + Duration::from_secs(30);
    while !*stopped.borrow() {
        let received = tokio::select! {
            r = settle.queue.receive(10, Duration::from_secs(1), visibility) => r,
            _ = stopped.changed() => return,
        };
        let deliveries = match received {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "cannot receive from SQS; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let messages: Vec<Message> = deliveries
            .iter()
            .map(|d| Message {
                message_id: d.message_id.clone(),
                receipt_handle: d.receipt_handle.clone(),
                body: d.body.clone(),
                attempt: d.attempt,
            })
            .collect();
        let keep = process_batch(&worker, &settle, messages).await;
        for d in deliveries.iter().filter(|d| !keep.contains(&d.message_id)) {
            if let Err(e) = settle.queue.delete(&d.receipt_handle).await {
                tracing::warn!(error = %e, "could not delete a settled message; it will be delivered again");
            }
        }
    }
}
