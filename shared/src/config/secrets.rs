//! The secrets one deployment holds, and the [`Secrets`] port that yields them: from the
//! environment locally ([`EnvSecrets`], the whole [`SecretBundle`]), from Secrets Manager on AWS
//! (the AWS adapter), from a fixed value in tests ([`StaticSecrets`]). Keys never pass through
//! settings or fake environment variables, and never appear in `Debug` output ([`SecretKey`]
//! redacts itself).
//!
//! On AWS the secrets are kept in four parts ([`SecretPart`]), one Secrets Manager secret each, so
//! that every function can read exactly the parts it uses: the internet-facing usage ingestion
//! holds the usage key only, never the seller's AK/SK or the callback keys. A function holds its
//! parts as [`HeldSecrets`].
//!
//! Room for what comes next: the RSA private key that decrypts the Kit `clientSecret`, SSO client
//! credentials and a License signing key each become one more optional field here and one more part
//! (or field of a part).

use async_trait::async_trait;

use super::Env;
use crate::security::{KeyRing, SecretKey};

/// Development default for `KOOGALLERY_ACCESS_KEY` (the basic-interface key). Never use it live.
pub const DEV_ACCESS_KEY: &str = "dev-access-key-change-me";
/// Development default for `KOOGALLERY_KIT_KEY`.
pub const DEV_KIT_KEY: &str = "dev-kit-key-change-me";

/// The signing keys: basic and Kit are separate, each with an optional previous key
/// (docs/protocol/decisions.md §2).
#[derive(Debug, Clone)]
pub struct Keys {
    pub basic: KeyRing,
    pub kit: KeyRing,
    /// The V1 GET interface's own key, where one is configured (docs/protocol/decisions.md §20).
    pub v1: Option<KeyRing>,
}

impl Keys {
    /// The ring that verifies and answers V1 calls: the V1 key if configured, else the basic key
    /// (docs/protocol/decisions.md §20).
    pub fn v1_ring(&self) -> &KeyRing {
        self.v1.as_ref().unwrap_or(&self.basic)
    }
}

/// Every secret of a deployment.
#[derive(Debug, Clone)]
pub struct SecretBundle {
    pub keys: Keys,
    /// Signs the events POSTed to the vendor's webhook (required by the webhook provisioner).
    pub webhook: Option<SecretKey>,
    /// The access key pair that signs calls to KooGallery's open API (docs/protocol/openapi.md §1):
    /// the seller console's 我的凭证 → 访问密钥.
    pub open_api: Option<OpenApiKeys>,
    /// Signs the vendor's application's usage reports (`POST /usage`, `metering::api`).
    pub usage: Option<SecretKey>,
    /// The per-product key the vendor's software signs `/license/*` requests with
    /// (`license::api`). Locally only, for now.
    pub license_client: Option<SecretKey>,
    /// Decrypts applicationSync's `clientSecret` (docs/protocol/decisions.md §14). Locally, when
    /// unset, the host generates one in its data directory (`kit_client_secret::load_or_generate`).
    pub kit_rsa: Option<std::sync::Arc<crate::security::kit_client_secret::ClientSecretKey>>,
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

/// One of the secrets a deployment on AWS keeps apart: each is its own Secrets Manager secret (a
/// JSON object with the part's [`fields`](Self::fields)), named to a function by its
/// [`env_var`](Self::env_var), and readable only by the functions that use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SecretPart {
    /// The basic-interface and Kit key rings: verify and sign KooGallery's calls, encrypt
    /// queryInstance credentials, key the usage push's body signature
    /// (docs/protocol/openapi.md §3).
    CallbackKeys,
    /// The AK/SK that signs calls to KooGallery's open API (Query Order, the usage push).
    OpenApi,
    /// Signs the events POSTed to the vendor's webhook.
    Webhook,
    /// Signs the vendor's application's usage reports (`POST /usage`).
    Usage,
    /// The Kit RSA private key (PEM) that decrypts applicationSync's `clientSecret`
    /// (docs/protocol/decisions.md §14).
    KitRsa,
    /// The license service's keys: the per-product key the vendor's software signs with, and the
    /// Ed25519 key (base64 of 32 bytes) that signs license tokens, with the previous one during a
    /// rotation (`license::service`).
    License,
}

impl SecretPart {
    pub const ALL: [Self; 6] = [
        Self::CallbackKeys,
        Self::OpenApi,
        Self::Webhook,
        Self::Usage,
        Self::KitRsa,
        Self::License,
    ];

    /// The variable that names the part's secret (its ARN or name) to a function.
    pub fn setting(self) -> &'static super::Setting {
        use super::catalog;
        match self {
            Self::CallbackKeys => &catalog::CALLBACK_KEYS_SECRET_ID,
            Self::OpenApi => &catalog::OPENAPI_SECRET_ID,
            Self::Webhook => &catalog::WEBHOOK_SECRET_ID,
            Self::Usage => &catalog::USAGE_KEY_SECRET_ID,
            Self::KitRsa => &catalog::KIT_RSA_SECRET_ID,
            Self::License => &catalog::LICENSE_SECRET_ID,
        }
    }

    /// The name of [`Self::setting`].
    pub fn env_var(self) -> &'static str {
        self.setting().name
    }

    /// The JSON fields of the part's secret.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            Self::CallbackKeys => &[
                "accessKey",
                "accessKeyPrevious",
                "kitKey",
                "kitKeyPrevious",
                "v1Key",
                "v1KeyPrevious",
            ],
            Self::OpenApi => &["ak", "sk"],
            Self::Webhook => &["webhookSecret"],
            Self::Usage => &["usageKey"],
            Self::KitRsa => &["kitRsaPrivateKey"],
            Self::License => &[
                "licenseClientKey",
                "licenseSigningKey",
                "licenseSigningKeyPrevious",
            ],
        }
    }

    /// What the part is, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::CallbackKeys => "the callback keys secret",
            Self::OpenApi => "the open API secret",
            Self::Webhook => "the webhook secret",
            Self::Usage => "the usage key secret",
            Self::KitRsa => "the Kit RSA key secret",
            Self::License => "the license keys secret",
        }
    }

    /// The part a secret field belongs to.
    pub fn of_field(field: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.fields().contains(&field))
    }
}

/// The secrets one process holds: on AWS only the [`SecretPart`]s its function reads (the others
/// are `None`), locally all of them ([`SecretBundle::held`]).
#[derive(Debug, Clone, Default)]
pub struct HeldSecrets {
    pub keys: Option<Keys>,
    pub open_api: Option<OpenApiKeys>,
    pub webhook: Option<SecretKey>,
    pub usage: Option<SecretKey>,
    pub kit_rsa: Option<std::sync::Arc<crate::security::kit_client_secret::ClientSecretKey>>,
    pub license: Option<LicenseKeys>,
}

/// The license service's keys as held ([`SecretPart::License`]).
#[derive(Debug, Clone)]
pub struct LicenseKeys {
    /// The per-product key the vendor's software signs `/license/*` requests with.
    pub client: Option<SecretKey>,
    /// Base64 of the 32-byte Ed25519 secret that signs license tokens.
    pub signing: SecretKey,
    /// The signing key before a rotation, still published.
    pub signing_previous: Option<SecretKey>,
}

impl HeldSecrets {
    /// The callback keys, or an error naming the variable that would have brought them.
    pub fn keys(&self) -> Result<&Keys, super::ConfigError> {
        self.keys.as_ref().ok_or_else(|| {
            super::ConfigError::invalid(
                SecretPart::CallbackKeys.env_var(),
                "this function needs the callback keys secret (accessKey, kitKey)",
            )
        })
    }

    /// `other`'s parts where it has them, ours elsewhere.
    pub fn merge(self, other: HeldSecrets) -> Self {
        Self {
            keys: other.keys.or(self.keys),
            open_api: other.open_api.or(self.open_api),
            webhook: other.webhook.or(self.webhook),
            usage: other.usage.or(self.usage),
            kit_rsa: other.kit_rsa.or(self.kit_rsa),
            license: other.license.or(self.license),
        }
    }

    /// Only the `parts` asked for.
    pub fn only(self, parts: &[SecretPart]) -> Self {
        let has = |p| parts.contains(&p);
        Self {
            keys: self.keys.filter(|_| has(SecretPart::CallbackKeys)),
            open_api: self.open_api.filter(|_| has(SecretPart::OpenApi)),
            webhook: self.webhook.filter(|_| has(SecretPart::Webhook)),
            usage: self.usage.filter(|_| has(SecretPart::Usage)),
            kit_rsa: self.kit_rsa.filter(|_| has(SecretPart::KitRsa)),
            license: self.license.filter(|_| has(SecretPart::License)),
        }
    }
}

impl SecretBundle {
    /// The whole bundle as held secrets (every part).
    pub fn held(&self) -> HeldSecrets {
        HeldSecrets {
            keys: Some(self.keys.clone()),
            open_api: self.open_api.clone(),
            webhook: self.webhook.clone(),
            usage: self.usage.clone(),
            kit_rsa: self.kit_rsa.clone(),
            // Locally the license keys come from the environment or the data directory.
            license: None,
        }
    }
}

/// A [`Secrets`] port failure. Neither carries a secret's value: only which secret and field.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The secret store could not be reached or timed out: worth retrying.
    #[error("secrets unavailable: {0}")]
    Unavailable(#[source] crate::failure::Detail),
    /// A secret is not configured, or its content is malformed: a set-up fault that retrying
    /// cannot fix.
    #[error("secret invalid: {0}")]
    Invalid(#[source] crate::failure::Detail),
}

impl SecretsError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// The words, without the variant's prefix (for messages that add their own).
    pub fn what(&self) -> &str {
        match self {
            Self::Unavailable(d) | Self::Invalid(d) => d.what(),
        }
    }
}

/// Where the secrets come from; read once per process and cached by the caller.
#[async_trait]
pub trait Secrets: Send + Sync {
    /// The `parts` asked for, and only those (a part whose fields are all optional and unset
    /// comes back `None`).
    async fn read_parts(&self, parts: &[SecretPart]) -> Result<HeldSecrets, SecretsError>;
}

/// Secrets fixed at start-up (tests, examples).
#[derive(Debug, Clone)]
pub struct StaticSecrets(pub SecretBundle);

#[async_trait]
impl Secrets for StaticSecrets {
    async fn read_parts(&self, parts: &[SecretPart]) -> Result<HeldSecrets, SecretsError> {
        Ok(self.0.held().only(parts))
    }
}

/// The local host's secrets: `KOOGALLERY_ACCESS_KEY`, `KOOGALLERY_KIT_KEY` (each with a
/// `…_PREVIOUS`) and `KOOGALLERY_WEBHOOK_SECRET`. Unset keys fall back to the development keys,
/// which [`SecretBundle::dev_keys`] reports so the host can warn; on AWS there is no such fallback.
pub struct EnvSecrets;

impl EnvSecrets {
    pub fn read(env: &Env<'_>) -> SecretBundle {
        use super::catalog;
        let basic = env.get(&catalog::ACCESS_KEY);
        let kit = env.get(&catalog::KIT_KEY);
        let dev_keys = basic.is_none() || kit.is_none();
        let ring = |current: Option<String>, dev: &str, previous: &super::Setting| {
            KeyRing::new(
                SecretKey::new(current.unwrap_or_else(|| dev.to_owned())),
                env.get(previous).map(SecretKey::new),
            )
        };
        SecretBundle {
            keys: Keys {
                basic: ring(basic, DEV_ACCESS_KEY, &catalog::ACCESS_KEY_PREVIOUS),
                kit: ring(kit, DEV_KIT_KEY, &catalog::KIT_KEY_PREVIOUS),
                v1: env.get(&catalog::V1_KEY).map(|k| {
                    KeyRing::new(
                        SecretKey::new(k),
                        env.get(&catalog::V1_KEY_PREVIOUS).map(SecretKey::new),
                    )
                }),
            },
            webhook: env.get(&catalog::WEBHOOK_SECRET).map(SecretKey::new),
            open_api: Self::open_api(env).ok().flatten(),
            usage: env.get(&catalog::USAGE_KEY).map(SecretKey::new),
            license_client: env.get(&catalog::LICENSE_CLIENT_KEY).map(SecretKey::new),
            kit_rsa: None,
            dev_keys,
        }
    }

    /// `KOOGALLERY_KIT_RSA_KEY`: the Kit RSA private key as PEM; one that does not parse or is
    /// under 3072 bits stops start-up (docs/protocol/decisions.md §14).
    pub fn kit_rsa(
        env: &Env<'_>,
    ) -> Result<
        Option<std::sync::Arc<crate::security::kit_client_secret::ClientSecretKey>>,
        super::ConfigError,
    > {
        use crate::security::kit_client_secret::ClientSecretKey;
        let setting = &super::catalog::KIT_RSA_KEY;
        env.get(setting)
            .map(|pem| {
                ClientSecretKey::from_pem(&pem)
                    .map(std::sync::Arc::new)
                    .map_err(|e| super::ConfigError::invalid(setting.name, e.to_string()))
            })
            .transpose()
    }

    /// `KOOGALLERY_AK` and `KOOGALLERY_SK`: both, or neither.
    pub fn open_api(env: &Env<'_>) -> Result<Option<OpenApiKeys>, super::ConfigError> {
        use super::catalog::{AK, SK};
        OpenApiKeys::pair(
            env.get(&AK),
            env.get(&SK),
            ("KOOGALLERY_AK", "KOOGALLERY_SK"),
        )
        .map_err(|why| super::ConfigError::invalid("KOOGALLERY_AK", why))
    }
}

#[async_trait]
impl Secrets for EnvSecrets {
    async fn read_parts(&self, parts: &[SecretPart]) -> Result<HeldSecrets, SecretsError> {
        Ok(EnvSecrets::read(&Env::process()).held().only(parts))
    }
}
