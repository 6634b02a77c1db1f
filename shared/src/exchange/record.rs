//! How an [`Exchange`] is kept (the embedded log file, the DynamoDB item's `data`): a versioned
//! contract, schema 1, held by the golden file `shared/tests/fixtures/exchange_record_v1.json`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Direction, Exchange};
use crate::storage::{Detail, StoreError};

const SCHEMA: u32 = 1;

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

/// The record as written, borrowed from an exchange (no copy of its bodies).
#[derive(Serialize)]
struct RecordV1Ref<'a> {
    v: u32,
    id: &'a str,
    at: &'a DateTime<Utc>,
    direction: &'static str,
    family: &'a str,
    activity: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    order_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant_id: Option<&'a str>,
    request: &'a serde_json::Value,
    response: &'a serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    result_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http_status: Option<u16>,
    latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempt: Option<u32>,
    test: bool,
    expires_at: &'a DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

/// What is written for `e`, borrowed from it.
fn written(e: &Exchange) -> RecordV1Ref<'_> {
    RecordV1Ref {
        v: SCHEMA,
        id: &e.id,
        at: &e.at,
        direction: e.direction.as_str(),
        family: &e.family,
        activity: &e.activity,
        instance_id: e.instance_id.as_deref(),
        order_id: e.order_id.as_deref(),
        tenant_id: e.tenant_id.as_deref(),
        request: &e.request,
        response: &e.response,
        result_code: e.result_code.as_deref(),
        http_status: e.http_status,
        latency_ms: (e.latency_ms * 1000.0).round() / 1000.0,
        key: e.key.as_deref(),
        attempt: e.attempt,
        test: e.test,
        expires_at: &e.expires_at,
        error: e.error.as_deref(),
    }
}

/// The stored bytes of `e`.
pub fn encode(e: &Exchange) -> Vec<u8> {
    serde_json::to_vec(&written(e)).expect("an exchange always serialises")
}

/// The stored form as JSON (the golden test, the operator API's raw view).
pub fn to_json(e: &Exchange) -> serde_json::Value {
    serde_json::to_value(written(e)).expect("an exchange always serialises")
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
