//! The local host: the same edge, callbacks and worker as on AWS, in one process on the embedded,
//! file-backed store and queue. `make run` starts it; the end-to-end tests start it in-process.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use async_trait::async_trait;
use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Path, RawQuery, State, rejection::BytesRejection},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use edge::{Dispatcher, Edge, EdgeResponse};
use koogallery::{
    ResultCode,
    config::Config,
    ports::{Clock, Job, JobQueue, SystemClock},
    services::Services,
    wire::{Activity, Reply},
};
use koogallery_embedded::{EmbeddedQueue, EmbeddedStore};
use provision_worker::{Disposition, JobDelivery, Worker};
use tokio::sync::{Notify, watch};

/// Calls each callback's library function in this process (on AWS: a synchronous Lambda invoke).
pub struct InProcessDispatcher {
    pub services: Services,
}

#[async_trait]
impl Dispatcher for InProcessDispatcher {
    async fn dispatch(&self, activity: Activity, body: &serde_json::Value) -> Reply {
        let s = &self.services;
        match activity {
            Activity::NewInstance => new_instance::handle(s, body).await,
            Activity::QueryInstance => query_instance::handle(s, body).await,
            Activity::RefreshInstance => refresh_instance::handle(s, body).await,
            Activity::UpdateInstanceStatus => update_instance_status::handle(s, body).await,
            Activity::ReleaseInstance => release_instance::handle(s, body).await,
            Activity::UpgradeInstance => upgrade_instance::handle(s, body).await,
            Activity::ChangeInstanceCheck => change_instance_check::handle(s, body).await,
        }
    }
}

/// Enqueues into the embedded queue and wakes the in-process worker at once.
struct WakingQueue {
    queue: EmbeddedQueue,
    wake: Arc<Notify>,
}

#[async_trait]
impl JobQueue for WakingQueue {
    async fn enqueue(&self, job: &Job) -> Result<(), koogallery::error::QueueError> {
        self.queue.enqueue(job).await?;
        self.wake.notify_one();
        Ok(())
    }
}

/// Local-only settings: where to listen and where the data lives.
#[derive(Debug, Clone)]
pub struct LocalSettings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
}

impl LocalSettings {
    /// `PORT` (default 8080) on 127.0.0.1 and `KOOGALLERY_DATA_DIR` (default `.data/`).
    pub fn from_env() -> Result<Self, String> {
        let port = match std::env::var("PORT") {
            Ok(p) if !p.trim().is_empty() => p
                .trim()
                .parse::<u16>()
                .map_err(|_| format!("PORT: expected a port number, got {p:?}"))?,
            _ => 8080,
        };
        let data_dir = std::env::var("KOOGALLERY_DATA_DIR")
            .ok()
            .filter(|d| !d.trim().is_empty())
            .unwrap_or_else(|| ".data".into());
        Ok(Self {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            data_dir: PathBuf::from(data_dir),
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
    #[error("provisioner: {0}")]
    Provisioner(#[from] koogallery::ports::ProvisionError),
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
    provisioner: Option<Arc<dyn koogallery::ports::Provisioner>>,
) -> Result<RunningHost, StartError> {
    let path = settings.data_dir.join("koogallery.redb");
    let store = Arc::new(
        EmbeddedStore::open(&path).map_err(|source| StartError::Store {
            dir: settings.data_dir.display().to_string(),
            source,
        })?,
    );
    let queue = store.queue();
    let wake = Arc::new(Notify::new());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let config = Arc::new(config);
    let queue_port = Arc::new(WakingQueue {
        queue: queue.clone(),
        wake: wake.clone(),
    });
    let (worker, edge) = assemble(
        store.clone(),
        queue_port,
        clock.clone(),
        config.clone(),
        provisioner,
    )?;
    let (addr, stop, stopped, server) = serve(edge, &settings, config.max_body_bytes).await?;
    let worker_task = tokio::spawn(run_worker(queue.clone(), worker, clock, wake, stopped));
    tracing::info!(%addr, data = %path.display(), "local host ready: POST http://{addr}/produce");
    Ok(Running {
        addr,
        backend: Embedded { store, queue },
        stop,
        tasks: vec![server, worker_task],
    })
}

/// Wires one backend's store and queue to the callbacks, the edge and the worker: the same for the
/// embedded store and for the AWS adapters.
fn assemble<S>(
    store: Arc<S>,
    queue: Arc<dyn JobQueue>,
    clock: Arc<dyn Clock>,
    config: Arc<Config>,
    provisioner: Option<Arc<dyn koogallery::ports::Provisioner>>,
) -> Result<(Arc<Worker>, Arc<Edge>), StartError>
where
    S: koogallery::ports::InstanceStore + koogallery::ports::NonceStore + 'static,
{
    let services = Services {
        store: store.clone(),
        queue,
        clock: clock.clone(),
        config: config.clone(),
    };
    let provisioner = match provisioner {
        Some(p) => p,
        None => provision_worker::provisioners::from_config(&config.provisioner)?,
    };
    let worker = Arc::new(Worker::with_offline_marketplace(
        store.clone(),
        provisioner,
        clock.clone(),
        config.worker,
    ));
    let edge = Arc::new(Edge::new(
        &config,
        store,
        clock,
        Arc::new(InProcessDispatcher { services }),
    ));
    Ok((worker, edge))
}

/// Binds the listener and serves the router until the returned sender says stop.
async fn serve(
    edge: Arc<Edge>,
    settings: &LocalSettings,
    max_body_bytes: usize,
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
    let app = router(edge, max_body_bytes);
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

/// The HTTP surface: the production URL, the Kit sub-paths (reserved), and a health check.
pub fn router(edge: Arc<Edge>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/produce", post(produce))
        .route("/produce/produceAPI/v2/{name}", post(kit))
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

fn to_http(resp: EdgeResponse) -> Response {
    let mut r = (StatusCode::OK, resp.body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(EdgeResponse::CONTENT_TYPE),
    );
    if let Ok(v) = HeaderValue::from_str(&resp.body_sign) {
        h.insert("Body-Sign", v);
    }
    r
}

async fn produce(
    State(edge): State<Arc<Edge>>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match body {
        Ok(body) => to_http(
            edge.handle_basic(query.as_deref().unwrap_or(""), &body)
                .await,
        ),
        Err(rejection) => {
            // Too large (or unreadable): still HTTP 200 with a signed result code.
            let reply = Reply::new(
                ResultCode::InvalidParameter,
                format!("request body rejected: {rejection}"),
            );
            to_http(edge.sign(&reply))
        }
    }
}

/// The Kit syncs (callbacks §9) arrive in a later release.
async fn kit(State(edge): State<Arc<Edge>>, Path(name): Path<String>) -> Response {
    to_http(edge.handle_kit(&name))
}

/// How long a delivered job stays hidden from other deliveries: longer than one attempt can take.
fn visibility(worker: &Worker) -> Duration {
    worker.config.claim_duration + Duration::from_secs(30)
}

/// Drains the embedded queue until `stopped`: ack, retry later, or dead-letter each delivery.
pub async fn run_worker(
    queue: EmbeddedQueue,
    worker: Arc<Worker>,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    mut stopped: watch::Receiver<bool>,
) {
    const IDLE_POLL: Duration = Duration::from_millis(500);
    loop {
        if *stopped.borrow() {
            return;
        }
        let (q, now, vis) = (queue.clone(), clock.now(), visibility(&worker));
        // redb commits fsync: keep them off the async threads.
        let delivery = match tokio::task::spawn_blocking(move || q.receive(now, vis)).await {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "job queue unreadable; retrying");
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "job queue task failed; retrying");
                None
            }
        };
        let Some(d) = delivery else {
            // Sleep until woken by an enqueue, a retry falling due, or shutdown.
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
                _ = stopped.changed() => {}
            }
            continue;
        };
        let job = JobDelivery {
            job: d.job,
            attempt: d.attempt,
            delivery_id: format!("embedded-{}", d.id),
        };
        let result = worker.process(&job).await;
        let now = clock.now();
        let disposition = worker.disposition(&job, &result);
        if let Disposition::DeadLetter(reason) = &disposition {
            tracing::error!(job = ?job.job, attempts = job.attempt, reason, "job dead-lettered");
        }
        let q = queue.clone();
        let settled = tokio::task::spawn_blocking(move || match disposition {
            Disposition::Ack => q.ack(d.id),
            Disposition::RetryAfter(delay) => q.retry_later(d.id, now, delay),
            Disposition::DeadLetter(reason) => q.dead_letter(d.id, &reason, now),
        })
        .await;
        let applied = settled.unwrap_or_else(|e| Err(koogallery::error::QueueError(e.to_string())));
        if let Err(e) = applied {
            // The lease expires and the job is delivered again: at-least-once, never lost.
            tracing::error!(error = %e, "could not settle a job; it will be delivered again");
        }
    }
}

#[cfg(feature = "aws")]
pub mod aws;

/// Structured logs: JSON lines when `KOOGALLERY_LOG_FORMAT=json` (as on AWS), compact text otherwise.
pub fn init_tracing() {
    use tracing_subscriber::{EnvFilter, fmt};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if std::env::var("KOOGALLERY_LOG_FORMAT").as_deref() == Ok("json") {
        let _ = fmt()
            .json()
            .with_env_filter(filter)
            .with_current_span(false)
            .try_init();
    } else {
        let _ = fmt().compact().with_env_filter(filter).try_init();
    }
}
