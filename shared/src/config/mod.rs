//! Settings, read once per process from the environment, one type per concept: the edge's
//! ([`EdgeSettings`]), the callbacks' ([`CallbackSettings`]), the provisioner's
//! ([`ProvisionerSettings`]) and the worker's ([`WorkerSettings`]). Keys and other secrets are not
//! settings: they come through the [`Secrets`] port, the whole [`SecretBundle`] from the environment
//! locally, on AWS only the [`SecretPart`]s a function uses, each from its own Secrets Manager
//! secret. A bad value stops start-up with the variable's name; nothing silently falls back to a
//! default.

use std::time::Duration;

pub mod callbacks;
pub mod edge;
pub mod marketplace;
pub mod metering;
pub mod provisioner;
pub mod secrets;
pub mod worker;

pub use callbacks::CallbackSettings;
pub use edge::EdgeSettings;
pub use marketplace::MarketplaceSettings;
pub use metering::MeteringSettings;
pub use provisioner::ProvisionerSettings;
pub use secrets::{
    DEV_ACCESS_KEY, DEV_KIT_KEY, EnvSecrets, HeldSecrets, Keys, OpenApiKeys, SecretBundle,
    SecretPart, Secrets, SecretsError, StaticSecrets,
};
pub use worker::{QueueLimits, WorkerSettings};

use crate::security::{KeyRing, SecretKey};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}: {problem}")]
    Invalid { name: &'static str, problem: String },
}

impl ConfigError {
    pub fn invalid(name: &'static str, problem: impl Into<String>) -> Self {
        Self::Invalid {
            name,
            problem: problem.into(),
        }
    }
}

/// Where settings are read from: the process environment, or a map in tests. Blank values count
/// as unset.
pub struct Env<'a>(Box<Lookup<'a>>);

type Lookup<'a> = dyn Fn(&str) -> Option<String> + 'a;

impl<'a> Env<'a> {
    pub fn process() -> Self {
        Self(Box::new(|k| std::env::var(k).ok()))
    }

    pub fn from_fn(get: impl Fn(&str) -> Option<String> + 'a) -> Self {
        Self(Box::new(get))
    }

    pub fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// Whole seconds; `min` is the smallest value that makes sense.
    pub fn secs(
        &self,
        name: &'static str,
        default: u64,
        min: u64,
    ) -> Result<Duration, ConfigError> {
        self.number(name, default, min).map(Duration::from_secs)
    }

    /// A whole number of at least `min`.
    pub fn number<T>(&self, name: &'static str, default: T, min: T) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        match raw.parse::<T>() {
            Ok(v) if v >= min => Ok(v),
            _ => Err(ConfigError::invalid(
                name,
                format!("expected a whole number of at least {min}, got {raw:?}"),
            )),
        }
    }

    /// One of `choices` (case-sensitive), or the default when unset.
    pub fn choice(
        &self,
        name: &'static str,
        default: &'static str,
        choices: &[&'static str],
    ) -> Result<&'static str, ConfigError> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        choices.iter().copied().find(|c| *c == raw).ok_or_else(|| {
            ConfigError::invalid(
                name,
                format!("expected one of {}, got {raw:?}", choices.join(", ")),
            )
        })
    }
}

/// Every non-secret setting of one process.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub edge: EdgeSettings,
    pub callbacks: CallbackSettings,
    pub provisioner: ProvisionerSettings,
    pub worker: WorkerSettings,
    /// How the worker reads orders. It depends on the secrets (an AK/SK or not), so it is read
    /// where they are known: [`Config::from_env`] locally, the worker's start-up on AWS.
    pub marketplace: MarketplaceSettings,
    /// How usage is pushed to KooGallery.
    pub metering: MeteringSettings,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(&Env::process())
    }

    /// Reads every `KOOGALLERY_*` setting (the README lists them).
    pub fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let provisioner = ProvisionerSettings::read(env)?;
        let settings = Self {
            edge: EdgeSettings::read(env)?,
            callbacks: CallbackSettings::read(env, &provisioner)?,
            provisioner,
            worker: WorkerSettings::read(env)?,
            marketplace: MarketplaceSettings::Offline,
            metering: MeteringSettings::read(env)?,
        };
        settings.check_delivery()?;
        Ok(settings)
    }

    /// A job delivery's calls (the vendor's webhook, KooGallery's Query Order) fit the worker's
    /// timeout and its claim ([`WorkerSettings::check_timeout`]). [`Self::read`] checks the
    /// webhook; check again once [`Self::marketplace`] is known.
    pub fn check_delivery(&self) -> Result<(), ConfigError> {
        let webhook = match &self.provisioner {
            ProvisionerSettings::Webhook { timeout, .. } => Some(*timeout),
            ProvisionerSettings::Static { .. } => None,
        };
        self.worker
            .check_timeout(webhook, self.marketplace.longest_call())
    }
}

/// Settings plus secrets: everything the local host (or a test) runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub settings: Settings,
    pub secrets: SecretBundle,
}

impl Config {
    /// Defaults everywhere, with the given basic and Kit keys (tests, examples).
    pub fn with_keys(basic: &str, kit: &str) -> Self {
        Self {
            settings: Settings::default(),
            secrets: SecretBundle {
                keys: Keys {
                    basic: KeyRing::new(SecretKey::new(basic), None),
                    kit: KeyRing::new(SecretKey::new(kit), None),
                },
                webhook: None,
                usage: None,
                open_api: None,
                kit_rsa: None,
                dev_keys: false,
            },
        }
    }

    /// Settings and secrets from the process environment (the local host).
    pub fn from_env() -> Result<Self, ConfigError> {
        let env = Env::process();
        let has_keys = EnvSecrets::open_api(&env)?.is_some();
        let mut settings = Settings::read(&env)?;
        settings.marketplace = MarketplaceSettings::read(&env, has_keys, false)?;
        settings.check_delivery()?;
        let mut secrets = EnvSecrets::read(&env);
        secrets.kit_rsa = EnvSecrets::kit_rsa(&env)?;
        Ok(Self { settings, secrets })
    }
}

#[cfg(test)]
mod tests;
