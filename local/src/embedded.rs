//! The local host on the embedded, file-backed store and queue (`make run`).

use std::sync::Arc;

use crate::{
    Extras, LocalSettings, Running, StartError, UsageApi, assemble, local_kit_key, local_sealer,
    push_every, reconcile_every, reconciler, serve, usage_pusher,
};
use koogallery::{
    clock::{Clock, SystemClock},
    config::Config,
};
use koogallery_embedded::{EmbeddedConsumer, EmbeddedExchangeLog, EmbeddedQueue, EmbeddedStore};
use provision_worker::Worker;
use tokio::{sync::watch, task::JoinHandle};

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
    let exchange_log = exchange_log(&config, &settings)?;
    let exchanges = crate::exchanges::recorder(&config, exchange_log.clone());
    let kit_key = local_kit_key(&config, &settings)?;
    let sso = match &settings.sso {
        Some(sso) => Some(
            crate::sso_provider(
                sso,
                sso::build::Parts {
                    directory: store.clone(),
                    locator: store.clone(),
                    store: store.clone(),
                    sealer: sealer.clone(),
                    clock: clock.clone(),
                    metrics: crate::local_metrics(),
                    jobs: Some(jobs.clone()),
                },
            )
            .await?,
        ),
        None => None,
    };
    let (worker, edge) = assemble(
        store.clone(),
        jobs.clone(),
        Extras {
            // The record and its job in one redb commit.
            intake: Some(store.clone()),
            usage: Some(store.clone()),
            directory: Some(store.clone()),
            licenses: Some(store.clone()),
            kit_key: Some(kit_key.clone()),
            sessions: sso
                .clone()
                .map(|p| p as Arc<dyn koogallery::sso::SessionEnder>),
            exchanges: exchanges.clone(),
        },
        clock.clone(),
        &config,
        provisioner,
        sealer.clone(),
    )?;
    let usage = UsageApi::new(
        &config,
        store.clone(),
        store.clone(),
        Arc::new(queue.clone()),
        worker.clock.clone(),
    );
    let (license, license_market) = crate::license_api(
        &config,
        &settings,
        store.clone(),
        store.clone(),
        Arc::new(queue.clone()),
        worker.clock.clone(),
        &exchanges,
    )?;
    let health = crate::Health::new(
        store.clone(),
        worker.clock.clone(),
        config.settings.worker.reconcile_every,
    );
    let (addr, stop, stopped, server) = serve(
        edge,
        Some(usage),
        &settings,
        Some(kit_key.public_key_pem()),
        sso,
        Some(health.clone()),
        Some(license),
        Some(
            crate::AdminRoutes::new(store.clone(), &settings)?.with_operator(Arc::new(
                koogallery::operator::Operator {
                    instances: store.clone(),
                    listing: store.clone(),
                    dead_letters: Arc::new(queue.clone()),
                    exchanges: exchange_log,
                    recorder: exchanges.clone(),
                    usage: Some(store.clone()),
                    reconciler: Some(Arc::new(reconciler(
                        store.clone(),
                        Arc::new(queue.clone()),
                        &worker,
                        &config,
                    ))),
                    kit_tenants: store.clone(),
                    sso_sessions: store.clone(),
                    licenses: store.clone(),
                    clock: worker.clock.clone(),
                },
            )),
        ),
    )
    .await?;
    let license_task = tokio::spawn(crate::license_api::report_usage_every(
        store.clone(),
        license_market,
        worker.clock.clone(),
        worker.metrics.clone(),
        stopped.clone(),
    ));
    let backend = Embedded { store, queue };
    let [worker_task, reconcile_task, push_task] =
        backend.spawn_work(worker, jobs, &config, health, stopped, &exchanges)?;
    let scheme = if settings.tls.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(%addr, data = %settings.data_dir.display(), "local host ready: POST {scheme}://{addr}/produce (Kit: /produce/produceAPI/v2/…; public key: GET /kit/public-key)");
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

/// The exchange log's own file in the data directory, unless the log is off.
fn exchange_log(
    config: &Config,
    settings: &LocalSettings,
) -> Result<Option<Arc<dyn koogallery::exchange::ExchangeLog>>, StartError> {
    if config.settings.exchange_log.is_none() {
        return Ok(None);
    }
    let path = settings.data_dir.join(EmbeddedExchangeLog::FILE);
    let log = EmbeddedExchangeLog::open(&path).map_err(|source| StartError::Store {
        dir: settings.data_dir.display().to_string(),
        source,
    })?;
    Ok(Some(Arc::new(log)))
}

impl crate::running::Backend for Embedded {
    /// The replay guard's nonces not yet on disk go there now: a restart still refuses them.
    fn close(&self) {
        if let Err(e) = self.store.flush_nonces() {
            tracing::error!(error = %e, "cannot write the last nonces to the store");
        }
    }
}

impl Embedded {
    /// The work beside the HTTP server, until `stopped`: the reconciler and the usage push on
    /// their timers (EventBridge Scheduler's on AWS), and the worker polling `jobs`. Returns the
    /// worker's, the reconciler's and the push's tasks.
    fn spawn_work(
        &self,
        worker: Arc<Worker>,
        jobs: Arc<EmbeddedConsumer>,
        config: &Config,
        health: Arc<crate::Health>,
        stopped: watch::Receiver<bool>,
        exchanges: &koogallery::exchange::ExchangeRecorder,
    ) -> Result<[JoinHandle<()>; 3], StartError> {
        let reconciler = reconciler(
            self.store.clone(),
            Arc::new(self.queue.clone()),
            &worker,
            config,
        );
        let pusher = usage_pusher(
            config,
            self.store.clone(),
            self.store.clone(),
            &worker,
            exchanges,
        )?;
        let reconcile_task = tokio::spawn(reconcile_every(
            reconciler,
            config.settings.worker.reconcile_every,
            health.clone(),
            stopped.clone(),
            exchanges.clone(),
        ));
        let push_task = tokio::spawn(push_every(
            pusher,
            config.settings.metering.push_every,
            stopped.clone(),
        ));
        let worker_task = tokio::spawn(async move {
            health.worker_running(true);
            provision_worker::consume::poll(&worker, jobs.as_ref(), stopped).await;
            health.worker_running(false);
        });
        Ok([worker_task, reconcile_task, push_task])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::running::Backend;
    use koogallery::security::replay::NonceStore;

    /// A stop writes the replay guard's last nonces before the process ends: a group still being
    /// gathered would otherwise wait for its timer, which the exit does not.
    #[tokio::test]
    async fn closing_the_backend_puts_the_nonces_not_yet_on_disk_there() {
        let dir = tempfile::tempdir().expect("dir");
        // A group that would not be written for an hour on its own.
        let store = Arc::new(
            EmbeddedStore::open_with(
                dir.path().join("s.redb"),
                std::time::Duration::from_secs(3600),
            )
            .expect("store"),
        );
        let now = chrono::Utc::now();
        assert!(
            store
                .remember("n-1", now, now + chrono::Duration::minutes(2))
                .await
                .expect("remembered")
        );
        assert!(store.unflushed_nonces() > 0, "the nonce is not on disk yet");
        let backend = Embedded {
            queue: store.queue(),
            store: store.clone(),
        };
        backend.close();
        assert_eq!(store.unflushed_nonces(), 0, "close() wrote them");
    }
}
