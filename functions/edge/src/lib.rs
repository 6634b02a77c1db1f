//! The production URL KooGallery calls (docs/protocol/callbacks.md §0, §3, §9, §11, §12), for every
//! protocol family: a request is recognised by method and path (the V2 basic interfaces and the
//! License callbacks on `POST /produce`, the Kit syncs on `POST /produce/produceAPI/v2/{name}`, the
//! V1 family on `GET /produce` and `POST /produce/produceAPI/{name}`: see `v1`), then each family runs the
//! same steps with its own authenticator (key ring, timestamp window, nonce namespace, body limit):
//! size limit → timestamp window → signature over the raw bytes (constant time, current or previous
//! key) → nonce replay guard → parse once → route through the callback registry (family and name →
//! callback) → dispatch → `Body-Sign` over the exact bytes sent, with the key that verified the
//! request. Always HTTP 200 with a JSON result code (docs/protocol/decisions.md §3); nothing is
//! written before the checks pass.

mod authenticator;
mod dispatch;
mod recognise;
mod v1;
mod verify;

use std::{sync::Arc, time::Instant};

use chrono::Duration;
use koogallery::{
    ResultCode,
    callbacks::Family,
    clock::Clock,
    config::{EdgeSettings, Keys},
    exchange::{Capture, Direction, ExchangeRecorder},
    protocol::Reply,
    security::{
        KeyUsed, body_sign_header, replay::NonceStore, verify_basic_parsed, verify_kit_parsed,
    },
};

use authenticator::{Authenticator, CredentialNames, Credentials};
use dispatch::Seen;
use recognise::{Recognised, kit_name, recognise};
use v1::{V1Authenticator, V1Call};

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

pub struct Edge {
    basic: Authenticator,
    kit: Authenticator,
    v1: V1Authenticator,
    nonces: Arc<dyn NonceStore>,
    clock: Arc<dyn Clock>,
    dispatcher: Arc<dyn Dispatcher>,
    nonce_ttl: Duration,
    dispatch_deadline: std::time::Duration,
    metrics: Arc<dyn koogallery::metrics::Metrics>,
    exchanges: ExchangeRecorder,
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
        let v1 = V1Authenticator {
            keys: keys.v1_ring().clone(),
            encryption: settings.v1_encryption,
            max_body_bytes: settings.kit_max_body_bytes,
        };
        Self {
            v1,
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
            exchanges: ExchangeRecorder::off(),
        }
    }

    /// Keeps every call and its answer in the exchange log (docs/operations.md): a copy of the
    /// bytes handed to the recorder's writer, never awaited.
    pub fn with_exchange_log(mut self, exchanges: ExchangeRecorder) -> Self {
        self.exchanges = exchanges;
        self
    }

    /// Counts every answer by activity and result code (`Callbacks`, docs/operations.md).
    pub fn with_metrics(mut self, metrics: Arc<dyn koogallery::metrics::Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The largest body any family accepts: what a host lets through to [`Self::handle`].
    /// How long a call may wait on the store and its callback before the edge answers `000005`:
    /// a host that stops waits this long (and a margin) for the calls in flight.
    pub fn dispatch_deadline(&self) -> std::time::Duration {
        self.dispatch_deadline
    }

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
            Recognised::V1Get => self.serve_v1(V1Call::Get { query: req.query }).await,
            Recognised::V1Kit(name) => {
                let auth_token = req.headers.get("authToken").and_then(|v| v.to_str().ok());
                self.serve_v1(V1Call::Kit {
                    name,
                    auth_token,
                    body: req.body,
                })
                .await
            }
            Recognised::NotServed(msg) => {
                let started = Instant::now();
                let reply = Reply::new(ResultCode::InvalidParameter, msg);
                let response = self.refuse(req.path, &reply);
                let seen = Seen {
                    path: Some(req.path.chars().take(200).collect()),
                    ..Seen::default()
                };
                self.log(None, &reply, seen, req.body, &response, started)
                    .await;
                response
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
        if kit_name(path).is_some() {
            sign_with(&self.kit, reply, KeyUsed::Current)
        } else if path.contains(koogallery::protocol::kit::V1_PATH_PREFIX) {
            sign_ring(&self.v1.keys, reply, KeyUsed::Current)
        } else {
            sign_with(&self.basic, reply, KeyUsed::Current)
        }
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
        self.log(Some(auth.family), &reply, seen, body, &response, started)
            .await;
        response
    }

    /// The log line, the metric and the exchange log's capture of one answered call (a verified
    /// one waits, briefly, for a writer far behind: `ExchangeRecorder::keep`).
    async fn log(
        &self,
        family: Option<Family>,
        reply: &Reply,
        seen: Seen,
        request: &[u8],
        response: &EdgeResponse,
        started: Instant,
    ) {
        let body_bytes = request.len();
        let family_name = family.map_or("-", Family::name);
        let elapsed = started.elapsed();
        let instance_id = match seen.instance_id {
            Some(id) => Some(id),
            None => issued_id(&seen, reply),
        };
        self.metrics.record(koogallery::metrics::Metric::Callback {
            family: family_name,
            activity: seen.callback.map_or("unknown", |c| c.route.name()),
            result_code: reply.result_code,
        });
        tracing::info!(
            target: "koogallery::callback",
            family = family_name,
            activity = seen.callback.map_or("-", |c| c.route.name()),
            result_code = reply.result_code.as_str(),
            result_msg = %reply.result_msg,
            instance_id = instance_id.as_deref().unwrap_or("-"),
            order_id = seen.order_id.as_deref().unwrap_or("-"),
            tenant_id = seen.tenant_id.as_deref().unwrap_or("-"),
            test = seen.test,
            body_bytes,
            elapsed_ms = elapsed.as_secs_f64() * 1000.0,
            "callback"
        );
        if self.exchanges.is_on() {
            let verified = seen.callback.is_some();
            let capture = Capture {
                at: self.clock.now(),
                direction: Direction::Inbound,
                family: family_name.into(),
                // A request no family serves is kept under its path.
                activity: match (seen.callback, seen.path) {
                    (Some(c), _) => c.route.name().into(),
                    (None, Some(path)) => path.into(),
                    (None, None) => "-".into(),
                },
                key: seen.callback.map(|_| match seen.key {
                    KeyUsed::Current => "current",
                    KeyUsed::Previous => "previous",
                }),
                // A queryInstance of several instances (`instanceId` comma-separated) is about
                // none in particular: it is kept, found by time, not under a made-up instance.
                instance_id: instance_id.filter(|i| !i.contains(',')),
                order_id: seen.order_id,
                tenant_id: seen.tenant_id,
                request: request.to_vec(),
                response: response.body.clone(),
                result_code: Some(reply.result_code.as_str().to_owned()),
                http_status: None,
                latency: elapsed,
                attempt: None,
                test: seen.test,
                error: None,
            };
            // Anyone can send a call that does not verify: those are kept at a bounded rate.
            if verified {
                self.exchanges.keep(capture).await;
            } else {
                self.exchanges.record_unverified(capture);
            }
        }
    }

    /// The steps after recognition, for every family: verify, remember the nonce, route, dispatch.
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
        let verified = self.verify(auth, credentials, body)?;
        self.remember_nonce(auth, &verified.nonce, verified.now, deadline)
            .await?;
        let (callback, value) = dispatch::route(auth.family, path_name, verified.parsed)?;
        let seen = dispatch::seen(callback, verified.matched.key_used(), &value);
        let reply = self.dispatch(callback, value, seen.key, deadline).await;
        Ok((reply, seen))
    }
}

/// Signs a reply with the key of `auth`'s ring that verified its request
/// (docs/protocol/decisions.md §13), so a platform still on the previous key during a rotation can
/// check the answer.
fn sign_with(auth: &Authenticator, reply: &Reply, key: KeyUsed) -> EdgeResponse {
    sign_ring(&auth.keys, reply, key)
}

/// Signs a reply with `key` of `keys` (docs/protocol/decisions.md §3, §13).
fn sign_ring(keys: &koogallery::security::KeyRing, reply: &Reply, key: KeyUsed) -> EdgeResponse {
    let body = reply.to_bytes();
    EdgeResponse {
        body_sign: body_sign_header(keys.key(key).expose(), &body),
        body,
        result_code: reply.result_code,
    }
}

/// The instance ID an answer gave (a new instance's), for the log line: never a legacy
/// `getLicense`'s, whose `instanceId` is the license code, a buyer's secret.
fn issued_id(seen: &Seen, reply: &Reply) -> Option<String> {
    match seen.callback.map(|c| c.route) {
        Some(koogallery::callbacks::Route::V1 { .. }) => None,
        _ => reply.field::<String>("instanceId"),
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
