//! Settings, read once per process from the environment, one type per concept: the edge's
//! ([`EdgeSettings`]), the callbacks' ([`CallbackSettings`]), the provisioner's
//! ([`ProvisionerSettings`]) and the worker's ([`WorkerSettings`]). Keys and other secrets are not
//! settings: they come through the [`Secrets`] port, the whole [`SecretBundle`] from the environment
//! locally, on AWS only the [`SecretPart`]s a function uses, each from its own Secrets Manager
//! secret. A bad value stops start-up with the variable's name; nothing silently falls back to a
//! default.

use std::time::Duration;

pub mod callbacks;
pub mod catalog;
pub mod edge;
pub mod marketplace;
pub mod metering;
pub mod provisioner;
pub mod secrets;
pub mod worker;

pub use callbacks::CallbackSettings;
pub use catalog::Setting;
pub use edge::EdgeSettings;
pub use marketplace::{MarketplaceSettings, OpenApiAccess};
pub use metering::MeteringSettings;
pub use provisioner::ProvisionerSettings;
pub use secrets::{
    DEV_ACCESS_KEY, DEV_KIT_KEY, EnvSecrets, HeldSecrets, Keys, LicenseKeys, OpenApiKeys,
    SecretBundle, SecretPart, Secrets, SecretsError, StaticSecrets,
};
pub use worker::{QueueLimits, WorkerSettings};

use crate::security::{KeyRing, SecretKey};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}: {problem}")]
    Invalid { name: &'static str, problem: String },
}

impl ConfigError {
    /// A setting the SAM template sets is missing: a deployment error.
    pub fn not_set(setting: &Setting) -> Self {
        Self::invalid(setting.name, "is not set (the SAM template sets it)")
    }

    pub fn invalid(name: &'static str, problem: impl Into<String>) -> Self {
        Self::Invalid {
            name,
            problem: problem.into(),
        }
    }
}

/// Where settings are read from: the process environment, or a map in tests. Blank values count
/// as unset. Every read names its [`Setting`], whose default it applies: a default is written once,
/// in the [`catalog`].
pub struct Env<'a>(Box<Lookup<'a>>);

type Lookup<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// Values given on a host's command line (`--listen …`), which win over the environment; set
/// once, before anything reads a setting ([`Env::use_command_line`]).
static COMMAND_LINE: std::sync::OnceLock<std::collections::HashMap<String, String>> =
    std::sync::OnceLock::new();

impl<'a> Env<'a> {
    /// The process's settings: its command line's values ([`Env::use_command_line`]), else its
    /// environment.
    pub fn process() -> Self {
        Self(Box::new(|k| {
            COMMAND_LINE
                .get()
                .and_then(|given| given.get(k).cloned())
                .or_else(|| std::env::var(k).ok())
        }))
    }

    /// Makes `values` (variable name → value, from a command line) win over the environment in
    /// every later [`Env::process`]. Only the first call counts; later ones return `false`.
    pub fn use_command_line(values: std::collections::HashMap<String, String>) -> bool {
        COMMAND_LINE.set(values).is_ok()
    }

    /// Nothing set: every setting at its default.
    pub fn empty() -> Self {
        Self(Box::new(|_| None))
    }

    pub fn from_fn(get: impl Fn(&str) -> Option<String> + 'a) -> Self {
        Self(Box::new(get))
    }

    /// A variable whose name is derived rather than listed (the edge's `KOOGALLERY_FN_<NAME>`,
    /// from the registry).
    pub fn derived(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The value set, if any (no default).
    pub fn get(&self, setting: &Setting) -> Option<String> {
        self.derived(setting.name)
    }

    /// The value set, or else the setting's default.
    pub fn text(&self, setting: &Setting) -> Option<String> {
        self.get(setting)
            .or_else(|| setting.default.map(str::to_owned))
    }

    /// A value the template must set; its absence is a deployment error, named.
    pub fn required(&self, setting: &Setting) -> Result<String, ConfigError> {
        self.get(setting)
            .ok_or_else(|| ConfigError::not_set(setting))
    }

    /// Whole seconds of at least `min`, defaulted.
    pub fn secs(&self, setting: &Setting, min: u64) -> Result<Duration, ConfigError> {
        self.number(setting, min).map(Duration::from_secs)
    }

    /// Whole seconds of at least `min`, or nothing when unset (a setting without a default).
    pub fn optional_secs(
        &self,
        setting: &Setting,
        min: u64,
    ) -> Result<Option<Duration>, ConfigError> {
        Ok(self.optional_number(setting, min)?.map(Duration::from_secs))
    }

    /// A whole number of at least `min`, defaulted.
    pub fn number<T>(&self, setting: &Setting, min: T) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        match self.text(setting) {
            Some(raw) => Self::parse_number(setting, &raw, min),
            None => Err(ConfigError::invalid(setting.name, "is not set")),
        }
    }

    /// A whole number of at least `min`, or nothing when unset.
    pub fn optional_number<T>(&self, setting: &Setting, min: T) -> Result<Option<T>, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        self.get(setting)
            .map(|raw| Self::parse_number(setting, &raw, min))
            .transpose()
    }

    fn parse_number<T>(setting: &Setting, raw: &str, min: T) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        match raw.parse::<T>() {
            Ok(v) if v >= min => Ok(v),
            _ => Err(ConfigError::invalid(
                setting.name,
                format!("expected a whole number of at least {min}, got {raw:?}"),
            )),
        }
    }

    /// One of `choices` (case-sensitive), defaulted.
    pub fn choice(
        &self,
        setting: &Setting,
        choices: &[&'static str],
    ) -> Result<&'static str, ConfigError> {
        let raw = self.text(setting).unwrap_or_default();
        choices.iter().copied().find(|c| *c == raw).ok_or_else(|| {
            ConfigError::invalid(
                setting.name,
                format!("expected one of {}, got {raw:?}", choices.join(", ")),
            )
        })
    }
}

/// Every non-secret setting of one process, read once at its start.
#[derive(Debug, Clone)]
pub struct Settings {
    pub edge: EdgeSettings,
    pub callbacks: CallbackSettings,
    pub provisioner: ProvisionerSettings,
    pub worker: WorkerSettings,
    /// How the worker and the usage push reach KooGallery. An unset choice depends on the
    /// secrets (an AK/SK or not), so [`Settings::read`] is told what the process holds.
    pub marketplace: MarketplaceSettings,
    /// How usage is pushed to KooGallery.
    pub metering: MeteringSettings,
    /// How long a license token may be relied on offline (`KOOGALLERY_LICENSE_OFFLINE_DAYS`).
    pub license_offline: chrono::Duration,
    /// How long the exchange log keeps a call (`KOOGALLERY_EXCHANGE_LOG_DAYS`); `None`: no log.
    pub exchange_log: Option<chrono::Duration>,
}

impl Default for Settings {
    /// Every setting at its default, offline (tests, examples).
    fn default() -> Self {
        Self::read(&Env::empty(), OpenApiAccess::NONE).expect("the catalog's defaults are valid")
    }
}

impl Settings {
    /// Reads every setting of the [`catalog`] once, and checks them together: a job delivery's
    /// calls must fit the worker's timeout and its claim.
    pub fn read(env: &Env<'_>, open_api: OpenApiAccess) -> Result<Self, ConfigError> {
        let provisioner = ProvisionerSettings::read(env)?;
        let settings = Self {
            edge: EdgeSettings::read(env)?,
            callbacks: CallbackSettings::read(env, &provisioner)?,
            provisioner,
            worker: WorkerSettings::read(env)?,
            marketplace: MarketplaceSettings::read(env, open_api)?,
            metering: MeteringSettings::read(env)?,
            license_offline: license_offline(env)?,
            exchange_log: crate::exchange::retention(env)?,
        };
        settings.check_delivery()?;
        Ok(settings)
    }

    /// A job delivery's calls (the vendor's webhook, KooGallery's Query Order) fit the worker's
    /// timeout and its claim ([`WorkerSettings::check_timeout`]).
    fn check_delivery(&self) -> Result<(), ConfigError> {
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
                    v1: None,
                },
                webhook: None,
                usage: None,
                license_client: None,
                open_api: None,
                kit_rsa: None,
                dev_keys: false,
            },
        }
    }

    /// Settings and secrets from the process environment (the local host).
    pub fn from_env() -> Result<Self, ConfigError> {
        let env = Env::process();
        let open_api = OpenApiAccess {
            held: EnvSecrets::open_api(&env)?.is_some(),
            offline_by_default: true,
        };
        let settings = Settings::read(&env, open_api)?;
        let mut secrets = EnvSecrets::read(&env);
        secrets.kit_rsa = EnvSecrets::kit_rsa(&env)?;
        Ok(Self { settings, secrets })
    }
}

#[cfg(test)]
mod tests;

/// `KOOGALLERY_LICENSE_OFFLINE_DAYS`, 1 to 90 days.
fn license_offline(env: &Env<'_>) -> Result<chrono::Duration, ConfigError> {
    let setting = &catalog::LICENSE_OFFLINE_DAYS;
    let days: i64 = env.number(setting, 1)?;
    if days > 90 {
        return Err(ConfigError::invalid(
            setting.name,
            format!("at most 90 days, got {days}"),
        ));
    }
    Ok(chrono::Duration::days(days))
}
