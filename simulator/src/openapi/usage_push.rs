//! The usage push on the simulator's open API (docs/protocol/openapi.md §3): the records
//! KooGallery accepts, its dedup of repeats (rule 5), and the push's checks of body signature,
//! batch size, horizon and values.

use std::{collections::HashMap, sync::atomic::Ordering, time::Duration};

use axum::{
    body::Bytes,
    extract::{RawQuery, State},
    http::{HeaderMap, Method, Uri},
    response::Response,
};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use super::{HostState, answer, gateway::gateway, mkt_status};
use crate::platform::{apig, usage_sign};

/// A usage record KooGallery accepted (docs/protocol/openapi.md §3).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct UsageRecord {
    pub instance_id: String,
    pub record_time: String,
    pub begin_time: String,
    pub end_time: String,
    pub usage_value: String,
    pub metering_sn: String,
    #[serde(default)]
    pub relate_pkg_instance: Option<String>,
}

#[derive(Default)]
pub(super) struct Usage {
    pub(super) accepted: Vec<UsageRecord>,
    /// Records dropped as repeats: the same instance and window (docs/protocol/openapi.md §3 rule
    /// 5), or the same `metering_sn`.
    pub(super) duplicates: usize,
    /// Repeats whose content differs from the record first accepted for that window or serial:
    /// what a vendor must never send (the second would be dropped, its usage unbilled or wrong).
    pub(super) conflicting: Vec<UsageRecord>,
    /// Indexes into `accepted`, so a push of 1000 records checks in O(1) each: by serial, by
    /// (instance, begin, end) (rule 5's dedup) and by (instance, begin).
    by_sn: HashMap<String, usize>,
    by_range: HashMap<(String, String, String), usize>,
    by_begin: HashMap<(String, String), Vec<usize>>,
}

impl Usage {
    /// Keeps `r` unless it repeats an accepted record; notes a repeat whose content differs.
    fn take(&mut self, r: UsageRecord) {
        let same = |a: &UsageRecord| {
            a.usage_value == r.usage_value
                && a.metering_sn == r.metering_sn
                && a.end_time == r.end_time
                && a.record_time == r.record_time
        };
        let by_sn = self.by_sn.get(&r.metering_sn).copied();
        let range = (
            r.instance_id.clone(),
            r.begin_time.clone(),
            r.end_time.clone(),
        );
        let repeat = by_sn.is_some() || self.by_range.contains_key(&range);
        let begin = (r.instance_id.clone(), r.begin_time.clone());
        let differs = by_sn.is_some_and(|i| !same(&self.accepted[i]))
            || self
                .by_begin
                .get(&begin)
                .is_some_and(|is| is.iter().any(|&i| !same(&self.accepted[i])));
        if differs {
            self.conflicting.push(r.clone());
        }
        if repeat {
            self.duplicates += 1;
            return;
        }
        let i = self.accepted.len();
        self.by_sn.insert(r.metering_sn.clone(), i);
        self.by_range.insert(range, i);
        self.by_begin.entry(begin).or_default().push(i);
        self.accepted.push(r);
    }
}

/// The new usage push (docs/protocol/openapi.md §3).
pub const USAGE_PATH: &str = "/api/mkp-openapi-public/global/v1/isv/usage-data";
/// Records per push, and how far back a window may begin (docs/protocol/openapi.md §3).
pub const MAX_USAGE_RECORDS: usize = 1000;
pub const USAGE_HORIZON_DAYS: i64 = 21;

fn usage_error(code: &str, message: impl Into<String>) -> Response {
    answer(
        mkt_status(code),
        json!({"error_code": code, "error_msg": message.into()}),
    )
}

/// Whether `value` is a positive decimal with at most 4 decimals.
fn valid_usage_value(value: &str) -> bool {
    let decimals = value.split_once('.').map_or(0, |(_, d)| d.len());
    decimals <= 4 && value.parse::<f64>().is_ok_and(|v| v.is_finite() && v > 0.0)
}

/// The push's checks of its records: how many, how far back each window begins, and each
/// record's value, serial and instance. `Some`: the answer refusing the push.
fn check_records(records: &[UsageRecord]) -> Option<Response> {
    if records.len() > MAX_USAGE_RECORDS {
        return Some(usage_error(
            "MKT.9003",
            format!("{} records; at most {MAX_USAGE_RECORDS}", records.len()),
        ));
    }
    let horizon = Utc::now() - chrono::Duration::days(USAGE_HORIZON_DAYS);
    for r in records {
        let Ok(begin) = chrono::NaiveDateTime::parse_from_str(&r.begin_time, apig::DATE_FORMAT)
        else {
            return Some(usage_error(
                "MKT.9002",
                format!("begin_time {:?} is not yyyyMMddTHHmmssZ", r.begin_time),
            ));
        };
        if begin.and_utc() < horizon {
            return Some(usage_error(
                "MKT.9004",
                format!(
                    "begin_time {} is more than {USAGE_HORIZON_DAYS} days ago",
                    r.begin_time
                ),
            ));
        }
        if !valid_usage_value(&r.usage_value)
            || r.metering_sn.is_empty()
            || r.instance_id.is_empty()
        {
            return Some(usage_error(
                "MKT.9002",
                format!("invalid usage record {}", r.metering_sn),
            ));
        }
    }
    None
}

/// Whether the push's body signature (`ts`, `nonce`, `signature` headers) verifies with the
/// seller's interconnection key (docs/protocol/openapi.md §3).
fn body_signed(state: &HostState, headers: &HeaderMap, body: &[u8]) -> bool {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let key = state
        .inner
        .interconnection_key
        .lock()
        .map(|k| k.clone())
        .unwrap_or_default();
    usage_sign::verify(
        &key,
        header("ts"),
        header("nonce"),
        body,
        header("signature"),
    )
}

pub(super) async fn usage_push(
    State(state): State<HostState>,
    method: Method,
    uri: Uri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = query.unwrap_or_default();
    if let Err(refused) = gateway(
        &state,
        &method,
        &uri,
        &query,
        &headers,
        &body,
        ("error_code", "error_msg"),
    )
    .await
    {
        return refused;
    }
    if !body_signed(&state, &headers, &body) {
        return usage_error("MKT.0102", "Invalid body sign");
    }
    #[derive(Deserialize)]
    struct Push {
        usage_records: Vec<UsageRecord>,
    }
    let push: Push = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return usage_error("MKT.0101", format!("usage_records: {e}")),
    };
    if let Some(refused) = check_records(&push.usage_records) {
        return refused;
    }
    if let Ok(mut usage) = state.inner.usage.lock() {
        for r in push.usage_records {
            usage.take(r);
        }
    }
    let hold = state.inner.hold_answer_ms.swap(0, Ordering::SeqCst);
    if hold > 0 {
        state.inner.answers_held.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(hold)).await;
    }
    answer(
        200,
        json!({"error_code": "MKT.0000", "error_msg": "success"}),
    )
}

/// What KooGallery holds: the accepted records, the dropped repeats, the conflicting ones.
pub(super) async fn usage_received(State(state): State<HostState>) -> Response {
    let (accepted, duplicates, conflicting) = state
        .inner
        .usage
        .lock()
        .map(|u| (u.accepted.clone(), u.duplicates, u.conflicting.clone()))
        .unwrap_or_default();
    answer(
        200,
        json!({"accepted": accepted, "duplicates": duplicates, "conflicting": conflicting}),
    )
}
