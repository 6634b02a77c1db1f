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
use provision_worker::Worker;
use tokio::{sync::watch, task::JoinHandle};

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
    let backend = Aws::bootstrap(&sdk, &aws).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let sealer = super::local_sealer(&settings)?;
    let kit_key = super::local_kit_key(&config, &settings)?;
    // SSO on the table, as the Lambda function keeps it: sessions, grants, clients and keys in
    // `DynamoSso`, the tenant directory (and its locator) in `DynamoDirectory`.
    let sso = match &settings.sso {
        Some(sso) => {
            let directory = Arc::new(koogallery_aws::DynamoDirectory::from(
                backend.store.as_ref(),
            ));
            Some(
                super::sso_provider(
                    sso,
                    sso::build::Parts {
                        directory: directory.clone(),
                        locator: directory,
                        store: Arc::new(koogallery_aws::DynamoSso::from(backend.store.as_ref())),
                        sealer: sealer.clone(),
                        clock: clock.clone(),
                        metrics: super::local_metrics(),
                        jobs: Some(Arc::new(backend.sqs.clone())),
                    },
                )
                .await?,
            )
        }
        None => None,
    };
    // The exchange log on the table, as the edge function keeps it: one recorder for the edge
    // and for the host's stop (its last batch written before the backend closes).
    let exchanges = crate::exchanges::recorder(
        &config,
        config.settings.exchange_log.map(|retention| {
            Arc::new(
                koogallery_aws::DynamoExchangeLog::from(backend.store.as_ref())
                    .with_retention(retention),
            ) as Arc<dyn koogallery::exchange::ExchangeLog>
        }),
    );
    let mut extras = backend.extras(kit_key.clone(), exchanges.clone());
    extras.sessions = sso
        .clone()
        .map(|p| p as Arc<dyn koogallery::sso::SessionEnder>);
    let (worker, edge) = assemble(
        backend.store.clone(),
        Arc::new(backend.sqs.clone()),
        extras,
        clock,
        &config,
        provisioner,
        sealer,
    )?;
    let usage_api = UsageApi::new(
        &config,
        backend.store.clone(),
        backend.usage.clone(),
        Arc::new(backend.sqs.clone()),
        worker.clock.clone(),
    );
    let licenses: Arc<dyn koogallery::license::LicenseStore> =
        Arc::new(koogallery_aws::DynamoLicenses::from(backend.store.as_ref()));
    let (license, license_market) = crate::license_api(
        &config,
        &settings,
        licenses.clone(),
        backend.store.clone(),
        Arc::new(backend.sqs.clone()),
        worker.clock.clone(),
        &exchanges,
    )?;
    let health = crate::Health::new(
        backend.store.clone(),
        worker.clock.clone(),
        config.settings.worker.reconcile_every,
    );
    let (addr, stop, stopped, server) = serve(
        edge,
        Some(usage_api),
        &settings,
        Some(kit_key.public_key_pem()),
        sso,
        Some(health.clone()),
        Some(license),
        None,
    )
    .await?;
    let license_task = tokio::spawn(crate::license_api::report_usage_every(
        licenses,
        license_market,
        worker.clock.clone(),
        worker.metrics.clone(),
        stopped.clone(),
    ));
    let [worker_task, reconcile_task, push_task] =
        backend.spawn_work(worker, &config, health, stopped, &exchanges)?;
    let scheme = if settings.tls.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(%addr, table = %aws.table, queue = %aws.queue, "local host ready on the AWS adapters: POST {scheme}://{addr}/produce");
    Ok(Running {
        addr,
        https: settings.tls.is_some(),
        backend,
        stop,
        server,
        tasks: vec![worker_task, reconcile_task, push_task, license_task],
        grace: settings.shutdown_grace,
        exchanges,
    })
}

/// DynamoDB and SQS keep nothing in the process.
impl crate::running::Backend for Aws {}

impl Aws {
    /// Creates the table and the queues if needed (SAM does this on AWS) and opens the store, the
    /// usage store and the jobs queue on them.
    async fn bootstrap(
        sdk: &koogallery_aws::SdkConfig,
        aws: &AwsSettings,
    ) -> Result<Self, StartError> {
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        let sqs_client = aws_sdk_sqs::Client::new(sdk);
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
        Ok(Self {
            store,
            usage,
            sqs,
            dlq_url,
        })
    }

    /// What the AWS adapters offer the callbacks beyond the store: usage windows and the tenant
    /// directory on the table, and the Kit key.
    fn extras(
        &self,
        kit_key: Arc<koogallery::security::kit_client_secret::ClientSecretKey>,
        exchanges: koogallery::exchange::ExchangeRecorder,
    ) -> super::Extras {
        super::Extras {
            // DynamoDB then SQS, as the Lambda function does.
            intake: None,
            usage: Some(self.usage.clone()),
            directory: Some(Arc::new(koogallery_aws::DynamoDirectory::from(
                self.store.as_ref(),
            ))),
            kit_key: Some(kit_key),
            sessions: None,
            licenses: Some(Arc::new(koogallery_aws::DynamoLicenses::from(
                self.store.as_ref(),
            ))),
            exchanges,
        }
    }

    /// The work beside the HTTP server, until `stopped`: the usage push and the reconciler on
    /// their timers (EventBridge Scheduler's on AWS), and the worker long-polling SQS. Returns
    /// the worker's, the reconciler's and the push's tasks.
    fn spawn_work(
        &self,
        worker: Arc<Worker>,
        config: &Config,
        health: Arc<crate::Health>,
        stopped: watch::Receiver<bool>,
        exchanges: &koogallery::exchange::ExchangeRecorder,
    ) -> Result<[JoinHandle<()>; 3], StartError> {
        let pusher = super::usage_pusher(
            config,
            self.usage.clone() as Arc<dyn UsageStore>,
            self.store.clone(),
            &worker,
            exchanges,
        )?;
        let push_task = tokio::spawn(super::push_every(
            pusher,
            config.settings.metering.push_every,
            stopped.clone(),
        ));
        let consumer = SqsConsumer {
            queue: self.sqs.clone(),
            dlq_url: self.dlq_url.clone(),
            // A poller deletes what it settles (on Lambda the event source does).
            delete_on_ack: true,
        };
        let reconciler = super::reconciler(
            self.store.clone(),
            Arc::new(self.sqs.clone()),
            &worker,
            config,
        );
        let reconcile_task = tokio::spawn(super::reconcile_every(
            reconciler,
            config.settings.worker.reconcile_every,
            health.clone(),
            stopped.clone(),
            exchanges.clone(),
        ));
        let worker_task = tokio::spawn(async move {
            health.worker_running(true);
            provision_worker::consume::poll(&worker, &consumer, stopped).await;
            health.worker_running(false);
        });
        Ok([worker_task, reconcile_task, push_task])
    }
}
