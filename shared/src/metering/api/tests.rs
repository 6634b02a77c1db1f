//! Usage ingestion API tests: the `POST /usage` body, its signature, timestamp and nonce checks.

use super::*;

#[test]
fn a_batch_reads_quantities_exactly_from_strings_and_numbers() {
    let b = UsageBatch::parse(
        br#"{"records":[
          {"instanceId":"i-1","quantity":"1.2345","occurredAt":"2026-11-21T13:25:00Z","idempotencyKey":"a"},
          {"instanceId":"i-1","quantity":0.1,"occurredAt":"2026-11-21T21:25:00+08:00","idempotencyKey":"b"},
          {"instanceId":"i-1","quantity":1e2,"occurredAt":"2026-11-21T13:25:00Z","idempotencyKey":"c"}]}"#,
    )
    .unwrap();
    let r = b.into_reports();
    assert_eq!(r[0].quantity.to_string(), "1.2345");
    assert_eq!(r[1].quantity.to_string(), "0.1");
    assert_eq!(r[1].occurred_at, r[0].occurred_at);
    assert_eq!(r[2].quantity, Decimal::from(100));
}

#[test]
fn a_bad_body_names_the_field() {
    let e = UsageBatch::parse(br#"{"records":[{"instanceId":"i","quantity":"abc","occurredAt":"2026-11-21T13:25:00Z","idempotencyKey":"a"}]}"#).unwrap_err();
    assert!(e.message.contains("records[0].quantity"), "{e}");
    let e = UsageBatch::parse(br#"{"records":[{"instanceId":"i","quantity":"NaN","occurredAt":"2026-11-21T13:25:00Z","idempotencyKey":"a"}]}"#).unwrap_err();
    assert!(e.message.contains("quantity"), "{e}");
    let e = UsageBatch::parse(br#"{"records":[{"instanceId":"i","quantity":"1","occurredAt":"yesterday","idempotencyKey":"a"}]}"#).unwrap_err();
    assert!(e.message.contains("records[0].occurredAt"), "{e}");
    assert!(UsageBatch::parse(b"[]").is_err());
}

/// A report the parser cannot read is named by its index, as one the rules refuse is; a body
/// at fault as a whole names none.
#[test]
fn a_malformed_report_is_named_by_its_index() {
    let good = r#"{"instanceId":"i","quantity":"1","occurredAt":"2026-11-21T13:25:00Z","idempotencyKey":"a"}"#;
    let batch = |bad: &str| format!(r#"{{"records":[{good},{good},{bad}]}}"#);
    for bad in [
        r#"{"instanceId":"i","quantity":"NaN","occurredAt":"2026-11-21T13:25:00Z","idempotencyKey":"a"}"#,
        r#"{"instanceId":"i","quantity":"abc","occurredAt":"2026-11-21T13:25:00Z","idempotencyKey":"a"}"#,
        r#"{"instanceId":"i","quantity":NaN,"occurredAt":"2026-11-21T13:25:00Z","idempotencyKey":"a"}"#,
        r#"{"instanceId":"i","quantity":1e400,"occurredAt":"2026-11-21T13:25:00Z","idempotencyKey":"a"}"#,
        r#"{"instanceId":"i","quantity":"1","occurredAt":"2026-11-21T13:25:00Z"}"#,
        r#"{"instanceId":7,"quantity":"1","occurredAt":"2026-11-21T13:25:00Z","idempotencyKey":"a"}"#,
        r#"42"#,
    ] {
        let e = UsageBatch::parse(batch(bad).as_bytes()).unwrap_err();
        assert_eq!(e.index, Some(2), "{bad}: {e}");
        let answer = ApiError::from(e).body();
        assert_eq!(answer["index"], 2, "{answer}");
        assert_eq!(answer["retryable"], false);
        assert!(
            answer["error"].as_str().unwrap().contains("records[2]"),
            "{answer}"
        );
    }
    for whole in [
        "".to_owned(),
        "not json".to_owned(),
        "[]".to_owned(),
        r#"{"records":{}}"#.to_owned(),
        r#"{"records":[],"extra":1}"#.to_owned(),
        format!(r#"{{"records":[{good},{{"instanceId":"i","#),
        format!(r#"{{"records":[{good}]}} trailing"#),
    ] {
        let e = UsageBatch::parse(whole.as_bytes()).unwrap_err();
        assert_eq!(e.index, None, "{whole}: {e}");
        assert!(ApiError::from(e).body().get("index").is_none());
    }
    assert!(UsageBatch::parse(format!("{{\"records\":[{good}]}}\n").as_bytes()).is_ok());
}

fn assert_refused(r: Result<(), ApiError>, why: &str) {
    match r {
        Err(e @ ApiError::Unauthorized(_)) => assert!(e.to_string().contains(why), "{e}"),
        other => panic!("expected a 401 naming {why:?}, got {other:?}"),
    }
}

/// `x-usage-timestamp`: any value a header can carry is compared without overflow; a
/// signature over a timestamp `i64::MIN` away from now (whose skew overflowed, and wrapped to
/// a negative skew that passed) is refused.
#[test]
fn any_usage_timestamp_is_compared_without_overflow() {
    let now = Utc::now();
    let now_ms = now.timestamp_millis();
    let body = br#"{"records":[]}"#;
    let nonce = "nonce-0123456789";
    for ts in [
        now_ms.wrapping_add(i64::MIN).to_string(),
        now_ms.wrapping_add(i64::MAX).to_string(),
        i64::MIN.to_string(),
        i64::MAX.to_string(),
        (now_ms - MAX_SKEW_MS - 1).to_string(),
        (now_ms + MAX_SKEW_MS + 1).to_string(),
        "0".to_owned(),
        "-1".to_owned(),
    ] {
        let sig = crate::security::usage_push::usage_signature("k", &ts, nonce, body);
        assert_refused(
            verify("k", Some(&ts), Some(nonce), Some(&sig), body, now),
            "more than 5 minutes",
        );
    }
    for ts in [
        "9223372036854775808",
        "-9223372036854775809",
        "1e12",
        "",
        "12 34",
        "١٢٣",
    ] {
        let sig = crate::security::usage_push::usage_signature("k", ts, nonce, body);
        assert_refused(
            verify("k", Some(ts), Some(nonce), Some(&sig), body, now),
            "epoch milliseconds",
        );
    }
    for ts in [now_ms - MAX_SKEW_MS, now_ms + MAX_SKEW_MS] {
        let ts = format!(" {ts} ");
        let sig = crate::security::usage_push::usage_signature("k", ts.trim(), nonce, body);
        assert!(verify("k", Some(&ts), Some(nonce), Some(&sig), body, now).is_ok());
    }
}

/// `x-usage-nonce`: counted in bytes after trimming, 8 to 64.
#[test]
fn the_usage_nonce_is_bounded() {
    let now = Utc::now();
    let ts = now.timestamp_millis().to_string();
    let body = b"{}";
    let check = |nonce: &str| {
        let sig = crate::security::usage_push::usage_signature("k", &ts, nonce.trim(), body);
        verify("k", Some(&ts), Some(nonce), Some(&sig), body, now)
    };
    for nonce in ["1234567", "        ", &"n".repeat(65), &"é".repeat(33)] {
        assert_refused(check(nonce), "8 to 64");
    }
    for nonce in ["12345678", " 12345678 ", &"n".repeat(64), &"é".repeat(32)] {
        assert!(check(nonce).is_ok(), "{nonce:?}");
    }
}

/// `x-usage-signature`: whatever it holds (not base64, the wrong length, huge) is a 401.
#[test]
fn any_usage_signature_is_a_clean_refusal() {
    let now = Utc::now();
    let ts = now.timestamp_millis().to_string();
    let (nonce, body) = ("nonce-0123456789", b"{}");
    let good = crate::security::usage_push::usage_signature("k", &ts, nonce, body);
    let short = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [0u8; 31]);
    for sig in [
        "",
        "not base64!",
        "====",
        &short,
        &"A".repeat(100_000),
        &good[1..],
    ] {
        assert_refused(
            verify("k", Some(&ts), Some(nonce), Some(sig), body, now),
            "does not match",
        );
    }
    assert!(
        verify(
            "k",
            Some(&ts),
            Some(nonce),
            Some(&format!(" {good} ")),
            body,
            now
        )
        .is_ok()
    );
}

#[test]
fn the_signature_is_checked_on_the_raw_bytes() {
    let now = Utc::now();
    let body = br#"{"records":[]}"#;
    let [(_, ts), (_, nonce), (_, sig)] = sign("app-key", body, now);
    assert!(verify("app-key", Some(&ts), Some(&nonce), Some(&sig), body, now).is_ok());
    let wrong = |r: Result<(), ApiError>| assert_eq!(r.unwrap_err().status(), 401);
    wrong(verify(
        "other",
        Some(&ts),
        Some(&nonce),
        Some(&sig),
        body,
        now,
    ));
    wrong(verify(
        "app-key",
        Some(&ts),
        Some(&nonce),
        Some(&sig),
        b"{\"records\":[ ]}",
        now,
    ));
    wrong(verify("app-key", None, Some(&nonce), Some(&sig), body, now));
    wrong(verify(
        "app-key",
        Some(&ts),
        Some(&nonce),
        Some(&sig),
        body,
        now + chrono::Duration::minutes(6),
    ));
}
