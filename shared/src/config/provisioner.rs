//! How instances get provisioned (`KOOGALLERY_PROVISIONER`). The webhook's signing secret is not a
//! setting: it is in the [`SecretBundle`](super::SecretBundle).

use std::time::Duration;

use super::{ConfigError, Env};

pub const DEFAULT_FRONT_END_URL: &str = "https://app.example.com/{instanceId}";

#[derive(Debug, Clone)]
pub enum ProvisionerSettings {
    /// Admin user plus a generated password; URLs from templates with `{instanceId}`.
    Static {
        front_end_url: String,
        admin_url: Option<String>,
        admin_user: String,
    },
    /// POST a signed JSON event to the vendor's URL and take the credentials from its answer.
    Webhook { url: String, timeout: Duration },
}

impl Default for ProvisionerSettings {
    fn default() -> Self {
        Self::Static {
            front_end_url: DEFAULT_FRONT_END_URL.into(),
            admin_url: Some("https://app.example.com/{instanceId}/admin".into()),
            admin_user: "admin".into(),
        }
    }
}

impl ProvisionerSettings {
    pub fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        match env.choice("KOOGALLERY_PROVISIONER", "static", &["static", "webhook"])? {
            "webhook" => {
                let url = env.get("KOOGALLERY_WEBHOOK_URL").ok_or_else(|| {
                    ConfigError::invalid(
                        "KOOGALLERY_WEBHOOK_URL",
                        "required when KOOGALLERY_PROVISIONER=webhook",
                    )
                })?;
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(ConfigError::invalid(
                        "KOOGALLERY_WEBHOOK_URL",
                        format!("expected an http(s) URL, got {url:?}"),
                    ));
                }
                Ok(Self::Webhook {
                    url,
                    timeout: env.secs("KOOGALLERY_WEBHOOK_TIMEOUT_SECS", 10, 1)?,
                })
            }
            _ => Ok(Self::Static {
                front_end_url: env
                    .get("KOOGALLERY_FRONTEND_URL")
                    .unwrap_or_else(|| DEFAULT_FRONT_END_URL.into()),
                admin_url: env.get("KOOGALLERY_ADMIN_URL"),
                admin_user: env
                    .get("KOOGALLERY_ADMIN_USER")
                    .unwrap_or_else(|| "admin".into()),
            }),
        }
    }
}
