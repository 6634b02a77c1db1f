//! The production URL KooGallery calls (docs/protocol/callbacks.md §0, §3, §9, §12), for every
//! protocol family: a request is recognised by method and path (the V2 basic interfaces on `POST
//! /produce`, the Kit syncs on `POST /produce/produceAPI/v2/{name}`), then each family runs the
//! same steps with its own authenticator (key ring, timestamp window, nonce namespace, body limit):
//! size limit → timestamp window → signature over the raw bytes (constant time, current or previous
//! key) → nonce replay guard → parse once → route through the callback registry (family and name →
//! callback) → dispatch → `Body-Sign` over the exact bytes sent, with the key that verified the
//! request. Always HTTP 200 with a JSON result code (docs/protocol/decisions.md §3); nothing is
//! written before the checks pass.

use std::{sync::Arc, time::Instant};

use chrono::Duration;
use koogallery::{
    ResultCode,
    callbacks::{Family, Registration, registry},
    clock::Clock,
    config::{EdgeSettings, Keys},
    protocol::{Reply, kit, request::test_flag_of, time::parse_request_timestamp},
    security::{
        CanonicalError, KeyRing, KeyUsed, body_sign_header, parse_body, replay::NonceStore,
        verify_basic_parsed, verify_kit_parsed,
    },
};
use serde_json::Value;

pub use koogallery::callbacks::Dispatcher;

/// What goes back over HTTP: always status 200, JSON, with `Body-Sign`.
#[derive(Debug, Clone)]
pub struct EdgeResponse {
    pub body: Vec<u8>,
    /// The `Body-Sign` header value (docs/protocol/callbacks.md §3.3).
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

/// One request as either host received it: method, path, raw query, headers and raw body.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    pub method: &'a http::Method,
    /// The request path (`/produce`, `/produce/produceAPI/v2/tenantSync`, any stage prefix).
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
}

/// Which family a request belongs to, from its method and path alone
/// (docs/protocol/callbacks.md §6, §9, §11).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Recognised<'a> {
    /// `POST {production URL}`: the V2 basic interfaces, routed by `activity`.
    V2Basic,
    /// `POST {production URL}/produceAPI/v2/{name}`.
    Kit(&'a str),
    /// A family this release does not serve yet (the V1 GET interface, the V1 Kit paths with their
    /// `authToken` header): a clear, signed refusal. The V1 family routes these to the same
    /// callbacks when it comes.
    NotServed(String),
}

/// The Kit interface a path names, if it is a V2 Kit path (`…/produceAPI/v2/{name}`).
fn kit_name(path: &str) -> Option<&str> {
    path.rsplit_once(kit::V2_PATH_PREFIX).map(|(_, name)| name)
}

fn recognise<'a>(method: &http::Method, path: &'a str) -> Recognised<'a> {
    let clip = |s: &str| s.chars().take(64).collect::<String>();
    if let Some(name) = kit_name(path) {
        return if method == http::Method::POST {
            Recognised::Kit(name.trim_end_matches('/'))
        } else {
            Recognised::NotServed(format!("Kit interface {} takes POST", clip(name)))
        };
    }
    if let Some((_, name)) = path.rsplit_once(kit::V1_PATH_PREFIX) {
        return Recognised::NotServed(format!(
            "the V1 Kit interface {} is not served by this deployment",
            clip(name)
        ));
    }
    if method == http::Method::GET {
        return Recognised::NotServed(
            "the V1 GET interface is not served by this deployment".into(),
        );
    }
    if method != http::Method::POST {
        return Recognised::NotServed(format!(
            "the production URL takes POST, not {}",
            clip(method.as_str())
        ));
    }
    Recognised::V2Basic
}

/// How one family authenticates and answers (docs/protocol/callbacks.md §3.1, §3.2;
/// docs/protocol/decisions.md §1–3, §13, §18): its key ring (current and previous), its timestamp
/// window, its nonce namespace, its body limit.
struct Authenticator {
    family: Family,
    keys: KeyRing,
    window_ms: i64,
    max_body_bytes: usize,
    /// Prepended to the family's nonces: each family has its own replay namespace
    /// (docs/protocol/decisions.md §2).
    nonce_namespace: &'static str,
    /// The names of its signature, timestamp and nonce, for the messages.
    names: CredentialNames,
    /// Its official sample refuses a missing signature (`000001`) before it looks at the timestamp
    /// and the nonce (§3.1); the Kit sample checks them first (§3.2).
    signature_checked_first: bool,
    /// Its signature scheme, on the raw body and the body parsed once.
    verify: Verify,
}

/// The names a family gives its signature, timestamp and nonce.
struct CredentialNames {
    signature: &'static str,
    timestamp: &'static str,
    nonce: &'static str,
}

/// A signature scheme (`security::verify_basic_parsed`, `security::verify_kit_parsed`): key ring,
/// nonce, timestamp, signature, raw body, parsed body.
type Verify = fn(
    &KeyRing,
    &str,
    &str,
    &str,
    &[u8],
    Option<&serde_json::Map<String, Value>>,
) -> Result<koogallery::security::Matched, koogallery::security::SignatureError>;

/// The signature parameters of a request: the query of a basic call
/// (docs/protocol/callbacks.md §3.1), the `x-…` headers of a Kit call (§3.2).
#[derive(Debug, Default)]
struct Credentials {
    signature: Option<String>,
    timestamp: Option<String>,
    nonce: Option<String>,
}

impl Credentials {
    fn from_query(query: &str) -> Self {
        let mut p = Self::default();
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

    fn from_headers(headers: &http::HeaderMap) -> Self {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        Self {
            signature: get("x-sign"),
            timestamp: get("x-timestamp"),
            nonce: get("x-nonce"),
        }
    }
}

/// What the log line reports about a verified request (identifiers only, never credentials).
#[derive(Debug, Default)]
struct Seen {
    callback: Option<&'static Registration>,
    /// The key that verified the request: the answer is signed with it
    /// (docs/protocol/decisions.md §13).
    key: KeyUsed,
    instance_id: Option<String>,
    order_id: Option<String>,
    tenant_id: Option<String>,
    test: bool,
}

/// Longest accepted nonce: documented ones are 16–64 characters.
const MAX_NONCE_LEN: usize = 128;

pub struct Edge {
    basic: Authenticator,
    kit: Authenticator,
    nonces: Arc<dyn NonceStore>,
    clock: Arc<dyn Clock>,
    dispatcher: Arc<dyn Dispatcher>,
    nonce_ttl: Duration,
    dispatch_deadline: std::time::Duration,
    metrics: Arc<dyn koogallery::metrics::Metrics>,
}

impl Edge {
    /// The edge verifies basic calls with the basic key ring and Kit calls with the Kit key ring
    /// (docs/protocol/decisions.md §2), and routes both to `dispatcher`.
    pub fn new(
        settings: &EdgeSettings,
        keys: Keys,
        nonces: Arc<dyn NonceStore>,
        clock: Arc<dyn Clock>,
        dispatcher: Arc<dyn Dispatcher>,
    ) -> Self {
        let window_ms = settings.timestamp_window.num_milliseconds();
        Self {
            basic: Authenticator {
                family: Family::V2Basic,
                keys: keys.basic,
                window_ms,
                max_body_bytes: settings.max_body_bytes,
                // Unprefixed, as every earlier release stored them.
                nonce_namespace: "",
                names: CredentialNames {
                    signature: "signature",
                    timestamp: "timestamp",
                    nonce: "nonce",
                },
                signature_checked_first: true,
                verify: verify_basic_parsed,
            },
            kit: Authenticator {
                family: Family::Kit,
                keys: keys.kit,
                window_ms,
                max_body_bytes: settings.kit_max_body_bytes,
                nonce_namespace: "kit:",
                names: CredentialNames {
                    signature: "x-sign",
                    timestamp: "x-timestamp",
                    nonce: "x-nonce",
                },
                signature_checked_first: false,
                verify: verify_kit_parsed,
            },
            nonces,
            clock,
            dispatcher,
            nonce_ttl: settings.nonce_ttl,
            dispatch_deadline: settings.dispatch_deadline,
            metrics: Arc::new(koogallery::metrics::NoMetrics),
        }
    }

    /// Counts every answer by activity and result code (`Callbacks`, docs/operations.md).
    pub fn with_metrics(mut self, metrics: Arc<dyn koogallery::metrics::Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The largest body any family accepts: what a host lets through to [`Self::handle`].
    pub fn max_body_bytes(&self) -> usize {
        self.basic.max_body_bytes.max(self.kit.max_body_bytes)
    }

    /// Serves one request of any family: recognise it by method and path, then the same steps for
    /// every family (size → freshness → signature on the raw bytes → nonce → parse once → route
    /// through the registry → dispatch → `Body-Sign` with the key that verified it).
    pub async fn handle(&self, req: Inbound<'_>) -> EdgeResponse {
        match recognise(req.method, req.path) {
            Recognised::V2Basic => {
                let credentials = Credentials::from_query(req.query);
                self.serve(&self.basic, None, credentials, req.body).await
            }
            Recognised::Kit(name) => {
                let credentials = Credentials::from_headers(req.headers);
                self.serve(&self.kit, Some(name), credentials, req.body)
                    .await
            }
            Recognised::NotServed(msg) => {
                let reply = Reply::new(ResultCode::InvalidParameter, msg);
                self.log(
                    None,
                    &reply,
                    Seen::default(),
                    req.body.len(),
                    Instant::now(),
                );
                self.refuse(req.path, &reply)
            }
        }
    }

    /// Serves one V2 basic-interface call: the raw query string (without `?`) and the raw body.
    pub async fn handle_basic(&self, query: &str, body: &[u8]) -> EdgeResponse {
        self.serve(&self.basic, None, Credentials::from_query(query), body)
            .await
    }

    /// A reply to a request the host refused before the edge saw it (a body too large to read),
    /// signed with the current key of the family its path names.
    pub fn refuse(&self, path: &str, reply: &Reply) -> EdgeResponse {
        let auth = if kit_name(path).is_some() {
            &self.kit
        } else {
            &self.basic
        };
        sign_with(auth, reply, KeyUsed::Current)
    }

    /// Signs a reply with the current basic key (docs/protocol/decisions.md §3): answers to
    /// requests that did not verify, and to any verified with the current key.
    pub fn sign(&self, reply: &Reply) -> EdgeResponse {
        sign_with(&self.basic, reply, KeyUsed::Current)
    }

    async fn serve(
        &self,
        auth: &Authenticator,
        path_name: Option<&str>,
        credentials: Credentials,
        body: &[u8],
    ) -> EdgeResponse {
        let started = Instant::now();
        let (reply, seen) = match self
            .verify_and_dispatch(auth, path_name, credentials, body)
            .await
        {
            Ok((reply, seen)) => (reply, seen),
            Err(reply) => (reply, Seen::default()),
        };
        let response = sign_with(auth, &reply, seen.key);
        self.log(Some(auth.family), &reply, seen, body.len(), started);
        response
    }

    fn log(
        &self,
        family: Option<Family>,
        reply: &Reply,
        seen: Seen,
        body_bytes: usize,
        started: Instant,
    ) {
        self.metrics.record(koogallery::metrics::Metric::Callback {
            family: family.map_or("-", Family::name),
            activity: seen.callback.map_or("unknown", |c| c.route.name()),
            result_code: reply.result_code,
        });
        tracing::info!(
            target: "koogallery::callback",
            family = family.map_or("-", Family::name),
            activity = seen.callback.map_or("-", |c| c.route.name()),
            result_code = reply.result_code.as_str(),
            result_msg = %reply.result_msg,
            instance_id = seen.instance_id.or_else(|| reply.field::<String>("instanceId")).as_deref().unwrap_or("-"),
            order_id = seen.order_id.as_deref().unwrap_or("-"),
            tenant_id = seen.tenant_id.as_deref().unwrap_or("-"),
            test = seen.test,
            body_bytes,
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "callback"
        );
    }

    async fn verify_and_dispatch(
        &self,
        auth: &Authenticator,
        path_name: Option<&str>,
        credentials: Credentials,
        body: &[u8],
    ) -> Result<(Reply, Seen), Reply> {
        // One deadline for everything that waits on the store or a callback (the nonce guard and
        // the dispatch), counted from the request's arrival: a store that stops answering gets
        // KooGallery a signed, retryable 000005 in time, not a silent timeout
        // (docs/protocol/callbacks.md §5).
        let deadline = tokio::time::Instant::now() + self.dispatch_deadline;
        let invalid = |msg: String| Reply::new(ResultCode::InvalidParameter, msg);
        let auth_failed = |msg: &str| Reply::new(ResultCode::AuthenticationFailed, msg);
        let CredentialNames {
            signature: sig_name,
            timestamp: ts_name,
            nonce: nonce_name,
        } = auth.names;

        if body.len() > auth.max_body_bytes {
            return Err(invalid(format!(
                "request body exceeds {} bytes",
                auth.max_body_bytes
            )));
        }
        // Each family's own order of checks, as its official sample has it: a basic call without
        // a signature is 000001 first (§3.1); a Kit call checks its timestamp and nonce, then
        // x-sign (§3.2). Missing or stale timestamps and missing nonces are 000002 in both.
        if auth.signature_checked_first && credentials.signature.is_none() {
            return Err(auth_failed(&format!("{sig_name} is missing")));
        }
        let Some(ts_raw) = credentials.timestamp else {
            return Err(invalid(format!("{ts_name} is missing")));
        };
        let Some(ts_ms) = parse_request_timestamp(&ts_raw) else {
            return Err(invalid(format!(
                "{ts_name} {:?} is not epoch milliseconds",
                ts_raw.chars().take(32).collect::<String>()
            )));
        };
        let now = self.clock.now();
        // Unsigned distance: no overflow whatever the parser lets through (today at most 13
        // digits).
        if now.timestamp_millis().abs_diff(ts_ms) > auth.window_ms.unsigned_abs() {
            return Err(invalid(format!(
                "{ts_name} is outside the accepted window of {} s",
                auth.window_ms / 1000
            )));
        }
        let Some(nonce) = credentials.nonce else {
            return Err(invalid(format!("{nonce_name} is missing")));
        };
        if nonce.len() > MAX_NONCE_LEN {
            return Err(invalid(format!("{nonce_name} is too long")));
        }
        let Some(signature) = credentials.signature else {
            return Err(auth_failed(&format!("{sig_name} is missing")));
        };
        // One parse serves the canonical payload and, once the signature matched, the dispatch.
        // The signature covers the exact timestamp string received, not its parsed value.
        let parsed = parse_body(body);
        let matched = (auth.verify)(
            &auth.keys,
            &nonce,
            &ts_raw,
            &signature,
            body,
            parsed.as_ref().ok(),
        )
        .map_err(|e| auth_failed(&format!("signature verification failed: {e}")))?;
        if matched.previous_key {
            tracing::warn!(
                family = auth.family.name(),
                "request signed with the previous key; finish the key rotation"
            );
        }
        // The basic family's namespace is empty: its nonces are remembered as received, with no
        // copy on the hot path.
        let nonce_key = if auth.nonce_namespace.is_empty() {
            std::borrow::Cow::Borrowed(nonce.as_str())
        } else {
            std::borrow::Cow::Owned(format!("{}{nonce}", auth.nonce_namespace))
        };
        let remembered = tokio::time::timeout_at(
            deadline,
            self.nonces.remember(&nonce_key, now, now + self.nonce_ttl),
        )
        .await;
        match remembered {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => return Err(auth_failed("nonce has been used already (replay)")),
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
        let callback = match (auth.family, path_name) {
            (Family::Kit, Some(name)) => {
                registry::by_route(Family::Kit, name).ok_or_else(|| {
                    invalid(format!(
                        "unknown Kit interface {:?}",
                        name.chars().take(64).collect::<String>()
                    ))
                })?
            }
            _ => match value.get("activity") {
                None | Some(Value::Null) => return Err(invalid("activity is missing".into())),
                Some(Value::String(s)) => registry::by_activity(s.trim())
                    .ok_or_else(|| invalid(format!("unknown activity {s:?}")))?,
                Some(other) => {
                    return Err(invalid(format!("activity must be a string, got {other}")));
                }
            },
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
            tenant_id: text("tenantId"),
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

/// Signs a reply with the key of `auth`'s ring that verified its request
/// (docs/protocol/decisions.md §13), so a platform still on the previous key during a rotation can
/// check the answer.
fn sign_with(auth: &Authenticator, reply: &Reply, key: KeyUsed) -> EdgeResponse {
    let body = reply.to_bytes();
    EdgeResponse {
        body_sign: body_sign_header(auth.keys.key(key).expose(), &body),
        body,
        result_code: reply.result_code,
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
