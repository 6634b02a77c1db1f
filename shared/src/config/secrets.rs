//! The secrets one deployment holds, as one typed bundle, and the [`Secrets`] port that yields it:
//! from the environment locally ([`EnvSecrets`]), from Secrets Manager on AWS (the AWS adapter), from
//! a fixed value in tests ([`StaticSecrets`]). Keys never pass through settings or fake environment
//! variables, and never appear in `Debug` output ([`SecretKey`] redacts itself).
//!
//! Room for what comes next: the open API's APIG AK/SK, the RSA private key that decrypts the Kit
//! `clientSecret`, SSO client credentials and a License signing key each become one more optional
//! field here and one more field of the Secrets Manager JSON.

use async_trait::async_trait;

use super::Env;
use crate::security::{KeyRing, SecretKey};

/// Development default for `KOOGALLERY_ACCESS_KEY` (the basic-interface key). Never use it live.
pub const DEV_ACCESS_KEY: &str = "dev-access-key-change-me";
/// Development default for `KOOGALLERY_KIT_KEY`.
pub const DEV_KIT_KEY: &str = "dev-kit-key-change-me";

/// The signing keys: basic and Kit are separate, each with an optional previous key (Decisions §2).
#[derive(Debug, Clone)]
pub struct Keys {
    pub basic: KeyRing,
    pub kit: KeyRing,
}

/// Every secret of a deployment.
#[derive(Debug, Clone)]
pub struct SecretBundle {
    pub keys: Keys,
    /// Signs the events POSTed to the vendor's webhook (required by the webhook provisioner).
    pub webhook: Option<SecretKey>,
    /// The access key pair that signs calls to KooGallery's open API (openapi §1): the seller
    /// console's 我的凭证 → 访问密钥.
    pub open_api: Option<OpenApiKeys>,
    /// Signs the vendor's application's usage reports (`POST /usage`, `metering::api`).
    pub usage: Option<SecretKey>,
    /// True when a development default key is in use (logged loudly at start-up).
    pub dev_keys: bool,
}

/// An AK/SK pair. The SK is never printed.
#[derive(Debug, Clone)]
pub struct OpenApiKeys {
    pub ak: String,
    pub sk: SecretKey,
}

impl OpenApiKeys {
    /// Both halves or neither: half a pair is a mistake worth naming.
    pub fn pair(
        ak: Option<String>,
        sk: Option<String>,
        names: (&'static str, &'static str),
    ) -> Result<Option<Self>, String> {
        match (ak, sk) {
            (Some(ak), Some(sk)) => Ok(Some(Self {
                ak,
                sk: SecretKey::new(sk),
            })),
            (None, None) => Ok(None),
            (Some(_), None) => Err(format!("{} is set without {}", names.0, names.1)),
            (None, Some(_)) => Err(format!("{} is set without {}", names.1, names.0)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("secrets unavailable: {0}")]
pub struct SecretsError(pub String);

/// Where the secrets come from; read once per process and cached by the caller.
#[async_trait]
pub trait Secrets: Send + Sync {
    async fn bundle(&self) -> Result<SecretBundle, SecretsError>;
}

/// Secrets fixed at start-up (tests, examples).
#[derive(Debug, Clone)]
pub struct StaticSecrets(pub SecretBundle);

#[async_trait]
impl Secrets for StaticSecrets {
    async fn bundle(&self) -> Result<SecretBundle, SecretsError> {
        Ok(self.0.clone())
    }
}

/// The local host's secrets: `KOOGALLERY_ACCESS_KEY`, `KOOGALLERY_KIT_KEY` (each with a
/// `…_PREVIOUS`) and `KOOGALLERY_WEBHOOK_SECRET`. Unset keys fall back to the development keys,
/// which [`SecretBundle::dev_keys`] reports so the host can warn; on AWS there is no such fallback.
pub struct EnvSecrets;

impl EnvSecrets {
    pub fn read(env: &Env<'_>) -> SecretBundle {
        let basic = env.get("KOOGALLERY_ACCESS_KEY");
        let kit = env.get("KOOGALLERY_KIT_KEY");
        let dev_keys = basic.is_none() || kit.is_none();
        let ring = |current: Option<String>, dev: &str, previous: &str| {
            KeyRing::new(
                SecretKey::new(current.unwrap_or_else(|| dev.to_owned())),
                env.get(previous).map(SecretKey::new),
            )
        };
        SecretBundle {
            keys: Keys {
                basic: ring(basic, DEV_ACCESS_KEY, "KOOGALLERY_ACCESS_KEY_PREVIOUS"),
                kit: ring(kit, DEV_KIT_KEY, "KOOGALLERY_KIT_KEY_PREVIOUS"),
            },
            webhook: env.get("KOOGALLERY_WEBHOOK_SECRET").map(SecretKey::new),
            open_api: Self::open_api(env).ok().flatten(),
            usage: env.get("KOOGALLERY_USAGE_KEY").map(SecretKey::new),
            dev_keys,
        }
    }

    /// `KOOGALLERY_AK` and `KOOGALLERY_SK`: both, or neither.
    pub fn open_api(env: &Env<'_>) -> Result<Option<OpenApiKeys>, super::ConfigError> {
        OpenApiKeys::pair(
            env.get("KOOGALLERY_AK"),
            env.get("KOOGALLERY_SK"),
            ("KOOGALLERY_AK", "KOOGALLERY_SK"),
        )
        .map_err(|why| super::ConfigError::invalid("KOOGALLERY_AK", why))
    }
}

#[async_trait]
impl Secrets for EnvSecrets {
    async fn bundle(&self) -> Result<SecretBundle, SecretsError> {
        Ok(Self::read(&Env::process()))
    }
}
