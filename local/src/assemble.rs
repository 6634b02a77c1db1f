//! Wiring one backend's store and queue to the callbacks, the edge and the worker.

use std::sync::Arc;

use crate::{StartError, local_metrics};
use edge::Edge;
use koogallery::security::at_rest::CredentialSealer;
use koogallery::{
    callbacks::{InProcessDispatcher, Resources},
    clock::Clock,
    config::Config,
    jobs::JobQueue,
};
use provision_worker::Worker;

/// What only some backends offer the callbacks.
#[derive(Default)]
pub(crate) struct Extras {
    /// newInstance's record and job in one write.
    pub(crate) intake: Option<Arc<dyn koogallery::instance::OrderLineIntake>>,
    /// Usage windows (queryInstance's `usageInfo`).
    pub(crate) usage: Option<Arc<dyn koogallery::metering::UsageStore>>,
    /// The tenant directory (the Kit syncs).
    pub(crate) directory: Option<Arc<dyn koogallery::directory::TenantDirectory>>,
    /// The Kit RSA key (applicationSync's `clientSecret`).
    pub(crate) kit_key: Option<Arc<koogallery::security::kit_client_secret::ClientSecretKey>>,
    /// The SSO provider: the worker ends the sessions the directory events end.
    pub(crate) sessions: Option<Arc<dyn koogallery::sso::SessionEnder>>,
    /// License codes (the License callbacks; the worker delivers their events).
    pub(crate) licenses: Option<Arc<dyn koogallery::license::LicenseStore>>,
    /// The exchange log's recorder (off unless the backend keeps one).
    pub(crate) exchanges: koogallery::exchange::ExchangeRecorder,
}

/// Wires one backend's store and queue to the callbacks, the edge and the worker: the same for the
/// embedded store and for the AWS adapters.
pub(crate) fn assemble<S>(
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
    let directory = extras.directory.clone();
    let sessions = extras.sessions.clone();
    let licenses = extras.licenses.clone();
    let exchanges = extras.exchanges.clone();
    let resources = resources(
        store.clone(),
        queue,
        extras,
        clock.clone(),
        config,
        sealer.clone(),
    );
    let dispatcher = InProcessDispatcher::build(&resources)?;
    let metrics = local_metrics();
    let worker = worker(
        store.clone(),
        directory,
        sessions,
        licenses,
        clock.clone(),
        config,
        provisioner,
        sealer,
        metrics.clone(),
        &exchanges,
    )?;
    let edge = Arc::new(
        Edge::new(
            &config.settings.edge,
            config.secrets.keys.clone(),
            store,
            clock,
            Arc::new(dispatcher),
        )
        .with_metrics(metrics)
        .with_exchange_log(exchanges),
    );
    Ok((worker, edge))
}

/// What the callbacks work with: the store, the queue and the order notices on every backend,
/// and whichever [`Extras`] this one offers.
fn resources<S>(
    store: Arc<S>,
    queue: Arc<dyn JobQueue>,
    extras: Extras,
    clock: Arc<dyn Clock>,
    config: &Config,
    sealer: Arc<dyn CredentialSealer>,
) -> Resources
where
    S: koogallery::instance::InstanceStore + koogallery::order::notice::OrderNoticeStore + 'static,
{
    let mut resources = Resources::from_config(store.clone(), queue, clock, config)
        .with_sealer(sealer)
        .with_order_notices(store);
    if let Some(intake) = extras.intake {
        resources = resources.with_intake(intake);
    }
    if let Some(usage) = extras.usage {
        resources = resources.with_usage(usage);
    }
    if let Some(directory) = extras.directory {
        resources = resources.with_directory(directory);
    }
    if let Some(key) = extras.kit_key {
        resources = resources.with_client_secret_key(key);
    }
    if let Some(licenses) = extras.licenses {
        resources = resources.with_licenses(licenses);
    }
    resources
}

/// The provisioning worker: the test's provisioner or the configured one, and KooGallery's
/// marketplace API for the notices it sends back; both keep their calls in `exchanges`.
#[allow(clippy::too_many_arguments)]
fn worker<S>(
    store: Arc<S>,
    directory: Option<Arc<dyn koogallery::directory::TenantDirectory>>,
    sessions: Option<Arc<dyn koogallery::sso::SessionEnder>>,
    licenses: Option<Arc<dyn koogallery::license::LicenseStore>>,
    clock: Arc<dyn Clock>,
    config: &Config,
    provisioner: Option<Arc<dyn koogallery::provisioning::Provisioner>>,
    sealer: Arc<dyn CredentialSealer>,
    metrics: Arc<dyn koogallery::metrics::Metrics>,
    exchanges: &koogallery::exchange::ExchangeRecorder,
) -> Result<Arc<Worker>, StartError>
where
    S: koogallery::instance::InstanceStore + koogallery::order::notice::OrderNoticeStore + 'static,
{
    let provisioner = match provisioner {
        Some(p) => p,
        None => provision_worker::provisioners::from_settings(
            &config.settings.provisioner,
            config.secrets.webhook.clone(),
            exchanges,
        )?,
    };
    let marketplace = provision_worker::marketplace(
        &config.settings.marketplace,
        config.secrets.open_api.as_ref(),
        clock.clone(),
        exchanges,
    )?;
    let mut worker = Worker::new(
        store.clone(),
        provisioner,
        marketplace,
        clock,
        &config.settings,
        metrics,
        sealer,
        store,
    );
    if let Some(directory) = directory {
        worker = worker.with_directory(directory);
    }
    if let Some(sessions) = sessions {
        worker = worker.with_sessions(sessions);
    }
    if let Some(licenses) = licenses {
        worker = worker.with_licenses(licenses);
    }
    Ok(Arc::new(worker))
}
