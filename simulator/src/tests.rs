//! Tests of the client side against a bare HTTP/1.1 responder on a local TCP socket (no web
//! framework): the request on the wire, answer checks, error reporting, the lifecycle's flow, and
//! the report table.
//!
//! The responder plays the vendor, so it signs and verifies with the service's own `koogallery`
//! security code: the simulator's KooGallery side (`crate::platform`) must agree with it without
//! sharing a line (docs/protocol/callbacks.md §3.1, §3.3, §3.4).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use koogallery::ResultCode;
use koogallery::security::credential_cipher::{EncryptType, encrypt_credential};
use koogallery::security::{KeyRing, SecretKey, body_sign_header, verify_basic};
use koogallery::{protocol::Reply, protocol::v2_basic::Activity};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::lifecycle::{body, check_instance_info, fmt_elapsed};
use crate::*;

const KEY: &str = "TestAccessKey-0123456789abcdef";

// ---- a bare HTTP responder ---------------------------------------------------------------------

/// One request as received.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Received {
    fn param(&self, name: &str) -> &str {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// What to answer: status, body bytes, `Body-Sign` value (if any).
struct Response {
    status: u16,
    body: Vec<u8>,
    body_sign: Option<String>,
}

impl Response {
    /// HTTP 200 with the reply and a valid `Body-Sign` under `key`.
    fn signed(key: &str, reply: &Reply) -> Self {
        let body = reply.to_bytes();
        Self {
            status: 200,
            body_sign: Some(body_sign_header(key, &body)),
            body,
        }
    }
}

type Handler = Arc<dyn Fn(&Received) -> Response + Send + Sync>;

/// Serves `handler` on 127.0.0.1 (one request per connection); returns the URL and a log of
/// the requests received.
async fn serve(handler: Handler) -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&log);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (handler, seen) = (Arc::clone(&handler), Arc::clone(&seen));
            tokio::spawn(async move {
                let _ = answer_one(stream, &*handler, &seen).await;
            });
        }
    });
    (format!("http://{addr}/produce"), log)
}

async fn answer_one(
    mut stream: TcpStream,
    handler: &(dyn Fn(&Received) -> Response + Send + Sync),
    log: &Mutex<Vec<Received>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or("").split(' ');
    let method = request_line.next().unwrap_or("").to_owned();
    let target = request_line.next().unwrap_or("").to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let url = reqwest::Url::parse(&format!("http://x{target}")).unwrap();
    let received = Received {
        method,
        path: url.path().to_owned(),
        query: url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
        headers,
        body,
    };
    let response = handler(&received);
    log.lock().unwrap().push(received);
    let mut out = format!(
        "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        response.status,
        response.body.len()
    );
    if let Some(sign) = &response.body_sign {
        out.push_str(&format!("Body-Sign: {sign}\r\n"));
    }
    out.push_str("\r\n");
    stream.write_all(out.as_bytes()).await?;
    stream.write_all(&response.body).await?;
    stream.shutdown().await
}

fn fixed(response: impl Fn() -> Response + Send + Sync + 'static) -> Handler {
    Arc::new(move |_| response())
}

// ---- call ------------------------------------------------------------------------------------

#[tokio::test]
async fn call_sends_what_koogallery_sends_and_checks_body_sign() {
    let (url, log) = serve(fixed(|| {
        Response::signed(KEY, &Reply::success().with("instanceId", "i-1"))
    }))
    .await;
    let sim = Simulator::new(&url, KEY).unwrap();
    let body = json!({"activity":"changeInstanceCheck","instanceId":"i-1",
                      "productInfo":{"skuCode":"s","productId":"p","linearValue":2}});
    let answer = sim.call(&body).await.unwrap();
    assert_eq!(answer.http_status, 200);
    assert!(answer.body_sign_valid);
    assert_eq!(answer.reply.result_code, ResultCode::Success);
    assert_eq!(answer.reply.field::<String>("instanceId").unwrap(), "i-1");
    assert_eq!(
        answer.raw,
        Reply::success().with("instanceId", "i-1").to_bytes()
    );
    assert!(!answer.is_slow());

    let req = log.lock().unwrap()[0].clone();
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/produce");
    let names: Vec<&str> = req.query.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["signature", "timestamp", "nonce"]);
    assert_eq!(req.headers["accept"], "application/json");
    assert_eq!(req.headers["content-type"], "application/json;charset=utf8");
    assert_eq!(serde_json::from_slice::<Value>(&req.body).unwrap(), body);
    let ring = KeyRing::new(SecretKey::new(KEY), None);
    verify_basic(
        &ring,
        req.param("nonce"),
        req.param("timestamp"),
        req.param("signature"),
        &req.body,
    )
    .unwrap();
    assert_eq!(req.param("nonce").len(), 32);
    let ts: i64 = req.param("timestamp").parse().unwrap();
    assert!((chrono::Utc::now().timestamp_millis() - ts).abs() < 10_000);
}

#[tokio::test]
async fn call_with_uses_the_given_nonce_timestamp_and_key() {
    let (url, log) = serve(fixed(|| Response::signed(KEY, &Reply::success()))).await;
    let sim = Simulator::new(&url, KEY).unwrap();
    let opts = CallOptions {
        nonce: Some("FixedNonce123".into()),
        timestamp_ms: Some(1_600_000_000_000),
        key: Some("forged".into()),
    };
    let answer = sim
        .call_with(&json!({"activity":"queryInstance","instanceId":"x"}), opts)
        .await
        .unwrap();
    // Body-Sign is checked with the access key, not the signing override.
    assert!(answer.body_sign_valid);
    let req = log.lock().unwrap()[0].clone();
    assert_eq!(req.param("nonce"), "FixedNonce123");
    assert_eq!(req.param("timestamp"), "1600000000000");
    let forged = KeyRing::new(SecretKey::new("forged"), None);
    let real = KeyRing::new(SecretKey::new(KEY), None);
    let args = (
        req.param("nonce"),
        req.param("timestamp"),
        req.param("signature"),
    );
    assert!(verify_basic(&forged, args.0, args.1, args.2, &req.body).is_ok());
    assert!(verify_basic(&real, args.0, args.1, args.2, &req.body).is_err());
}

#[tokio::test]
async fn missing_or_wrong_body_sign_is_reported_not_fatal() {
    for sign in [
        None,
        Some(body_sign_header(
            "another-key",
            &Reply::success().to_bytes(),
        )),
        Some("garbage".to_owned()),
    ] {
        let (url, _) = serve(fixed(move || Response {
            status: 200,
            body: Reply::success().to_bytes(),
            body_sign: sign.clone(),
        }))
        .await;
        let answer = Simulator::new(&url, KEY)
            .unwrap()
            .call(&json!({"activity":"queryInstance","instanceId":"x"}))
            .await
            .unwrap();
        assert!(!answer.body_sign_valid);
        assert_eq!(answer.reply.result_code, ResultCode::Success);
    }
}

#[tokio::test]
async fn non_json_and_non_reply_answers_are_bad_answers_naming_the_step() {
    let cases: Vec<(u16, &[u8], &str)> = vec![
        (502, b"<html>Bad Gateway</html>", "HTTP 502"),
        (200, b"", "(empty)"),
        (200, br#"{"resultCode":"999999"}"#, "unknown result code"),
        (200, br#"{"resultMsg":"no code"}"#, "resultCode"),
        (200, b"[1,2]", "HTTP 200"),
    ];
    for (status, body, expect) in cases {
        let body = body.to_vec();
        let (url, _) = serve(fixed(move || Response {
            status,
            body: body.clone(),
            body_sign: None,
        }))
        .await;
        let err = Simulator::new(&url, KEY)
            .unwrap()
            .call(&json!({"activity":"releaseInstance","instanceId":"x"}))
            .await
            .unwrap_err();
        let SimError::BadAnswer { step, detail } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(step, "releaseInstance");
        assert!(detail.contains(expect), "{detail}");
    }
}

#[tokio::test]
async fn a_json_reply_with_another_status_is_an_answer() {
    let (url, _) = serve(fixed(|| Response {
        status: 500,
        body: Reply::code(ResultCode::InternalError).to_bytes(),
        body_sign: None,
    }))
    .await;
    let answer = Simulator::new(&url, KEY)
        .unwrap()
        .call(&json!({"activity":"queryInstance","instanceId":"x"}))
        .await
        .unwrap();
    assert_eq!(answer.http_status, 500);
    assert_eq!(answer.reply.result_code, ResultCode::InternalError);
}

/// An address where nothing listens, for the tests about a refused connection: a port the OS just
/// handed out, its listener dropped. Another process could take the port before the test connects
/// (a small race, on a fresh port from the ephemeral range); a listener kept open would accept the
/// connection, which is not what these tests are about.
fn refused_addr() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test]
async fn connection_refused_is_an_http_error_naming_the_step() {
    let addr = refused_addr();
    let sim = Simulator::new(&format!("http://{addr}/produce"), KEY).unwrap();
    let err = sim
        .call(&json!({"activity":"queryInstance","instanceId":"x"}))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SimError::Http(step, _) if step == "queryInstance"),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.starts_with("queryInstance: HTTP request failed"),
        "{msg}"
    );
    assert!(!msg.contains("signature="), "{msg}");
}

/// A body that is not a JSON object is refused before anything is sent: a responder that would
/// answer (and log) any request receives none. A sent request would have waited for the answer,
/// so the log is complete once the call has returned.
#[tokio::test]
async fn non_object_body_is_refused_before_sending() {
    let (url, log) = serve(fixed(|| Response::signed(KEY, &Reply::success()))).await;
    let sim = Simulator::new(&url, KEY).unwrap();
    let err = sim.call(&json!(["activity"])).await.unwrap_err();
    assert!(matches!(err, SimError::InvalidBody(_)), "{err:?}");
    assert!(log.lock().unwrap().is_empty(), "nothing was sent");
}

#[test]
fn new_validates_url_and_key_and_hides_the_key() {
    for bad in ["", "not a url", "ftp://host/x", "127.0.0.1:8080/produce"] {
        assert!(
            matches!(Simulator::new(bad, KEY), Err(SimError::InvalidUrl { .. })),
            "{bad}"
        );
    }
    assert!(matches!(
        Simulator::new(DEFAULT_URL, ""),
        Err(SimError::EmptyKey)
    ));
    let sim = Simulator::new("https://vendor.example/produce", KEY).unwrap();
    assert_eq!(sim.url().as_str(), "https://vendor.example/produce");
    assert!(!format!("{sim:?}").contains(KEY));
    let opts = CallOptions {
        key: Some("secret-forgery".into()),
        ..CallOptions::default()
    };
    assert!(!format!("{opts:?}").contains("secret-forgery"));
}

// ---- a miniature vendor, for the lifecycle
// -------------------------------------------------------

#[derive(Default)]
struct Vendor {
    nonces: HashSet<String>,
    /// orderLineId → instanceId.
    lines: HashMap<String, String>,
    /// instanceId → (polls so far, released).
    instances: HashMap<String, (u32, bool)>,
    /// Misbehaviours.
    new_id_on_retry: bool,
    no_body_sign: bool,
    stay_processing: bool,
    encrypt: bool,
}

impl Vendor {
    fn answer(&mut self, req: &Received) -> Reply {
        let ts: i64 = req.param("timestamp").parse().unwrap_or(0);
        if (chrono::Utc::now().timestamp_millis() - ts).abs() > 60_000 {
            return Reply::code(ResultCode::InvalidParameter);
        }
        let ring = KeyRing::new(SecretKey::new(KEY), None);
        let (n, t, s) = (
            req.param("nonce"),
            req.param("timestamp"),
            req.param("signature"),
        );
        if verify_basic(&ring, n, t, s, &req.body).is_err() || !self.nonces.insert(n.to_owned()) {
            return Reply::code(ResultCode::AuthenticationFailed);
        }
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        let text = |k: &str| body[k].as_str().unwrap_or_default().to_owned();
        let id = text("instanceId");
        let live = self
            .instances
            .get(&id)
            .is_some_and(|(_, released)| !released);
        // Debug calls answer 000000 whatever the instance's state, as docs/protocol/decisions.md §7
        // says.
        let debug = text("testFlag") == "1";
        let not_found = if debug {
            Reply::success()
        } else {
            Reply::code(ResultCode::InstanceNotFound)
        };
        match Activity::parse(&text("activity")) {
            Some(Activity::NewInstance) => {
                let business = text("businessId");
                let mut instance = self
                    .lines
                    .entry(text("orderLineId"))
                    .or_insert_with(|| business.clone())
                    .clone();
                if self.new_id_on_retry {
                    instance = business;
                }
                self.instances.entry(instance.clone()).or_default();
                Reply::code(ResultCode::Processing).with("instanceId", instance)
            }
            Some(Activity::QueryInstance) if live || debug => {
                if let Some((polls, false)) = self.instances.get_mut(&id) {
                    *polls += 1;
                    if *polls < 3 || self.stay_processing {
                        return Reply::code(ResultCode::Processing);
                    }
                }
                let (user, password) = if self.encrypt {
                    (
                        encrypt_credential(KEY, "admin", EncryptType::Aes128).unwrap(),
                        encrypt_credential(KEY, "Pa55word", EncryptType::Aes128).unwrap(),
                    )
                } else {
                    ("admin".to_owned(), "Pa55word".to_owned())
                };
                let mut reply = Reply::success();
                if self.encrypt {
                    reply = reply.with("encryptType", "2");
                }
                reply.with(
                    "info",
                    json!([{"instanceId": id, "appInfo": {"frontEndUrl": "https://app.example/t/1",
                        "userName": user, "password": password}}]),
                )
            }
            Some(Activity::ReleaseInstance) if self.instances.contains_key(&id) => {
                self.instances.get_mut(&id).unwrap().1 = true;
                Reply::success()
            }
            Some(
                Activity::RefreshInstance
                | Activity::UpdateInstanceStatus
                | Activity::UpgradeInstance
                | Activity::ChangeInstanceCheck,
            ) if live => Reply::success(),
            Some(_) => not_found,
            None => Reply::code(ResultCode::InvalidParameter),
        }
    }
}

async fn vendor(setup: impl FnOnce(&mut Vendor)) -> String {
    let mut v = Vendor::default();
    setup(&mut v);
    let v = Arc::new(Mutex::new(v));
    let (url, _) = serve(Arc::new(move |req: &Received| {
        let mut v = v.lock().unwrap();
        let reply = v.answer(req);
        let mut response = Response::signed(KEY, &reply);
        if v.no_body_sign {
            response.body_sign = None;
        }
        response
    }))
    .await;
    url
}

fn quick(test_flag: bool) -> LifecycleOptions {
    LifecycleOptions {
        test_flag,
        poll_interval: Duration::from_millis(5),
        poll_timeout: Duration::from_secs(5),
        ..LifecycleOptions::default()
    }
}

const STEPS: [&str; 19] = [
    "newInstance",
    "newInstance retry (new businessId)",
    "queryInstance until ready",
    "refreshInstance RENEWAL",
    "refreshInstance RENEWAL (repeat)",
    "updateInstanceStatus FREEZE",
    "updateInstanceStatus FREEZE (repeat)",
    "updateInstanceStatus UNFREEZE",
    "upgradeInstance",
    "changeInstanceCheck",
    "queryInstance (still there)",
    "queryInstance (nonce first use)",
    "replayed request (same nonce)",
    "forged signature (wrong key)",
    "stale timestamp (now - 10 min)",
    "queryInstance (unknown instanceId)",
    "releaseInstance",
    "releaseInstance (repeat)",
    "queryInstance (after release)",
];

#[tokio::test]
async fn lifecycle_passes_against_a_well_behaved_vendor() {
    for (test_flag, encrypt) in [(false, false), (true, true)] {
        let url = vendor(|v| v.encrypt = encrypt).await;
        let sim = Simulator::new(&url, KEY).unwrap();
        let opts = quick(test_flag);
        let report = sim.run_lifecycle(&opts).await.unwrap();
        assert!(report.passed(), "{report}");
        let names: Vec<&str> = report.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, STEPS);
        assert!(!report.instance_id.is_empty());
        let poll = &report.steps[2];
        assert!(poll.note.contains("3 poll(s)"), "{}", poll.note);
        assert!(poll.note.contains("frontEndUrl https://app.example/t/1"));
        if encrypt {
            assert!(
                poll.note.contains("userName and password decrypted"),
                "{}",
                poll.note
            );
        }
        assert!(!poll.note.contains("Pa55word"));
        let codes: Vec<&str> = report
            .steps
            .iter()
            .map(|s| s.result_code.unwrap().as_str())
            .collect();
        // A real unknown or released instance is 000003; a debug one 000000
        // (docs/protocol/decisions.md §7).
        let gone = if test_flag { "000000" } else { "000003" };
        assert_eq!(
            codes[11..],
            [
                "000000", "000001", "000001", "000002", gone, "000000", "000000", gone
            ]
        );
        let text = report.to_string();
        assert!(text.ends_with("19/19 steps passed; PASSED"), "{text}");
    }
}

#[tokio::test]
async fn lifecycle_bodies_carry_test_flag_when_asked() {
    let (url, log) = serve(fixed(|| {
        Response::signed(
            KEY,
            &Reply::code(ResultCode::Processing).with("instanceId", "i"),
        )
    }))
    .await;
    let sim = Simulator::new(&url, KEY).unwrap();
    let mut opts = quick(true);
    opts.order_id = "CSFIXED".into();
    // The fake answers 000004 to everything: polling times out, after two newInstance calls.
    opts.poll_timeout = Duration::from_millis(50);
    let (report, outcome) = sim.run_lifecycle_report(&opts).await;
    assert!(
        matches!(outcome, Err(SimError::Timeout { ref step, .. }) if step == "queryInstance until ready")
    );
    assert_eq!(report.steps.len(), 3);
    let log = log.lock().unwrap();
    for req in log.iter() {
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body["testFlag"], "1", "{body}");
    }
    let first: Value = serde_json::from_slice(&log[0].body).unwrap();
    let second: Value = serde_json::from_slice(&log[1].body).unwrap();
    assert_eq!(first["orderId"], "CSFIXED");
    assert_eq!(first["orderLineId"], "CSFIXED-000001");
    assert_ne!(first["businessId"], second["businessId"]);
    assert!(uuid::Uuid::parse_str(first["businessId"].as_str().unwrap()).is_ok());
}

#[tokio::test]
async fn lifecycle_stops_at_the_first_failed_step() {
    // A retry that gets a new instanceId.
    let sim = Simulator::new(&vendor(|v| v.new_id_on_retry = true).await, KEY).unwrap();
    let (report, outcome) = sim.run_lifecycle_report(&quick(false)).await;
    let err = outcome.unwrap_err();
    assert!(
        matches!(&err, SimError::BadAnswer { step, .. } if step == "newInstance retry (new businessId)"),
        "{err}"
    );
    assert_eq!(report.steps.len(), 2);
    assert!(!report.passed());
    assert_eq!(report.failed_step().unwrap().name, STEPS[1]);
    assert!(report.to_string().contains("FAIL"));

    // No Body-Sign: the very first step fails.
    let sim = Simulator::new(&vendor(|v| v.no_body_sign = true).await, KEY).unwrap();
    let err = sim.run_lifecycle(&quick(false)).await.unwrap_err();
    assert!(
        err.to_string().starts_with("newInstance: Body-Sign"),
        "{err}"
    );

    // Never ready: a Timeout naming the poll step.
    let sim = Simulator::new(&vendor(|v| v.stay_processing = true).await, KEY).unwrap();
    let mut opts = quick(false);
    opts.poll_timeout = Duration::from_millis(100);
    let (report, outcome) = sim.run_lifecycle_report(&opts).await;
    assert!(matches!(outcome, Err(SimError::Timeout { .. })));
    let last = report.steps.last().unwrap();
    assert!(!last.ok);
    assert_eq!(last.result_code, Some(ResultCode::Processing));

    // A wrong access key on the simulator side: every answer is 000001.
    let sim = Simulator::new(&vendor(|_| {}).await, "wrong-key").unwrap();
    let err = sim.run_lifecycle(&quick(false)).await.unwrap_err();
    assert!(matches!(err, SimError::BadAnswer { .. }), "{err}");

    // Nothing listening.
    let addr = refused_addr();
    let sim = Simulator::new(&format!("http://{addr}/p"), KEY).unwrap();
    let (report, outcome) = sim.run_lifecycle_report(&quick(false)).await;
    assert!(matches!(outcome, Err(SimError::Http(ref step, _)) if step == "newInstance"));
    assert_eq!(report.steps.len(), 1);
    assert_eq!(report.steps[0].result_code, None);
}

#[tokio::test]
async fn invalid_lifecycle_options_are_errors() {
    let sim = Simulator::new(DEFAULT_URL, KEY).unwrap();
    let mut opts = quick(false);
    opts.order_id = " ".into();
    assert!(matches!(
        sim.run_lifecycle(&opts).await,
        Err(SimError::InvalidOptions(_))
    ));
}

// ---- pieces
// --------------------------------------------------------------------------------------

#[test]
fn lifecycle_defaults_and_order_ids() {
    let o = LifecycleOptions::default();
    assert_eq!(o.poll_timeout, Duration::from_secs(30));
    assert_eq!(o.poll_interval, Duration::from_millis(250));
    assert!(!o.test_flag);
    for id in [o.order_id, new_order_id()] {
        assert_eq!(id.len(), 17);
        assert!(id.starts_with("CS"));
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        );
    }
    assert_ne!(new_order_id(), new_order_id());
}

#[test]
fn bodies_put_activity_first_and_test_flag_last() {
    let b = body(
        Activity::UpdateInstanceStatus,
        &[("instanceId", json!("i")), ("status", json!("FREEZE"))],
        true,
    );
    assert_eq!(
        b.to_string(),
        r#"{"activity":"updateInstanceStatus","instanceId":"i","status":"FREEZE","testFlag":"1"}"#
    );
    let b = body(
        Activity::QueryInstance,
        &[("instanceId", json!("i"))],
        false,
    );
    assert_eq!(
        b.to_string(),
        r#"{"activity":"queryInstance","instanceId":"i"}"#
    );
}

fn answer_of(reply: Reply) -> Answer {
    let raw = reply.to_bytes();
    Answer {
        http_status: 200,
        reply,
        body_sign_valid: true,
        elapsed: Duration::from_millis(3),
        raw,
    }
}

#[test]
fn instance_info_checks() {
    let info = |v: Value| answer_of(Reply::success().with("info", v));
    let app = json!({"frontEndUrl":"https://a"});
    assert!(
        check_instance_info(&info(json!([{"instanceId":"i","appInfo":app}])), "i", KEY).is_ok()
    );
    let cases = [
        (answer_of(Reply::success()), "no info"),
        (info(json!([])), "empty"),
        (info(json!("x")), "malformed"),
        (
            info(json!([{"instanceId":"j","appInfo":app}])),
            "expected \"i\"",
        ),
        (info(json!([{"instanceId":"i"}])), "appInfo is missing"),
        (
            info(json!([{"instanceId":"i","appInfo":{"frontEndUrl":" "}}])),
            "frontEndUrl is empty",
        ),
    ];
    for (answer, expect) in cases {
        let err = check_instance_info(&answer, "i", KEY).unwrap_err();
        assert!(err.contains(expect), "{err} vs {expect}");
    }

    let enc = encrypt_credential(KEY, "admin", EncryptType::Aes256).unwrap();
    let creds = json!([{"instanceId":"i","appInfo":{"frontEndUrl":"https://a","userName":enc,"password":enc}}]);
    let with_type = |t: Value| {
        answer_of(
            Reply::success()
                .with("encryptType", t)
                .with("info", creds.clone()),
        )
    };
    let note = check_instance_info(&with_type(json!("1")), "i", KEY).unwrap();
    assert!(
        note.contains("encryptType 1: userName and password decrypted"),
        "{note}"
    );
    assert!(!note.contains("admin"), "{note}");
    // The wrong kind, the wrong key and an unknown encryptType fail cleanly.
    let err = check_instance_info(&with_type(json!("2")), "i", KEY).unwrap_err();
    assert!(err.contains("userName does not decrypt"), "{err}");
    assert!(check_instance_info(&with_type(json!("1")), "i", "other").is_err());
    let err = check_instance_info(&with_type(json!("3")), "i", KEY).unwrap_err();
    assert!(err.contains("encryptType \"3\""), "{err}");
    // Plain credentials are noted.
    let plain = answer_of(Reply::success().with(
        "info",
        json!([{"instanceId":"i","appInfo":{"frontEndUrl":"https://a","password":"p"}}]),
    ));
    assert!(
        check_instance_info(&plain, "i", KEY)
            .unwrap()
            .contains("plain text")
    );
}

fn step(name: &str, code: Option<ResultCode>, ms: u64, ok: bool, note: &str) -> Step {
    Step {
        name: name.to_owned(),
        activity: Activity::QueryInstance.to_string(),
        result_code: code,
        elapsed: Duration::from_millis(ms),
        ok,
        note: note.to_owned(),
    }
}

#[test]
fn report_table_lines_up_and_summarises() {
    let report = LifecycleReport {
        instance_id: "inst-1".into(),
        steps: vec![
            step(
                "newInstance",
                Some(ResultCode::Processing),
                12,
                true,
                "instanceId inst-1",
            ),
            step(
                "queryInstance until ready",
                Some(ResultCode::Success),
                6_250,
                true,
                "SLOW: answered in 5.100 s, KooGallery gives up after 5 s; 2 poll(s)",
            ),
            step(
                "releaseInstance",
                None,
                10_000,
                false,
                "releaseInstance: no answer\nwithin 10s",
            ),
        ],
    };
    let text = report.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    assert_eq!(lines[0], "instance inst-1");
    assert!(lines[1].starts_with("#  step "), "{}", lines[1]);
    // Columns line up: "activity" starts at the same offset in every row.
    let col = lines[1].find("activity").unwrap();
    for row in &lines[2..5] {
        assert!(row[col..].starts_with("queryInstance "), "{row}");
    }
    assert!(lines[2].contains("000004") && lines[2].contains("12 ms") && lines[2].contains(" ok "));
    assert!(
        lines[3].contains("6.250 s") && lines[3].contains(" SLOW "),
        "{}",
        lines[3]
    );
    assert!(
        lines[4].contains(" - ") && lines[4].contains(" FAIL "),
        "{}",
        lines[4]
    );
    // Notes stay on one line, in the table and in the summary.
    assert!(
        lines[4].ends_with("releaseInstance: no answer within 10s"),
        "{}",
        lines[4]
    );
    assert_eq!(
        lines[5],
        "2/3 steps passed, 1 slower than KooGallery's 5 s limit; FAILED at step \"releaseInstance\": releaseInstance: no answer within 10s"
    );
    assert!(!text.ends_with('\n'));
    assert!(report.steps[1].is_slow());
    assert!(!report.passed());

    let empty = LifecycleReport::default();
    assert_eq!(
        empty.to_string(),
        "instance (none)\n#  step  activity  code  time  status  note\n0/0 steps passed; nothing ran"
    );
    assert!(!empty.passed());
}

#[test]
fn elapsed_formatting() {
    assert_eq!(fmt_elapsed(Duration::from_micros(1500)), "1 ms");
    assert_eq!(fmt_elapsed(Duration::from_millis(999)), "999 ms");
    assert_eq!(fmt_elapsed(Duration::from_millis(1000)), "1.000 s");
    assert_eq!(fmt_elapsed(Duration::from_millis(12_345)), "12.345 s");
}
