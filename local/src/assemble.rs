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
