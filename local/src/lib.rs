//! The local host: the same edge, callbacks and worker as on AWS, in one process on the embedded,
//! file-backed store and queue. `make run` starts it; the end-to-end tests start it in-process.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, RawQuery, State, rejection::BytesRejection},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use edge::{Edge, EdgeResponse};
use koogallery::security::at_rest::{CredentialSealer, LocalKeySealer};
use koogallery::{
    ResultCode,
    callbacks::{InProcessDispatcher, Resources},
    clock::{Clock, SystemClock},
    config::{Config, ConfigError, Env, catalog},
    jobs::JobQueue,
    logging::LogSettings,
    metering::{UsagePusher, api::UsageIngestion, estimate::UsageEstimates},
    protocol::Reply,
};
use koogallery_embedded::{EmbeddedConsumer, EmbeddedQueue, EmbeddedStore};
use provision_worker::Worker;
use tokio::sync::watch;

/// Local-only settings: where to listen and where the data lives.
#[derive(Debug, Clone)]
pub struct LocalSettings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
}

impl LocalSettings {
    /// `PORT` (default 8080) on 127.0.0.1 and `KOOGALLERY_DATA_DIR` (default `.data/`).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(&Env::process())
    }

    pub fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let port: u16 = env.number(&catalog::PORT, 0)?;
        Ok(Self {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            data_dir: PathBuf::from(env.text(&catalog::DATA_DIR).unwrap_or_default()),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the data store in {dir}: {source}")]
    Store {
        dir: String,
        source: koogallery::StoreError,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("AWS resources: {0}")]
    Aws(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// A started host with its backend's handles (`B`). Dropping it does not stop it: call
/// [`Running::shutdown`].
pub struct Running<B> {
    pub addr: SocketAddr,
    pub backend: B,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl<B> Running<B> {
    /// The production URL to paste into the simulator (or, behind HTTPS, into KooGallery).
    pub fn produce_url(&self) -> String {
        format!("http://{}/produce", self.addr)
    }

    /// Stops accepting calls and lets the worker finish its current job.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// The embedded backend: the redb store and its queue.
pub struct Embedded {
    pub store: Arc<EmbeddedStore>,
    pub queue: EmbeddedQueue,
}

/// The local host on the embedded store.
pub type RunningHost = Running<Embedded>;

/// Opens the store, binds the listener, and starts the HTTP server and the worker.
pub async fn start(config: Config, settings: LocalSettings) -> Result<RunningHost, StartError> {
    start_with(config, settings, None).await
}

/// [`start`], with the provisioner replaced (tests).
pub async fn start_with(
    config: Config,
    settings: LocalSettings,
    provisioner: Option<Arc<dyn koogallery::provisioning::Provisioner>>,
) -> Result<RunningHost, StartError> {
    let path = settings.data_dir.join("koogallery.redb");
    let store = EmbeddedStore::open(&path).map_err(|source| StartError::Store {
        dir: settings.data_dir.display().to_string(),
        source,
    })?;
    start_on(store, config, settings, provisioner).await
}

/// [`start_with`] on a store already open (outage tests: a store whose disk fills up); the data
/// directory still holds the generated credentials key.
pub async fn start_on(
    store: EmbeddedStore,
    config: Config,
    settings: LocalSettings,
    provisioner: Option<Arc<dyn koogallery::provisioning::Provisioner>>,
) -> Result<RunningHost, StartError> {
    let store = Arc::new(store);
    let queue = store.queue();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let jobs = Arc::new(EmbeddedConsumer::new(queue.clone(), clock.clone()));
    let sealer = local_sealer(&settings)?;
    let kit_key = local_kit_key(&config, &settings)?;
    let (worker, edge) = assemble(
        store.clone(),
        jobs.clone(),
        Extras {
            // The record and its job in one redb commit.
            intake: Some(store.clone()),
            usage: Some(store.clone()),
            directory: Some(store.clone()),
            kit_key: Some(kit_key.clone()),
        },
        clock,
        &config,
        provisioner,
        sealer,
    )?;
    let ingestion = Arc::new(UsageIngestion {
        key: config.secrets.usage.clone(),
        nonces: store.clone(),
        instances: store.clone(),
        usage: store.clone(),
        jobs: Arc::new(queue.clone()),
        quotas: Arc::new(config.settings.metering.package_quotas.clone()),
        clock: worker.clock.clone(),
    });
    let estimates = Arc::new(UsageEstimates {
        key: config.secrets.usage.clone(),
        nonces: store.clone(),
        instances: store.clone(),
        usage: store.clone(),
        prices: Arc::new(config.settings.metering.pricing.clone()),
        clock: worker.clock.clone(),
    });
    let usage = UsageApi {
        ingestion,
        estimates,
    };
    let (addr, stop, stopped, server) =
        serve(edge, Some(usage), &settings, Some(kit_key.public_key_pem())).await?;
    let reconciler = reconciler(store.clone(), Arc::new(queue.clone()), &worker, &config);
    // The same pusher as the Lambda function's; offline, usage is kept, unpushed, and said so.
    let pusher = usage_push::pusher(
        &config.settings,
        &config.secrets,
        store.clone(),
        store.clone(),
        worker.clock.clone(),
        worker.metrics.clone(),
    )?;
    if pusher.is_none() {
        tracing::warn!("{}", usage_push::NOT_CONFIGURED);
    }
    let reconcile_task = tokio::spawn(reconcile_every(
        reconciler,
        config.settings.worker.reconcile_every,
        stopped.clone(),
    ));
    let push_task = tokio::spawn(push_every(
        pusher,
        config.settings.metering.push_every,
        stopped.clone(),
    ));
    let worker_task = tokio::spawn(async move {
        provision_worker::consume::poll(&worker, jobs.as_ref(), stopped).await;
    });
    tracing::info!(%addr, data = %settings.data_dir.display(), "local host ready: POST http://{addr}/produce (Kit: /produce/produceAPI/v2/…; public key: GET /kit/public-key)");
    Ok(Running {
        addr,
        backend: Embedded { store, queue },
        stop,
        tasks: vec![server, worker_task, reconcile_task, push_task],
    })
}

/// The key that seals stored passwords: `KOOGALLERY_CREDENTIALS_KEY` (base64 of 32 bytes), or
/// else `credentials.key` in the data directory, generated on first start, owner-only (0600).
/// Back it up with the store file: without it the stored passwords cannot be read.
pub fn local_sealer(settings: &LocalSettings) -> Result<Arc<dyn CredentialSealer>, StartError> {
    let setting = &catalog::CREDENTIALS_KEY;
    let invalid = |e: koogallery::security::at_rest::SealError| {
        StartError::Config(ConfigError::invalid(setting.name, e.to_string()))
    };
    let sealer = match Env::process().get(setting) {
        Some(key) => LocalKeySealer::from_base64(&key).map_err(invalid)?,
        None => LocalKeySealer::from_key_file(&data_dir(settings)?.join("credentials.key"))
            .map_err(invalid)?,
    };
    Ok(Arc::new(sealer))
}

/// The data directory, created if it is not there yet (the key files generated on first start
/// live in it).
fn data_dir(settings: &LocalSettings) -> Result<&std::path::Path, StartError> {
    std::fs::create_dir_all(&settings.data_dir).map_err(|e| {
        StartError::Config(ConfigError::invalid(
            "KOOGALLERY_DATA_DIR",
            format!("cannot create {}: {e}", settings.data_dir.display()),
        ))
    })?;
    Ok(&settings.data_dir)
}

/// The Kit RSA key (docs/protocol/decisions.md §14): `KOOGALLERY_KIT_RSA_KEY` (PEM), or else
/// `kit-rsa-key.pem` in the data directory, generated on first start, owner-only. Back it up with
/// the store file: its public half is what the seller uploaded to KooGallery.
pub fn local_kit_key(
    config: &Config,
    settings: &LocalSettings,
) -> Result<Arc<koogallery::security::kit_client_secret::ClientSecretKey>, StartError> {
    use koogallery::security::kit_client_secret::load_or_generate;
    const KEY_ENV: &str = koogallery::config::catalog::KIT_RSA_KEY.name;
    if let Some(key) = &config.secrets.kit_rsa {
        return Ok(key.clone());
    }
    load_or_generate(data_dir(settings)?)
        .map(Arc::new)
        .map_err(|e| StartError::Config(ConfigError::invalid(KEY_ENV, e.to_string())))
}

/// The reconciler over the same store, queue, clock and metrics as the worker.
fn reconciler(
    store: Arc<dyn koogallery::instance::InstanceStore>,
    queue: Arc<dyn JobQueue>,
    worker: &Worker,
    config: &Config,
) -> koogallery::reconciler::Reconciler {
    koogallery::reconciler::Reconciler {
        store,
        queue,
        clock: worker.clock.clone(),
        settings: config.settings.worker,
        metrics: worker.metrics.clone(),
    }
}

/// The local host's stand-in for an EventBridge schedule: `pass` right away (it finds what a stop
/// or a crash left behind), then once every `period`, until the host stops.
async fn every<F, Fut>(period: std::time::Duration, mut stopped: watch::Receiver<bool>, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    loop {
        pass().await;
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
    }
}

/// The usage push's schedule (EventBridge Scheduler's on AWS); nothing without a pusher.
async fn push_every(
    pusher: Option<UsagePusher>,
    period: std::time::Duration,
    stopped: watch::Receiver<bool>,
) {
    let Some(pusher) = pusher else { return };
    let pusher = &pusher;
    every(period, stopped, move || async move {
        match pusher.run_once().await {
            Ok(report) if report.pushes > 0 || report.stopped.is_some() => {
                tracing::info!(?report, "usage push pass")
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "usage push pass failed; next pass as scheduled"),
        }
    })
    .await
}

/// The reconciler's schedule (EventBridge Scheduler's job on AWS).
async fn reconcile_every(
    reconciler: koogallery::reconciler::Reconciler,
    period: std::time::Duration,
    stopped: watch::Receiver<bool>,
) {
    let reconciler = &reconciler;
    every(period, stopped, move || async move {
        if let Err(e) = reconciler.run_once().await {
            tracing::error!(error = %koogallery::callbacks::error_chain(&e), "reconciler pass failed; next pass as scheduled");
        }
    })
    .await
}

/// What only some backends offer the callbacks.
#[derive(Default)]
struct Extras {
    /// newInstance's record and job in one write.
    intake: Option<Arc<dyn koogallery::instance::OrderLineIntake>>,
    /// Usage windows (queryInstance's `usageInfo`).
    usage: Option<Arc<dyn koogallery::metering::UsageStore>>,
    /// The tenant directory (the Kit syncs).
    directory: Option<Arc<dyn koogallery::directory::TenantDirectory>>,
    /// The Kit RSA key (applicationSync's `clientSecret`).
    kit_key: Option<Arc<koogallery::security::kit_client_secret::ClientSecretKey>>,
}

/// Wires one backend's store and queue to the callbacks, the edge and the worker: the same for the
/// embedded store and for the AWS adapters.
fn assemble<S>(
    store: Arc<S>,
    queue: Arc<dyn JobQueue>,
    extras: Extras,
    clock: Arc<dyn Clock>,
    config: &Config,
    provisioner: Option<Arc<dyn koogallery::provisioning::Provisioner>>,
    sealer: Arc<dyn CredentialSealer>,
) -> Result<(Arc<Worker>, Arc<Edge>), StartError>
where
    S: koogallery::instance::InstanceStore
        + koogallery::order::notice::OrderNoticeStore
        + koogallery::security::replay::NonceStore
        + 'static,
{
    let mut resources = Resources::from_config(store.clone(), queue, clock.clone(), config)
        .with_sealer(sealer.clone())
        .with_order_notices(store.clone());
    if let Some(intake) = extras.intake {
        resources = resources.with_intake(intake);
    }
    if let Some(usage) = extras.usage {
        resources = resources.with_usage(usage);
    }
    if let Some(directory) = extras.directory.clone() {
        resources = resources.with_directory(directory);
    }
    if let Some(key) = extras.kit_key {
        resources = resources.with_client_secret_key(key);
    }
    let dispatcher = InProcessDispatcher::build(&resources)?;
    let metrics = local_metrics();
    let provisioner = match provisioner {
        Some(p) => p,
        None => provision_worker::provisioners::from_settings(
            &config.settings.provisioner,
            config.secrets.webhook.clone(),
        )?,
    };
    let marketplace = provision_worker::marketplace(
        &config.settings.marketplace,
        config.secrets.open_api.as_ref(),
        clock.clone(),
    )?;
    let mut worker = Worker::new(
        store.clone(),
        provisioner,
        marketplace,
        clock.clone(),
        &config.settings,
        metrics.clone(),
        sealer,
        store.clone(),
    );
    if let Some(directory) = extras.directory {
        worker = worker.with_directory(directory);
    }
    let worker = Arc::new(worker);
    let edge = Arc::new(
        Edge::new(
            &config.settings.edge,
            config.secrets.keys.clone(),
            store,
            clock,
            Arc::new(dispatcher),
        )
        .with_metrics(metrics),
    );
    Ok((worker, edge))
}

/// Binds the listener and serves the router until the returned sender says stop.
async fn serve(
    edge: Arc<Edge>,
    usage: Option<UsageApi>,
    settings: &LocalSettings,
    kit_public_key: Option<String>,
) -> Result<
    (
        SocketAddr,
        watch::Sender<bool>,
        watch::Receiver<bool>,
        tokio::task::JoinHandle<()>,
    ),
    StartError,
> {
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: settings.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: settings.listen,
        source,
    })?;
    let (stop, stopped) = watch::channel(false);
    let app = router(edge, kit_public_key).merge(usage_router(usage));
    let mut server_stop = stopped.clone();
    let server = tokio::spawn(async move {
        let graceful = async move {
            let _ = server_stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(graceful)
            .await
        {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    });
    Ok((addr, stop, stopped, server))
}

/// The HTTP surface: the production URL with its Kit sub-paths (every family goes through the
/// edge, which recognises it by method and path), the Kit public key, and a health check.
pub fn router(edge: Arc<Edge>, kit_public_key: Option<String>) -> Router {
    let max_body_bytes = edge.max_body_bytes();
    let public_key = get(move || {
        let pem = kit_public_key.clone();
        async move { kit_public_key_answer(pem) }
    });
    Router::new()
        .route("/produce", post(produce))
        .route("/produce/produceAPI/{*rest}", axum::routing::any(produce))
        .route("/kit/public-key", public_key)
        .route(
            "/healthz",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"status":"ok"}"#,
                )
            }),
        )
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"error":"not found; the production URL is POST /produce"}"#,
            )
        })
        // One byte over the limit is enough for the edge to see an oversize body and answer 000002.
        .layer(DefaultBodyLimit::max(max_body_bytes + 1))
        .with_state(edge)
}

/// Largest `POST /usage` body: 1000 reports of a few hundred bytes each.
const MAX_USAGE_BODY: usize = 1 << 20;

/// `POST /usage`: the vendor's application reports usage (`koogallery::metering::api`). `None`:
/// this backend keeps no usage (the AWS adapters, in this release), and the route says so.
/// The vendor app's usage endpoints: `POST /usage` (ingestion) and `GET /usage/estimate`.
#[derive(Clone)]
pub struct UsageApi {
    pub ingestion: Arc<UsageIngestion>,
    pub estimates: Arc<UsageEstimates>,
}

pub fn usage_router(usage: Option<UsageApi>) -> Router {
    Router::new()
        .route("/usage", post(ingest_usage))
        .route("/usage/estimate", get(estimate_usage))
        .layer(DefaultBodyLimit::max(MAX_USAGE_BODY))
        .with_state(usage)
}

fn json_answer(status: u16, body: serde_json::Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn not_served() -> Response {
    json_answer(
        404,
        serde_json::json!({"error": "usage is not served by this host", "retryable": false}),
    )
}

async fn estimate_usage(
    State(usage): State<Option<UsageApi>>,
    headers: axum::http::HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    use koogallery::metering::api::{HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP};
    let Some(usage) = usage else {
        return not_served();
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (status, answer) = usage
        .estimates
        .handle(
            header(HEADER_TIMESTAMP),
            header(HEADER_NONCE),
            header(HEADER_SIGNATURE),
            query.as_deref().unwrap_or(""),
        )
        .await;
    json_answer(status, answer)
}

async fn ingest_usage(
    State(usage): State<Option<UsageApi>>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    use koogallery::metering::api::{HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP};
    let json = json_answer;
    let Some(usage) = usage.map(|u| u.ingestion) else {
        return not_served();
    };
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            return json(
                400,
                serde_json::json!({"error": format!("request body rejected: {e}"), "retryable": false}),
            );
        }
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (status, answer) = usage
        .handle(
            header(HEADER_TIMESTAMP),
            header(HEADER_NONCE),
            header(HEADER_SIGNATURE),
            &body,
        )
        .await;
    json(status, answer)
}

fn to_http(resp: EdgeResponse) -> Response {
    resp.into_http::<axum::body::Body>()
}

async fn produce(
    State(edge): State<Arc<Edge>>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match body {
        Ok(body) => to_http(
            edge.handle(edge::Inbound {
                method: &method,
                path: uri.path(),
                query: query.as_deref().unwrap_or(""),
                headers: &headers,
                body: &body,
            })
            .await,
        ),
        Err(rejection) => {
            // Too large (or unreadable): still HTTP 200 with a signed result code.
            let reply = Reply::new(
                ResultCode::InvalidParameter,
                format!("request body rejected: {rejection}"),
            );
            to_http(edge.refuse(uri.path(), &reply))
        }
    }
}

/// `GET /kit/public-key`: the public half of the Kit RSA key (SubjectPublicKeyInfo PEM), which the
/// seller uploads in 卖家中心 → 应用工具 → 应用凭证管理 (docs/protocol/callbacks.md §3.5). Public, so no
/// signature.
fn kit_public_key_answer(pem: Option<String>) -> Response {
    match pem {
        Some(pem) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-pem-file")],
            pem,
        )
            .into_response(),
        None => json_answer(
            404,
            serde_json::json!({"error": "this host has no Kit RSA key"}),
        ),
    }
}

#[cfg(feature = "aws")]
pub mod aws;

/// `make run`'s process entry: [`run_from_env`], with a failure said plainly (a bad setting names
/// its variable) and exit status 1.
pub async fn main_from_env(program: &str) -> std::process::ExitCode {
    match run_from_env().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "{program}: {}",
                koogallery::callbacks::error_chain(e.as_ref())
            );
            std::process::ExitCode::FAILURE
        }
    }
}

/// `koogallery-local kit-public-key`: the Kit RSA public key (SubjectPublicKeyInfo PEM) of the
/// key the host uses: `KOOGALLERY_KIT_RSA_KEY`, or the data directory's key file (generated now if
/// there is none yet, exactly as the host would on start).
pub fn print_kit_public_key(program: &str) -> std::process::ExitCode {
    let key = Config::from_env()
        .map_err(|e| e.to_string())
        .and_then(|config| {
            let settings = LocalSettings::from_env().map_err(|e| e.to_string())?;
            local_kit_key(&config, &settings).map_err(|e| e.to_string())
        });
    match key {
        Ok(key) => {
            print!("{}", key.public_key_pem());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{program}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The whole local host as `make run` starts it: tracing, settings and secrets from the
/// environment, the embedded store (or, with `KOOGALLERY_BACKEND=aws`, the AWS adapters), until
/// Ctrl-C.
pub async fn run_from_env() -> Result<(), Box<dyn std::error::Error>> {
    let log = LogSettings::read(&Env::process())?;
    koogallery::logging::init(&log);
    let config = Config::from_env()?;
    if config.secrets.dev_keys {
        tracing::warn!(
            "using development keys: set KOOGALLERY_ACCESS_KEY and KOOGALLERY_KIT_KEY before going live"
        );
    }
    let settings = LocalSettings::from_env()?;
    let backend = Env::process().choice(&catalog::BACKEND, &["embedded", "aws"])?;
    if backend == "aws" {
        return run_aws_from_env(config, settings).await;
    }
    let host = start(config, settings).await?;
    tokio::signal::ctrl_c().await?;
    tracing::info!("shutting down");
    host.shutdown().await;
    Ok(())
}

#[cfg(feature = "aws")]
async fn run_aws_from_env(
    config: Config,
    settings: LocalSettings,
) -> Result<(), Box<dyn std::error::Error>> {
    use aws::{AwsSettings, start_aws};
    let host = start_aws(config, settings, AwsSettings::from_env(), None).await?;
    tokio::signal::ctrl_c().await?;
    tracing::info!("shutting down");
    host.shutdown().await;
    Ok(())
}

#[cfg(not(feature = "aws"))]
async fn run_aws_from_env(_: Config, _: LocalSettings) -> Result<(), Box<dyn std::error::Error>> {
    Err("KOOGALLERY_BACKEND=aws needs the `aws` feature: use `make run-aws-local`".into())
}

/// Metrics as the logs are written: EMF lines with JSON logs (as on AWS), debug lines otherwise.
pub fn local_metrics() -> Arc<dyn koogallery::metrics::Metrics> {
    let json = LogSettings::read(&Env::process()).is_ok_and(|log| log.format.is_json());
    koogallery::metrics::for_log_format(json)
}
