//! AWS Lambda wiring shared by every function. Each `main.rs` is a few lines: [`init_tracing`],
//! [`load`] once per execution environment (configuration, secrets, AWS clients), then
//! [`run_callback`] (or the edge's and the worker's own `lambda::run`), which call the same library
//! functions the local host calls.

use std::{collections::HashMap, future::Future, sync::Arc};

use koogallery::ports::Secrets;
use koogallery::{
    config::Config,
    error::QueueError,
    ports::{Job, JobQueue, SystemClock},
    services::Services,
    wire::Reply,
};
use koogallery_aws::{DynamoStore, SecretsManagerSecrets, SqsQueue};
pub use lambda_runtime::Error;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

/// JSON log lines without colour or timestamps (Lambda stamps each line), one per event.
pub fn init_tracing() {
    use tracing_subscriber::{EnvFilter, fmt};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_ansi(false)
        .without_time()
        .try_init();
}

/// Everything a function needs, built once per execution environment.
pub struct Deployment {
    pub services: Services,
    pub store: Arc<DynamoStore>,
    pub sqs: Option<SqsQueue>,
    pub sdk: aws_config::SdkConfig,
}

/// Whether a function reads the keys secret (edge, queryInstance and the worker do; the others have
/// no permission to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretUse {
    None,
    Keys,
}

pub fn required(name: &str) -> Result<String, Error> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| format!("{name} is not set (the SAM template sets it)").into())
}

/// Reads the environment and, when asked, the keys secret (once: the answer lives as long as the
/// execution environment), and builds the DynamoDB and SQS adapters.
pub async fn load(secret_use: SecretUse) -> Result<Deployment, Error> {
    let sdk = koogallery_aws::sdk_config().await;
    // Secret values are offered to the configuration as if they were settings, so the one loader
    // validates everything; they never pass through the process environment.
    let mut injected: HashMap<&'static str, String> = HashMap::new();
    if secret_use == SecretUse::Keys {
        let secrets = SecretsManagerSecrets::new(
            aws_sdk_secretsmanager::Client::new(&sdk),
            required("KOOGALLERY_SECRET_ID")?,
        );
        let keys = secrets.keys().await?;
        injected.insert(
            "KOOGALLERY_ACCESS_KEY",
            keys.basic.current.expose().to_owned(),
        );
        injected.insert("KOOGALLERY_KIT_KEY", keys.kit.current.expose().to_owned());
        if let Some(p) = &keys.basic.previous {
            injected.insert("KOOGALLERY_ACCESS_KEY_PREVIOUS", p.expose().to_owned());
        }
        if let Some(p) = &keys.kit.previous {
            injected.insert("KOOGALLERY_KIT_KEY_PREVIOUS", p.expose().to_owned());
        }
        if let Some(w) = secrets.webhook_secret().await? {
            injected.insert("KOOGALLERY_WEBHOOK_SECRET", w.expose().to_owned());
        }
    }
    let config = Config::from_lookup(|k| {
        injected.get(k).cloned().or_else(|| {
            // Keys only ever come from the secret on AWS, never from plain environment variables.
            if k.starts_with("KOOGALLERY_ACCESS_KEY")
                || k.starts_with("KOOGALLERY_KIT_KEY")
                || k == "KOOGALLERY_WEBHOOK_SECRET"
            {
                return None;
            }
            std::env::var(k).ok().filter(|v| !v.trim().is_empty())
        })
    })?;
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        required("KOOGALLERY_TABLE")?,
    ));
    let sqs = std::env::var("KOOGALLERY_QUEUE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .map(|url| SqsQueue::new(aws_sdk_sqs::Client::new(&sdk), url));
    let queue: Arc<dyn JobQueue> = match &sqs {
        Some(q) => Arc::new(q.clone()),
        None => Arc::new(NoQueue),
    };
    let services = Services {
        store: store.clone(),
        queue,
        clock: Arc::new(SystemClock),
        config: Arc::new(config),
    };
    Ok(Deployment {
        services,
        store,
        sqs,
        sdk,
    })
}

/// The queue of a function the template gives none (it never enqueues): refuses loudly.
struct NoQueue;

#[async_trait::async_trait]
impl JobQueue for NoQueue {
    async fn enqueue(&self, _job: &Job) -> Result<(), QueueError> {
        Err(QueueError(
            "this function has no job queue (KOOGALLERY_QUEUE_URL is not set)".into(),
        ))
    }
}

/// Serves one callback: the edge invokes this function with the verified body; the answer is the
/// callback's `Reply`.
pub async fn run_callback<F, Fut>(deployment: Deployment, callback: F) -> Result<(), Error>
where
    F: Fn(Services, Value) -> Fut,
    Fut: Future<Output = Reply>,
{
    let services = deployment.services;
    let callback = &callback;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let reply = callback(services.clone(), event.payload);
        async move { Ok::<Reply, Error>(reply.await) }
    }))
    .await
}
