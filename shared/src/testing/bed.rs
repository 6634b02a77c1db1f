//! A complete in-process deployment for tests and benchmarks: the memory store, queue and clock,
//! every registered callback behind the [`InProcessDispatcher`], and handles on the fakes.

use std::sync::Arc;

use chrono::Utc;
use serde_json::Value;

use super::{ManualClock, MemoryQueue, MemoryStore, sample_access};
use crate::{
    callbacks::{Dispatcher, InProcessDispatcher, Resources, registry},
    clock::Clock,
    config::Config,
    instance::{CreateOutcome, Instance, InstanceStore, Outcome},
    order::OrderId,
    protocol::Reply,
    security::KeyUsed,
};

#[derive(Clone)]
pub struct TestBed {
    pub config: Arc<Config>,
    pub store: Arc<MemoryStore>,
    pub queue: Arc<MemoryQueue>,
    pub clock: Arc<ManualClock>,
    pub dispatcher: Arc<InProcessDispatcher>,
    /// Seals and opens stored passwords (a random key per bed).
    pub sealer: Arc<crate::security::at_rest::LocalKeySealer>,
    /// The tenant directory the Kit syncs keep.
    pub directory: Arc<super::MemoryDirectory>,
    /// The Kit RSA key (the 3072-bit test fixture).
    pub client_secret_key: Arc<crate::security::kit_client_secret::ClientSecretKey>,
    /// The license codes the License callbacks keep.
    pub licenses: Arc<super::license::MemoryLicenses>,
}

/// `resources` with what the Kit syncs and the License callbacks need, where missing: a memory
/// directory, the test RSA key, a random sealer, memory license codes. For tests and benchmarks
/// that build their own [`Resources`].
pub fn with_kit(mut resources: Resources) -> Resources {
    if resources.licenses.is_none() {
        resources = resources.with_licenses(Arc::new(super::license::MemoryLicenses::default()));
    }
    if resources.directory.is_none() {
        resources = resources.with_directory(Arc::new(super::MemoryDirectory::new()));
    }
    if resources.client_secret_key.is_none() {
        resources = resources.with_client_secret_key(Arc::new(test_client_secret_key()));
    }
    if resources.sealer.is_none() {
        resources =
            resources.with_sealer(Arc::new(crate::security::at_rest::LocalKeySealer::random()));
    }
    resources
}

/// The Kit RSA key of tests: a 3072-bit fixture (generating one per test would cost seconds).
pub fn test_client_secret_key() -> crate::security::kit_client_secret::ClientSecretKey {
    crate::security::kit_client_secret::ClientSecretKey::from_pem(include_str!(
        "../../tests/fixtures/kit/kit_rsa_3072.pem"
    ))
    .unwrap_or_else(|e| panic!("the test key fixture: {e}"))
}

impl TestBed {
    pub fn new(config: Config) -> Self {
        let store = Arc::new(MemoryStore::new());
        let queue = Arc::new(MemoryQueue::new());
        let clock = Arc::new(ManualClock::at(Utc::now()));
        let sealer = Arc::new(crate::security::at_rest::LocalKeySealer::random());
        let directory = Arc::new(super::MemoryDirectory::new());
        let client_secret_key = Arc::new(test_client_secret_key());
        let licenses = Arc::new(super::license::MemoryLicenses::default());
        let resources =
            Resources::from_config(store.clone(), queue.clone(), clock.clone(), &config)
                .with_sealer(sealer.clone())
                .with_order_notices(store.clone())
                .with_usage(store.clone())
                .with_directory(directory.clone())
                .with_client_secret_key(client_secret_key.clone())
                .with_licenses(licenses.clone());
        let dispatcher = match InProcessDispatcher::build(&resources) {
            Ok(d) => Arc::new(d),
            Err(e) => panic!("the test bed's callbacks cannot be built: {e}"),
        };
        Self {
            config: Arc::new(config),
            store,
            queue,
            clock,
            dispatcher,
            sealer,
            directory,
            client_secret_key,
            licenses,
        }
    }

    /// Defaults with the basic key `test-access-key` and Kit key `test-kit-key`.
    pub fn default_keys() -> Self {
        Self::new(Config::with_keys("test-access-key", "test-kit-key"))
    }

    /// Calls the callback registered as `name` (a V2 `activity`, a Kit path: names are unique
    /// across families) with a body verified with the current key.
    pub async fn call(&self, name: &str, body: &Value) -> Reply {
        self.call_verified_with(name, body, KeyUsed::Current).await
    }

    /// Calls the callback registered as `name` with a body verified with `key`.
    pub async fn call_verified_with(&self, name: &str, body: &Value, key: KeyUsed) -> Reply {
        match registry::REGISTRY.iter().find(|r| r.route.name() == name) {
            Some(r) => self.dispatcher.dispatch(r, body, key).await,
            None => panic!("no callback is registered for {name}"),
        }
    }

    /// Seeds an instance for order `O-{instance_id}` as newInstance leaves it (provisioning) or, with
    /// `active`, as the worker leaves it after provisioning with [`sample_access`]. Returns it as stored.
    pub async fn seed(&self, instance_id: &str, active: bool) -> Instance {
        let now = self.clock.now();
        let order = OrderId::new(format!("O-{instance_id}"));
        let (mut inst, created) = Instance::new_provisioning(
            &order,
            &format!("{order}-000001").into(),
            instance_id,
            false,
            now,
        );
        let mut events = vec![created];
        if active {
            match inst.activate(sample_access(instance_id), now) {
                Ok(Outcome::Changed(ev)) => events.push(ev),
                other => panic!("a new instance must activate: {other:?}"),
            }
        }
        match self.store.create_for_order_line(&inst, &events).await {
            Ok(CreateOutcome::Created) => {}
            other => panic!("seeding {instance_id} failed: {other:?}"),
        }
        self.store.get_instance(instance_id).await
    }
}
