//! The production URL KooGallery calls (spec callbacks §0, §3, §12). For every request:
//! size limit → `timestamp` window → signature over the raw bytes (constant time, current or previous
//! key) → nonce replay guard → route through the callback registry (`activity` → callback) →
//! dispatch → `Body-Sign` over the exact bytes sent.
//! Always HTTP 200 with a JSON result code (Decisions §3); nothing is written before the checks pass.

use std::{sync::Arc, time::Instant};

use chrono::Duration;
use koogallery::{
    ResultCode,
    callbacks::{Registration, registry},
    clock::Clock,
    config::EdgeSettings,
    protocol::{Reply, time::parse_request_timestamp, v2_basic::test_flag_of},
    security::{
        CanonicalError, KeyRing, KeyUsed, body_sign_header, parse_body, replay::NonceStore,
        verify_basic_parsed,
    },
};
use serde_json::Value;

pub use koogallery::callbacks::Dispatcher;

/// What goes back over HTTP: always status 200, JSON, with `Body-Sign`.
#[derive(Debug, Clone)]
pub struct EdgeResponse {
    pub body: Vec<u8>,
    /// The `Body-Sign` header value (spec callbacks §3.3).
    pub body_sign: String,
    pub result_code: ResultCode,
}

impl EdgeResponse {
    pub const STATUS: u16 = 200;
    pub const CONTENT_TYPE: &'static str = "application/json;charset=UTF-8";

    /// The HTTP response, for any host built on the `http` crate (axum locally, `lambda_http` on
    /// AWS): status 200, JSON, `Body-Sign`. The body is the exact bytes that were signed.
    pub fn into_http<B: From<String>>(self) -> http::Response<B> {
        // Replies are serde_json output: always UTF-8.
        let body = String::from_utf8(self.body)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        let mut response = http::Response::new(B::from(body));
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(Self::CONTENT_TYPE),
        );
        if let Ok(v) = http::HeaderValue::from_str(&self.body_sign) {
            headers.insert("Body-Sign", v);
        }
        response
    }
}

pub struct Edge {
    keys: KeyRing,
    nonces: Arc<dyn NonceStore>,
    clock: Arc<dyn Clock>,
    dispatcher: Arc<dyn Dispatcher>,
    window_ms: i64,
    nonce_ttl: Duration,
    max_body_bytes: usize,
    dispatch_deadline: std::time::Duration,
    metrics: Arc<dyn koogallery::metrics::Metrics>,
}

/// The signature parameters KooGallery appends to the production URL (callbacks §3.1).
#[derive(Debug, Default)]
struct SignatureParams {
    signature: Option<String>,
    timestamp: Option<String>,
    nonce: Option<String>,
}

fn signature_params(query: &str) -> SignatureParams {
    let mut p = SignatureParams::default();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        let slot = match k.as_ref() {
            "signature" => &mut p.signature,
            "timestamp" => &mut p.timestamp,
            "nonce" => &mut p.nonce,
            _ => continue,
        };
        if slot.is_none() && !v.trim().is_empty() {
            *slot = Some(v.trim().to_owned());
        }
    }
    p
}

/// What the log line reports about a verified request (identifiers only, never credentials).
#[derive(Debug, Default)]
struct Seen {
    callback: Option<&'static Registration>,
    /// The key that verified the request: the answer is signed with it (Decisions §13).
    key: KeyUsed,
    instance_id: Option<String>,
    order_id: Option<String>,
    test: bool,
}

/// Longest accepted nonce: documented ones are 16–64 characters.
const MAX_NONCE_LEN: usize = 128;

impl Edge {
    /// The edge verifies with the basic-interface key ring (Decisions §2) and routes to `dispatcher`.
    pub fn new(
        settings: &EdgeSettings,
        keys: KeyRing,
        nonces: Arc<dyn NonceStore>,
        clock: Arc<dyn Clock>,
        dispatcher: Arc<dyn Dispatcher>,
    ) -> Self {
        Self {
            keys,
            nonces,
            clock,
            dispatcher,
            window_ms: settings.timestamp_window.num_milliseconds(),
            nonce_ttl: settings.nonce_ttl,
            max_body_bytes: settings.max_body_bytes,
            dispatch_deadline: settings.dispatch_deadline,
            metrics: Arc::new(koogallery::metrics::NoMetrics),
        }
    }

    /// Counts every answer by activity and result code (`Callbacks`, docs/operations.md).
    pub fn with_metrics(mut self, metrics: Arc<dyn koogallery::metrics::Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Serves one V2 basic-interface call: the raw query string (without `?`) and the raw body bytes.
    pub async fn handle_basic(&self, query: &str, body: &[u8]) -> EdgeResponse {
        let started = Instant::now();
        let (reply, seen) = match self.verify_and_dispatch(query, body).await {
            Ok((reply, seen)) => (reply, seen),
            Err(reply) => (reply, Seen::default()),
        };
        let response = self.sign_with(&reply, seen.key);
        self.metrics.record(koogallery::metrics::Metric::Callback {
            activity: seen.callback.map_or("unknown", |c| c.route.name()),
            result_code: reply.result_code,
        });
        tracing::info!(
            target: "koogallery::callback",
            activity = seen.callback.map_or("-", |c| c.route.name()),
            result_code = reply.result_code.as_str(),
            result_msg = %reply.result_msg,
            instance_id = seen.instance_id.or_else(|| reply.field::<String>("instanceId")).as_deref().unwrap_or("-"),
            order_id = seen.order_id.as_deref().unwrap_or("-"),
            test = seen.test,
            body_bytes = body.len(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "callback"
        );
        response
    }

    /// The Kit syncs (`/produce/produceAPI/v2/{name}`, callbacks §9). None is registered yet (a later
    /// release adds them with their `x-sign` check); an unregistered one gets a clear, signed `000002`
    /// rather than a 404.
    pub fn handle_kit(&self, name: &str) -> EdgeResponse {
        let name: String = name.chars().take(64).collect();
        self.sign(&Reply::new(
            ResultCode::InvalidParameter,
            format!("Kit interface {name} is not enabled on this deployment"),
        ))
    }

    /// Signs a reply with the current basic key (Decisions §3): answers to requests that did not
    /// verify, and to any verified with the current key.
    pub fn sign(&self, reply: &Reply) -> EdgeResponse {
        self.sign_with(reply, KeyUsed::Current)
    }

    /// Signs a reply with the key that verified its request (Decisions §13), so a platform still
    /// on the previous key during a rotation can check the answer.
    fn sign_with(&self, reply: &Reply, key: KeyUsed) -> EdgeResponse {
        let body = reply.to_bytes();
        EdgeResponse {
            body_sign: body_sign_header(self.keys.key(key).expose(), &body),
            body,
            result_code: reply.result_code,
        }
    }

    async fn verify_and_dispatch(&self, query: &str, body: &[u8]) -> Result<(Reply, Seen), Reply> {
        // One deadline for everything that waits on the store or a callback (the nonce guard and
        // the dispatch), counted from the request's arrival: a store that stops answering gets
        // KooGallery a signed, retryable 000005 in time, not a silent timeout (callbacks §5).
        let deadline = tokio::time::Instant::now() + self.dispatch_deadline;
        let invalid = |msg: String| Reply::new(ResultCode::InvalidParameter, msg);
        let auth = |msg: &str| Reply::new(ResultCode::AuthenticationFailed, msg);

        if body.len() > self.max_body_bytes {
            return Err(invalid(format!(
                "request body exceeds {} bytes",
                self.max_body_bytes
            )));
        }
        let p = signature_params(query);
        let Some(signature) = p.signature else {
            return Err(auth("signature is missing"));
        };
        // The official sample answers 000002 for a missing timestamp or nonce and a stale timestamp (§3.1).
        let Some(ts_raw) = p.timestamp else {
            return Err(invalid("timestamp is missing".into()));
        };
        let Some(nonce) = p.nonce else {
            return Err(invalid("nonce is missing".into()));
        };
        if nonce.len() > MAX_NONCE_LEN {
            return Err(invalid("nonce is too long".into()));
        }
        let Some(ts_ms) = parse_request_timestamp(&ts_raw) else {
            return Err(invalid(format!(
                "timestamp {ts_raw:?} is not epoch milliseconds"
            )));
        };
        let now = self.clock.now();
        // Unsigned distance: no overflow whatever the parser lets through (today at most 13 digits).
        if now.timestamp_millis().abs_diff(ts_ms) > self.window_ms.unsigned_abs() {
            return Err(invalid(format!(
                "timestamp is outside the accepted window of {} s",
                self.window_ms / 1000
            )));
        }
        // One parse serves the canonical payload and, once the signature matched, the dispatch.
        // The signature covers the exact timestamp string received, not its parsed value.
        let parsed = parse_body(body);
        let matched = verify_basic_parsed(
            &self.keys,
            &nonce,
            &ts_raw,
            &signature,
            body,
            parsed.as_ref().ok(),
        )
        .map_err(|e| auth(&format!("signature verification failed: {e}")))?;
        if matched.previous_key {
            tracing::warn!("request signed with the previous basic key; finish the key rotation");
        }
        let remembered = tokio::time::timeout_at(
            deadline,
            self.nonces.remember(&nonce, now, now + self.nonce_ttl),
        )
        .await;
        match remembered {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => return Err(auth("nonce has been used already (replay)")),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "nonce store unavailable");
                return Err(retry_later());
            }
            Err(_) => {
                tracing::warn!(
                    deadline_ms = self.dispatch_deadline.as_millis() as u64,
                    "nonce store did not answer in time"
                );
                return Err(retry_later());
            }
        }

        let value = match parsed {
            Ok(map) => Value::Object(map),
            Err(CanonicalError::InvalidJson(e)) => {
                return Err(invalid(format!("body is not valid JSON: {e}")));
            }
            Err(CanonicalError::NotAnObject) => {
                return Err(invalid("body must be a JSON object".into()));
            }
        };
        let callback = match value.get("activity") {
            None | Some(Value::Null) => return Err(invalid("activity is missing".into())),
            Some(Value::String(s)) => registry::by_activity(s.trim())
                .ok_or_else(|| invalid(format!("unknown activity {s:?}")))?,
            Some(other) => return Err(invalid(format!("activity must be a string, got {other}"))),
        };
        let text = |k: &str| {
            value
                .get(k)
                .and_then(Value::as_str)
                .map(|s| s.chars().take(200).collect::<String>())
        };
        let seen = Seen {
            callback: Some(callback),
            key: matched.key_used(),
            instance_id: text("instanceId"),
            order_id: text("orderId"),
            // The same reading as the callbacks' (an invalid flag is theirs to refuse).
            test: test_flag_of(value.get("testFlag")).unwrap_or(false),
        };
        // A callback that does not answer in time gets a signed, retryable 000005 from the edge:
        // KooGallery retries, and never sees the gateway's unsigned timeout. The deadline ends the
        // wait, not the callback: it runs on as a task of its own, so a write and its enqueue
        // (newInstance's record, then its job) are never cut apart, and the retry finds the work
        // done (or under way) instead of a record whose job was never sent.
        let (dispatcher, key) = (self.dispatcher.clone(), seen.key);
        let dispatched =
            tokio::spawn(async move { dispatcher.dispatch(callback, &value, key).await });
        let reply = match tokio::time::timeout_at(deadline, dispatched).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => {
                tracing::error!(activity = callback.route.name(), error = %e, "callback failed");
                retry_later()
            }
            Err(_) => {
                tracing::warn!(
                    activity = callback.route.name(),
                    deadline_ms = self.dispatch_deadline.as_millis() as u64,
                    "callback did not answer in time; it runs on"
                );
                retry_later()
            }
        };
        Ok((reply, seen))
    }
}

/// The signed, retryable answer for a store or a callback that failed or missed the deadline.
fn retry_later() -> Reply {
    Reply::new(
        ResultCode::InternalError,
        "temporary internal error; please retry",
    )
}

#[cfg(feature = "lambda")]
pub mod lambda;

#[cfg(test)]
mod tests;
