//! How instances get provisioned (`KOOGALLERY_PROVISIONER`). The webhook's signing secret is not a
//! setting: it is in the [`SecretBundle`](super::SecretBundle).

use std::time::Duration;

use super::{ConfigError, Env};

pub const DEFAULT_FRONT_END_URL: &str = "https://app.example.com/{instanceId}";

/// What the static provisioner tells the buyer in `appInfo.memo` (≤ 1024 characters, callbacks
/// §6.2): how to get in, since it hands out no account. Chinese first: KooGallery's console is.
pub const DEFAULT_STATIC_MEMO: &str = "请打开上面的地址，用您的邮箱注册账号后登录。Open the address above and sign up with your e-mail to log in.";

/// Longest `appInfo.memo` KooGallery takes (callbacks §6.2).
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
    Webhook { url: String, timeout: Duration },
}

impl Default for ProvisionerSettings {
    fn default() -> Self {
        Self::Static {
            front_end_url: DEFAULT_FRONT_END_URL.into(),
            admin_url: Some("https://app.example.com/{instanceId}/admin".into()),
            memo: DEFAULT_STATIC_MEMO.into(),
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
            _ => {
                // The static provisioner once named an admin account with a generated password
                // that the vendor's application never learnt; refuse the old setting rather than
                // let a deployment believe buyers still get an account.
                if env.get("KOOGALLERY_ADMIN_USER").is_some() {
                    return Err(ConfigError::invalid(
                        "KOOGALLERY_ADMIN_USER",
                        "no longer used: the static provisioner hands out no account (the buyer signs up in your application; see KOOGALLERY_STATIC_MEMO); remove it, or use KOOGALLERY_PROVISIONER=webhook to create accounts",
                    ));
                }
                let memo = env
                    .get("KOOGALLERY_STATIC_MEMO")
                    .unwrap_or_else(|| DEFAULT_STATIC_MEMO.into());
                if memo.chars().count() > MEMO_MAX_CHARS {
                    return Err(ConfigError::invalid(
                        "KOOGALLERY_STATIC_MEMO",
                        format!("at most {MEMO_MAX_CHARS} characters (KooGallery's appInfo.memo)"),
                    ));
                }
                Ok(Self::Static {
                    front_end_url: env
                        .get("KOOGALLERY_FRONTEND_URL")
                        .unwrap_or_else(|| DEFAULT_FRONT_END_URL.into()),
                    admin_url: env.get("KOOGALLERY_ADMIN_URL"),
                    memo,
                })
            }
        }
    }
}
