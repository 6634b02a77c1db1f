//! `serve-openapi` accepts usage pushes as KooGallery does (docs/protocol/openapi.md §3): both
//! signatures checked, at most 1000 records, the 21-day horizon, repeats (same `metering_sn`, or
//! the same instance and window) dropped, ready for the metering work.

use std::collections::HashMap;

use chrono::{Duration, Utc};
use koogallery::security::{apig, usage_push::usage_signature};
use koogallery_sim::openapi::{OpenApiSim, USAGE_PATH};
use serde_json::{Value, json};

async fn sim() -> OpenApiSim {
    let s = OpenApiSim::start(
        HashMap::from([("sim-ak".to_owned(), "sim-sk".to_owned())]),
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    s.set_interconnection_key("seller-key");
    s
}

fn record(sn: &str, hours_ago: i64, value: &str) -> Value {
    let begin = Utc::now() - Duration::hours(hours_ago);
    let fmt = |t: chrono::DateTime<Utc>| t.format("%Y%m%dT%H0000Z").to_string();
    json!({"instance_id":"inst-1","record_time":fmt(Utc::now()),"begin_time":fmt(begin),
        "end_time":fmt(begin + Duration::hours(1)),"usage_value":value,"metering_sn":sn})
}

/// Sends a push signed with `key` (body) and `sk` (APIG); the answer's status and `error_code`.
async fn push(s: &OpenApiSim, records: Vec<Value>, key: &str, sk: &str) -> (u16, String) {
    let body = serde_json::to_vec(&json!({ "usage_records": records })).unwrap();
    let (ts, nonce) = (
        Utc::now().timestamp_millis().to_string(),
        "nonce-1".to_owned(),
    );
    let signature = usage_signature(key, &ts, &nonce, &body);
    let host = s.primary.to_string();
    let date = apig::sdk_date(Utc::now());
    let headers = [
        ("content-type", "application/json"),
        ("host", host.as_str()),
        ("x-sdk-date", date.as_str()),
        ("ts", ts.as_str()),
        ("nonce", nonce.as_str()),
        ("signature", signature.as_str()),
    ];
    let auth = apig::sign(
        "sim-ak",
        sk,
        &apig::Request {
            method: "POST",
            path: USAGE_PATH,
            query: "",
            headers: &headers,
            body: &body,
        },
    );
    let mut request = reqwest::Client::new()
        .post(format!("{}{USAGE_PATH}", s.primary_url()))
        .header("authorization", auth.authorization)
        .body(body);
    for (k, v) in headers.iter().filter(|(k, _)| *k != "host") {
        request = request.header(*k, *v);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let v: Value = response.json().await.unwrap_or_default();
    (
        status,
        v["error_code"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn a_signed_push_is_accepted_and_repeats_are_dropped() {
    let s = sim().await;
    let ok = push(
        &s,
        vec![record("sn-1", 2, "1.5"), record("sn-2", 1, "99")],
        "seller-key",
        "sim-sk",
    )
    .await;
    assert_eq!(ok, (200, "MKT.0000".to_owned()));
    // A retry of the same records, and the same window under another metering_sn.
    let again = push(
        &s,
        vec![record("sn-1", 2, "1.5"), record("sn-3", 1, "99")],
        "seller-key",
        "sim-sk",
    )
    .await;
    assert_eq!(again.1, "MKT.0000");
    let (accepted, duplicates) = s.usage();
    assert_eq!(
        accepted
            .iter()
            .map(|r| r.metering_sn.as_str())
            .collect::<Vec<_>>(),
        ["sn-1", "sn-2"]
    );
    assert_eq!(duplicates, 2);
}

#[tokio::test]
async fn bad_signatures_oversized_old_or_invalid_pushes_are_refused() {
    let s = sim().await;
    assert_eq!(
        push(&s, vec![record("a", 1, "1")], "not-the-key", "sim-sk").await,
        (400, "MKT.0102".to_owned())
    );
    let (status, code) = push(&s, vec![record("a", 1, "1")], "seller-key", "wrong-sk").await;
    assert_eq!((status, code.as_str()), (401, "APIG.0303"));
    let many: Vec<Value> = (0..1001)
        .map(|i| record(&format!("m{i}"), 1, "1"))
        .collect();
    assert_eq!(push(&s, many, "seller-key", "sim-sk").await.1, "MKT.9003");
    assert_eq!(
        push(
            &s,
            vec![record("old", 22 * 24, "1")],
            "seller-key",
            "sim-sk"
        )
        .await
        .1,
        "MKT.9004"
    );
    for bad in ["0", "-1", "1.23456", "NaN", "x"] {
        assert_eq!(
            push(&s, vec![record("bad", 1, bad)], "seller-key", "sim-sk")
                .await
                .1,
            "MKT.9002",
            "{bad}"
        );
    }
    assert!(s.usage().0.is_empty(), "nothing refused was kept");
}

/// `mktFor`: KooGallery refuses every request with one code for a while, keeping nothing, then
/// recovers.
///
/// The refusal lasts 5 s from the first push that meets it. The three pushes that must be refused
/// are local round trips of milliseconds, so they fall inside it however loaded the machine (a
/// failure says how late they came); the push that must be taken waits until 5 s have passed since
/// the first push was answered, and so since the refusal began (a lower bound: load only makes the
/// wait longer).
#[tokio::test]
async fn a_refusal_for_a_while_refuses_everything_then_recovers() {
    use koogallery_sim::openapi::Fault;
    use std::time::Instant;
    const REFUSING: std::time::Duration = std::time::Duration::from_secs(5);
    let s = sim().await;
    s.inject(Fault::MktFor {
        code: "MKT.0100".into(),
        millis: REFUSING.as_millis() as u64,
    });
    let mut first_answered = None;
    for sn in ["r-1", "r-2", "r-3"] {
        let got = push(&s, vec![record(sn, 1, "1")], "seller-key", "sim-sk").await;
        let answered = *first_answered.get_or_insert_with(Instant::now);
        assert_eq!(
            got,
            (500, "MKT.0100".to_owned()),
            "{sn}, answered {:?} after the first push",
            answered.elapsed()
        );
    }
    assert!(s.usage().0.is_empty(), "nothing refused was kept");
    let over = first_answered.expect("pushed") + REFUSING;
    tokio::time::sleep(over.saturating_duration_since(Instant::now())).await;
    assert_eq!(
        push(&s, vec![record("r-4", 1, "1")], "seller-key", "sim-sk").await,
        (200, "MKT.0000".to_owned())
    );
    assert_eq!(s.usage().0.len(), 1);
}
