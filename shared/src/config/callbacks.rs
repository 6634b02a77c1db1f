//! The callbacks' own settings: how queryInstance presents credentials
//! (docs/protocol/decisions.md §4) and what a debug newInstance answers
//! (docs/protocol/decisions.md §7).

use super::{ConfigError, Env, ProvisionerSettings, catalog};
use crate::security::credential_cipher::EncryptType;

/// Where a debug record's `frontEndUrl` points when no static URL template is configured.
pub const DEBUG_FRONT_END_URL: &str = "https://debug.example.com/{instanceId}";

#[derive(Debug, Clone)]
pub struct CallbackSettings {
    /// Encrypt queryInstance credentials (docs/protocol/decisions.md §4); plain text when `None`,
    /// the V2 default.
    pub credential_encryption: Option<EncryptType>,
    /// The `frontEndUrl` template (`{instanceId}` filled in) of debug records
    /// (docs/protocol/decisions.md §7).
    pub debug_front_end_url: String,
    /// queryInstance's `usageInfo.dashboardUrl` (`{instanceId}` filled in), where the buyer sees
    /// its usage: `KOOGALLERY_USAGE_DASHBOARD_URL`, unset by default
    /// (docs/protocol/callbacks.md §6.2, optional).
    pub usage_dashboard_url: Option<String>,
}

impl Default for CallbackSettings {
    fn default() -> Self {
        Self::read(&Env::empty(), &ProvisionerSettings::default())
            .expect("the catalog's defaults are valid")
    }
}

impl CallbackSettings {
    /// `KOOGALLERY_CREDENTIAL_ENCRYPTION` (`none`, `aes256`, `aes128`); debug records borrow the
    /// static provisioner's `KOOGALLERY_FRONTEND_URL` where the process has it (the local host), so
    /// a debug answer looks like a real one. The template does not give it to the newInstance
    /// function, which then uses the default template.
    pub fn read(env: &Env<'_>, provisioner: &ProvisionerSettings) -> Result<Self, ConfigError> {
        let credential_encryption = credential_encryption(env)?;
        let debug_front_end_url = match provisioner {
            ProvisionerSettings::Static { front_end_url, .. } => front_end_url.clone(),
            ProvisionerSettings::Webhook { .. } => DEBUG_FRONT_END_URL.to_owned(),
        };
        Ok(Self {
            credential_encryption,
            debug_front_end_url,
            usage_dashboard_url: env.get(&catalog::USAGE_DASHBOARD_URL),
        })
    }
}

/// `KOOGALLERY_CREDENTIAL_ENCRYPTION`: the key size of encrypted credentials
/// (docs/protocol/decisions.md §4); `None` for plain text, the V2 default. V1 always encrypts, with
/// this size or, unset, AES-256 (docs/protocol/decisions.md §20).
pub fn credential_encryption(env: &Env<'_>) -> Result<Option<EncryptType>, ConfigError> {
    Ok(
        match env.choice(
            &catalog::CREDENTIAL_ENCRYPTION,
            &["none", "off", "aes256", "1", "aes128", "2"],
        )? {
            "aes256" | "1" => Some(EncryptType::Aes256),
            "aes128" | "2" => Some(EncryptType::Aes128),
            _ => None,
        },
    )
}
