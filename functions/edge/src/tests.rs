use std::sync::Mutex;

use koogallery::{
    callbacks::Registration,
    config::Config,
    security::{KeyRing, basic_signature, canonical_payload, verify_body_sign},
    testing::{ManualClock, MemoryStore},
};

use async_trait::async_trait;
use serde_json::Value;

use super::*;

const KEY: &str = "edge-test-key";

/// Records what reached the callbacks; answers success.
#[derive(Default)]
struct Recorder(Mutex<Vec<(&'static str, Value)>>);

#[async_trait]
impl Dispatcher for Recorder {
    async fn dispatch(
        &self,
        callback: &'static Registration,
        body: &Value,
        _key: koogallery::security::KeyUsed,
    ) -> Reply {
        self.0
            .lock()
            .unwrap()
            .push((callback.route.name(), body.clone()));
        Reply::success().with("instanceId", "i-1")
    }
}

struct Bed {
    edge: Edge,
    recorder: Arc<Recorder>,
    clock: Arc<ManualClock>,
    metrics: Arc<koogallery::testing::RecordedMetrics>,
}

fn bed_with(config: Config) -> Bed {
    let clock = Arc::new(ManualClock::at(chrono::Utc::now()));
    let recorder = Arc::new(Recorder::default());
    let metrics = Arc::new(koogallery::testing::RecordedMetrics::default());
    let edge = Edge::new(
        &config.settings.edge,
        config.secrets.keys.clone(),
        Arc::new(MemoryStore::new()),
        clock.clone(),
        recorder.clone(),
    )
    .with_metrics(metrics.clone());
    Bed {
        edge,
        recorder,
        clock,
        metrics,
    }
}

fn bed() -> Bed {
    bed_with(Config::with_keys(KEY, "kit"))
}

fn signed_query(key: &str, body: &[u8], ts: i64, nonce: &str) -> String {
    let payload = canonical_payload(body).unwrap();
    let sig = basic_signature(key, nonce, &ts.to_string(), payload.as_bytes()).to_uppercase();
    format!("signature={sig}&timestamp={ts}&nonce={nonce}")
}

const BODY: &[u8] =
    br#"{"activity":"newInstance","orderId":"CS1","orderLineId":"CS1-000001","businessId":"b-1"}"#;

impl Bed {
    fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }
    fn calls(&self) -> usize {
        self.recorder.0.lock().unwrap().len()
    }
    async fn call(&self, query: &str, body: &[u8]) -> Reply {
        let resp = self.edge.handle_basic(query, body).await;
        assert!(
            verify_body_sign(KEY, &resp.body, &resp.body_sign),
            "every answer carries a valid Body-Sign"
        );
        serde_json::from_slice(&resp.body).expect("every answer is a JSON result")
    }
}

#[tokio::test]
async fn a_signed_call_is_dispatched_and_the_answer_signed() {
    let b = bed();
    let q = signed_query(KEY, BODY, b.now_ms(), "nonce-1");
    let r = b.call(&q, BODY).await;
    assert_eq!(r.result_code, ResultCode::Success);
    let calls = b.recorder.0.lock().unwrap();
    assert_eq!(calls[0].0, "newInstance");
    assert_eq!(calls[0].1["orderId"], "CS1");
}

/// Every answer counts once, by activity and result code (the alarms read them).
#[tokio::test]
async fn every_answer_is_counted_by_activity_and_result_code() {
    use koogallery::metrics::Metric;
    let b = bed();
    let q = signed_query(KEY, BODY, b.now_ms(), "nonce-m1");
    b.call(&q, BODY).await;
    let forged = signed_query("someone-else", BODY, b.now_ms(), "nonce-m2");
    b.call(&forged, BODY).await;
    assert_eq!(
        b.metrics.all(),
        [
            Metric::Callback {
                family: "v2-basic",
                activity: "newInstance",
                result_code: ResultCode::Success
            },
            Metric::Callback {
                family: "v2-basic",
                activity: "unknown",
                result_code: ResultCode::AuthenticationFailed
            }
        ]
    );
}

#[tokio::test]
async fn forged_or_missing_signature_is_000001_and_not_dispatched() {
    let b = bed();
    let forged = signed_query("someone-else", BODY, b.now_ms(), "n1");
    assert_eq!(
        b.call(&forged, BODY).await.result_code,
        ResultCode::AuthenticationFailed
    );
    let q = format!("timestamp={}&nonce=n2", b.now_ms());
    let r = b.call(&q, BODY).await;
    assert_eq!(r.result_code, ResultCode::AuthenticationFailed);
    assert!(r.result_msg.contains("signature is missing"));
    let tampered = signed_query(KEY, BODY, b.now_ms(), "n3");
    let other = br#"{"activity":"newInstance","orderId":"CS2","orderLineId":"CS1-000001","businessId":"b-1"}"#;
    assert_eq!(
        b.call(&tampered, other).await.result_code,
        ResultCode::AuthenticationFailed
    );
    assert_eq!(b.calls(), 0);
}

#[tokio::test]
async fn stale_future_or_missing_timestamp_and_missing_nonce_are_000002() {
    let b = bed();
    for ts in [b.now_ms() - 61_000, b.now_ms() + 61_000] {
        let r = b.call(&signed_query(KEY, BODY, ts, "n-ts"), BODY).await;
        assert_eq!(r.result_code, ResultCode::InvalidParameter);
        assert!(r.result_msg.contains("window"), "{}", r.result_msg);
    }
    let r = b.call("signature=AB&nonce=x", BODY).await;
    assert_eq!(r.result_code, ResultCode::InvalidParameter);
    let r = b
        .call(&format!("signature=AB&timestamp={}", b.now_ms()), BODY)
        .await;
    assert_eq!(
        (r.result_code, r.result_msg.as_str()),
        (ResultCode::InvalidParameter, "nonce is missing")
    );
    // A ten-digit timestamp counts as seconds (docs/protocol/decisions.md §1).
    let secs = b.now_ms() / 1000;
    let r = b.call(&signed_query(KEY, BODY, secs, "n-secs"), BODY).await;
    assert_eq!(r.result_code, ResultCode::Success);
    assert_eq!(b.calls(), 1);
}

/// Whatever the `timestamp` parameter holds, it is compared with the clock without overflow and
/// refused with a signed `000002` when it is not a time in the window.
#[tokio::test]
async fn any_timestamp_is_compared_without_overflow() {
    let b = bed();
    for (i, ts) in [
        "9999999999999",
        "0000000000000",
        "0",
        "9999999999",
        "-9223372036854775808",
        "9223372036854775807",
        "99999999999999999999",
        "+1",
        "1e12",
    ]
    .into_iter()
    .enumerate()
    {
        let payload = canonical_payload(BODY).unwrap();
        let sig = basic_signature(KEY, &format!("n-ov-{i}"), ts, payload.as_bytes());
        let q = format!("signature={sig}&timestamp={ts}&nonce=n-ov-{i}").replace('+', "%2B");
        let r = b.call(&q, BODY).await;
        assert_eq!(r.result_code, ResultCode::InvalidParameter, "{ts}: {r:?}");
        assert!(r.result_msg.contains("timestamp"), "{ts}: {}", r.result_msg);
    }
    assert_eq!(b.calls(), 0);
}

#[tokio::test]
async fn a_replayed_nonce_is_refused() {
    let b = bed();
    let q = signed_query(KEY, BODY, b.now_ms(), "same-nonce");
    assert_eq!(b.call(&q, BODY).await.result_code, ResultCode::Success);
    let r = b.call(&q, BODY).await;
    assert_eq!(r.result_code, ResultCode::AuthenticationFailed);
    assert!(r.result_msg.contains("replay"));
    assert_eq!(b.calls(), 1);
}

#[tokio::test]
async fn malformed_json_unknown_activity_and_oversize_bodies_get_clear_000002() {
    let b = bed();
    let cases: [(&[u8], &str); 5] = [
        (b"{not json", "not valid JSON"),
        (b"[1,2]", "JSON object"),
        (br#"{"activity":"mineBitcoin"}"#, "unknown activity"),
        (br#"{"orderId":"x"}"#, "activity is missing"),
        (br#"{"activity":7}"#, "activity must be a string"),
    ];
    for (i, (body, msg)) in cases.into_iter().enumerate() {
        // Signed over the raw bytes, so the signature passes and parsing decides.
        let sig = basic_signature(KEY, &format!("m{i}"), &b.now_ms().to_string(), body);
        let q = format!("signature={sig}&timestamp={}&nonce=m{i}", b.now_ms());
        let r = b.call(&q, body).await;
        assert_eq!(r.result_code, ResultCode::InvalidParameter, "{msg}");
        assert!(
            r.result_msg.contains(msg),
            "{} should mention {msg}",
            r.result_msg
        );
    }
    let mut config = Config::with_keys(KEY, "kit");
    config.settings.edge.max_body_bytes = 64;
    let small = bed_with(config);
    let big = format!(
        r#"{{"activity":"queryInstance","instanceId":"{}"}}"#,
        "x".repeat(100)
    );
    let q = signed_query(KEY, big.as_bytes(), small.now_ms(), "big");
    let r = small.call(&q, big.as_bytes()).await;
    assert_eq!(r.result_code, ResultCode::InvalidParameter);
    assert!(r.result_msg.contains("exceeds 64 bytes"));
    assert_eq!(b.calls() + small.calls(), 0);
}

#[tokio::test]
async fn previous_key_is_accepted_during_rotation_and_answered_with_that_key() {
    let mut config = Config::with_keys(KEY, "kit");
    config.secrets.keys.basic = KeyRing::new(
        koogallery::security::SecretKey::new(KEY),
        Some(koogallery::security::SecretKey::new("old-key")),
    );
    let b = bed_with(config);
    // docs/protocol/decisions.md §13 (revised): a platform still signing with
    // the previous key gets its answer signed with that key, which it can check.
    let q = signed_query("old-key", BODY, b.now_ms(), "rot-1");
    let resp = b.edge.handle_basic(&q, BODY).await;
    assert_eq!(resp.result_code, ResultCode::Success);
    assert!(verify_body_sign("old-key", &resp.body, &resp.body_sign));
    assert!(!verify_body_sign(KEY, &resp.body, &resp.body_sign));
    // A request on the current key is answered with the current key.
    let q = signed_query(KEY, BODY, b.now_ms(), "rot-2");
    assert_eq!(b.call(&q, BODY).await.result_code, ResultCode::Success);
}

#[tokio::test]
async fn signature_over_the_raw_body_is_accepted_for_nested_bodies() {
    let b = bed();
    let body = br#"{"activity":"changeInstanceCheck","instanceId":"i","productInfo":{"skuCode":"s", "productId":"p"}}"#;
    let sig = basic_signature(KEY, "raw-1", &b.now_ms().to_string(), body);
    let q = format!("signature={sig}&timestamp={}&nonce=raw-1", b.now_ms());
    assert_eq!(b.call(&q, body).await.result_code, ResultCode::Success);
}

/// Jackson, which KooGallery signs with, skips a UTF-8 byte-order mark
/// (docs/protocol/decisions.md §1), so the signature is over the body without it. Since the edge
/// parses once for the signature and the dispatch, such a body is served as KooGallery meant it;
/// before, it was verified and then refused as "not valid JSON".
#[tokio::test]
async fn a_body_with_a_byte_order_mark_is_verified_and_served() {
    let b = bed();
    let body = [b"\xEF\xBB\xBF".as_slice(), BODY].concat();
    let q = signed_query(KEY, &body, b.now_ms(), "bom-1");
    let r = b.call(&q, &body).await;
    assert_eq!(r.result_code, ResultCode::Success, "{}", r.result_msg);
    assert_eq!(b.calls(), 1);
}

/// Never answers: a callback stuck behind a slow store or a cold dependency.
struct Stuck;

#[async_trait]
impl Dispatcher for Stuck {
    async fn dispatch(
        &self,
        _callback: &'static Registration,
        _body: &Value,
        _key: koogallery::security::KeyUsed,
    ) -> Reply {
        std::future::pending::<()>().await;
        Reply::success()
    }
}

/// A callback that does not answer within the dispatch deadline gets a signed,
/// retryable `000005` from the edge, inside KooGallery's 5 s, never the gateway's unsigned 5xx:
/// one that writes (newInstance, its own task) and one that only reads (queryInstance, the
/// request's task) alike.
#[tokio::test(start_paused = true)]
async fn a_callback_past_the_deadline_gets_a_signed_retryable_answer() {
    let config = Config::with_keys(KEY, "kit");
    for (n, body) in [BODY, QUERY_BODY].into_iter().enumerate() {
        let started = tokio::time::Instant::now();
        let resp = answered_by(Arc::new(Stuck), body, &format!("slow-{n}")).await;
        assert_eq!(resp.result_code, ResultCode::InternalError, "body {n}");
        assert!(
            verify_body_sign(KEY, &resp.body, &resp.body_sign),
            "body {n}"
        );
        assert_eq!(
            started.elapsed(),
            config.settings.edge.dispatch_deadline,
            "body {n}: answered at the deadline"
        );
    }
    assert!(config.settings.edge.dispatch_deadline < std::time::Duration::from_secs(5));
}

/// Panics, as a callback with a bug would.
struct Panics;

#[async_trait]
impl Dispatcher for Panics {
    async fn dispatch(
        &self,
        _callback: &'static Registration,
        _body: &Value,
        _key: koogallery::security::KeyUsed,
    ) -> Reply {
        panic!("a callback with a bug")
    }
}

const QUERY_BODY: &[u8] = br#"{"activity":"queryInstance","instanceId":"b-1"}"#;

/// The edge's answer to `body`, signed with `nonce`, when its callbacks are `dispatcher`.
async fn answered_by(dispatcher: Arc<dyn Dispatcher>, body: &[u8], nonce: &str) -> EdgeResponse {
    let config = Config::with_keys(KEY, "kit");
    let clock = Arc::new(ManualClock::at(chrono::Utc::now()));
    let edge = Edge::new(
        &config.settings.edge,
        config.secrets.keys.clone(),
        Arc::new(MemoryStore::new()),
        clock.clone(),
        dispatcher,
    );
    let q = signed_query(KEY, body, clock.now().timestamp_millis(), nonce);
    edge.handle_basic(&q, body).await
}

/// A callback that panics, whether it writes (its own task) or only reads (the request's task),
/// gets KooGallery a signed, retryable `000005`: never a dropped connection, never a 500.
#[tokio::test]
async fn a_callback_that_panics_gets_a_signed_retryable_answer() {
    for (n, body) in [BODY, QUERY_BODY].into_iter().enumerate() {
        let resp = answered_by(Arc::new(Panics), body, &format!("panic-{n}")).await;
        assert_eq!(resp.result_code, ResultCode::InternalError, "body {n}");
        assert!(
            verify_body_sign(KEY, &resp.body, &resp.body_sign),
            "body {n}"
        );
    }
}

/// A nonce store that answers after `delay`, or never (`None`): a store that stopped, reached
/// through an SDK with no timeout of its own.
struct SlowNonces(Option<std::time::Duration>);

#[async_trait]
impl NonceStore for SlowNonces {
    async fn remember(
        &self,
        _nonce: &str,
        _now: chrono::DateTime<chrono::Utc>,
        _expires_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, koogallery::StoreError> {
        match self.0 {
            Some(delay) => tokio::time::sleep(delay).await,
            None => std::future::pending::<()>().await,
        }
        Ok(true)
    }
}

/// A callback that takes `delay`, then says it finished.
struct Slow {
    delay: std::time::Duration,
    finished: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl Dispatcher for Slow {
    async fn dispatch(
        &self,
        _callback: &'static Registration,
        _body: &Value,
        _key: koogallery::security::KeyUsed,
    ) -> Reply {
        tokio::time::sleep(self.delay).await;
        self.finished
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Reply::success()
    }
}

fn edge_over(nonces: Arc<dyn NonceStore>, dispatcher: Arc<dyn Dispatcher>) -> (Edge, String) {
    let config = Config::with_keys(KEY, "kit");
    let clock = Arc::new(ManualClock::at(chrono::Utc::now()));
    let q = signed_query(KEY, BODY, clock.now().timestamp_millis(), "slow-store-1");
    let edge = Edge::new(
        &config.settings.edge,
        config.secrets.keys.clone(),
        nonces,
        clock,
        dispatcher,
    );
    (edge, q)
}

/// The store stops answering (an outage): the nonce guard waits no longer than the deadline, and
/// KooGallery gets a signed, retryable 000005 in time instead of no answer at all.
#[tokio::test(start_paused = true)]
async fn a_nonce_store_that_stops_answering_gets_a_signed_retryable_answer_at_the_deadline() {
    let recorder = Arc::new(Recorder::default());
    let (edge, q) = edge_over(Arc::new(SlowNonces(None)), recorder.clone());
    let started = tokio::time::Instant::now();
    let resp = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        edge.handle_basic(&q, BODY),
    )
    .await
    .expect("answered, not left waiting on the store");
    assert_eq!(resp.result_code, ResultCode::InternalError);
    assert!(verify_body_sign(KEY, &resp.body, &resp.body_sign));
    assert_eq!(
        started.elapsed(),
        Config::with_keys(KEY, "kit")
            .settings
            .edge
            .dispatch_deadline
    );
    assert!(recorder.0.lock().unwrap().is_empty(), "nothing dispatched");
}

/// One deadline covers the nonce guard and the callback together: a slow store and a slow
/// callback still answer within KooGallery's 5 s.
#[tokio::test(start_paused = true)]
async fn the_deadline_counts_from_arrival_not_from_the_dispatch() {
    let deadline = Config::with_keys(KEY, "kit")
        .settings
        .edge
        .dispatch_deadline;
    let slow = Arc::new(Slow {
        delay: deadline * 3 / 4,
        finished: Default::default(),
    });
    let (edge, q) = edge_over(Arc::new(SlowNonces(Some(deadline * 3 / 4))), slow);
    let started = tokio::time::Instant::now();
    let resp = edge.handle_basic(&q, BODY).await;
    assert_eq!(resp.result_code, ResultCode::InternalError);
    assert_eq!(started.elapsed(), deadline, "answered at the deadline");
}

/// The deadline ends the wait, not the callback: a callback past it runs to its end (newInstance's
/// record and its job are never cut apart; KooGallery's retry finds the work done).
#[tokio::test(start_paused = true)]
async fn a_callback_past_the_deadline_still_runs_to_its_end() {
    let deadline = Config::with_keys(KEY, "kit")
        .settings
        .edge
        .dispatch_deadline;
    let slow = Arc::new(Slow {
        delay: deadline * 2,
        finished: Default::default(),
    });
    let (edge, q) = edge_over(Arc::new(MemoryStore::new()), slow.clone());
    let resp = edge.handle_basic(&q, BODY).await;
    assert_eq!(resp.result_code, ResultCode::InternalError);
    assert!(!slow.finished.load(std::sync::atomic::Ordering::SeqCst));
    tokio::time::sleep(deadline * 2).await;
    assert!(
        slow.finished.load(std::sync::atomic::Ordering::SeqCst),
        "the callback ran on after the answer"
    );
}

// ---- The Kit family (docs/protocol/callbacks.md §3.2, §9;
// docs/protocol/decisions.md §2, §13, §18) ----

const KIT: &str = "kit";
const KIT_BODY: &[u8] = br#"{"instanceId":"i-1","orderId":"CS1","tenantId":"t-1","tenantCode":"c","name":"n","domainName":"https://idaas.example.com","flag":1,"testFlag":0,"timeStamp":"20240101120000000"}"#;

/// Kit headers signed with `key` (hex, upper-case as the pages' examples).
fn kit_headers(key: &str, body: &[u8], ts: &str, nonce: &str) -> http::HeaderMap {
    let payload = canonical_payload(body).unwrap();
    let sign =
        koogallery::security::kit_signature(key, nonce, ts, payload.as_bytes()).to_uppercase();
    let mut h = http::HeaderMap::new();
    h.insert("x-sign", sign.parse().unwrap());
    h.insert("x-timestamp", ts.parse().unwrap());
    h.insert("x-nonce", nonce.parse().unwrap());
    h
}

impl Bed {
    async fn kit_call(&self, name: &str, headers: &http::HeaderMap, body: &[u8]) -> Reply {
        self.kit_call_signed(name, headers, body, KIT).await
    }

    async fn kit_call_signed(
        &self,
        name: &str,
        headers: &http::HeaderMap,
        body: &[u8],
        answer_key: &str,
    ) -> Reply {
        let path = format!("/stage/produce/produceAPI/v2/{name}");
        let resp = self
            .edge
            .handle(Inbound {
                method: &http::Method::POST,
                path: &path,
                query: "",
                headers,
                body,
            })
            .await;
        assert!(
            verify_body_sign(answer_key, &resp.body, &resp.body_sign),
            "a Kit answer is signed with the Kit key that verified it"
        );
        serde_json::from_slice(&resp.body).unwrap()
    }
}

#[tokio::test]
async fn a_kit_call_signed_with_the_kit_key_reaches_its_callback_and_is_answered_with_that_key() {
    let b = bed();
    let ts = b.now_ms().to_string();
    let r = b
        .kit_call(
            "tenantSync",
            &kit_headers(KIT, KIT_BODY, &ts, "k-1"),
            KIT_BODY,
        )
        .await;
    assert_eq!(r.result_code, ResultCode::Success, "{r:?}");
    let calls = b.recorder.0.lock().unwrap();
    assert_eq!(calls[0].0, "tenantSync");
    assert_eq!(calls[0].1["tenantId"], "t-1");
}

#[tokio::test]
async fn kit_checks_come_in_the_samples_order_with_its_codes() {
    let b = bed();
    let now = b.now_ms();
    let good = kit_headers(KIT, KIT_BODY, &now.to_string(), "k-order");
    let without = |name: &str| {
        let mut h = good.clone();
        h.remove(name);
        h
    };
    let code = |r: Reply| r.result_code;
    // Missing or stale timestamp, missing nonce: 000002. Missing or wrong x-sign: 000001.
    assert_eq!(
        code(
            b.kit_call("tenantSync", &without("x-timestamp"), KIT_BODY)
                .await
        ),
        ResultCode::InvalidParameter
    );
    let stale = kit_headers(KIT, KIT_BODY, &(now - 61_000).to_string(), "k-stale");
    assert_eq!(
        code(b.kit_call("tenantSync", &stale, KIT_BODY).await),
        ResultCode::InvalidParameter
    );
    assert_eq!(
        code(
            b.kit_call("tenantSync", &without("x-nonce"), KIT_BODY)
                .await
        ),
        ResultCode::InvalidParameter
    );
    // Without x-sign but with a stale timestamp: the timestamp is named first (§3.2's order).
    let mut stale_unsigned = stale.clone();
    stale_unsigned.remove("x-sign");
    let r = b.kit_call("tenantSync", &stale_unsigned, KIT_BODY).await;
    assert!(r.result_msg.contains("x-timestamp"), "{r:?}");
    let r = b.kit_call("tenantSync", &without("x-sign"), KIT_BODY).await;
    assert_eq!(r.result_code, ResultCode::AuthenticationFailed);
    assert!(r.result_msg.contains("x-sign"), "{r:?}");
    let tampered = br#"{"instanceId":"i-1","orderId":"CS1","tenantId":"t-2","tenantCode":"c","name":"n","domainName":"https://idaas.example.com","flag":1,"testFlag":0,"timeStamp":"20240101120000000"}"#;
    assert_eq!(
        code(b.kit_call("tenantSync", &good, tampered).await),
        ResultCode::AuthenticationFailed
    );
    assert_eq!(b.calls(), 0, "nothing refused reaches a callback");
    // The good one, then its replay.
    assert_eq!(
        code(b.kit_call("tenantSync", &good, KIT_BODY).await),
        ResultCode::Success
    );
    let replay = b.kit_call("tenantSync", &good, KIT_BODY).await;
    assert_eq!(replay.result_code, ResultCode::AuthenticationFailed);
    assert!(replay.result_msg.contains("replay"), "{replay:?}");
    assert_eq!(b.calls(), 1);
}

#[tokio::test]
async fn the_basic_key_is_refused_on_kit_routes_and_the_kit_key_on_basic_ones() {
    let b = bed();
    let ts = b.now_ms();
    let basic_signed = kit_headers(KEY, KIT_BODY, &ts.to_string(), "k-cross-1");
    let r = b.kit_call("tenantSync", &basic_signed, KIT_BODY).await;
    assert_eq!(r.result_code, ResultCode::AuthenticationFailed);
    let q = signed_query(KIT, BODY, ts, "k-cross-2");
    assert_eq!(
        b.call(&q, BODY).await.result_code,
        ResultCode::AuthenticationFailed
    );
    assert_eq!(b.calls(), 0);
}

#[tokio::test]
async fn each_family_has_its_own_nonce_namespace() {
    let b = bed();
    let ts = b.now_ms();
    let q = signed_query(KEY, BODY, ts, "shared-nonce");
    assert_eq!(b.call(&q, BODY).await.result_code, ResultCode::Success);
    let h = kit_headers(KIT, KIT_BODY, &ts.to_string(), "shared-nonce");
    assert_eq!(
        b.kit_call("tenantSync", &h, KIT_BODY).await.result_code,
        ResultCode::Success
    );
    assert_eq!(b.calls(), 2);
}

#[tokio::test]
async fn the_kit_body_limit_is_its_own_and_larger_than_the_basic_one() {
    let b = bed();
    let ts = b.now_ms();
    // A 3 MiB authSync (far over the basic limit, under the Kit one) is verified and dispatched.
    let users: Vec<Value> = (0..6000)
        .map(|i| serde_json::json!({"userName": format!("user{i:05}"), "name": "张三".repeat(60), "orgCode": "10000", "role": "user", "enable": "true"}))
        .collect();
    let big = serde_json::to_vec(&serde_json::json!({"tenantId":"t","appId":"a","userList":users,"flag":1,"testFlag":0,"timeStamp":"x"})).unwrap();
    assert!(
        big.len() > 2 * 1024 * 1024 && big.len() < 4 * 1024 * 1024,
        "{}",
        big.len()
    );
    let h = kit_headers(KIT, &big, &ts.to_string(), "k-big");
    assert_eq!(
        b.kit_call("authSync", &h, &big).await.result_code,
        ResultCode::Success
    );
    // The same size on the basic route is refused before anything else.
    let q = signed_query(KEY, &big, ts, "b-big");
    let r = b.call(&q, &big).await;
    assert_eq!(r.result_code, ResultCode::InvalidParameter);
    assert!(r.result_msg.contains("exceeds"), "{r:?}");
    // Over the Kit limit: refused, signed with the Kit key.
    let huge = vec![b' '; koogallery::config::EdgeSettings::default().kit_max_body_bytes + 1];
    let r = b
        .kit_call(
            "authSync",
            &kit_headers(KIT, b"{}", &ts.to_string(), "k-huge"),
            &huge,
        )
        .await;
    assert_eq!(r.result_code, ResultCode::InvalidParameter);
}

#[tokio::test]
async fn unknown_kit_names_and_other_methods_are_refused_clearly_and_signed() {
    let b = bed();
    let ts = b.now_ms().to_string();
    let h = kit_headers(KIT, KIT_BODY, &ts, "k-unknown");
    let r = b.kit_call("queryInstance", &h, KIT_BODY).await;
    assert_eq!(r.result_code, ResultCode::InvalidParameter);
    assert!(r.result_msg.contains("unknown Kit interface"), "{r:?}");
    for (method, path, needle) in [
        (
            http::Method::GET,
            "/produce/produceAPI/tenantSync",
            "takes POST",
        ),
        (http::Method::PUT, "/produce", "takes POST"),
    ] {
        let resp = b
            .edge
            .handle(Inbound {
                method: &method,
                path,
                query: "",
                headers: &http::HeaderMap::new(),
                body: b"",
            })
            .await;
        assert!(verify_body_sign(KEY, &resp.body, &resp.body_sign));
        let r: Reply = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(r.result_code, ResultCode::InvalidParameter);
        assert!(r.result_msg.contains(needle), "{r:?}");
    }
    assert_eq!(b.calls(), 0);
}

#[tokio::test]
async fn a_kit_call_verified_with_the_previous_kit_key_is_answered_with_it() {
    let mut config = Config::with_keys(KEY, KIT);
    config.secrets.keys.kit = koogallery::security::KeyRing::new(
        koogallery::security::SecretKey::new("kit-new"),
        Some(koogallery::security::SecretKey::new(KIT)),
    );
    let b = bed_with(config);
    let h = kit_headers(KIT, KIT_BODY, &b.now_ms().to_string(), "k-prev");
    let r = b.kit_call_signed("tenantSync", &h, KIT_BODY, KIT).await;
    assert_eq!(r.result_code, ResultCode::Success);
}

/// The V1 family (docs/protocol/callbacks.md §3.6, §11; docs/protocol/decisions.md §20).
mod v1 {
    use koogallery::{protocol::time::format_17, security::v1_auth_token};

    use super::*;

    /// A V1 GET query with `params` (unencoded), its `timeStamp` `at`, signed with `key`.
    fn v1_query(key: &str, params: &[(&str, &str)], at: chrono::DateTime<chrono::Utc>) -> String {
        let ts = format_17(at);
        let mut all: Vec<(&str, &str)> = params.to_vec();
        all.push(("timeStamp", &ts));
        let token = v1_auth_token(key, &ts, &all);
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &all {
            q.append_pair(k, v);
        }
        q.append_pair("authToken", &token);
        q.finish()
    }

    impl Bed {
        async fn v1(&self, query: &str, key: &str) -> Reply {
            let resp = self
                .edge
                .handle(Inbound {
                    method: &http::Method::GET,
                    path: "/produce",
                    query,
                    headers: &http::HeaderMap::new(),
                    body: b"",
                })
                .await;
            assert!(
                verify_body_sign(key, &resp.body, &resp.body_sign),
                "every V1 answer carries Body-Sign, errors included"
            );
            serde_json::from_slice(&resp.body).unwrap()
        }
    }

    const QUERY: &[(&str, &str)] = &[("activity", "queryInstance"), ("instanceId", "i-1,i-2")];

    #[tokio::test]
    async fn a_signed_v1_get_reaches_the_callback_of_its_concept() {
        let b = bed();
        let now = b.clock.now();
        let r = b.v1(&v1_query(KEY, QUERY, now), KEY).await;
        assert_eq!(r.result_code, ResultCode::Success, "{r:?}");
        let q = v1_query(
            KEY,
            &[
                ("activity", "expireInstance"),
                ("instanceId", "i-1"),
                ("orderId", "CS1"),
            ],
            now,
        );
        assert_eq!(b.v1(&q, KEY).await.result_code, ResultCode::Success);
        let calls = b.recorder.0.lock().unwrap();
        assert_eq!(calls[0].0, "queryInstance");
        assert_eq!(calls[0].1["instanceId"], "i-1,i-2");
        assert!(calls[0].1.get("v1").is_some(), "V1 marks its queryInstance");
        assert_eq!(calls[1].0, "updateInstanceStatus");
        assert_eq!(calls[1].1["status"], "FREEZE");
    }

    /// An `authToken` with its `+` sent unescaped (a space once decoded) still verifies
    /// (docs/protocol/decisions.md §20).
    #[tokio::test]
    async fn a_plus_sent_unescaped_still_verifies() {
        let b = bed();
        let mut now = b.clock.now();
        // Tokens holding a `+`, one of them at the start (a leading space once decoded, which a
        // trim would lose).
        let (mut inside, mut leading) = (None, None);
        while inside.is_none() || leading.is_none() {
            let q = v1_query(KEY, QUERY, now);
            if q.contains("authToken=%2B") {
                leading.get_or_insert(q);
            } else if q.contains("%2B") {
                inside.get_or_insert(q);
            }
            now += chrono::Duration::milliseconds(1);
        }
        for q in [inside.unwrap(), leading.unwrap()] {
            let q = q.replace("%2B", "+");
            assert_eq!(b.v1(&q, KEY).await.result_code, ResultCode::Success, "{q}");
        }
    }

    /// A captured V1 URL cannot be replayed: its token is remembered (V1 has no nonce).
    #[tokio::test]
    async fn a_replayed_v1_url_is_refused() {
        let b = bed();
        let q = v1_query(
            KEY,
            &[
                ("activity", "instanceStatus"),
                ("instanceId", "i-1"),
                ("instanceStatus", "FREEZE"),
            ],
            b.clock.now(),
        );
        assert_eq!(b.v1(&q, KEY).await.result_code, ResultCode::Success);
        let again = b.v1(&q, KEY).await;
        assert_eq!(
            again.result_code,
            ResultCode::AuthenticationFailed,
            "{again:?}"
        );
        assert_eq!(b.calls(), 1);
    }

    #[tokio::test]
    async fn wrong_tampered_stale_or_missing_tokens_are_000001_and_signed() {
        let b = bed();
        let now = b.clock.now();
        let good = v1_query(KEY, QUERY, now);
        let cases = [
            ("wrong key", v1_query("another-key", QUERY, now)),
            ("tampered", good.replace("i-2", "i-3")),
            (
                "stale",
                v1_query(KEY, QUERY, now - chrono::Duration::minutes(16)),
            ),
            (
                "future",
                v1_query(KEY, QUERY, now + chrono::Duration::minutes(16)),
            ),
            (
                "no token",
                good.split("&authToken").next().unwrap().to_owned(),
            ),
            (
                "no timeStamp",
                "activity=queryInstance&instanceId=i-1&authToken=abc".to_owned(),
            ),
        ];
        for (what, q) in cases {
            let r = b.v1(&q, KEY).await;
            assert_eq!(
                r.result_code,
                ResultCode::AuthenticationFailed,
                "{what}: {r:?}"
            );
        }
        assert_eq!(b.calls(), 0, "nothing reached a callback");
        // Within the window both ways.
        let edge = v1_query(KEY, QUERY, now - chrono::Duration::minutes(14));
        assert_eq!(b.v1(&edge, KEY).await.result_code, ResultCode::Success);
    }

    #[tokio::test]
    async fn unknown_activities_and_bad_values_are_000002() {
        let b = bed();
        let now = b.clock.now();
        for (params, needle) in [
            (vec![("activity", "bogus")], "unknown activity"),
            (
                vec![
                    ("activity", "refreshInstance"),
                    ("instanceId", "i"),
                    ("orderAmount", "x"),
                ],
                "orderAmount",
            ),
            (
                vec![
                    ("activity", "newInstance"),
                    ("orderId", "CS1"),
                    ("businessId", "b"),
                    ("email", "not-encrypted"),
                ],
                "email",
            ),
        ] {
            let r = b.v1(&v1_query(KEY, &params, now), KEY).await;
            assert_eq!(r.result_code, ResultCode::InvalidParameter, "{r:?}");
            assert!(r.result_msg.contains(needle), "{r:?}");
        }
        assert_eq!(b.calls(), 0);
    }

    /// A separate V1 key verifies and signs V1 calls; the basic key no longer does
    /// (docs/protocol/decisions.md §20).
    #[tokio::test]
    async fn a_configured_v1_key_verifies_and_signs_v1_calls() {
        let mut config = Config::with_keys(KEY, "kit");
        config.secrets.keys.v1 = Some(KeyRing::new(
            koogallery::security::SecretKey::new("v1-key"),
            None,
        ));
        let b = bed_with(config);
        let now = b.clock.now();
        assert_eq!(
            b.v1(&v1_query("v1-key", QUERY, now), "v1-key")
                .await
                .result_code,
            ResultCode::Success
        );
        assert_eq!(
            b.v1(&v1_query(KEY, QUERY, now), "v1-key").await.result_code,
            ResultCode::AuthenticationFailed
        );
    }

    /// The V1 Kit path: `authToken` header over the body's top-level fields, `timeStamp` GMT+8.
    #[tokio::test]
    async fn a_v1_kit_call_is_verified_by_its_header_and_routed_to_the_kit_callback() {
        let b = bed();
        let gmt8 = b.clock.now() + chrono::Duration::hours(8);
        let ts = format_17(gmt8);
        let body = serde_json::json!({"instanceId":"i-1","tenantId":"t-1","tenantCode":"c","name":"n","domainName":"https://d.example.com","flag":"1","timeStamp":ts});
        let raw = serde_json::to_vec(&body).unwrap();
        let params = koogallery::protocol::v1::V1Params::from_body(body.as_object().unwrap());
        let token = v1_auth_token(KEY, &ts, &params.pairs());
        let call = |token: String| {
            let mut headers = http::HeaderMap::new();
            headers.insert("authToken", token.parse().unwrap());
            headers
        };
        for (token, code) in [
            (token.clone(), ResultCode::Success),
            (
                v1_auth_token("other", &ts, &params.pairs()),
                ResultCode::AuthenticationFailed,
            ),
        ] {
            let resp = b
                .edge
                .handle(Inbound {
                    method: &http::Method::POST,
                    path: "/produce/produceAPI/tenantSync",
                    query: "",
                    headers: &call(token),
                    body: &raw,
                })
                .await;
            assert!(verify_body_sign(KEY, &resp.body, &resp.body_sign));
            let r: Reply = serde_json::from_slice(&resp.body).unwrap();
            assert_eq!(r.result_code, code, "{r:?}");
        }
        assert_eq!(b.recorder.0.lock().unwrap()[0].0, "tenantSync");
    }

    /// A V2 body cannot claim V1's context: the edge removes it.
    #[tokio::test]
    async fn a_v2_body_cannot_carry_the_v1_context() {
        let b = bed();
        let body = br#"{"activity":"queryInstance","instanceId":"i-1","v1":{}}"#;
        let q = signed_query(KEY, body, b.now_ms(), "nonce-v1ctx");
        assert_eq!(b.call(&q, body).await.result_code, ResultCode::Success);
        assert!(b.recorder.0.lock().unwrap()[0].1.get("v1").is_none());
    }
}

/// Every answered call reaches the exchange log: a verified one with its callback, identifiers,
/// key and answer, personal fields redacted; a forged one with its result code and no key; a
/// path no family serves under that path.
#[tokio::test]
async fn every_call_is_kept_in_the_exchange_log_redacted() {
    use koogallery::exchange::{ExchangeFilter, ExchangeLog, ExchangeQuery, redact::REDACTED};
    let log = Arc::new(koogallery::testing::MemoryExchangeLog::new());
    let (recorder, task) = ExchangeRecorder::start(log.clone(), chrono::Duration::days(14));
    tokio::spawn(task.run());
    let Bed { edge, clock, .. } = bed();
    let edge = edge.with_exchange_log(recorder.clone());
    let body = br#"{"activity":"newInstance","orderId":"CS9","orderLineId":"CS9-000001","businessId":"b-9","mobilePhone":"13800000000","testFlag":"1"}"#;
    let now = clock.now().timestamp_millis();
    let signed = signed_query(KEY, body, now, "nonce-x1");
    edge.handle_basic(&signed, body).await;
    let forged = signed_query("someone-else", body, now, "nonce-x2");
    edge.handle_basic(&forged, body).await;
    let headers = http::HeaderMap::new();
    edge.handle(Inbound {
        method: &http::Method::DELETE,
        path: "/produce/elsewhere",
        query: "",
        headers: &headers,
        body: b"",
    })
    .await;
    recorder.flush().await;

    let newest_first = log
        .find(&ExchangeQuery::newest(ExchangeFilter::All, 10), clock.now())
        .await
        .unwrap();
    assert_eq!(newest_first.len(), 3, "{newest_first:#?}");
    let mut kept = newest_first.clone();
    kept.sort_by_key(|e| e.request.get("mobilePhone").is_none());
    let verified = kept
        .iter()
        .find(|e| e.key.is_some())
        .expect("the verified call");
    assert_eq!(verified.activity, "newInstance");
    assert_eq!(verified.family, "v2-basic");
    assert_eq!(verified.key.as_deref(), Some("current"));
    assert_eq!(verified.order_id.as_deref(), Some("CS9"));
    assert_eq!(
        verified.instance_id.as_deref(),
        Some("i-1"),
        "the issued ID"
    );
    assert_eq!(verified.result_code.as_deref(), Some("000000"));
    assert!(verified.test);
    assert_eq!(verified.request["mobilePhone"], REDACTED);
    assert_eq!(verified.request["orderId"], "CS9");
    assert_eq!(verified.response["instanceId"], "i-1");

    let forged = kept
        .iter()
        .find(|e| e.key.is_none() && e.family == "v2-basic")
        .expect("the forged call");
    assert_eq!(forged.result_code.as_deref(), Some("000001"), "{forged:?}");
    assert!(
        forged.response["resultMsg"]
            .as_str()
            .unwrap()
            .contains("signature")
    );
    assert_eq!(forged.request["mobilePhone"], REDACTED, "kept, redacted");

    let unrouted = kept
        .iter()
        .find(|e| e.family == "-")
        .expect("the unrouted call");
    assert_eq!(unrouted.activity, "/produce/elsewhere");
    assert_eq!(unrouted.result_code.as_deref(), Some("000002"));
}
