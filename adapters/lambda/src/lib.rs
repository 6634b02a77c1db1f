//! AWS Lambda wiring shared by every function. Each `main.rs` is a few lines: [`init_tracing`], then
//! [`serve_callback`] (a callback function, by its registry name) or the edge's and the worker's own
//! `lambda::run` with [`load`]. Settings are read and the secrets fetched once per execution
//! environment, only the parts the function uses (each from its own secret, which the function's
//! role alone may read); keys never pass through environment variables. [`load_from`] and
//! [`CallbackFunction`] are the same wiring without Lambda's runtime: a test builds a function
//! there, on its own environment and a counting HTTPS client, and invokes it in process.

use std::{sync::Arc, time::Duration};

use koogallery::{
    callbacks::{Resources, registry, registry::Handler},
    clock::{Clock, SystemClock},
    config::{
        ConfigError, Env, HeldSecrets, OpenApiAccess, SecretPart, Secrets, Setting, Settings,
        catalog,
    },
    exchange::ExchangeRecorder,
    jobs::JobQueue,
    protocol::Reply,
};
use koogallery_aws::{AwsHttp, DynamoStore, Roots, SecretsManagerSecrets, SqsQueue};
pub use lambda_runtime::Error;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

/// JSON log lines without colour or timestamps (Lambda stamps each line), one per event; a
/// `RUST_LOG` that does not parse stops start-up, named.
pub fn init_tracing() -> Result<(), ConfigError> {
    koogallery::logging::init(&koogallery::logging::LogSettings::lambda(&Env::process())?);
    Ok(())
}

/// A variable the SAM template sets; its absence is a deployment error, named.
pub fn required(setting: &Setting) -> Result<String, ConfigError> {
    Env::process().required(setting)
}

/// What a function loads, from its template environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// The parts of the secrets to fetch, each from the secret its variable names
    /// ([`SecretPart::env_var`]); the function's role may read exactly these.
    pub secrets: &'static [SecretPart],
    /// Build the jobs queue (`KOOGALLERY_QUEUE_URL`).
    pub queue: bool,
    /// Seal or open passwords at rest with KMS (`KOOGALLERY_CREDENTIALS_KEY_ID`).
    pub sealer: bool,
}

/// Everything a function needs, built once per execution environment.
pub struct Deployment {
    pub settings: Settings,
    /// The parts [`Load::secrets`] asked for; the others are `None`.
    pub secrets: HeldSecrets,
    pub store: Arc<DynamoStore>,
    pub sqs: Option<SqsQueue>,
    pub sealer: Option<Arc<dyn koogallery::security::at_rest::CredentialSealer>>,
    pub clock: Arc<dyn Clock>,
    pub sdk: aws_config::SdkConfig,
    /// The HTTPS client `sdk`'s clients use, for the signed calls ([`koogallery_aws::signed`]).
    pub http: koogallery_aws::AwsHttp,
}

impl Deployment {
    /// The usage store on the deployment's table: the windows, idempotency keys and
    /// packages of pay-per-use usage (partition keys `USAGE#`, `USAGEKEY#`, `USAGEPKG#`). The
    /// usage functions (`usage-ingest`, `usage-queue`, `usage-push`) take it from here only.
    pub fn usage_store(&self) -> Arc<dyn koogallery::metering::UsageStore> {
        Arc::new(koogallery_aws::DynamoUsageStore::from(self.store.as_ref()))
    }

    /// The tenant directory (the Kit syncs) on the deployment's table (partition keys `DIR#`).
    pub fn directory(&self) -> Arc<dyn koogallery::directory::TenantDirectory> {
        Arc::new(koogallery_aws::DynamoDirectory::from(self.store.as_ref()))
    }

    /// The license codes (`LICENSE#`, `LICUSE#` partitions).
    pub fn licenses(&self) -> Arc<dyn koogallery::license::LicenseStore> {
        Arc::new(koogallery_aws::DynamoLicenses::from(self.store.as_ref()))
    }

    /// The exchange log (`KOOGALLERY_EXCHANGE_LOG_DAYS`, 0 for none) on the deployment's table
    /// (`XLOG#` partitions), its writer a task of this execution environment; every invocation
    /// of a function that records ends with [`flush_exchanges`]. Called within the runtime.
    pub fn exchange_recorder(&self) -> ExchangeRecorder {
        match self.settings.exchange_log {
            Some(retention) => {
                let (_, recorder, writer) =
                    koogallery_aws::DynamoExchangeLog::recording(&self.store, retention);
                tokio::spawn(writer.run());
                recorder
            }
            None => ExchangeRecorder::off(),
        }
    }

    /// The jobs queue, when [`Load::queue`] asked for it (`KOOGALLERY_QUEUE_URL`).
    pub fn job_queue(&self) -> Result<Arc<dyn JobQueue>, ConfigError> {
        self.sqs
            .clone()
            .map(|q| Arc::new(q) as Arc<dyn JobQueue>)
            .ok_or_else(|| {
                ConfigError::invalid(
                    catalog::QUEUE_URL.name,
                    "is not loaded: the function's Load must ask for the queue",
                )
            })
    }
}

/// How long an invocation waits, after its answer is computed, for the exchange log to take its
/// calls: Lambda freezes the process once the handler returns, and a writer frozen mid-batch
/// writes it only at the next invocation (or never, if the environment is reclaimed).
pub const EXCHANGE_FLUSH: Duration = Duration::from_millis(500);

/// Writes the invocation's exchanges before it returns, within [`EXCHANGE_FLUSH`]: after the
/// answer is computed, since the process is frozen as soon as it is returned. A flush that
/// takes longer leaves the rest to the writer at the next invocation.
pub async fn flush_exchanges(exchanges: &ExchangeRecorder) {
    if !exchanges.is_on() {
        return;
    }
    if tokio::time::timeout(EXCHANGE_FLUSH, exchanges.flush())
        .await
        .is_err()
    {
        tracing::warn!(
            "exchange log: this invocation's calls were not written within {EXCHANGE_FLUSH:?}; they are written later if the environment is reused"
        );
    }
}

/// Reads the settings and, as `load` asks, the parts of the secrets and the queue; builds the
/// DynamoDB adapter. A missing or bad setting stops the function's start-up with the variable's
/// name; a missing or bad secret with the secret's and the field's.
pub async fn load(load: Load) -> Result<Deployment, Error> {
    load_from(load, &Env::process(), AwsHttp::new(Roots::Bundled)).await
}

/// [`load`] from `env` instead of the process's environment, every AWS call sent through `http`
/// (a test's, counting them: `AwsHttp::counting`).
pub async fn load_from(load: Load, env: &Env<'_>, http: AwsHttp) -> Result<Deployment, Error> {
    let sdk = koogallery_aws::lambda_sdk_config(env, &http)?;
    let secrets = if load.secrets.is_empty() {
        HeldSecrets::default()
    } else {
        SecretsManagerSecrets::from_env(
            aws_sdk_secretsmanager::Client::new(&sdk),
            load.secrets,
            env,
        )?
        .read_parts(load.secrets)
        .await?
    };
    // A function that calls the open API must have its AK/SK, or be told explicitly to run
    // offline: a deployment must not provision from made-up orders by accident.
    let open_api = OpenApiAccess {
        held: secrets.open_api.is_some(),
        offline_by_default: !load.secrets.contains(&SecretPart::OpenApi),
    };
    let settings = Settings::read(env, open_api)?;
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        env.required(&catalog::TABLE)?,
    ));
    let sqs = if load.queue {
        Some(SqsQueue::new(
            aws_sdk_sqs::Client::new(&sdk),
            env.required(&catalog::QUEUE_URL)?,
        ))
    } else {
        None
    };
    let sealer = if load.sealer {
        Some(Arc::new(koogallery_aws::KmsSealer::new(
            koogallery_aws::signed::SignedClient::new(
                &sdk,
                &http,
                koogallery_aws::signed::Service::Kms,
            )?,
            env.required(&catalog::CREDENTIALS_KEY_ID)?,
        ))
            as Arc<dyn koogallery::security::at_rest::CredentialSealer>)
    } else {
        None
    };
    Ok(Deployment {
        settings,
        secrets,
        store,
        sqs,
        sealer,
        clock: Arc::new(SystemClock),
        sdk,
        http,
    })
}

/// Serves one registered callback (`function` as in the registry, e.g. `new-instance`): the edge
/// invokes it with the verified body and the answer is the callback's reply.
pub async fn serve_callback(function: &str) -> Result<(), Error> {
    let callback = CallbackFunction::load(function, load).await?;
    let callback = &callback;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(callback.invoke(event.payload).await)
    }))
    .await
}

/// A registered callback's function, loaded: what [`serve_callback`] runs each invocation of.
pub struct CallbackFunction {
    handler: Box<dyn Handler>,
}

impl CallbackFunction {
    /// What the function of `callback` loads: the parts of the secrets, the queue and the sealer
    /// its registry `Needs` name, nothing else.
    pub fn needs(callback: &registry::Registration) -> Load {
        Load {
            secrets: match (callback.needs.keys, callback.needs.client_secret) {
                (true, true) => &[SecretPart::CallbackKeys, SecretPart::KitRsa],
                (true, false) => &[SecretPart::CallbackKeys],
                (false, true) => &[SecretPart::KitRsa],
                (false, false) => &[],
            },
            queue: callback.needs.queue,
            sealer: callback.needs.open_credentials || callback.needs.client_secret,
        }
    }

    /// The function of the callback registered as `function`, its deployment loaded by `loader`
    /// ([`load`] on Lambda; a test's [`load_from`]).
    pub async fn load<F, Fut>(function: &str, loader: F) -> Result<Self, Error>
    where
        F: FnOnce(Load) -> Fut,
        Fut: std::future::Future<Output = Result<Deployment, Error>>,
    {
        let callback = registry::by_function(function)
            .ok_or_else(|| format!("no callback named {function} is registered"))?;
        let d = loader(Self::needs(callback)).await?;
        // queryInstance's `usageInfo`: its role reads the usage partitions (`StoreAccess::ReadMany`).
        let usage =
            (callback.needs.store == registry::StoreAccess::ReadMany).then(|| d.usage_store());
        // The Kit syncs: their role reads and writes the directory partitions (`DIR#`).
        let directory =
            (callback.needs.store == registry::StoreAccess::Directory).then(|| d.directory());
        // The License callbacks: their role reads and writes the code records (`LICENSE#`).
        let licenses =
            (callback.needs.store == registry::StoreAccess::Licenses).then(|| d.licenses());
        let resources = Resources {
            store: d.store.clone(),
            queue: d.sqs.map(|q| Arc::new(q) as Arc<dyn JobQueue>),
            clock: d.clock,
            keys: d.secrets.keys,
            settings: d.settings.callbacks,
            sealer: d.sealer,
            order_notices: Some(d.store.clone()),
            // DynamoDB then SQS: one conditional transaction and one enqueue (`StoreThenQueue`).
            intake: None,
            usage,
            directory,
            client_secret_key: d.secrets.kit_rsa.clone(),
            licenses,
        };
        Ok(Self {
            handler: callback.handler(&resources)?,
        })
    }

    /// One invocation: the edge's payload (the verified body, or it and the key that verified
    /// it) in, the callback's reply out.
    pub async fn invoke(&self, payload: Value) -> Reply {
        let (body, key) = registry::from_invocation(payload);
        self.handler.call(&body, key).await
    }
}

/// Serves the reconciler: each scheduled invocation (any payload) runs one pass over the table's
/// unsettled instances and answers what it found (also logged, written as metrics, and kept in
/// the exchange log).
pub async fn serve_reconciler() -> Result<(), Error> {
    let reconciler = ReconcilerFunction::new(load(ReconcilerFunction::LOAD).await?)?;
    let reconciler = &reconciler;
    lambda_runtime::run(service_fn(move |_: LambdaEvent<Value>| async move {
        reconciler.invoke().await
    }))
    .await
}

/// The reconciler's function, loaded: what [`serve_reconciler`] runs each invocation of.
pub struct ReconcilerFunction {
    reconciler: koogallery::reconciler::Reconciler,
    exchanges: ExchangeRecorder,
}

impl ReconcilerFunction {
    /// What it loads: no secret, the jobs queue it re-queues on.
    pub const LOAD: Load = Load {
        secrets: &[],
        queue: true,
        sealer: false,
    };

    /// The reconciler on `deployment` (loaded with [`Self::LOAD`]); called within the runtime
    /// (the exchange log's writer is a task of it).
    pub fn new(deployment: Deployment) -> Result<Self, Error> {
        let exchanges = deployment.exchange_recorder();
        let queue = deployment
            .sqs
            .ok_or("KOOGALLERY_QUEUE_URL is not set (the SAM template sets it)")?;
        Ok(Self {
            reconciler: koogallery::reconciler::Reconciler {
                store: deployment.store,
                queue: Arc::new(queue),
                clock: deployment.clock,
                settings: deployment.settings.worker,
                metrics: Arc::new(koogallery::metrics::EmfStdout::from_env()),
            },
            exchanges,
        })
    }

    /// One pass, kept as the local host's scheduled passes are (the console's "last passes").
    pub async fn invoke(&self) -> Result<Value, Error> {
        let report = self.reconciler.run_once().await?;
        let now = self.reconciler.clock.now();
        koogallery::operator::keep_pass(
            &self.exchanges,
            &report,
            koogallery::operator::SCHEDULE,
            now,
        );
        flush_exchanges(&self.exchanges).await;
        Ok(serde_json::json!({
            "stuckProvisioning": report.stuck_provisioning,
            "undeliveredNotices": report.undelivered_notices,
            "parkedOutboxes": report.parked_outboxes,
        }))
    }
}
