//! The webhook provisioner: each event is POSTed as signed JSON to the vendor's URL
//! (`koogallery::security::webhook` signs it); the answer carries the access information, or a
//! KooGallery result code that refuses the order.

use koogallery::failure::Detail;
use std::time::Duration;

use async_trait::async_trait;
use koogallery::{
    ResultCode,
    config::worker::{WEBHOOK_BACKOFF, WEBHOOK_TRIES},
    exchange::{Capture, ExchangeRecorder},
    instance::AccessInfo,
    provisioning::{LifecycleNotice, OrderPaid, ProvisionError, ProvisionRequest, Provisioner},
    security::{
        SecretKey,
        webhook::{HEADER_EVENT_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, webhook_signature},
    },
};
use serde::Deserialize;

use super::{WebhookEvent, webhook_event::WEBHOOK_EVENT_VERSION};

/// An event the receiver's contract version does not have: not sent, and counted as delivered
/// (a version-1 receiver may refuse an event it does not know, and would hold up the queue).
fn not_in_version(event: &str, version: u32) -> Result<(), ProvisionError> {
    tracing::info!(
        event,
        version,
        "not in the webhook contract version the receiver takes; not sent"
    );
    Ok(())
}

/// The vendor's answer. Provisioning: `frontEndUrl` (and optional `adminUrl`, `userName`, `password`,
/// `memo`), or `resultCode` other than `000000` to refuse with that KooGallery code.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebhookAnswer {
    result_code: Option<String>,
    result_msg: Option<String>,
    front_end_url: Option<String>,
    admin_url: Option<String>,
    user_name: Option<String>,
    password: Option<String>,
    memo: Option<String>,
}

pub struct WebhookProvisioner {
    client: reqwest::Client,
    url: String,
    secret: SecretKey,
    /// Tries per job attempt before the job itself is retried later by the queue.
    pub tries: u32,
    /// The pause before each of those tries after the first.
    pub retry: koogallery::retry::Backoff,
    /// The event contract version the receiver takes (`KOOGALLERY_WEBHOOK_EVENT_VERSION`).
    pub event_version: u32,
    /// Where each try is kept (family `webhook`): the body sent and the answer, never a header
    /// (the signature) nor the URL (its query may hold the vendor's token).
    exchanges: ExchangeRecorder,
}

impl WebhookProvisioner {
    pub fn new(url: String, secret: SecretKey, timeout: Duration) -> Result<Self, ProvisionError> {
        koogallery_openapi::install_tls_provider();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            // A redirect would turn the POST into a body-less GET (301/302/303) whose 2xx page
            // then counts as delivered: a 3xx is a misconfiguration, as a 401/403/404 is.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ProvisionError::Transient(Detail::caused_by("webhook client", e)))?;
        Ok(Self {
            client,
            url,
            secret,
            tries: WEBHOOK_TRIES,
            retry: WEBHOOK_BACKOFF,
            event_version: WEBHOOK_EVENT_VERSION,
            exchanges: ExchangeRecorder::off(),
        })
    }

    /// Keeps every try in `exchanges` (the exchange log).
    pub fn with_exchange_log(mut self, exchanges: ExchangeRecorder) -> Self {
        self.exchanges = exchanges;
        self
    }

    /// POSTs one event, retrying transient failures with backoff; returns the 2xx answer body.
    async fn post<E: serde::Serialize + HasEventId>(
        &self,
        event: &E,
    ) -> Result<Vec<u8>, ProvisionError> {
        let body = serde_json::to_vec(event).map_err(|e| {
            ProvisionError::Transient(Detail::caused_by("cannot encode the webhook event", e))
        })?;
        let logged = self.exchanges.is_on().then(|| Logged::of(&body));
        let mut last = String::new();
        for attempt in 0..self.tries.max(1) {
            if attempt > 0 {
                tokio::time::sleep(self.retry.delay(attempt)).await;
            }
            let at = chrono::Utc::now();
            let started = std::time::Instant::now();
            let sent = self.send_signed(event.event_id(), &body).await;
            if let Some(logged) = &logged {
                let mut capture = Capture::outbound(at, "webhook", logged.activity.clone());
                capture.instance_id = logged.instance_id.clone();
                capture.order_id = logged.order_id.clone();
                capture.tenant_id = logged.tenant_id.clone();
                capture.attempt = Some(attempt + 1);
                capture.latency = started.elapsed();
                capture.request = logged.kept(&body);
                match &sent {
                    Ok((status, bytes)) => {
                        capture.http_status = Some(status.as_u16());
                        capture.response = logged.kept(bytes);
                        capture.result_code = serde_json::from_slice::<WebhookAnswer>(bytes)
                            .ok()
                            .and_then(|a| a.result_code);
                    }
                    Err(why) => capture.error = Some(why.clone()),
                }
                self.exchanges.record(capture);
            }
            match sent {
                Ok((status, bytes)) => match self.judge(status, bytes) {
                    Judged::Delivered(bytes) => return Ok(bytes),
                    Judged::Refused(e) => return Err(e),
                    Judged::Retry(why) => last = why,
                },
                Err(unreachable) => last = unreachable,
            }
        }
        Err(ProvisionError::Transient(last.into()))
    }

    /// One signed POST of `body`: the status and the answer's bytes, or why no answer came
    /// (without the URL: its query string may hold the vendor's token).
    async fn send_signed(
        &self,
        event_id: &str,
        body: &[u8],
    ) -> Result<(reqwest::StatusCode, Vec<u8>), String> {
        let ts = chrono::Utc::now().timestamp_millis().to_string();
        let resp = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(HEADER_TIMESTAMP, &ts)
            .header(HEADER_EVENT_ID, event_id)
            .header(
                HEADER_SIGNATURE,
                webhook_signature(self.secret.expose(), &ts, body),
            )
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| format!("webhook unreachable: {}", e.without_url()))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
        Ok((status, bytes))
    }

    /// What an answer means: delivered (2xx), worth another try (5xx, 408, 429), or a refusal
    /// that retrying now will not change.
    fn judge(&self, status: reqwest::StatusCode, bytes: Vec<u8>) -> Judged {
        if status.is_success() {
            return Judged::Delivered(bytes);
        }
        if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
            return Judged::Retry(format!("webhook answered HTTP {status}"));
        }
        // Only an explicit KooGallery result code is the vendor's "no". Any other 4xx
        // (401/403 from a WAF or a rotated secret, 404 from a wrong path, a proxy's 400)
        // is a misconfiguration: it must not refund the order, and retrying now will not
        // help, so the job backs off and an alarm is raised.
        let answer: Option<WebhookAnswer> = serde_json::from_slice(&bytes).ok();
        if answer
            .as_ref()
            .and_then(|a| a.result_code.as_deref())
            .and_then(ResultCode::parse)
            .is_some_and(|c| c.is_failure())
        {
            return Judged::Refused(refusal(answer, &format!("webhook answered HTTP {status}")));
        }
        let what = if status.is_redirection() {
            "a redirect (not followed: the event would arrive as a body-less GET)"
        } else {
            "no KooGallery resultCode"
        };
        Judged::Refused(ProvisionError::Misconfigured(
            format!(
                "webhook {} answered HTTP {status} with {what}",
                without_query(&self.url)
            )
            .into(),
        ))
    }
}

/// What the exchange log keeps of an event besides its body: its name and what it is found by.
struct Logged {
    activity: String,
    instance_id: Option<String>,
    order_id: Option<String>,
    tenant_id: Option<String>,
    /// A license event's code: a secret its `eventId` holds too, where the log's redaction by
    /// field name cannot see it.
    license: Option<String>,
}

impl Logged {
    /// From the event as sent: its `event` (`provision`, `frozen`, …), `instanceId`, `orderId`
    /// and `tenantId`.
    fn of(body: &[u8]) -> Self {
        let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let text = |k: &str| {
            value
                .get(k)
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        Self {
            activity: text("event").unwrap_or_else(|| "-".to_owned()),
            instance_id: text("instanceId"),
            order_id: text("orderId"),
            tenant_id: text("tenantId"),
            license: text("license"),
        }
    }

    /// `bytes` as the log may keep them: without the license code anywhere in them.
    fn kept(&self, bytes: &[u8]) -> Vec<u8> {
        koogallery::exchange::redact::without_values(
            bytes,
            self.license.iter().map(|c| c.as_bytes()),
        )
    }
}

/// One answer of the vendor's webhook, judged.
enum Judged {
    Delivered(Vec<u8>),
    Retry(String),
    Refused(ProvisionError),
}

/// What is wrong with a provision answer, without any of its values: the answer carries the
/// instance's password, and this text is logged and kept as a dead letter's reason. A missing or
/// unknown field is named (its name is ours); a value of the wrong type is only placed.
fn answer_fault(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match e.classify() {
        serde_json::error::Category::Data
            if !(text.starts_with("missing field") || text.starts_with("unknown field")) =>
        {
            format!(
                "a value of the wrong type or out of range at line {} column {}",
                e.line(),
                e.column()
            )
        }
        _ => text,
    }
}

/// The URL as it may be logged: no query string, fragment, user or password (a vendor may put a
/// token in any of them).
fn without_query(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut url) => {
            url.set_query(None);
            url.set_fragment(None);
            // Only a URL that cannot have them refuses these: then it has none to hide.
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        // Nothing of a URL that does not parse is named: where its token is cannot be told.
        Err(_) => "(a URL that does not parse)".to_owned(),
    }
}

/// An explicit non-success code in a 2xx answer to a notice is a refusal too.
fn refused_in_answer(bytes: &[u8]) -> Result<(), ProvisionError> {
    if let Ok(answer) = serde_json::from_slice::<WebhookAnswer>(bytes)
        && let Some(code) = answer.result_code.as_deref()
        && code != ResultCode::Success.as_str()
    {
        return Err(refusal(Some(answer), "webhook refused"));
    }
    Ok(())
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

/// The `X-Event-Id` of what is POSTed: the vendor's idempotency key.
trait HasEventId {
    fn event_id(&self) -> &str;
}

impl HasEventId for WebhookEvent {
    fn event_id(&self) -> &str {
        &self.event_id
    }
}

impl HasEventId for super::webhook_event::DirectoryWebhookEvent {
    fn event_id(&self) -> &str {
        &self.event_id
    }
}

impl HasEventId for super::webhook_event::LicenseWebhookEvent {
    fn event_id(&self) -> &str {
        &self.event_id
    }
}

#[async_trait]
impl Provisioner for WebhookProvisioner {
    async fn provision(&self, request: &ProvisionRequest) -> Result<AccessInfo, ProvisionError> {
        // Every contract version has `provision`.
        let mut event = WebhookEvent::provision(request);
        event.version = self.event_version;
        let bytes = self.post(&event).await?;
        let answer: WebhookAnswer = serde_json::from_slice(&bytes).map_err(|e| {
            ProvisionError::Transient(
                format!(
                    "webhook answer is not the expected JSON: {}",
                    answer_fault(&e)
                )
                .into(),
            )
        })?;
        if let Some(code) = answer.result_code.as_deref()
            && code != ResultCode::Success.as_str()
        {
            return Err(refusal(Some(answer), "webhook refused"));
        }
        match answer.front_end_url {
            Some(url) if !url.trim().is_empty() => Ok(AccessInfo {
                front_end_url: url,
                admin_url: answer.admin_url,
                user_name: answer.user_name,
                password: answer.password.map(Into::into),
                memo: answer.memo,
            }),
            // A 2xx without access information is a vendor bug; retrying gives the vendor time to fix it.
            _ => Err(ProvisionError::Transient(
                "webhook answer has no frontEndUrl".into(),
            )),
        }
    }

    async fn order_paid(&self, paid: &OrderPaid) -> Result<(), ProvisionError> {
        let Some(event) = WebhookEvent::order(paid).in_version(self.event_version) else {
            return not_in_version("order", self.event_version);
        };
        let bytes = self.post(&event).await?;
        refused_in_answer(&bytes)
    }

    async fn notify(&self, notice: &LifecycleNotice) -> Result<(), ProvisionError> {
        let event = WebhookEvent::notice(notice);
        let name = event.event;
        let Some(event) = event.in_version(self.event_version) else {
            return not_in_version(name, self.event_version);
        };
        let bytes = self.post(&event).await?;
        refused_in_answer(&bytes)
    }

    async fn directory_changed(
        &self,
        notice: &koogallery::provisioning::DirectoryNotice,
    ) -> Result<(), ProvisionError> {
        let event = super::webhook_event::DirectoryWebhookEvent::from_notice(notice);
        let Some(event) = event.in_version(self.event_version) else {
            return not_in_version(notice.event.body.name(), self.event_version);
        };
        let bytes = self.post(&event).await?;
        refused_in_answer(&bytes)
    }

    async fn license_changed(
        &self,
        notice: &koogallery::provisioning::LicenseNotice,
    ) -> Result<(), ProvisionError> {
        let event = super::webhook_event::LicenseWebhookEvent::from_notice(notice);
        let Some(event) = event.in_version(self.event_version) else {
            return not_in_version(notice.event.body.name(), self.event_version);
        };
        let bytes = self.post(&event).await?;
        refused_in_answer(&bytes)
    }
}

#[cfg(test)]
mod tests;
