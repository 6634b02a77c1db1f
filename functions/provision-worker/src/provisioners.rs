//! The two provisioners shipped, chosen by `KOOGALLERY_PROVISIONER`.
//!
//! - [`StaticProvisioner`]: the same application for every buyer; an admin user with a strong
//!   generated password and URLs from templates with `{instanceId}`.
//! - [`WebhookProvisioner`]: the vendor's own service decides. Each event is POSTed as signed JSON;
//!   the answer carries the access information, or a KooGallery result code that refuses the order.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use hmac::{Hmac, KeyInit, Mac};
use koogallery::{
    ResultCode,
    config::ProvisionerConfig,
    ports::{LifecycleNotice, ProvisionError, ProvisionRequest, Provisioner},
    signing::SecretKey,
    wire::AppInfo,
};
use rand::{Rng, seq::SliceRandom};
use serde::{Deserialize, Serialize};

/// Builds the configured provisioner.
pub fn from_config(config: &ProvisionerConfig) -> Result<Arc<dyn Provisioner>, ProvisionError> {
    Ok(match config {
        ProvisionerConfig::Static {
            front_end_url,
            admin_url,
            admin_user,
        } => Arc::new(StaticProvisioner {
            front_end_url: front_end_url.clone(),
            admin_url: admin_url.clone(),
            admin_user: admin_user.clone(),
        }),
        ProvisionerConfig::Webhook {
            url,
            secret,
            timeout,
        } => Arc::new(WebhookProvisioner::new(
            url.clone(),
            secret.clone(),
            *timeout,
        )?),
    })
}

pub struct StaticProvisioner {
    pub front_end_url: String,
    pub admin_url: Option<String>,
    pub admin_user: String,
}

/// Length of generated admin passwords: strong, and short enough that an AES-encrypted value still
/// fits KooGallery's 128-character field (plaintext ≤ 79 bytes, callbacks §3.4).
pub const PASSWORD_LEN: usize = 20;

/// A password with upper- and lower-case letters, digits and symbols, from the OS-seeded CSPRNG.
/// Look-alike characters are left out because buyers type it from the console.
pub fn generate_password() -> String {
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
    const DIGIT: &[u8] = b"23456789";
    const SYMBOL: &[u8] = b"!@#%^&*-_=+?";
    let mut rng = rand::rng();
    let all: Vec<u8> = [UPPER, LOWER, DIGIT, SYMBOL].concat();
    let mut pw: Vec<u8> = [UPPER, LOWER, DIGIT, SYMBOL]
        .iter()
        .map(|class| class[rng.random_range(0..class.len())])
        .collect();
    while pw.len() < PASSWORD_LEN {
        pw.push(all[rng.random_range(0..all.len())]);
    }
    pw.shuffle(&mut rng);
    pw.into_iter().map(char::from).collect()
}

#[async_trait]
impl Provisioner for StaticProvisioner {
    async fn provision(&self, request: &ProvisionRequest) -> Result<AppInfo, ProvisionError> {
        let fill = |t: &str| t.replace("{instanceId}", &request.instance_id);
        Ok(AppInfo {
            front_end_url: fill(&self.front_end_url),
            admin_url: self.admin_url.as_deref().map(fill),
            user_name: Some(self.admin_user.clone()),
            password: Some(generate_password()),
            memo: None,
        })
    }

    async fn notify(&self, notice: &LifecycleNotice) -> Result<(), ProvisionError> {
        tracing::info!(
            instance_id = %notice.instance.instance_id,
            event = notice.event.kind.name(),
            state = %notice.instance.state,
            "lifecycle change (static provisioner: nothing to do)"
        );
        Ok(())
    }
}

/// The JSON POSTed to the vendor's webhook.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEvent<'a> {
    /// `provision` or the lifecycle event name (`frozen`, `unfrozen`, `refreshed`, `upgraded`, `released`).
    pub event: &'a str,
    /// Stable per event: the vendor's idempotency key across our retries.
    pub event_id: String,
    pub instance_id: &'a str,
    pub order_id: &'a str,
    pub order_line_id: &'a str,
    pub order: Option<&'a koogallery::domain::OrderDetails>,
    pub state: Option<koogallery::domain::InstanceState>,
    pub expire_time: Option<chrono::DateTime<chrono::Utc>>,
    pub detail: Option<&'a koogallery::domain::EventKind>,
}

/// The vendor's answer. Provisioning: `frontEndUrl` (and optional `adminUrl`, `userName`, `password`,
/// `memo`), or `resultCode` other than `000000` to refuse with that KooGallery code.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebhookAnswer {
    result_code: Option<String>,
    result_msg: Option<String>,
    #[serde(flatten)]
    app: Option<AppInfo>,
}

/// Header names of a webhook call. The signature is `sha256=` + hex HMAC-SHA256(secret, timestamp + "." + body).
pub const HEADER_SIGNATURE: &str = "x-koogallery-signature";
pub const HEADER_TIMESTAMP: &str = "x-koogallery-timestamp";
pub const HEADER_EVENT_ID: &str = "x-koogallery-event-id";

/// Computes the webhook signature (vendors verify it the same way).
pub fn webhook_signature(secret: &str, timestamp_ms: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes any key length");
    mac.update(timestamp_ms.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub struct WebhookProvisioner {
    client: reqwest::Client,
    url: String,
    secret: SecretKey,
    /// Tries per job attempt before the job itself is retried later by the queue.
    pub tries: u32,
    pub first_backoff: Duration,
}

impl WebhookProvisioner {
    pub fn new(url: String, secret: SecretKey, timeout: Duration) -> Result<Self, ProvisionError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| ProvisionError::Transient(format!("webhook client: {e}")))?;
        Ok(Self {
            client,
            url,
            secret,
            tries: 3,
            first_backoff: Duration::from_millis(250),
        })
    }

    /// POSTs one event, retrying transient failures with backoff; returns the 2xx answer body.
    async fn post(&self, event: &WebhookEvent<'_>) -> Result<Vec<u8>, ProvisionError> {
        let body =
            serde_json::to_vec(event).map_err(|e| ProvisionError::Transient(e.to_string()))?;
        let mut last = String::new();
        for attempt in 0..self.tries.max(1) {
            if attempt > 0 {
                tokio::time::sleep(self.first_backoff * 2u32.pow(attempt - 1)).await;
            }
            let ts = chrono::Utc::now().timestamp_millis().to_string();
            let sent = self
                .client
                .post(&self.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(HEADER_TIMESTAMP, &ts)
                .header(HEADER_EVENT_ID, &event.event_id)
                .header(
                    HEADER_SIGNATURE,
                    webhook_signature(self.secret.expose(), &ts, &body),
                )
                .body(body.clone())
                .send()
                .await;
            let resp = match sent {
                Ok(r) => r,
                Err(e) => {
                    last = format!("webhook unreachable: {e}");
                    continue;
                }
            };
            let status = resp.status();
            let bytes = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
            if status.is_success() {
                return Ok(bytes);
            }
            let retryable =
                status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429;
            if !retryable {
                // A 4xx is the vendor's answer, not an outage: refuse with its code (or 000005).
                let answer: Option<WebhookAnswer> = serde_json::from_slice(&bytes).ok();
                return Err(refusal(answer, &format!("webhook answered HTTP {status}")));
            }
            last = format!("webhook answered HTTP {status}");
        }
        Err(ProvisionError::Transient(last))
    }
}

fn refusal(answer: Option<WebhookAnswer>, fallback: &str) -> ProvisionError {
    let (code, msg) = answer
        .map(|a| (a.result_code, a.result_msg))
        .unwrap_or((None, None));
    let code = code
        .as_deref()
        .and_then(ResultCode::parse)
        .filter(|c| c.is_failure())
        .unwrap_or(ResultCode::InternalError);
    ProvisionError::Rejected {
        code,
        message: msg.unwrap_or_else(|| fallback.to_owned()),
    }
}

#[async_trait]
impl Provisioner for WebhookProvisioner {
    async fn provision(&self, request: &ProvisionRequest) -> Result<AppInfo, ProvisionError> {
        let event = WebhookEvent {
            event: "provision",
            event_id: format!("{}:provision", request.instance_id),
            instance_id: &request.instance_id,
            order_id: &request.order_id,
            order_line_id: &request.order_line_id,
            order: Some(&request.order),
            state: None,
            expire_time: request.order.expire_time,
            detail: None,
        };
        let bytes = self.post(&event).await?;
        let answer: WebhookAnswer = serde_json::from_slice(&bytes).map_err(|e| {
            ProvisionError::Transient(format!("webhook answer is not the expected JSON: {e}"))
        })?;
        if let Some(code) = answer.result_code.as_deref()
            && code != ResultCode::Success.as_str()
        {
            return Err(refusal(Some(answer), "webhook refused"));
        }
        match answer.app {
            Some(app) if !app.front_end_url.trim().is_empty() => Ok(app),
            // A 2xx without access information is a vendor bug; retrying gives the vendor time to fix it.
            _ => Err(ProvisionError::Transient(
                "webhook answer has no frontEndUrl".into(),
            )),
        }
    }

    async fn notify(&self, notice: &LifecycleNotice) -> Result<(), ProvisionError> {
        let i = &notice.instance;
        let event = WebhookEvent {
            event: notice.event.kind.name(),
            event_id: format!("{}:{}", i.instance_id, notice.event.seq),
            instance_id: &i.instance_id,
            order_id: &i.order_id,
            order_line_id: &i.order_line_id,
            order: i.order.as_ref(),
            state: Some(i.state),
            expire_time: i.expire_time,
            detail: Some(&notice.event.kind),
        };
        let bytes = self.post(&event).await?;
        // An explicit non-success code in a 2xx answer is a refusal too.
        if let Ok(answer) = serde_json::from_slice::<WebhookAnswer>(&bytes)
            && let Some(code) = answer.result_code.as_deref()
            && code != ResultCode::Success.as_str()
        {
            return Err(refusal(Some(answer), "webhook refused"));
        }
        Ok(())
    }
}
