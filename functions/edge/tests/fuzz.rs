//! A fuzz target on the edge (a property test): arbitrary query strings and bodies, signed and
//! unsigned, through the entry points both hosts call ([`Edge::handle_basic`],
//! [`Edge::handle_kit`]; on AWS through `edge::lambda::serve`, with arbitrary methods, paths and
//! headers), on a whole deployment in memory (every registered callback on the memory store and
//! queue). Signed requests carry structurally plausible bodies (real and unknown activities, the
//! protocol's fields with values of every type) signed with the test key, so they get past the
//! signature and reach the callbacks. Held for every request:
//!
//! - no panic; HTTP 200, JSON, a KooGallery result code, and a `Body-Sign` valid over the exact
//!   bytes sent (docs/protocol/callbacks.md §3.3, docs/protocol/decisions.md §3);
//! - a request not signed with the key (unsigned, wrongly signed, stale, replayed, a Kit path)
//!   answers `000001` or `000002`, reaches no callback, and leaves the store and the queue as they
//!   were;
//! - a request signed with the key is never refused as unauthenticated, and reaches the callback
//!   its activity names (exactly once) when its body names a registered one.
//!
//! `make test` runs a few hundred cases (`PROPTEST_CASES` sets how many); BENCHMARKS.md records a
//! run of 10⁶ in release, with its command.

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
};

use async_trait::async_trait;
use edge::{Dispatcher, Edge, EdgeResponse};
use koogallery::{
    ResultCode,
    callbacks::{Registration, registry::REGISTRY},
    clock::Clock,
    config::Config,
    protocol::Reply,
    security::{KeyUsed, basic_signature, canonical_payload, parse_body, verify_body_sign},
    testing::TestBed,
};
use proptest::{
    collection::vec,
    option,
    prelude::*,
    sample::select,
    test_runner::{Config as ProptestConfig, TestCaseError, TestRunner},
};
use serde_json::{Map, Value};

const KEY: &str = "fuzz-access-key";
const KIT_KEY: &str = "fuzz-kit-key";
/// Small, so that bodies over it are generated too.
const MAX_BODY: usize = 2048;
const WINDOW_MS: i64 = 60_000;

/// Cases per run: `PROPTEST_CASES`, or a number `make test` runs in a few seconds in debug.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// Counts what reaches the callbacks, then serves it with the test bed's dispatcher.
struct Counting {
    inner: Arc<dyn Dispatcher>,
    calls: AtomicUsize,
}

#[async_trait]
impl Dispatcher for Counting {
    async fn dispatch(&self, callback: &'static Registration, body: &Value, key: KeyUsed) -> Reply {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.dispatch(callback, body, key).await
    }
}

// ---- What a request is made of ----

const ACTIVITY_FIELDS: &[&str] = &[
    "orderId",
    "orderLineId",
    "businessId",
    "instanceId",
    "testFlag",
    "scene",
    "productId",
    "expireTime",
    "status",
    "instanceStatus",
    "productInfo",
    "skuCode",
    "linearValue",
    "memo",
    "customerId",
    "customerName",
    "userId",
    "userName",
    "mobilePhone",
    "email",
    "periodType",
    "periodNumber",
    "chargingMode",
    "trialFlag",
    "saasExtendParams",
    "amount",
    "timeStamp",
];

/// Values the callbacks treat specially: ids of the seeded instances and orders, times of both
/// lengths, enum names, numbers as text, JSON in a string, comma lists.
const TEXTS: &[&str] = &[
    "",
    " ",
    "0",
    "1",
    "-1",
    "1.5",
    "NaN",
    "1e400",
    "true",
    "null",
    "fz-active",
    "fz-prov",
    "fz-active,fz-prov",
    " fz-active , ,fz-prov,fz-none",
    ",,,",
    "O-fz-active",
    "O-fz-active-000001",
    "O-fz-prov",
    "O-fz-prov-000001",
    "CS1",
    "CS1-000001",
    "MOCKONDEMAND",
    "MOCKPERIODYEARNEW",
    "20991231235959",
    "20221124023618256",
    "99991231235959999",
    "00000000000000",
    "20250230120000",
    "FREEZE",
    "UNFREEZE",
    "NORMAL",
    "TRIAL_TO_FORMAL",
    "RENEWAL",
    "UNSUBSCRIBE_RENEWAL_PERIOD",
    "RENEWAL_CHANGE",
    "{}",
    "[]",
    r#"{"skuCode":"s","linearValue":"5"}"#,
    r#"[{"skuCode":"s"},{"linearValue":1e308}]"#,
];

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(TEXTS).prop_map(str::to_owned),
        2 => "[ -~]{0,24}",
        1 => ".{0,12}",
        1 => (1usize..400).prop_map(|n| "x".repeat(n)),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => text().prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
        1 => (-3i64..200).prop_map(Value::from),
        1 => any::<bool>().prop_map(Value::from),
        1 => Just(Value::Null),
    ]
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => select(ACTIVITY_FIELDS).prop_map(str::to_owned),
        1 => "[a-zA-Z]{1,10}",
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            vec((field_name(), inner), 0..4)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

fn activities() -> Vec<&'static str> {
    REGISTRY.iter().map(|r| r.route.name()).collect()
}

fn activity() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => select(activities()).prop_map(Value::from),
        1 => select(activities()).prop_map(|a| Value::from(format!(" {a}\t"))),
        1 => select(activities()).prop_map(|a| Value::from(a.to_uppercase())),
        1 => "[a-zA-Z]{0,16}".prop_map(Value::from),
        1 => leaf(),
    ]
}

const INSTANCES: &[&str] = &["fz-active", "fz-prov", "fz-b1", "fz-b2", "fz-none"];
const ORDERS: &[&str] = &["O-fz-active", "O-fz-prov", "CS1", "CS2", "MOCKONDEMAND"];
const EXPIRY: &[&str] = &[
    "20991231235959",
    "20301231000000",
    "20200101000000",
    "20301231000000123",
    "2030-12-31",
];

/// The parts of a well-formed call, from the seeded instances and orders (and those the case
/// creates: a newInstance's `businessId` becomes its instance ID).
#[derive(Debug, Clone)]
struct Parts {
    instance: &'static str,
    other: &'static str,
    order: &'static str,
    line: u8,
    test_flag: Option<Value>,
    expire: &'static str,
    scene: &'static str,
    status: &'static str,
    linear: Value,
}

fn parts() -> impl Strategy<Value = Parts> {
    (
        (select(INSTANCES), select(INSTANCES), select(ORDERS), 1u8..3),
        prop_oneof![
            6 => Just(None),
            3 => Just(Some(Value::from("0"))),
            1 => select(vec![Value::from("1"), Value::from(1), Value::from(true), Value::from(0)]).prop_map(Some),
        ],
        select(EXPIRY),
        select(vec!["TRIAL_TO_FORMAL", "RENEWAL", "UNSUBSCRIBE_RENEWAL_PERIOD", "RENEWAL_CHANGE", "OTHER"]),
        select(vec!["FREEZE", "UNFREEZE", "NORMAL", "DELETE"]),
        prop_oneof![Just(Value::from("5")), Just(Value::from(2.5)), leaf()],
    )
        .prop_map(|((instance, other, order, line), test_flag, expire, scene, status, linear)| Parts {
            instance,
            other,
            order,
            line,
            test_flag,
            expire,
            scene,
            status,
            linear,
        })
}

/// A well-formed body for `activity` (docs/protocol/callbacks.md §6).
fn well_formed(activity: &str, p: &Parts) -> Map<String, Value> {
    let line = format!("{}-00000{}", p.order, p.line);
    let mut m = Map::new();
    m.insert("activity".into(), activity.into());
    let mut put = |k: &str, v: Value| {
        m.insert(k.into(), v);
    };
    match activity {
        "newInstance" => {
            put("orderId", p.order.into());
            put("orderLineId", line.into());
            put("businessId", p.instance.into());
        }
        "orderNotify" => {
            put("orderId", p.order.into());
            put("orderLineId", line.into());
        }
        "refreshInstance" => {
            put("instanceId", p.instance.into());
            put("orderId", p.order.into());
            put("orderLineId", line.into());
            put("scene", p.scene.into());
            put("productId", "OFFI-1".into());
            put("expireTime", p.expire.into());
        }
        "updateInstanceStatus" => {
            put("instanceId", p.instance.into());
            put("status", p.status.into());
        }
        "releaseInstance" => {
            put("instanceId", p.instance.into());
            put("orderId", p.order.into());
        }
        "upgradeInstance" => {
            put("instanceId", p.instance.into());
            put("orderId", p.order.into());
            put("orderLineId", line.into());
        }
        "changeInstanceCheck" => {
            put("instanceId", p.instance.into());
            put(
                "productInfo",
                serde_json::json!([{"skuCode": "sku-2", "productId": "OFFI-2", "linearValue": p.linear}]),
            );
        }
        "queryInstance" => put("instanceId", format!("{},{}", p.instance, p.other).into()),
        _ => {}
    }
    if let Some(flag) = &p.test_flag {
        m.insert("testFlag".into(), flag.clone());
    }
    m
}

/// What is done to a well-formed body.
#[derive(Debug, Clone)]
enum Change {
    /// Drop the `n`th field.
    Drop(usize),
    /// Give the `n`th field another value, of any type.
    Replace(usize, Value),
    /// Add a field (or overwrite one by name).
    Add(String, Value),
}

/// A body as KooGallery might send it, or nearly: a well-formed call to a real activity, changed
/// a little or not at all, or fields of any kind around an activity of any kind.
fn plausible() -> impl Strategy<Value = Value> {
    let change = prop_oneof![
        any::<usize>().prop_map(Change::Drop),
        (any::<usize>(), value()).prop_map(|(i, v)| Change::Replace(i, v)),
        (field_name(), value()).prop_map(|(k, v)| Change::Add(k, v)),
    ];
    let called = (
        select(activities()),
        parts(),
        prop_oneof![2 => Just(vec![]), 1 => vec(change, 1..4)],
    )
        .prop_map(|(activity, parts, changes)| {
            let mut m = well_formed(activity, &parts);
            for c in changes {
                match c {
                    Change::Drop(i) if !m.is_empty() => {
                        let k = m.keys().nth(i % m.len()).cloned().unwrap_or_default();
                        m.remove(&k);
                    }
                    Change::Replace(i, v) if !m.is_empty() => {
                        let k = m.keys().nth(i % m.len()).cloned().unwrap_or_default();
                        m.insert(k, v);
                    }
                    Change::Add(k, v) => {
                        m.insert(k, v);
                    }
                    _ => {}
                }
            }
            Value::Object(m)
        });
    let anything = (
        option::weighted(0.95, activity()),
        vec((field_name(), value()), 0..8),
    )
        .prop_map(|(activity, fields)| {
            let mut body = Map::new();
            if let Some(a) = activity {
                body.insert("activity".into(), a);
            }
            for (k, v) in fields {
                body.insert(k, v);
            }
            Value::Object(body)
        });
    (
        prop_oneof![3 => called, 1 => anything],
        option::weighted(0.05, (1500usize..2500).prop_map(|n| "p".repeat(n))),
    )
        .prop_map(|(mut v, padding)| {
            if let (Some(p), Value::Object(m)) = (padding, &mut v) {
                m.insert("memo".into(), Value::from(p));
            }
            v
        })
}

#[derive(Debug, Clone)]
enum Body {
    Json {
        value: Value,
        pretty: bool,
        bom: bool,
    },
    /// A plausible body cut short and with one byte changed: JSON that nearly parses.
    Damaged {
        value: Value,
        cut: usize,
        flip: (usize, u8),
    },
    Bytes(Vec<u8>),
    Text(String),
}

impl Body {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Self::Json { value, pretty, bom } => {
                let text = if *pretty {
                    serde_json::to_vec_pretty(value)
                } else {
                    serde_json::to_vec(value)
                };
                let text = text.unwrap_or_default();
                if *bom {
                    [b"\xEF\xBB\xBF".as_slice(), &text].concat()
                } else {
                    text
                }
            }
            Self::Damaged { value, cut, flip } => {
                let mut b = serde_json::to_vec(value).unwrap_or_default();
                b.truncate(b.len().saturating_sub(*cut));
                if !b.is_empty() {
                    let i = flip.0 % b.len();
                    b[i] = flip.1;
                }
                b
            }
            Self::Bytes(b) => b.clone(),
            Self::Text(t) => t.clone().into_bytes(),
        }
    }
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        8 => (plausible(), any::<bool>(), prop::bool::weighted(0.05))
            .prop_map(|(value, pretty, bom)| Body::Json { value, pretty, bom }),
        1 => (plausible(), 0usize..8, (any::<usize>(), any::<u8>()))
            .prop_map(|(value, cut, flip)| Body::Damaged { value, cut, flip }),
        1 => vec(any::<u8>(), 0..256).prop_map(Body::Bytes),
        1 => ".{0,64}".prop_map(Body::Text),
    ]
}

#[derive(Debug, Clone)]
enum Ts {
    Now,
    /// Ten digits: seconds (docs/protocol/decisions.md §1).
    Seconds,
    Offset(i64),
    /// Never a time in the window.
    Raw(String),
}

fn ts() -> impl Strategy<Value = Ts> {
    prop_oneof![
        6 => Just(Ts::Now),
        1 => Just(Ts::Seconds),
        2 => prop_oneof![
            (-2 * WINDOW_MS..2 * WINDOW_MS),
            select(vec![-WINDOW_MS - 1, -WINDOW_MS, WINDOW_MS, WINDOW_MS + 1]),
        ]
        .prop_map(Ts::Offset),
        1 => prop_oneof![
            "[0-9]{14,22}",
            "[0-9]{0,6}[a-zA-Z:.+ -][0-9]{0,8}",
            "-[0-9]{1,19}",
            select(vec!["0", "0000000000000", "9999999999999", "-9223372036854775808"]).prop_map(str::to_owned),
        ]
        .prop_map(Ts::Raw),
    ]
}

#[derive(Debug, Clone)]
enum Nonce {
    Fresh,
    /// A nonce an earlier request of the case used (the `n`th, if there is one).
    Reuse(usize),
    TooLong(usize),
    Raw(String),
}

fn nonce() -> impl Strategy<Value = Nonce> {
    prop_oneof![
        8 => Just(Nonce::Fresh),
        1 => any::<usize>().prop_map(Nonce::Reuse),
        1 => (129usize..400).prop_map(Nonce::TooLong),
        1 => "[A-Za-z0-9_.~-]{1,12}".prop_map(Nonce::Raw),
    ]
}

fn param() -> impl Strategy<Value = (String, String)> {
    (
        prop_oneof![
            select(vec!["a", "sig", "Signature", "TIMESTAMP", "nonce2", ""])
                .prop_map(str::to_owned),
            "[a-z]{1,6}",
        ],
        ".{0,16}",
    )
}

#[derive(Debug, Clone)]
enum Query {
    /// Anything, unsigned.
    Raw(String),
    Signed {
        wrong_key: bool,
        ts: Ts,
        nonce: Nonce,
        /// Signed over the canonical payload (as KooGallery does) rather than the raw bytes.
        canonical: bool,
        upper: bool,
        /// Other parameters before ours, and any after (also our own names: the first counts).
        before: Vec<(String, String)>,
        after: Vec<(String, String)>,
    },
}

fn query() -> impl Strategy<Value = Query> {
    let signed = (
        prop::bool::weighted(0.1),
        ts(),
        nonce(),
        any::<bool>(),
        any::<bool>(),
        vec(param(), 0..2),
        vec(
            prop_oneof![
                param(),
                (
                    select(vec!["signature", "timestamp", "nonce"]).prop_map(str::to_owned),
                    ".{0,16}"
                ),
            ],
            0..2,
        ),
    )
        .prop_map(
            |(wrong_key, ts, nonce, canonical, upper, before, after)| Query::Signed {
                wrong_key,
                ts,
                nonce,
                canonical,
                upper,
                before: before
                    .into_iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "signature" | "timestamp" | "nonce"))
                    .collect(),
                after,
            },
        );
    prop_oneof![
        6 => signed,
        1 => ".{0,80}".prop_map(Query::Raw),
        1 => "([a-z]{1,9}=[0-9A-Fa-f%+&=]{0,40}&?){0,4}".prop_map(Query::Raw),
    ]
}

#[derive(Debug, Clone)]
enum Via {
    /// `handle_basic`, as the local host calls it.
    Direct,
    /// `handle` on `/produce/produceAPI/v2/{name}`, as both hosts call it (no Kit headers: the
    /// fuzz signs basic calls only, so every Kit call here is unauthenticated).
    Kit(String),
    /// API Gateway's request through the Lambda adapter.
    Lambda {
        method: String,
        path: String,
        headers: Vec<(String, String)>,
    },
}

fn via() -> impl Strategy<Value = Via> {
    let path = prop_oneof![
        4 => Just("/produce".to_owned()),
        1 => "[a-zA-Z0-9]{0,12}".prop_map(|n| format!("/produce/produceAPI/v2/{n}")),
        1 => "(/[a-zA-Z0-9_.-]{0,8}){0,3}",
    ];
    let method = prop_oneof![
        4 => Just("POST".to_owned()),
        1 => select(vec!["GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]).prop_map(str::to_owned),
        1 => "[A-Z]{1,8}",
    ];
    let headers = vec(("[a-z][a-z0-9-]{0,15}", "[!-~]([ -~]{0,30}[!-~])?"), 0..4);
    prop_oneof![
        6 => Just(Via::Direct),
        1 => ".{0,80}".prop_map(Via::Kit),
        3 => (method, path, headers).prop_map(|(method, path, headers)| Via::Lambda { method, path, headers }),
    ]
}

#[derive(Debug, Clone)]
struct Request {
    query: Query,
    body: Body,
    via: Via,
}

fn request() -> impl Strategy<Value = Request> {
    (query(), body(), via()).prop_map(|(query, body, via)| Request { query, body, via })
}

// ---- Running a case ----

struct Bed {
    test: TestBed,
    edge: Edge,
    counting: Arc<Counting>,
    /// Nonces the edge has remembered (from requests that verified).
    used: Vec<String>,
    used_set: HashSet<String>,
    serial: u64,
}

async fn bed() -> Bed {
    let mut config = Config::with_keys(KEY, KIT_KEY);
    config.settings.edge.max_body_bytes = MAX_BODY;
    config.settings.edge.timestamp_window = chrono::Duration::milliseconds(WINDOW_MS);
    let test = TestBed::new(config);
    test.seed("fz-active", true).await;
    test.seed("fz-prov", false).await;
    let counting = Arc::new(Counting {
        inner: test.dispatcher.clone(),
        calls: AtomicUsize::new(0),
    });
    let edge = Edge::new(
        &test.config.settings.edge,
        test.config.secrets.keys.clone(),
        test.store.clone(),
        test.clock.clone(),
        counting.clone(),
    );
    Bed {
        test,
        edge,
        counting,
        used: Vec::new(),
        used_set: HashSet::new(),
        serial: 0,
    }
}

/// Run-wide figures, printed at the end (`--nocapture`).
#[derive(Default)]
struct Figures {
    requests: AtomicU64,
    authentic: AtomicU64,
    dispatched: AtomicU64,
    codes: [AtomicU64; 14],
}

static FIGURES: std::sync::LazyLock<Figures> = std::sync::LazyLock::new(Figures::default);

/// The query string a request carries, and whether the edge must take it as authentic.
fn build_query(b: &mut Bed, q: &Query, body: &[u8]) -> (String, bool, Option<String>) {
    let Query::Signed {
        wrong_key,
        ts,
        nonce,
        canonical,
        upper,
        before,
        after,
    } = q
    else {
        let Query::Raw(raw) = q else { unreachable!() };
        return (raw.clone(), false, None);
    };
    let now_ms = b.test.clock.now().timestamp_millis();
    let (ts, ts_ok) = match ts {
        Ts::Now => (now_ms.to_string(), true),
        Ts::Seconds => ((now_ms / 1000).to_string(), true),
        Ts::Offset(d) => ((now_ms + d).to_string(), d.abs() <= WINDOW_MS),
        Ts::Raw(raw) => (raw.clone(), false),
    };
    b.serial += 1;
    let (nonce, nonce_ok) = match nonce {
        Nonce::Fresh => (format!("fz-{}", b.serial), true),
        Nonce::Reuse(n) if !b.used.is_empty() => (b.used[n % b.used.len()].clone(), false),
        Nonce::Reuse(_) => (format!("fz-{}", b.serial), true),
        Nonce::TooLong(n) => ("n".repeat(*n), false),
        Nonce::Raw(raw) => (raw.clone(), !b.used_set.contains(raw)),
    };
    let payload = match canonical_payload(body) {
        Ok(p) if *canonical => p.into_bytes(),
        _ => body.to_vec(),
    };
    let key = if *wrong_key { "someone-else" } else { KEY };
    let mut signature = basic_signature(key, &nonce, &ts, &payload);
    if *upper {
        signature = signature.to_uppercase();
    }
    let mut s = form_urlencoded::Serializer::new(String::new());
    s.extend_pairs(before);
    s.append_pair("signature", &signature)
        .append_pair("timestamp", &ts)
        .append_pair("nonce", &nonce);
    s.extend_pairs(after);
    let authentic = !wrong_key && ts_ok && nonce_ok && body.len() <= MAX_BODY;
    (s.finish(), authentic, Some(nonce))
}

/// The answer as sent over HTTP: status, headers, the exact body bytes.
/// The key a path's answers are signed with: the Kit key for the Kit paths, the basic key else.
fn answer_key(path: &str) -> &'static str {
    if path.contains("/produceAPI/v2/") {
        KIT_KEY
    } else {
        KEY
    }
}

fn checked_answer(
    key: &str,
    status: u16,
    content_type: Option<&str>,
    sign: Option<&str>,
    body: &[u8],
) -> Result<Reply, TestCaseError> {
    prop_assert_eq!(status, EdgeResponse::STATUS);
    prop_assert_eq!(content_type, Some(EdgeResponse::CONTENT_TYPE));
    let sign = sign.ok_or_else(|| TestCaseError::fail("no Body-Sign header"))?;
    prop_assert!(
        verify_body_sign(key, body, sign),
        "Body-Sign does not verify over the bytes sent"
    );
    let json: Value = serde_json::from_slice(body)
        .map_err(|e| TestCaseError::fail(format!("answer is not JSON: {e}")))?;
    let code = json["resultCode"].as_str().and_then(ResultCode::parse);
    prop_assert!(code.is_some(), "no KooGallery result code: {}", json);
    prop_assert!(json["resultMsg"].is_string(), "no resultMsg: {}", json);
    serde_json::from_value(json).map_err(|e| TestCaseError::fail(format!("not a reply: {e}")))
}

fn answer_of(key: &str, resp: EdgeResponse) -> Result<Reply, TestCaseError> {
    let http = resp.into_http::<String>();
    let header = |n: &str| http.headers().get(n).and_then(|v| v.to_str().ok());
    checked_answer(
        key,
        http.status().as_u16(),
        header("content-type"),
        header("Body-Sign"),
        http.body().as_bytes(),
    )
}

async fn send(b: &Bed, via: &Via, query: &str, body: &[u8]) -> Result<Reply, TestCaseError> {
    match via {
        Via::Direct => answer_of(KEY, b.edge.handle_basic(query, body).await),
        Via::Kit(name) => {
            let path = format!("/produce/produceAPI/v2/{name}");
            let resp = b
                .edge
                .handle(edge::Inbound {
                    method: &http::Method::POST,
                    path: &path,
                    query,
                    headers: &http::HeaderMap::new(),
                    body,
                })
                .await;
            answer_of(answer_key(&path), resp)
        }
        Via::Lambda {
            method,
            path,
            headers,
        } => through_lambda(b, method, path, headers, query, body).await,
    }
}

/// API Gateway's request (HTTP API, payload 2.0: the raw path, the parsed query parameters)
/// through the Lambda adapter.
#[cfg(feature = "lambda")]
async fn through_lambda(
    b: &Bed,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    query: &str,
    body: &[u8],
) -> Result<Reply, TestCaseError> {
    use lambda_http::{RequestExt, aws_lambda_events::query_map::QueryMap};
    let mut builder = http::Request::builder()
        .method(method)
        .uri(format!("https://edge.example{path}"));
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    let req = builder
        .body(lambda_http::Body::from(body.to_vec()))
        .map_err(|e| TestCaseError::reject(format!("not an HTTP request: {e}")))?
        .with_raw_http_path(path)
        .with_query_string_parameters(query.parse::<QueryMap>().unwrap_or_default());
    let resp = edge::lambda::serve(&b.edge, req).await;
    let header = |n: &str| resp.headers().get(n).and_then(|v| v.to_str().ok());
    checked_answer(
        answer_key(path),
        resp.status().as_u16(),
        header("content-type"),
        header("Body-Sign"),
        resp.body().as_ref(),
    )
}

/// Without the Lambda adapter: the same request straight into the edge.
#[cfg(not(feature = "lambda"))]
async fn through_lambda(
    b: &Bed,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    query: &str,
    body: &[u8],
) -> Result<Reply, TestCaseError> {
    let method = http::Method::from_bytes(method.as_bytes()).unwrap_or(http::Method::POST);
    let mut map = http::HeaderMap::new();
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            map.append(n, v);
        }
    }
    let resp = b
        .edge
        .handle(edge::Inbound {
            method: &method,
            path,
            query,
            headers: &map,
            body,
        })
        .await;
    answer_of(answer_key(path), resp)
}

async fn run(requests: Vec<Request>) -> Result<(), TestCaseError> {
    let mut b = bed().await;
    for r in &requests {
        let body = r.body.bytes();
        let (query, mut authentic, nonce) = build_query(&mut b, &r.query, &body);
        let kit = match &r.via {
            Via::Kit(_) => true,
            Via::Lambda { path, .. } => path.contains("/produceAPI/"),
            Via::Direct => false,
        };
        // Only a POST is a V2 basic call: a GET is the V1 interface (not served), the rest no call.
        let post = match &r.via {
            Via::Lambda { method, .. } => method == "POST",
            _ => true,
        };
        authentic &= !kit && post;
        let (store, queued, calls) = (
            b.test.store.snapshot(),
            b.test.queue.len(),
            b.counting.calls.load(Ordering::SeqCst),
        );
        let reply = send(&b, &r.via, &query, &body).await?;
        let f = &*FIGURES;
        f.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(i) = ResultCode::ALL.iter().position(|c| *c == reply.result_code) {
            f.codes[i].fetch_add(1, Ordering::Relaxed);
        }
        let dispatched = b.counting.calls.load(Ordering::SeqCst) - calls;
        f.dispatched.fetch_add(dispatched as u64, Ordering::Relaxed);
        if !authentic {
            prop_assert!(
                matches!(
                    reply.result_code,
                    ResultCode::AuthenticationFailed | ResultCode::InvalidParameter
                ),
                "not authentic, answered {:?}",
                reply
            );
            prop_assert_eq!(dispatched, 0, "not authentic, yet dispatched");
            prop_assert_eq!(b.test.queue.len(), queued, "not authentic, yet queued");
            prop_assert!(
                b.test.store.snapshot() == store,
                "not authentic, yet the store changed"
            );
            continue;
        }
        f.authentic.fetch_add(1, Ordering::Relaxed);
        prop_assert_ne!(
            reply.result_code,
            ResultCode::AuthenticationFailed,
            "signed with the key, yet refused: {:?}",
            reply
        );
        // Nothing fails in memory: a `000005` here can only be a callback's "retry later" for an
        // instance still provisioning, never the edge's or a store's internal error.
        prop_assert!(
            reply.result_code != ResultCode::InternalError
                || (reply.result_msg.contains("retry later")
                    && !reply.result_msg.contains("internal error")),
            "nothing failed, yet an internal error: {:?}",
            reply
        );
        if let Some(n) = nonce {
            b.used_set.insert(n.clone());
            b.used.push(n);
        }
        let names_activity = parse_body(&body).ok().is_some_and(|m| {
            m.get("activity")
                .and_then(Value::as_str)
                .is_some_and(|a| koogallery::callbacks::registry::by_activity(a.trim()).is_some())
        });
        prop_assert_eq!(
            dispatched,
            usize::from(names_activity),
            "dispatches for {:?}",
            reply
        );
    }
    Ok(())
}

#[test]
fn the_edge_answers_every_request_signed_and_stores_nothing_unauthenticated() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let mut runner = TestRunner::new(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let started = std::time::Instant::now();
    let result = runner.run(&vec(request(), 1..6), |requests| rt.block_on(run(requests)));
    let f = &*FIGURES;
    let codes: Vec<String> = ResultCode::ALL
        .iter()
        .zip(&f.codes)
        .filter(|(_, n)| n.load(Ordering::Relaxed) > 0)
        .map(|(c, n)| format!("{c}: {}", n.load(Ordering::Relaxed)))
        .collect();
    eprintln!(
        "edge fuzz: {} cases, {} requests ({} authentic, {} dispatched) in {:.1} s; codes {}",
        cases(),
        f.requests.load(Ordering::Relaxed),
        f.authentic.load(Ordering::Relaxed),
        f.dispatched.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
        codes.join(", ")
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}
