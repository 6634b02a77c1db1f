//! Plays KooGallery against a vendor's production URL.
//!
//! [`Simulator::call`] signs a JSON body exactly as KooGallery does
//! (docs/protocol/callbacks.md §3.1: query parameters `signature` / `timestamp` / `nonce`, POST
//! JSON body), sends it, and checks the answer's `Body-Sign` header (§3.3).
//! [`Simulator::run_lifecycle`] walks a whole purchase — create, poll, renew, freeze, upgrade,
//! change check, negative probes, release — asserting each answer (§6.1–§6.7); with
//! [`LifecycleOptions::v1`], the same purchase through the retired V1 GET interface (§3.6, §11).
//! [`Simulator::call_v1`] sends one V1 GET ([`v1`]). [`license_walk::walk`] drives one License
//! code through its life against the vendor's host.
//!
//! Request building is the pure function [`request::sign_request`]; nothing here logs the key.

use std::fmt;
use std::time::{Duration, Instant};

use koogallery::callbacks::error_chain;
use koogallery::protocol::Reply;
use reqwest::Url;
use serde_json::Value;

pub mod ceiling;
pub mod kit;
pub mod license_walk;
mod lifecycle;
pub mod load;
pub mod openapi;
pub mod platform;
pub mod request;
pub mod sso;
pub mod storm;
pub mod usage;
pub mod v1;

pub use lifecycle::{LifecycleOptions, LifecycleReport, Step, new_order_id};
pub use request::{SignedRequest, random_nonce, sign_request};
pub use v1::{V1CallOptions, V1Request, sign_v1_request};

/// Per-call HTTP timeout of the simulator (connect + answer).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// KooGallery's own per-call limit (docs/protocol/callbacks.md §1, §5): slower answers are flagged
/// in reports.
pub const KOOGALLERY_TIMEOUT: Duration = Duration::from_secs(5);

/// The local production URL (`make run`).
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080/produce";

/// The development access key of the local host.
pub const DEFAULT_ACCESS_KEY: &str = "dev-access-key-change-me";

/// Longest piece of a bad answer quoted in an error.
const SNIPPET_CHARS: usize = 200;

/// Everything that can go wrong. Every variant raised by a call names the step (the activity for
/// [`Simulator::call`], the lifecycle step name for [`Simulator::run_lifecycle`]).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The production URL does not parse or is not http(s).
    #[error("invalid URL {url:?}: {detail}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        detail: String,
    },
    /// The access key is empty.
    #[error("the access key is empty")]
    EmptyKey,
    /// The request body cannot be signed (not a JSON object).
    #[error("request body: {0}")]
    InvalidBody(String),
    /// Invalid lifecycle options.
    #[error("lifecycle options: {0}")]
    InvalidOptions(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {chain}", chain = error_chain(.0))]
    Client(#[source] reqwest::Error),
    /// The request could not be sent or its answer not read (connection refused, reset, TLS…).
    #[error("{step}: HTTP request failed: {chain}", step = .0, chain = error_chain(.1))]
    Http(String, #[source] reqwest::Error),
    /// An answer arrived but is wrong: not JSON, not a KooGallery reply, non-200, bad `Body-Sign`,
    /// unexpected result code or missing fields.
    #[error("{step}: {detail}")]
    BadAnswer {
        /// The step (or activity) whose answer was wrong.
        step: String,
        /// What was wrong, with the evidence.
        detail: String,
    },
    /// No (final) answer in time: one call over [`CALL_TIMEOUT`], or polling over its limit.
    #[error("{step}: no answer within {waited:?}")]
    Timeout {
        /// The step that timed out.
        step: String,
        /// How long the simulator waited.
        waited: Duration,
    },
}

/// One answer of the vendor.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status (KooGallery expects 200 for every answer, §4).
    pub http_status: u16,
    /// The parsed reply.
    pub reply: Reply,
    /// `true` if a `Body-Sign` header is present and matches the raw body under the access key.
    pub body_sign_valid: bool,
    /// Time from sending the request to having read the whole answer.
    pub elapsed: Duration,
    /// The exact body bytes received.
    pub raw: Vec<u8>,
}

impl Answer {
    /// `true` if the answer took longer than KooGallery waits ([`KOOGALLERY_TIMEOUT`]).
    #[must_use]
    pub fn is_slow(&self) -> bool {
        self.elapsed > KOOGALLERY_TIMEOUT
    }
}

/// Overrides for one call, for negative tests (replay, stale timestamp, forged signature).
#[derive(Clone, Default)]
pub struct CallOptions {
    /// Nonce to send instead of a fresh random one.
    pub nonce: Option<String>,
    /// Timestamp (epoch ms) to send instead of now.
    pub timestamp_ms: Option<i64>,
    /// Key to sign with instead of the access key. `Body-Sign` is still checked with the access
    /// key.
    pub key: Option<String>,
}

impl fmt::Debug for CallOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallOptions")
            .field("nonce", &self.nonce)
            .field("timestamp_ms", &self.timestamp_ms)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// KooGallery, as seen by one vendor production URL.
pub struct Simulator {
    client: reqwest::Client,
    url: Url,
    access_key: String,
}

impl fmt::Debug for Simulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Simulator")
            .field("url", &self.url.as_str())
            .field("access_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Certificate authorities the simulator trusts besides the system's: a vendor's host serving
/// its own TLS with a private CA (`koogallery-sim --ca-cert FILE`, a test's CA).
static EXTRA_ROOTS: std::sync::OnceLock<Vec<reqwest::Certificate>> = std::sync::OnceLock::new();

/// Trusts the PEM certificates in `pem` (one or more) for every HTTPS call the simulator makes
/// from now on. The first call counts; later ones are refused.
///
/// # Errors
/// A message naming the problem when `pem` holds no certificate, or when roots were set already.
pub fn trust_roots(pem: &[u8]) -> Result<(), String> {
    let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no PEM certificate in it".to_owned());
    }
    EXTRA_ROOTS
        .set(certs)
        .map_err(|_| "the trusted roots were set already".to_owned())
}

/// Every client of the simulator starts here: the system's roots and [`trust_roots`]'.
pub fn client_builder() -> reqwest::ClientBuilder {
    let mut builder = reqwest::Client::builder();
    for root in EXTRA_ROOTS.get().into_iter().flatten() {
        builder = builder.add_root_certificate(root.clone());
    }
    builder
}

impl Simulator {
    /// A simulator for the production URL `url` and the basic-interface access key.
    /// Calls time out after [`CALL_TIMEOUT`].
    ///
    /// # Errors
    /// [`SimError::InvalidUrl`] for a URL that does not parse or is not http(s),
    /// [`SimError::EmptyKey`], [`SimError::Client`] if no HTTP client can be built.
    pub fn new(url: &str, access_key: &str) -> Result<Self, SimError> {
        let invalid = |detail: String| SimError::InvalidUrl {
            url: url.to_owned(),
            detail,
        };
        let parsed = Url::parse(url.trim()).map_err(|e| invalid(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "scheme {:?} is not http or https",
                parsed.scheme()
            )));
        }
        if access_key.is_empty() {
            return Err(SimError::EmptyKey);
        }
        let client = client_builder()
            .timeout(CALL_TIMEOUT)
            .build()
            .map_err(SimError::Client)?;
        Ok(Self {
            client,
            url: parsed,
            access_key: access_key.to_owned(),
        })
    }

    /// The production URL called.
    #[must_use]
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Signs and POSTs one body (a JSON object including `"activity"`); the nonce is
    /// [`random_nonce`], the timestamp now in ms, the signature upper-case hex.
    ///
    /// Any answer that parses as a KooGallery reply is `Ok`, whatever its HTTP status, result code
    /// or `Body-Sign`: check [`Answer::http_status`] and [`Answer::body_sign_valid`].
    ///
    /// # Errors
    /// [`SimError::InvalidBody`], [`SimError::Http`], [`SimError::Timeout`], or
    /// [`SimError::BadAnswer`] for an answer that is not a KooGallery reply (quoting its status
    /// and the start of its body).
    pub async fn call(&self, body: &Value) -> Result<Answer, SimError> {
        self.call_with(body, CallOptions::default()).await
    }

    /// [`Simulator::call`] with an explicit nonce / timestamp / signing key.
    ///
    /// # Errors
    /// As [`Simulator::call`].
    pub async fn call_with(&self, body: &Value, opts: CallOptions) -> Result<Answer, SimError> {
        let step = body
            .get("activity")
            .and_then(Value::as_str)
            .unwrap_or("call")
            .to_owned();
        self.exchange(&step, body, &opts).await
    }

    /// The whole lifecycle (see [`LifecycleOptions`]), stopping at the first failed step.
    ///
    /// # Errors
    /// The failure of the first failed step; use [`Simulator::run_lifecycle_report`] to keep the
    /// steps run so far.
    pub async fn run_lifecycle(
        &self,
        opts: &LifecycleOptions,
    ) -> Result<LifecycleReport, SimError> {
        let (report, outcome) = self.run_lifecycle_report(opts).await;
        outcome.map(|()| report)
    }

    /// The whole lifecycle, returning the report of the steps run (the failed one last) together
    /// with the outcome.
    pub async fn run_lifecycle_report(
        &self,
        opts: &LifecycleOptions,
    ) -> (LifecycleReport, Result<(), SimError>) {
        lifecycle::run(self, opts).await
    }

    /// Signs, sends and reads one call; errors name `step`.
    pub(crate) async fn exchange(
        &self,
        step: &str,
        body: &Value,
        opts: &CallOptions,
    ) -> Result<Answer, SimError> {
        let nonce = opts.nonce.clone().unwrap_or_else(random_nonce);
        let timestamp_ms = opts
            .timestamp_ms
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
        let key = opts.key.as_deref().unwrap_or(&self.access_key);
        let req = sign_request(&self.url, key, body, &nonce, timestamp_ms)?;

        let started = Instant::now();
        let response = self
            .client
            .post(req.url)
            .header(reqwest::header::ACCEPT, request::ACCEPT)
            .header(reqwest::header::CONTENT_TYPE, request::CONTENT_TYPE)
            .body(req.body)
            .send()
            .await
            .map_err(|e| transport_error(step, e))?;
        read_answer(step, response, &self.access_key, started).await
    }
}

/// Reads a vendor's answer to a call sent at `started`: its status, whether its `Body-Sign`
/// verifies with `key` over the exact bytes received, and the KooGallery reply. Errors name `step`.
pub(crate) async fn read_answer(
    step: &str,
    response: reqwest::Response,
    key: &str,
    started: Instant,
) -> Result<Answer, SimError> {
    let http_status = response.status().as_u16();
    let body_sign = response
        .headers()
        .get("body-sign")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let raw = response
        .bytes()
        .await
        .map_err(|e| transport_error(step, e))?
        .to_vec();
    let elapsed = started.elapsed();

    let body_sign_valid = body_sign
        .as_deref()
        .is_some_and(|h| platform::body_sign::verify(key, &raw, h));
    let reply: Reply = serde_json::from_slice(&raw).map_err(|e| SimError::BadAnswer {
        step: step.to_owned(),
        detail: format!(
            "HTTP {http_status}: the answer is not a KooGallery reply ({e}); body: {}",
            snippet(&raw)
        ),
    })?;
    tracing::debug!(
        step,
        http_status,
        result_code = %reply.result_code,
        body_sign_valid,
        elapsed_ms = elapsed.as_millis(),
        "answer"
    );
    Ok(Answer {
        http_status,
        reply,
        body_sign_valid,
        elapsed,
        raw,
    })
}

/// A reqwest failure as a [`SimError`] naming the step; the URL's query (signature, nonce) is
/// dropped from the message.
fn transport_error(step: &str, mut e: reqwest::Error) -> SimError {
    if let Some(url) = e.url_mut() {
        url.set_query(None);
    }
    if e.is_timeout() {
        SimError::Timeout {
            step: step.to_owned(),
            waited: CALL_TIMEOUT,
        }
    } else {
        SimError::Http(step.to_owned(), e)
    }
}

/// The start of a body, for error messages: lossy UTF-8, at most [`SNIPPET_CHARS`] characters,
/// quoted with escapes.
fn snippet(raw: &[u8]) -> String {
    if raw.is_empty() {
        return "(empty)".to_owned();
    }
    let text = String::from_utf8_lossy(raw);
    let mut s: String = text.chars().take(SNIPPET_CHARS).collect();
    if text.chars().count() > SNIPPET_CHARS {
        s.push('…');
    }
    format!("{s:?}")
}

#[cfg(test)]
mod tests;
