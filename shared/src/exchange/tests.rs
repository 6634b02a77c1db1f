//! Tests of the exchange log: the pinned record, the retention setting, the memory log's contract, and the recorder (redaction, batching, drops, closing).

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{record, *};
use crate::testing::{MemoryExchangeLog, contract::exchange_log_contract, golden};

fn at() -> DateTime<Utc> {
    crate::protocol::time::parse_compact("20260301120000").unwrap()
}

fn sample() -> Exchange {
    Exchange {
        id: "1772366400000-00000000000000ff".into(),
        at: at(),
        direction: Direction::Inbound,
        family: "v2_basic".into(),
        activity: "newInstance".into(),
        instance_id: Some("i-1".into()),
        order_id: Some("CS1".into()),
        tenant_id: None,
        request: json!({"activity": "newInstance", "orderId": "CS1", "customerName": redact::REDACTED}),
        response: json!({"resultCode": "000000", "resultMsg": "success", "instanceId": "i-1"}),
        result_code: Some("000000".into()),
        http_status: None,
        latency_ms: 3.5,
        key: Some("current".into()),
        attempt: None,
        test: false,
        expires_at: at() + chrono::Duration::days(14),
        error: None,
    }
}

/// The stored form is a versioned contract: the same bytes read back, and the same shape written.
#[test]
fn the_stored_record_is_pinned() {
    let e = sample();
    golden::check("exchange_record_v1.json", &record::to_json(&e));
    let written: serde_json::Value = serde_json::from_slice(&record::encode(&e)).unwrap();
    assert_eq!(
        written,
        record::to_json(&e),
        "the bytes written are the pinned form"
    );
    assert_eq!(record::decode(&record::encode(&e)).unwrap(), e);
    let mut outbound = sample();
    outbound.direction = Direction::Outbound;
    outbound.http_status = Some(503);
    outbound.attempt = Some(3);
    outbound.error = Some("connection refused".into());
    assert_eq!(
        record::decode(&record::encode(&outbound)).unwrap(),
        outbound
    );
}

#[test]
fn a_record_of_another_schema_is_corrupt_not_misread() {
    let mut v = record::to_json(&sample());
    v["v"] = json!(2);
    let err = record::decode(v.to_string().as_bytes()).unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert!(record::decode(b"{}").is_err());
}

#[test]
fn ids_sort_by_time() {
    let a = new_id(at());
    let b = new_id(at() + chrono::Duration::milliseconds(1));
    let c = new_id(at() + chrono::Duration::days(400));
    assert!(a < b && b < c, "{a} {b} {c}");
}

#[tokio::test]
async fn the_memory_log_passes_the_contract() {
    exchange_log_contract(Arc::new(MemoryExchangeLog::new())).await;
}

fn capture(n: u8) -> Capture {
    Capture {
        direction: Direction::Inbound,
        family: "v2_basic".into(),
        instance_id: Some(format!("i-{n}")),
        request: format!(r#"{{"activity":"newInstance","mobilePhone":"138{n}"}}"#).into_bytes(),
        response: br#"{"resultCode":"000000"}"#.to_vec(),
        result_code: Some("000000".into()),
        key: Some("current"),
        latency: Duration::from_micros(1500),
        ..Capture::outbound(at(), "v2_basic", "newInstance")
    }
}

#[tokio::test]
async fn recorded_calls_are_redacted_and_appended_by_the_writer() {
    let log = Arc::new(MemoryExchangeLog::new());
    let (recorder, task) = ExchangeRecorder::start(log.clone(), chrono::Duration::days(14));
    let writer = tokio::spawn(task.run());
    for n in 0..3 {
        recorder.record(capture(n));
    }
    recorder.flush().await;
    let kept = log.all();
    assert_eq!(kept.len(), 3);
    let first = kept
        .iter()
        .find(|e| e.instance_id.as_deref() == Some("i-0"))
        .unwrap();
    assert_eq!(first.request["mobilePhone"], redact::REDACTED);
    assert_eq!(first.response, json!({"resultCode": "000000"}));
    assert_eq!(first.latency_ms, 1.5);
    assert_eq!(first.expires_at, at() + chrono::Duration::days(14));
    assert_eq!(first.key.as_deref(), Some("current"));
    // The writer ends, having written everything, once the last recorder is gone.
    recorder.record(capture(9));
    drop(recorder);
    tokio::time::timeout(Duration::from_secs(5), writer)
        .await
        .expect("the writer ends")
        .unwrap();
    assert_eq!(log.all().len(), 4);
}

#[tokio::test]
async fn an_off_recorder_keeps_nothing_and_never_waits() {
    let recorder = ExchangeRecorder::off();
    assert!(!recorder.is_on());
    recorder.record(capture(1));
    recorder.flush().await;
    assert_eq!(recorder.dropped(), 0);
}

/// A log that never answers: the channel fills, and `record` drops and counts rather than wait.
#[tokio::test]
async fn a_full_channel_drops_and_counts_without_waiting() {
    struct Stuck;
    #[async_trait::async_trait]
    impl ExchangeLog for Stuck {
        async fn append(&self, _: &[Kept]) -> Result<(), crate::StoreError> {
            std::future::pending().await
        }
        async fn find(
            &self,
            _: &ExchangeQuery,
            _: DateTime<Utc>,
        ) -> Result<Vec<Exchange>, crate::StoreError> {
            Ok(Vec::new())
        }
    }
    let (recorder, task) = ExchangeRecorder::start(Arc::new(Stuck), chrono::Duration::days(1));
    let writer = tokio::spawn(task.run());
    let extra = 10;
    for n in 0..(recorder::CAPACITY + recorder::BATCH + extra) {
        recorder.record(capture((n % 200) as u8));
    }
    // The writer holds at most one batch; the channel holds CAPACITY.
    assert!(recorder.dropped() >= extra as u64, "{}", recorder.dropped());
    writer.abort();
}

/// A batch the store refuses is retried, then dropped; the writer goes on with the next.
#[tokio::test(start_paused = true)]
async fn a_refused_batch_is_retried_then_dropped() {
    struct Flaky {
        fails: std::sync::Mutex<u32>,
        inner: MemoryExchangeLog,
    }
    #[async_trait::async_trait]
    impl ExchangeLog for Flaky {
        async fn append(&self, e: &[Kept]) -> Result<(), crate::StoreError> {
            {
                let mut f = self.fails.lock().unwrap();
                if *f > 0 {
                    *f -= 1;
                    return Err(crate::StoreError::Unavailable("down".into()));
                }
            }
            self.inner.append(e).await
        }
        async fn find(
            &self,
            q: &ExchangeQuery,
            now: DateTime<Utc>,
        ) -> Result<Vec<Exchange>, crate::StoreError> {
            self.inner.find(q, now).await
        }
    }
    let log = Arc::new(Flaky {
        fails: std::sync::Mutex::new(recorder::ATTEMPTS - 1),
        inner: MemoryExchangeLog::new(),
    });
    let (recorder, task) = ExchangeRecorder::start(log.clone(), chrono::Duration::days(1));
    tokio::spawn(task.run());
    recorder.record(capture(1));
    recorder.flush().await;
    assert_eq!(log.inner.all().len(), 1, "kept after retries");
    *log.fails.lock().unwrap() = recorder::ATTEMPTS;
    recorder.record(capture(2));
    recorder.flush().await;
    recorder.record(capture(3));
    recorder.flush().await;
    let ids: Vec<_> = log
        .inner
        .all()
        .into_iter()
        .filter_map(|e| e.instance_id)
        .collect();
    assert_eq!(
        ids.len(),
        2,
        "{ids:?}: the refused batch dropped, the next kept"
    );
    assert!(ids.contains(&"i-3".to_owned()));
}

#[test]
fn the_retention_is_read_bounded_and_zero_turns_the_log_off() {
    use crate::config::Env;
    let env = |v: &'static str| {
        move |name: &str| (name == "KOOGALLERY_EXCHANGE_LOG_DAYS").then(|| v.to_owned())
    };
    assert_eq!(
        retention(&Env::empty()).unwrap(),
        Some(chrono::Duration::days(14))
    );
    assert_eq!(
        retention(&Env::from_fn(env("3"))).unwrap(),
        Some(chrono::Duration::days(3))
    );
    assert_eq!(retention(&Env::from_fn(env("0"))).unwrap(), None);
    let err = retention(&Env::from_fn(env("401")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("KOOGALLERY_EXCHANGE_LOG_DAYS"), "{err}");
    assert!(retention(&Env::from_fn(env("-1"))).is_err());
}

/// Calls that did not verify are kept at a bounded rate, their large bodies as their size.
#[tokio::test]
async fn unverified_calls_are_kept_at_a_bounded_rate() {
    let log = Arc::new(MemoryExchangeLog::new());
    let (recorder, task) = ExchangeRecorder::start(log.clone(), chrono::Duration::days(1));
    tokio::spawn(task.run());
    let n = recorder::UNVERIFIED_PER_SECOND as usize * 3;
    for i in 0..n {
        let mut c = capture((i % 200) as u8);
        if i == 0 {
            c.request = vec![b'x'; recorder::UNVERIFIED_MAX_BYTES + 1];
        }
        recorder.record_unverified(c);
    }
    recorder.flush().await;
    let kept = log.all();
    // Within one second (or two, if the loop crossed one), never all of them.
    assert!(
        kept.len() >= recorder::UNVERIFIED_PER_SECOND as usize
            && kept.len() <= 2 * recorder::UNVERIFIED_PER_SECOND as usize,
        "{}",
        kept.len()
    );
    assert_eq!(recorder.dropped() as usize, n - kept.len());
    let big = kept
        .iter()
        .find(|e| e.request.get("bytes").is_some())
        .expect("the large one");
    assert_eq!(big.request["bytes"], recorder::UNVERIFIED_MAX_BYTES + 1);
}

/// The ticking writer: what arrives between ticks is appended at the next one, a flush answered
/// then, and it ends, having written everything, once the last recorder is gone.
#[tokio::test(start_paused = true)]
async fn the_ticking_writer_appends_at_each_tick_and_ends_with_the_last_recorder() {
    let log = Arc::new(MemoryExchangeLog::new());
    let (recorder, task) = ExchangeRecorder::start(log.clone(), chrono::Duration::days(1));
    let writer = tokio::spawn(task.run_every(Duration::from_millis(50)));
    for n in 0..recorder::BATCH + 10 {
        recorder.record(capture((n % 200) as u8));
    }
    recorder.flush().await;
    assert_eq!(log.all().len(), recorder::BATCH + 10);
    recorder.record(capture(1));
    drop(recorder);
    writer.await.unwrap();
    assert_eq!(log.all().len(), recorder::BATCH + 11);
}

/// A stopping host closes its recorder: what was recorded is written, the writer ends and lets
/// the log go although a clone is still held (a task winding down), and what that clone records
/// afterwards is not kept.
#[tokio::test]
async fn close_writes_and_lets_the_log_go_whatever_clones_remain() {
    let log = Arc::new(MemoryExchangeLog::new());
    let (recorder, task) = ExchangeRecorder::start(log.clone(), chrono::Duration::days(1));
    let writer = tokio::spawn(task.run());
    let lingering = recorder.clone();
    recorder.record(capture(1));
    recorder.close().await;
    assert_eq!(log.all().len(), 1, "written before the writer ends");
    assert_eq!(Arc::strong_count(&log), 1, "the writer let the log go");
    writer.await.unwrap();
    lingering.record(capture(2));
    lingering.flush().await;
    assert_eq!(log.all().len(), 1);
    assert_eq!(
        lingering.dropped(),
        0,
        "not counted as the log falling behind"
    );
}

/// The ticking writer closes as the other does: it writes what it holds and lets the log go.
#[tokio::test(start_paused = true)]
async fn the_ticking_writer_closes_too() {
    let log = Arc::new(MemoryExchangeLog::new());
    let (recorder, task) = ExchangeRecorder::start(log.clone(), chrono::Duration::days(1));
    let writer = tokio::spawn(task.run_every(Duration::from_millis(50)));
    let _lingering = recorder.clone();
    recorder.record(capture(1));
    recorder.close().await;
    assert_eq!(log.all().len(), 1);
    assert_eq!(Arc::strong_count(&log), 1, "the writer let the log go");
    writer.await.unwrap();
}

/// A recorder whose channel is full, its writer not started.
fn a_full_channel() -> (
    Arc<MemoryExchangeLog>,
    ExchangeRecorder,
    recorder::RecorderTask,
) {
    let log = Arc::new(MemoryExchangeLog::new());
    let (recorder, task) = ExchangeRecorder::start(log.clone(), chrono::Duration::days(1));
    for n in 0..recorder::CAPACITY {
        recorder.record(capture((n % 200) as u8));
    }
    (log, recorder, task)
}

/// A verified call that finds the writer a full channel behind waits for room rather than
/// leaving the log: a writer that only lacked CPU (here: one that starts 30 ms late) keeps every
/// call. `record` would have dropped it.
#[tokio::test(start_paused = true)]
async fn keep_waits_for_a_writer_that_catches_up_and_loses_nothing() {
    let (log, recorder, task) = a_full_channel();
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(30)).await;
        task.run_every(Duration::from_millis(5)).await
    });
    let started = tokio::time::Instant::now();
    recorder.keep(capture(7)).await;
    assert!(started.elapsed() >= Duration::from_millis(30), "it waited");
    assert!(started.elapsed() < recorder::KEEP_WAIT);
    recorder.flush().await;
    assert_eq!(recorder.dropped(), 0);
    assert_eq!(log.all().len(), recorder::CAPACITY + 1);
    drop(recorder);
    writer.await.unwrap();
}

/// A writer stuck (here: never started) holds a verified call up for `KEEP_WAIT` at most; then
/// the call is dropped from the log and counted, and answered all the same.
#[tokio::test(start_paused = true)]
async fn keep_gives_up_on_a_stuck_writer_after_its_wait() {
    let (_log, recorder, _task) = a_full_channel();
    let started = tokio::time::Instant::now();
    recorder.keep(capture(7)).await;
    assert_eq!(started.elapsed(), recorder::KEEP_WAIT);
    assert_eq!(recorder.dropped(), 1);
}
