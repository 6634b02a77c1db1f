//! The usage ingestion API the vendor's application calls (`POST /usage`): its JSON body,
//! its signature, and its answers. The same body is the SQS message format for apps on AWS.
//!
//! ```text
//! POST /usage
//! x-usage-timestamp: <Unix epoch milliseconds>
//! x-usage-nonce:     <random, 8 to 64 characters, never reused>
//! x-usage-signature: base64(HMAC-SHA256(usage key, "ts={timestamp}&nonce={nonce}&body={raw body}"))
//!
//! {"records":[{"instanceId":"…","quantity":"1.5","occurredAt":"2026-11-21T13:25:00Z",
//!              "idempotencyKey":"app-event-42"}]}
//! ```
//! A report consuming a package adds `"packageInstanceId"` (the package's instance ID).
//! The scheme is KooGallery's own usage-push body signature (docs/protocol/openapi.md §3), keyed
//! with a secret the vendor's app and this service share (`KOOGALLERY_USAGE_KEY`), checked on the
//! raw bytes in constant time, within ±5 minutes, and each nonce once.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};

use super::{IngestError, IngestOutcome, UsageReport};

pub const HEADER_TIMESTAMP: &str = "x-usage-timestamp";
pub const HEADER_NONCE: &str = "x-usage-nonce";
pub const HEADER_SIGNATURE: &str = "x-usage-signature";

/// How far a request's timestamp may be from this host's clock.
pub const MAX_SKEW_MS: i64 = 5 * 60 * 1000;

/// The body of `POST /usage` (and of an SQS usage message).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UsageBatch {
    pub records: Vec<UsageRecordIn>,
}

/// One report as the app sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageRecordIn {
    pub instance_id: String,
    /// A JSON string (exact; recommended) or number, in the SKU's metered unit.
    #[serde(deserialize_with = "quantity")]
    #[serde(serialize_with = "rust_decimal::serde::str::serialize")]
    pub quantity: Decimal,
    /// RFC 3339 (`2026-11-21T13:25:00Z`, any offset).
    pub occurred_at: DateTime<Utc>,
    pub idempotency_key: String,
    /// The package the usage is deducted from (see [`super::package`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_instance_id: Option<String>,
}

/// A quantity from a string (exact) or a JSON number (its shortest decimal form).
fn quantity<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Q {
        Text(String),
        Number(serde_json::Number),
    }
    let text = match Q::deserialize(d)? {
        Q::Text(s) => s,
        Q::Number(n) => n.to_string(),
    };
    let text = text.trim();
    // `from_str_exact` refuses what cannot be held exactly rather than rounding it; scientific
    // notation (a JSON number may use it) is read by `from_scientific`.
    Decimal::from_str_exact(text)
        .or_else(|_| Decimal::from_scientific(text))
        .map_err(|_| serde::de::Error::custom(format!("quantity {text:?} is not a decimal number")))
}

/// Why a body is not a batch: the message names the field at fault and, when it lies in one
/// report, `index` names that report (as for a report refused by the rules).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct MalformedBatch {
    /// The report at fault; `None` when the body as a whole is (not JSON, cut short, no
    /// `records` list, an unknown top-level field).
    pub index: Option<usize>,
    pub message: String,
}

impl UsageBatch {
    /// Parses a body, naming the field at fault and the report it lies in.
    pub fn parse(body: &[u8]) -> Result<Self, MalformedBatch> {
        let de = &mut serde_json::Deserializer::from_slice(body);
        let batch: Self = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
            let path = e.path().to_string();
            let message = if path == "." {
                e.inner().to_string()
            } else {
                format!("{path}: {}", e.inner())
            };
            // A body cut short faults no report in particular, whatever the parser was reading.
            let index = match e.inner().classify() {
                serde_json::error::Category::Eof => None,
                _ => report_index(e.path()),
            };
            MalformedBatch { index, message }
        })?;
        // Nothing may follow the batch (but whitespace).
        de.end().map_err(|e| MalformedBatch {
            index: None,
            message: e.to_string(),
        })?;
        Ok(batch)
    }

    pub fn into_reports(self) -> Vec<UsageReport> {
        self.records
            .into_iter()
            .map(|r| UsageReport {
                instance_id: r.instance_id,
                quantity: r.quantity,
                occurred_at: r.occurred_at,
                idempotency_key: r.idempotency_key,
                package_instance_id: r.package_instance_id,
            })
            .collect()
    }
}

/// The report a parse error lies in: the `n` of a path `records[n]…`.
fn report_index(path: &serde_path_to_error::Path) -> Option<usize> {
    use serde_path_to_error::Segment;
    let mut segments = path.iter();
    match (segments.next(), segments.next()) {
        (Some(Segment::Map { key }), Some(Segment::Seq { index })) if key == "records" => {
            Some(*index)
        }
        _ => None,
    }
}

/// Why a request was not taken, with the HTTP status it is answered with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "usage ingestion is not configured: set KOOGALLERY_USAGE_KEY (on AWS: usageKey in the usage key secret)"
    )]
    NotConfigured,
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error(transparent)]
    Malformed(#[from] MalformedBatch),
    #[error(transparent)]
    Refused(#[from] IngestError),
}

impl ApiError {
    /// 401 for the signature, 400 for the body or a refused report, 503 when retrying may help.
    pub fn status(&self) -> u16 {
        match self {
            Self::NotConfigured => 503,
            Self::Unauthorized(_) => 401,
            Self::Malformed(_) => 400,
            Self::Refused(e) if e.is_retryable() => 503,
            Self::Refused(_) => 400,
        }
    }

    /// `{"error": "...", "retryable": bool, "index": n}`: `index` (from 0) whenever one report is
    /// at fault, malformed or refused by a rule (README, `POST /usage`).
    pub fn body(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "error": self.to_string(),
            "retryable": self.status() == 503,
        });
        if let Some(index) = self.index() {
            v["index"] = index.into();
        }
        v
    }

    /// The report at fault, if one is.
    pub fn index(&self) -> Option<usize> {
        match self {
            Self::Refused(IngestError::Invalid { index, .. }) => Some(*index),
            Self::Malformed(m) => m.index,
            _ => None,
        }
    }
}

/// The answer to an ingested batch.
pub fn accepted(outcome: IngestOutcome) -> serde_json::Value {
    serde_json::to_value(outcome).unwrap_or_default()
}

/// Checks the signature headers of a request (not the nonce's novelty: the caller's replay
/// guard does that). Constant time; the key and the signature are never logged.
pub fn verify(
    key: &str,
    timestamp: Option<&str>,
    nonce: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let (Some(ts), Some(nonce), Some(sig)) = (timestamp, nonce, signature) else {
        return Err(ApiError::Unauthorized(
            "x-usage-timestamp, x-usage-nonce and x-usage-signature are required",
        ));
    };
    let ms: i64 = ts
        .trim()
        .parse()
        .map_err(|_| ApiError::Unauthorized("x-usage-timestamp must be epoch milliseconds"))?;
    // The distance as an unsigned number: `now - ms` overflows for a timestamp far enough off
    // (and wrapped, in a release build, into a negative "skew" that passed).
    if now.timestamp_millis().abs_diff(ms) > MAX_SKEW_MS.unsigned_abs() {
        return Err(ApiError::Unauthorized(
            "x-usage-timestamp is more than 5 minutes from this host's clock",
        ));
    }
    let n = nonce.trim().len();
    if !(8..=64).contains(&n) {
        return Err(ApiError::Unauthorized(
            "x-usage-nonce must be 8 to 64 characters",
        ));
    }
    if !crate::security::usage_push::verify_usage_signature(key, ts.trim(), nonce.trim(), body, sig)
    {
        return Err(ApiError::Unauthorized("x-usage-signature does not match"));
    }
    Ok(())
}

/// A usage request's whole authentication, for `POST /usage` and `GET /usage/estimate` alike:
/// the key configured, the signature over `signed` ([`verify`]), then the nonce unused (kept in
/// the callbacks' replay guard under a `usage:` prefix, for twice the allowed skew).
pub async fn authenticate(
    key: Option<&crate::security::SecretKey>,
    nonces: &dyn crate::security::replay::NonceStore,
    [timestamp, nonce, signature]: [Option<&str>; 3],
    signed: &[u8],
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let key = key.ok_or(ApiError::NotConfigured)?;
    verify(key.expose(), timestamp, nonce, signature, signed, now)?;
    let fresh = nonces
        .remember(
            &format!("usage:{}", nonce.unwrap_or_default().trim()),
            now,
            now + chrono::Duration::milliseconds(2 * MAX_SKEW_MS),
        )
        .await
        .map_err(|e| ApiError::Refused(e.into()))?;
    if !fresh {
        return Err(ApiError::Unauthorized("x-usage-nonce was already used"));
    }
    Ok(())
}

/// Signs a request as the vendor's app must (the Rust client and the simulator use it).
pub fn sign(key: &str, body: &[u8], now: DateTime<Utc>) -> [(&'static str, String); 3] {
    let s = crate::security::usage_push::sign_attempt(key, body, now);
    [
        (HEADER_TIMESTAMP, s.ts),
        (HEADER_NONCE, s.nonce),
        (HEADER_SIGNATURE, s.signature),
    ]
}

/// `POST /usage` as a service: the same for the local host and a Lambda function.
pub struct UsageIngestion {
    /// `None`: ingestion is not configured, and every request says so (503).
    pub key: Option<crate::security::SecretKey>,
    /// The replay guard, shared with the callbacks' (nonces are kept apart by a prefix).
    pub nonces: std::sync::Arc<dyn crate::security::replay::NonceStore>,
    pub instances: std::sync::Arc<dyn crate::instance::InstanceStore>,
    pub usage: std::sync::Arc<dyn super::UsageStore>,
    /// The jobs queue: a used-up package's `quotaExhausted` notice is delivered from it.
    pub jobs: std::sync::Arc<dyn crate::jobs::JobQueue>,
    /// The quotas of stop-when-used-up package SKUs.
    pub quotas: std::sync::Arc<super::package::PackageQuotaList>,
    pub clock: std::sync::Arc<dyn crate::clock::Clock>,
}

impl UsageIngestion {
    /// `GET /usage/estimate` beside this endpoint: the same usage key, replay guard, stores and
    /// clock, with `prices` (`KOOGALLERY_PRICING`). Every host builds the pair this one way.
    pub fn estimates(&self, prices: super::pricing::PriceList) -> super::estimate::UsageEstimates {
        super::estimate::UsageEstimates {
            key: self.key.clone(),
            nonces: self.nonces.clone(),
            instances: self.instances.clone(),
            usage: self.usage.clone(),
            prices: std::sync::Arc::new(prices),
            clock: self.clock.clone(),
        }
    }

    /// Verifies, parses and ingests one request: the HTTP status and the JSON answer.
    pub async fn handle(
        &self,
        timestamp: Option<&str>,
        nonce: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> (u16, serde_json::Value) {
        match self.ingest(timestamp, nonce, signature, body).await {
            Ok(outcome) => (200, accepted(outcome)),
            Err(e) => {
                if e.status() == 503 {
                    tracing::warn!(error = %e, "usage batch not taken; the app should retry");
                }
                (e.status(), e.body())
            }
        }
    }

    async fn ingest(
        &self,
        timestamp: Option<&str>,
        nonce: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<IngestOutcome, ApiError> {
        let now = self.clock.now();
        authenticate(
            self.key.as_ref(),
            self.nonces.as_ref(),
            [timestamp, nonce, signature],
            body,
            now,
        )
        .await?;
        let reports = UsageBatch::parse(body)?.into_reports();
        Ok(super::ingest::ingest_batch(
            self.instances.as_ref(),
            self.usage.as_ref(),
            self.jobs.as_ref(),
            &self.quotas,
            &reports,
            now,
        )
        .await?)
    }
}

#[cfg(test)]
mod tests;
