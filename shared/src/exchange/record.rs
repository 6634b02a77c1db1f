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
    #[serde(serialize_with = "rfc3339")]
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
    #[serde(serialize_with = "rfc3339")]
    pub(super) expires_at: &'a DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) error: Option<&'a str>,
}

/// `t` exactly as chrono serialises a `DateTime<Utc>` (RFC 3339 with `Z`, the fraction in 0, 3,
/// 6 or 9 digits as its nanoseconds need), written by hand: through the formatting machinery the
/// record's two times were a tenth of the exchange log's writer. Years outside 0–9999 and leap
/// seconds, which no call has, go to chrono itself.
fn rfc3339<S: serde::Serializer>(t: &&DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    use chrono::{Datelike, Timelike};
    let (year, nanos) = (t.year(), t.nanosecond());
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return t.serialize(s);
    }
    let mut out = [0u8; 30];
    let mut at = 0;
    for (value, width, then) in [
        (year as u32, 4, b'-'),
        (t.month(), 2, b'-'),
        (t.day(), 2, b'T'),
        (t.hour(), 2, b':'),
        (t.minute(), 2, b':'),
    ] {
        put_digits(&mut out, &mut at, value, width);
        out[at] = then;
        at += 1;
    }
    put_digits(&mut out, &mut at, t.second(), 2);
    if nanos != 0 {
        let (value, width) = if nanos % 1_000_000 == 0 {
            (nanos / 1_000_000, 3)
        } else if nanos % 1_000 == 0 {
            (nanos / 1_000, 6)
        } else {
            (nanos, 9)
        };
        out[at] = b'.';
        at += 1;
        put_digits(&mut out, &mut at, value, width);
    }
    out[at] = b'Z';
    at += 1;
    s.serialize_str(std::str::from_utf8(&out[..at]).expect("ASCII digits"))
}

/// `value` in `width` decimal digits (zero-padded) at `out[*at..]`.
fn put_digits(out: &mut [u8], at: &mut usize, value: u32, width: usize) {
    let mut v = value;
    for i in (0..width).rev() {
        out[*at + i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    *at += width;
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[derive(Serialize)]
    struct Written<'a>(#[serde(serialize_with = "rfc3339")] &'a DateTime<Utc>);

    proptest! {
        /// The record's times are written exactly as chrono writes them (the pinned form): every
        /// second from 1970 to 9999, with no fraction and with fractions of 3, 6 and 9 digits.
        #[test]
        fn times_are_written_as_chrono_writes_them(
            secs in 0i64..253_402_300_799,
            nanos in prop_oneof![
                Just(0u32),
                (1u32..1000).prop_map(|ms| ms * 1_000_000),
                (1u32..1_000_000).prop_map(|us| us * 1_000),
                1u32..1_000_000_000,
            ],
        ) {
            let t = DateTime::from_timestamp(secs, nanos).unwrap();
            prop_assert_eq!(
                serde_json::to_string(&Written(&t)).unwrap(),
                serde_json::to_string(&t).unwrap()
            );
        }
    }

    /// Times no call has still come out as chrono writes them.
    #[test]
    fn times_outside_the_usual_are_chrono_s() {
        for t in [
            DateTime::from_timestamp(-62_167_219_200 - 86_400, 0).unwrap(),
            DateTime::from_timestamp(253_402_300_800, 5).unwrap(),
            DateTime::from_timestamp(1_483_228_799, 1_500_000_000).unwrap(),
        ] {
            assert_eq!(
                serde_json::to_string(&Written(&t)).unwrap(),
                serde_json::to_string(&t).unwrap()
            );
        }
    }
}
