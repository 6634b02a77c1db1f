//! What a process builds for its callbacks: the instance store, the queue, the clock, the
//! callback keys, and the stores and keys only some callbacks use (order notices, the tenant
//! directory, usage, the sealer, the Kit RSA key for applicationSync's `clientSecret`).

use std::sync::Arc;

use crate::{
    clock::Clock,
    config::{CallbackSettings, Config, ConfigError, Keys},
    instance::InstanceStore,
    jobs::JobQueue,
};

/// What a process has built for its callbacks. Each callback takes only what it uses; a function on
/// AWS builds only what its [`Needs`](super::Needs) say.
#[derive(Clone)]
pub struct Resources {
    pub store: Arc<dyn InstanceStore>,
    pub queue: Option<Arc<dyn JobQueue>>,
    pub clock: Arc<dyn Clock>,
    pub keys: Option<Keys>,
    pub settings: CallbackSettings,
    /// Opens the passwords kept sealed at rest (queryInstance).
    pub sealer: Option<Arc<dyn crate::security::at_rest::CredentialSealer>>,
    /// Order notices (orderNotify).
    pub order_notices: Option<Arc<dyn crate::order::notice::OrderNoticeStore>>,
    /// newInstance's single write, where the backend has one (the embedded store); otherwise
    /// [`Self::intake`] composes `store` and `queue`.
    pub intake: Option<Arc<dyn crate::instance::OrderLineIntake>>,
    /// Usage windows (queryInstance's `usageInfo`), where the backend keeps them.
    pub usage: Option<Arc<dyn crate::metering::UsageStore>>,
    /// The tenant directory (the Kit syncs).
    pub directory: Option<Arc<dyn crate::directory::TenantDirectory>>,
    /// The RSA key applicationSync's `clientSecret` is encrypted for
    /// (docs/protocol/decisions.md §14).
    pub client_secret_key: Option<Arc<crate::security::kit_client_secret::ClientSecretKey>>,
    /// License codes (the License callbacks, docs/protocol/openapi.md §6).
    pub licenses: Option<Arc<dyn crate::license::LicenseStore>>,
}

impl Resources {
    /// Everything a process holding the whole [`Config`] (the local host, tests, benchmarks) hands
    /// its callbacks. A Lambda function builds only what its [`Needs`](super::Needs) name instead.
    pub fn from_config(
        store: Arc<dyn InstanceStore>,
        queue: Arc<dyn JobQueue>,
        clock: Arc<dyn Clock>,
        config: &Config,
    ) -> Self {
        Self {
            store,
            queue: Some(queue),
            clock,
            keys: Some(config.secrets.keys.clone()),
            settings: config.settings.callbacks.clone(),
            sealer: None,
            order_notices: None,
            intake: None,
            usage: None,
            directory: None,
            client_secret_key: None,
            licenses: None,
        }
    }

    /// With the license codes the License callbacks keep.
    pub fn with_licenses(mut self, licenses: Arc<dyn crate::license::LicenseStore>) -> Self {
        self.licenses = Some(licenses);
        self
    }

    pub fn licenses(&self) -> Result<Arc<dyn crate::license::LicenseStore>, ConfigError> {
        self.licenses.clone().ok_or_else(|| {
            ConfigError::invalid("KOOGALLERY_TABLE", "this callback keeps license codes")
        })
    }

    /// With the tenant directory the Kit syncs keep.
    pub fn with_directory(mut self, directory: Arc<dyn crate::directory::TenantDirectory>) -> Self {
        self.directory = Some(directory);
        self
    }

    /// With the RSA key that decrypts applicationSync's `clientSecret`.
    pub fn with_client_secret_key(
        mut self,
        key: Arc<crate::security::kit_client_secret::ClientSecretKey>,
    ) -> Self {
        self.client_secret_key = Some(key);
        self
    }

    pub fn directory(&self) -> Result<Arc<dyn crate::directory::TenantDirectory>, ConfigError> {
        self.directory.clone().ok_or_else(|| {
            ConfigError::invalid(
                "KOOGALLERY_TABLE",
                "this callback keeps the tenant directory",
            )
        })
    }

    pub fn client_secret_key(
        &self,
    ) -> Result<Arc<crate::security::kit_client_secret::ClientSecretKey>, ConfigError> {
        self.client_secret_key.clone().ok_or_else(|| {
            ConfigError::invalid(
                crate::config::catalog::KIT_RSA_KEY.name,
                "applicationSync decrypts clientSecret with the Kit RSA key",
            )
        })
    }

    pub fn sealer(
        &self,
    ) -> Result<Arc<dyn crate::security::at_rest::CredentialSealer>, ConfigError> {
        self.sealer.clone().ok_or_else(|| {
            ConfigError::invalid(
                "KOOGALLERY_CREDENTIALS_KEY_ID",
                "this callback seals or opens credentials at rest",
            )
        })
    }

    /// With the usage store queryInstance reports `usageInfo` from.
    pub fn with_usage(mut self, usage: Arc<dyn crate::metering::UsageStore>) -> Self {
        self.usage = Some(usage);
        self
    }

    /// With a store that records an instance and queues its job in one write.
    pub fn with_intake(mut self, intake: Arc<dyn crate::instance::OrderLineIntake>) -> Self {
        self.intake = Some(intake);
        self
    }

    /// newInstance's write: the configured intake, or the create then the enqueue.
    pub fn intake(&self) -> Result<Arc<dyn crate::instance::OrderLineIntake>, ConfigError> {
        match &self.intake {
            Some(i) => Ok(i.clone()),
            None => Ok(Arc::new(crate::instance::StoreThenQueue {
                store: self.store.clone(),
                queue: self.queue()?,
            })),
        }
    }

    /// With the store of order notices.
    pub fn with_order_notices(
        mut self,
        notices: Arc<dyn crate::order::notice::OrderNoticeStore>,
    ) -> Self {
        self.order_notices = Some(notices);
        self
    }

    pub fn order_notices(
        &self,
    ) -> Result<Arc<dyn crate::order::notice::OrderNoticeStore>, ConfigError> {
        self.order_notices.clone().ok_or_else(|| {
            ConfigError::invalid("KOOGALLERY_TABLE", "this callback records order notices")
        })
    }

    /// With the sealer that opens stored passwords.
    pub fn with_sealer(
        mut self,
        sealer: Arc<dyn crate::security::at_rest::CredentialSealer>,
    ) -> Self {
        self.sealer = Some(sealer);
        self
    }

    pub fn queue(&self) -> Result<Arc<dyn JobQueue>, ConfigError> {
        self.queue.clone().ok_or_else(|| {
            ConfigError::invalid(
                "KOOGALLERY_QUEUE_URL",
                "this callback enqueues jobs: set the queue",
            )
        })
    }

    pub fn keys(&self) -> Result<&Keys, ConfigError> {
        self.keys.as_ref().ok_or_else(|| {
            ConfigError::invalid(
                crate::config::SecretPart::CallbackKeys.env_var(),
                "this callback needs the callback keys secret",
            )
        })
    }
}
