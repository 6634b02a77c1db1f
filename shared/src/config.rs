//! Settings, read once per process from the environment. Every default is safe for production except
//! the development keys, which are logged loudly when used.

use std::time::Duration;

use crate::{
    crypto::EncryptType,
    ports::Keys,
    signing::{KeyRing, SecretKey},
};

/// Development default for `KOOGALLERY_ACCESS_KEY` (the basic-interface key). Never use it live.
pub const DEV_ACCESS_KEY: &str = "dev-access-key-change-me";
/// Development default for `KOOGALLERY_KIT_KEY`.
pub const DEV_KIT_KEY: &str = "dev-kit-key-change-me";

/// Accepted clock skew of a request `timestamp`, both ways (Decisions §1).
pub const DEFAULT_TIMESTAMP_WINDOW: Duration = Duration::from_secs(60);
/// Largest request body accepted. V2 bodies are a few hundred bytes; Kit user lists (≤ 500 users) fit too.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}: {problem}")]
    Invalid { name: &'static str, problem: String },
}

/// How instances get provisioned.
#[derive(Debug, Clone)]
pub enum ProvisionerConfig {
    /// Admin user plus a generated password; URLs from templates with `{instanceId}`.
    Static {
        front_end_url: String,
        admin_url: Option<String>,
        admin_user: String,
    },
    /// POST a signed JSON event to the vendor's URL and take the credentials from its answer.
    Webhook {
        url: String,
        secret: SecretKey,
        timeout: Duration,
    },
}

/// Retry policy of the provisioning worker.
#[derive(Debug, Clone, Copy)]
pub struct WorkerConfig {
    /// Deliveries of one job before it is dead-lettered (and the instance marked failed).
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How long one delivery holds the right to provision an instance.
    pub claim_duration: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(300),
            claim_duration: Duration::from_secs(120),
        }
    }
}

impl WorkerConfig {
    /// Delay before delivery `attempt + 1`, after `attempt` (1-based) failed: exponential, capped.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.backoff_base
            .saturating_mul(factor)
            .min(self.backoff_max)
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub keys: Keys,
    /// True when a development default key is in use.
    pub dev_keys: bool,
    pub timestamp_window: Duration,
    /// How long nonces are remembered: at least twice the window (Decisions §1).
    pub nonce_ttl: Duration,
    pub max_body_bytes: usize,
    /// Encrypt queryInstance credentials (Decisions §4); plain text when `None`, the V2 default.
    pub credential_encryption: Option<EncryptType>,
    pub provisioner: ProvisionerConfig,
    pub worker: WorkerConfig,
}

impl Config {
    /// Defaults everywhere, with the given basic and Kit keys (tests, examples).
    pub fn with_keys(basic: &str, kit: &str) -> Self {
        Self {
            keys: Keys {
                basic: KeyRing::new(SecretKey::new(basic), None),
                kit: KeyRing::new(SecretKey::new(kit), None),
            },
            dev_keys: false,
            timestamp_window: DEFAULT_TIMESTAMP_WINDOW,
            nonce_ttl: DEFAULT_TIMESTAMP_WINDOW * 5,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            credential_encryption: None,
            provisioner: ProvisionerConfig::Static {
                front_end_url: "https://app.example.com/{instanceId}".into(),
                admin_url: Some("https://app.example.com/{instanceId}/admin".into()),
                admin_user: "admin".into(),
            },
            worker: WorkerConfig::default(),
        }
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
    }

    /// Reads every `KOOGALLERY_*` setting through `get` (the README lists them).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let basic = get("KOOGALLERY_ACCESS_KEY");
        let kit = get("KOOGALLERY_KIT_KEY");
        let dev_keys = basic.is_none() || kit.is_none();
        let ring = |current: Option<String>, dev: &str, previous: Option<String>| {
            KeyRing::new(
                SecretKey::new(current.unwrap_or_else(|| dev.to_owned())),
                previous.map(SecretKey::new),
            )
        };
        let keys = Keys {
            basic: ring(basic, DEV_ACCESS_KEY, get("KOOGALLERY_ACCESS_KEY_PREVIOUS")),
            kit: ring(kit, DEV_KIT_KEY, get("KOOGALLERY_KIT_KEY_PREVIOUS")),
        };
        let secs = |name: &'static str, default: u64| -> Result<Duration, ConfigError> {
            match get(name) {
                None => Ok(Duration::from_secs(default)),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .map(Duration::from_secs)
                    .map_err(|_| ConfigError::Invalid {
                        name,
                        problem: format!("expected whole seconds, got {v:?}"),
                    }),
            }
        };
        let timestamp_window = secs(
            "KOOGALLERY_TIMESTAMP_WINDOW_SECS",
            DEFAULT_TIMESTAMP_WINDOW.as_secs(),
        )?;
        let max_body_bytes = match get("KOOGALLERY_MAX_BODY_BYTES") {
            None => DEFAULT_MAX_BODY_BYTES,
            Some(v) => v.trim().parse().map_err(|_| ConfigError::Invalid {
                name: "KOOGALLERY_MAX_BODY_BYTES",
                problem: format!("expected a byte count, got {v:?}"),
            })?,
        };
        let credential_encryption = match get("KOOGALLERY_CREDENTIAL_ENCRYPTION")
            .as_deref()
            .map(str::trim)
        {
            None | Some("none") | Some("off") => None,
            Some("aes256") | Some("1") => Some(EncryptType::Aes256),
            Some("aes128") | Some("2") => Some(EncryptType::Aes128),
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "KOOGALLERY_CREDENTIAL_ENCRYPTION",
                    problem: format!("expected none, aes256 or aes128, got {other:?}"),
                });
            }
        };
        let provisioner = match get("KOOGALLERY_PROVISIONER").as_deref().map(str::trim) {
            None | Some("static") => ProvisionerConfig::Static {
                front_end_url: get("KOOGALLERY_FRONTEND_URL")
                    .unwrap_or_else(|| "https://app.example.com/{instanceId}".into()),
                admin_url: get("KOOGALLERY_ADMIN_URL"),
                admin_user: get("KOOGALLERY_ADMIN_USER").unwrap_or_else(|| "admin".into()),
            },
            Some("webhook") => {
                let url = get("KOOGALLERY_WEBHOOK_URL").ok_or(ConfigError::Invalid {
                    name: "KOOGALLERY_WEBHOOK_URL",
                    problem: "required when KOOGALLERY_PROVISIONER=webhook".into(),
                })?;
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(ConfigError::Invalid {
                        name: "KOOGALLERY_WEBHOOK_URL",
                        problem: format!("expected an http(s) URL, got {url:?}"),
                    });
                }
                let secret = get("KOOGALLERY_WEBHOOK_SECRET").ok_or(ConfigError::Invalid {
                    name: "KOOGALLERY_WEBHOOK_SECRET",
                    problem: "required when KOOGALLERY_PROVISIONER=webhook (it signs each event)"
                        .into(),
                })?;
                ProvisionerConfig::Webhook {
                    url,
                    secret: SecretKey::new(secret),
                    timeout: secs("KOOGALLERY_WEBHOOK_TIMEOUT_SECS", 10)?,
                }
            }
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "KOOGALLERY_PROVISIONER",
                    problem: format!("expected static or webhook, got {other:?}"),
                });
            }
        };
        let defaults = WorkerConfig::default();
        let max_attempts = match get("KOOGALLERY_WORKER_MAX_ATTEMPTS") {
            None => defaults.max_attempts,
            Some(v) => v
                .trim()
                .parse()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or(ConfigError::Invalid {
                    name: "KOOGALLERY_WORKER_MAX_ATTEMPTS",
                    problem: format!("expected a positive count, got {v:?}"),
                })?,
        };
        let worker = WorkerConfig {
            max_attempts,
            backoff_base: secs(
                "KOOGALLERY_WORKER_BACKOFF_SECS",
                defaults.backoff_base.as_secs(),
            )?,
            ..defaults
        };
        Ok(Self {
            keys,
            dev_keys,
            timestamp_window,
            nonce_ttl: timestamp_window * 5,
            max_body_bytes,
            credential_encryption,
            provisioner,
            worker,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_use_dev_keys_and_static_provisioner() {
        let c = cfg(&[]).unwrap();
        assert!(c.dev_keys);
        assert_eq!(c.keys.basic.current.expose(), DEV_ACCESS_KEY);
        assert!(matches!(c.provisioner, ProvisionerConfig::Static { .. }));
        assert!(c.nonce_ttl >= c.timestamp_window * 2);
    }

    #[test]
    fn keys_and_previous_keys_are_read() {
        let c = cfg(&[
            ("KOOGALLERY_ACCESS_KEY", "a"),
            ("KOOGALLERY_ACCESS_KEY_PREVIOUS", "a0"),
            ("KOOGALLERY_KIT_KEY", "k"),
        ])
        .unwrap();
        assert!(!c.dev_keys);
        assert_eq!(c.keys.basic.previous.as_ref().unwrap().expose(), "a0");
        assert!(c.keys.kit.previous.is_none());
    }

    #[test]
    fn bad_settings_name_the_variable() {
        let e = cfg(&[("KOOGALLERY_PROVISIONER", "webhook")]).unwrap_err();
        assert!(e.to_string().contains("KOOGALLERY_WEBHOOK_URL"), "{e}");
        let e = cfg(&[("KOOGALLERY_CREDENTIAL_ENCRYPTION", "rot13")]).unwrap_err();
        assert!(
            e.to_string().contains("KOOGALLERY_CREDENTIAL_ENCRYPTION"),
            "{e}"
        );
        let e = cfg(&[("KOOGALLERY_WORKER_MAX_ATTEMPTS", "0")]).unwrap_err();
        assert!(e.to_string().contains("MAX_ATTEMPTS"), "{e}");
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let w = WorkerConfig::default();
        assert_eq!(w.backoff(1), Duration::from_secs(2));
        assert_eq!(w.backoff(2), Duration::from_secs(4));
        assert_eq!(w.backoff(30), w.backoff_max);
    }
}
