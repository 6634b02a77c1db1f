//! How instances get provisioned (`KOOGALLERY_PROVISIONER`). The webhook's signing secret is not a
//! setting: it is in the [`SecretBundle`](super::SecretBundle).

use std::time::Duration;

use super::{ConfigError, Env, catalog};

/// Longest `appInfo.memo` KooGallery takes (docs/protocol/callbacks.md §6.2).
pub const MEMO_MAX_CHARS: usize = 1024;

#[derive(Debug, Clone)]
pub enum ProvisionerSettings {
    /// The same application for every buyer: URLs from templates with `{instanceId}` and a memo,
    /// never a credential (the application could not know it; the buyer signs up in the app).
    Static {
        front_end_url: String,
        admin_url: Option<String>,
        memo: String,
    },
    /// POST a signed JSON event to the vendor's URL and take the credentials from its answer.
    Webhook {
        url: String,
        timeout: Duration,
        /// The webhook event contract version sent (1 or 2).
        event_version: u32,
    },
}

impl Default for ProvisionerSettings {
    fn default() -> Self {
        Self::read(&Env::empty()).expect("the catalog's defaults are valid")
    }
}

impl ProvisionerSettings {
    pub fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        match env.choice(&catalog::PROVISIONER, &["static", "webhook"])? {
            "webhook" => {
                let url = env.get(&catalog::WEBHOOK_URL).ok_or_else(|| {
                    ConfigError::invalid(
                        catalog::WEBHOOK_URL.name,
                        "required when KOOGALLERY_PROVISIONER=webhook",
                    )
                })?;
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(ConfigError::invalid(
                        catalog::WEBHOOK_URL.name,
                        format!("expected an http(s) URL, got {url:?}"),
                    ));
                }
                Ok(Self::Webhook {
                    url,
                    timeout: env.secs(&catalog::WEBHOOK_TIMEOUT_SECS, 1)?,
                    event_version: match env.choice(&catalog::WEBHOOK_EVENT_VERSION, &["1", "2"])? {
                        "1" => 1,
                        _ => 2,
                    },
                })
            }
            _ => {
                // The static provisioner once named an admin account with a generated password
                // that the vendor's application never learnt; refuse the old setting rather than
                // let a deployment believe buyers still get an account.
                if env.get(&catalog::ADMIN_USER).is_some() {
                    return Err(ConfigError::invalid(
                        catalog::ADMIN_USER.name,
                        "no longer used: the static provisioner hands out no account (the buyer signs up in your application; see KOOGALLERY_STATIC_MEMO); remove it, or use KOOGALLERY_PROVISIONER=webhook to create accounts",
                    ));
                }
                let memo = env.text(&catalog::STATIC_MEMO).unwrap_or_default();
                if memo.chars().count() > MEMO_MAX_CHARS {
                    return Err(ConfigError::invalid(
                        catalog::STATIC_MEMO.name,
                        format!("at most {MEMO_MAX_CHARS} characters (KooGallery's appInfo.memo)"),
                    ));
                }
                Ok(Self::Static {
                    front_end_url: env.text(&catalog::FRONTEND_URL).unwrap_or_default(),
                    admin_url: env.get(&catalog::ADMIN_URL),
                    memo,
                })
            }
        }
    }
}
