//! How an [`Exchange`] is kept (the embedded log file, the DynamoDB item's `data`): a versioned
//! contract, schema 1, held by the golden file `shared/tests/fixtures/exchange_record_v1.json`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Direction, Exchange};
use crate::storage::{Detail, StoreError};

pub(super) const SCHEMA: u32 = 1;

/// The stored record as read (written as [`RecordV1Ref`]).
#[derive(Deserialize)]
struct RecordV1 {
    v: u32,
    id: String,
    at: DateTime<Utc>,
    direction: String,
    family: String,
    activity: String,
    #[serde(default)]
    instance_id: Option<String>,
    #[serde(default)]
    order_id: Option<String>,
    #[serde(default)]
    tenant_id: Option<String>,
    request: serde_json::Value,
    response: serde_json::Value,
    #[serde(default)]
    result_code: Option<String>,
    #[serde(default)]
    http_status: Option<u16>,
    latency_ms: f64,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    attempt: Option<u32>,
    #[serde(default)]
    test: bool,
    expires_at: DateTime<Utc>,
    #[serde(default)]
    error: Option<String>,
}

/// The record as written, without its bodies, borrowed (from an exchange, or from a capture by
/// the recorder), in two halves: [`assemble`] writes the bodies between them, in the order the
/// pinned form has its members. The members before the bodies:
#[derive(Serialize)]
pub(super) struct Before<'a> {
    pub(super) v: u32,
    pub(super) id: &'a str,
    pub(super) at: &'a DateTime<Utc>,
    pub(super) direction: &'static str,
    pub(super) family: &'a str,
    pub(super) activity: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) instance_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) order_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) tenant_id: Option<&'a str>,
}

/// The members after the bodies.
#[derive(Serialize)]
pub(super) struct After<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) result_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) http_status: Option<u16>,
    pub(super) latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) attempt: Option<u32>,
    pub(super) test: bool,
    pub(super) expires_at: &'a DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) error: Option<&'a str>,
}

/// The record of its two halves with its two bodies, each already one JSON value.
pub(super) fn assemble(
    before: &Before<'_>,
    after: &After<'_>,
    request: &[u8],
    response: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(320 + request.len() + response.len());
    serde_json::to_writer(&mut out, &before).expect("an exchange always serialises");
    out.pop(); // `}`: both halves always have members, so commas join them
    out.extend_from_slice(br#","request":"#);
    out.extend_from_slice(request);
    out.extend_from_slice(br#","response":"#);
    out.extend_from_slice(response);
    let rest = out.len();
    serde_json::to_writer(&mut out, &after).expect("an exchange always serialises");
    out[rest] = b','; // `{`
    out
}

/// What is written for `e`, borrowed from it.
fn halves(e: &Exchange) -> (Before<'_>, After<'_>) {
    (
        Before {
            v: SCHEMA,
            id: &e.id,
            at: &e.at,
            direction: e.direction.as_str(),
            family: &e.family,
            activity: &e.activity,
            instance_id: e.instance_id.as_deref(),
            order_id: e.order_id.as_deref(),
            tenant_id: e.tenant_id.as_deref(),
        },
        After {
            result_code: e.result_code.as_deref(),
            http_status: e.http_status,
            latency_ms: round_latency(e.latency_ms),
            key: e.key.as_deref(),
            attempt: e.attempt,
            test: e.test,
            expires_at: &e.expires_at,
            error: e.error.as_deref(),
        },
    )
}

/// Latencies are kept to the microsecond.
pub(super) fn round_latency(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// The stored bytes of `e`.
pub fn encode(e: &Exchange) -> Vec<u8> {
    let request = serde_json::to_vec(&e.request).expect("a JSON value always serialises");
    let response = serde_json::to_vec(&e.response).expect("a JSON value always serialises");
    let (before, after) = halves(e);
    assemble(&before, &after, &request, &response)
}

/// The stored form as JSON (the golden test, the operator API's raw view).
pub fn to_json(e: &Exchange) -> serde_json::Value {
    serde_json::from_slice(&encode(e)).expect("an encoded exchange is JSON")
}

/// An exchange as the log writes it: its stored record and the keys a store files it under.
/// The recorder makes one from a capture without building the exchange's JSON bodies
/// ([`crate::exchange::Capture::into_kept`]); readers decode the record ([`Kept::exchange`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Kept {
    pub id: String,
    pub at: DateTime<Utc>,
    pub instance_id: Option<String>,
    pub order_id: Option<String>,
    /// An operator's action or a reconciler pass ([`Direction::Operator`]): found by
    /// [`super::ExchangeFilter::Actions`].
    pub action: bool,
    pub expires_at: DateTime<Utc>,
    /// The record, `v` 1 ([`encode`]).
    pub record: Vec<u8>,
}

impl Kept {
    /// How `e` is kept.
    pub fn of(e: &Exchange) -> Self {
        Self {
            id: e.id.clone(),
            at: e.at,
            instance_id: e.instance_id.clone(),
            order_id: e.order_id.clone(),
            action: e.direction == Direction::Operator,
            expires_at: e.expires_at,
            record: encode(e),
        }
    }

    /// How each of `exchanges` is kept.
    pub fn all(exchanges: &[Exchange]) -> Vec<Self> {
        exchanges.iter().map(Self::of).collect()
    }

    /// The exchange its record holds.
    pub fn exchange(&self) -> Result<Exchange, StoreError> {
        decode(&self.record)
    }
}

/// An exchange from its stored bytes.
pub fn decode(bytes: &[u8]) -> Result<Exchange, StoreError> {
    let r: RecordV1 = serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Corrupt(Detail::caused_by("exchange record", e)))?;
    if r.v != SCHEMA {
        return Err(StoreError::Corrupt(Detail::new(format!(
            "exchange record schema {} is not {SCHEMA}",
            r.v
        ))));
    }
    let direction = match r.direction.as_str() {
        "inbound" => Direction::Inbound,
        "outbound" => Direction::Outbound,
        "operator" => Direction::Operator,
        other => {
            return Err(StoreError::Corrupt(Detail::new(format!(
                "exchange direction {other:?}"
            ))));
        }
    };
    Ok(Exchange {
        id: r.id,
        at: r.at,
        direction,
        family: r.family,
        activity: r.activity,
        instance_id: r.instance_id,
        order_id: r.order_id,
        tenant_id: r.tenant_id,
        request: r.request,
        response: r.response,
        result_code: r.result_code,
        http_status: r.http_status,
        latency_ms: r.latency_ms,
        key: r.key,
        attempt: r.attempt,
        test: r.test,
        expires_at: r.expires_at,
        error: r.error,
    })
}
