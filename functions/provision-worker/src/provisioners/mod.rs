//! The two provisioners shipped, chosen by `KOOGALLERY_PROVISIONER`.
//!
//! - [`StaticProvisioner`]: the same application for every buyer: URLs from templates with
//!   `{instanceId}` and a sign-up memo, never an account the application would not know.
//! - [`WebhookProvisioner`]: the vendor's own service decides. Each event ([`WebhookEvent`], a
//!   versioned contract) is POSTed as signed JSON; the answer carries the access information, or a
//!   KooGallery result code that refuses the order.

use std::sync::Arc;

use koogallery::{
    config::{ConfigError, ProvisionerSettings},
    exchange::ExchangeRecorder,
    provisioning::Provisioner,
    security::SecretKey,
};

mod static_app;
mod webhook;
pub mod webhook_event;

pub use static_app::StaticProvisioner;
pub use webhook::WebhookProvisioner;
pub use webhook_event::{WEBHOOK_EVENT_VERSION, WebhookEvent};

/// Builds the configured provisioner. The webhook needs its signing secret from the secrets bundle;
/// it keeps each of its calls in `exchanges` (the exchange log).
pub fn from_settings(
    settings: &ProvisionerSettings,
    webhook_secret: Option<SecretKey>,
    exchanges: &ExchangeRecorder,
) -> Result<Arc<dyn Provisioner>, ConfigError> {
    Ok(match settings {
        ProvisionerSettings::Static {
            front_end_url,
            admin_url,
            memo,
        } => Arc::new(StaticProvisioner {
            front_end_url: front_end_url.clone(),
            admin_url: admin_url.clone(),
            memo: memo.clone(),
        }),
        ProvisionerSettings::Webhook {
            url,
            timeout,
            event_version,
        } => {
            let secret = webhook_secret.ok_or_else(|| {
                ConfigError::invalid(
                    "KOOGALLERY_WEBHOOK_SECRET",
                    "required when KOOGALLERY_PROVISIONER=webhook (it signs each event; on AWS: \"webhookSecret\" in the webhook secret, KOOGALLERY_WEBHOOK_SECRET_ID)",
                )
            })?;
            let mut webhook =
                WebhookProvisioner::new(url.clone(), secret, *timeout).map_err(|e| {
                    ConfigError::invalid("KOOGALLERY_WEBHOOK_URL", format!("webhook client: {e}"))
                })?;
            webhook.event_version = *event_version;
            Arc::new(webhook.with_exchange_log(exchanges.clone()))
        }
    })
}
