//! The local host on the AWS adapters: DynamoDB for the store and SQS for the queue, reached at
//! `AWS_ENDPOINT_URL` (the emulator that `make run-aws-local` starts). The same edge, callbacks and
//! worker; the worker long-polls SQS and settles messages exactly as the Lambda event source does.
//! Usage is kept on DynamoDB (`DynamoUsageStore`): `POST /usage` is served, and the usage push
//! runs on a timer with the pusher the Lambda function builds (`usage_push::pusher`).

use std::sync::Arc;

use koogallery::{
    clock::{Clock, SystemClock},
    config::Config,
    metering::UsageStore,
    provisioning::Provisioner,
};
use koogallery_aws::{DynamoStore, DynamoUsageStore, SqsConsumer, SqsQueue, bootstrap};

use super::{LocalSettings, Running, StartError, UsageApi, assemble, serve};

/// Table and queue names on the emulator.
#[derive(Debug, Clone)]
pub struct AwsSettings {
    pub table: String,
    pub queue: String,
}

impl AwsSettings {
    /// `KOOGALLERY_TABLE` (default `koogallery-local`) and `KOOGALLERY_QUEUE` (default `koogallery-jobs`).
    pub fn from_env() -> Self {
        use koogallery::config::{Env, catalog};
        let env = Env::process();
        Self {
            table: env.text(&catalog::TABLE).unwrap_or_default(),
            queue: env.text(&catalog::QUEUE).unwrap_or_default(),
        }
    }
}

/// The AWS backend: the DynamoDB store, the usage store on its table, the jobs queue and the
/// dead-letter queue's URL.
pub struct Aws {
    pub store: Arc<DynamoStore>,
    pub usage: Arc<DynamoUsageStore>,
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
    start_aws_with(config, settings, aws, provisioner, sdk).await
}

/// [`start_aws`] with the SDK configured by the caller (tests that reach the emulator through a
/// proxy of their own: `koogallery_aws::sdk_config_at`).
pub async fn start_aws_with(
    config: Config,
    settings: LocalSettings,
    aws: AwsSettings,
    provisioner: Option<Arc<dyn Provisioner>>,
    sdk: koogallery_aws::SdkConfig,
) -> Result<RunningAwsHost, StartError> {
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let sqs_client = aws_sdk_sqs::Client::new(&sdk);
    bootstrap::ensure_table(&dynamo, &aws.table)
        .await
        .map_err(|e| StartError::Aws(e.to_string()))?;
    let (queue_url, dlq_url) =
        bootstrap::ensure_queues(&sqs_client, &aws.queue, bootstrap::REDRIVE_MAX_RECEIVES)
            .await
            .map_err(|e| StartError::Aws(e.to_string()))?;
    let store = Arc::new(DynamoStore::new(dynamo, aws.table.clone()));
    let usage = Arc::new(DynamoUsageStore::from(store.as_ref()));
    let sqs = SqsQueue::new(sqs_client, queue_url);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let sealer = super::local_sealer(&settings)?;
    let kit_key = super::local_kit_key(&config, &settings)?;
    let (worker, edge) = assemble(
        store.clone(),
        Arc::new(sqs.clone()),
        super::Extras {
            // DynamoDB then SQS, as the Lambda function does.
            intake: None,
            usage: Some(usage.clone()),
            directory: Some(Arc::new(koogallery_aws::DynamoDirectory::from(
                store.as_ref(),
            ))),
            kit_key: Some(kit_key.clone()),
        },
        clock,
        &config,
        provisioner,
        sealer,
    )?;
    let usage_api = UsageApi::new(
        &config,
        store.clone(),
        usage.clone(),
        Arc::new(sqs.clone()),
        worker.clock.clone(),
    );
    let (addr, stop, stopped, server) = serve(
        edge,
        Some(usage_api),
        &settings,
        Some(kit_key.public_key_pem()),
    )
    .await?;
    let pusher = usage_push::pusher(
        &config.settings,
        &config.secrets,
        usage.clone() as Arc<dyn UsageStore>,
        store.clone(),
        worker.clock.clone(),
        worker.metrics.clone(),
    )?;
    if pusher.is_none() {
        tracing::warn!("{}", usage_push::NOT_CONFIGURED);
    }
    let push_task = tokio::spawn(super::push_every(
        pusher,
        config.settings.metering.push_every,
        stopped.clone(),
    ));
    let consumer = SqsConsumer {
        queue: sqs.clone(),
        dlq_url: dlq_url.clone(),
        // A poller deletes what it settles (on Lambda the event source does).
        delete_on_ack: true,
    };
    let reconciler = super::reconciler(store.clone(), Arc::new(sqs.clone()), &worker, &config);
    let reconcile_task = tokio::spawn(super::reconcile_every(
        reconciler,
        config.settings.worker.reconcile_every,
        stopped.clone(),
    ));
    let worker_task = tokio::spawn(async move {
        provision_worker::consume::poll(&worker, &consumer, stopped).await;
    });
    tracing::info!(%addr, table = %aws.table, queue = %aws.queue, "local host ready on the AWS adapters: POST http://{addr}/produce");
    Ok(Running {
        addr,
        backend: Aws {
            store,
            usage,
            sqs,
            dlq_url,
        },
        stop,
        tasks: vec![server, worker_task, reconcile_task, push_task],
    })
}
