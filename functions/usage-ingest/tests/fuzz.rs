//! A fuzz target on the usage API (a property test): arbitrary methods, headers, query strings and
//! bodies, signed and unsigned, through the Lambda handler ([`usage_ingest::route`]: `POST /usage`
//! and `GET /usage/estimate`, whose logic the local host shares), on the memory store with
//! instances of every kind (on demand, stop-when-used-up and on-demand packages, released, debug,
//! provisioning). Signed requests carry structurally plausible batches (seeded and unknown
//! instances, quantities and times of every shape, repeated and reused keys, packages, fields of
//! the wrong type) signed with the usage key, so they reach the ingestion rules. Held for every
//! request:
//!
//! - no panic; a JSON answer of the documented shape (README, `POST /usage`): on success the
//!   outcome (`applied` + `duplicates` = the reports sent) or the estimate, otherwise `error`,
//!   `retryable` (true only with 503) and, when one report is at fault, its `index`;
//! - a request not signed with the key (unsigned, wrongly signed, stale, replayed) answers 401 and
//!   leaves the store as it was;
//! - a request signed with the key is never a 401 (nor a 503: nothing fails in memory), and one
//!   refused stores nothing but its nonce.
//!
//! `make test` runs a few hundred cases (`PROPTEST_CASES` sets how many); BENCHMARKS.md records a
//! run of 10⁶ in release, with its command.

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use chrono::{DateTime, Duration, FixedOffset, Utc};
use koogallery::{
    instance::{CreateOutcome, Instance, InstanceStore, Outcome, mutate},
    metering::{
        api::{HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP, MAX_SKEW_MS, UsageIngestion},
        estimate::UsageEstimates,
        package::PackageQuotaList,
        pricing::PriceList,
    },
    order::{ChargingMode, OrderDetails},
    security::{SecretKey, usage_push::usage_signature},
    testing::{ManualClock, MemoryQueue, MemoryStore, sample_access},
};

use proptest::{
    collection::vec,
    option,
    prelude::*,
    sample::select,
    test_runner::{Config as ProptestConfig, TestCaseError, TestRunner},
};
use serde_json::{Map, Value, json};

const KEY: &str = "fuzz-usage-key";

/// Cases per run: `PROPTEST_CASES`, or a number `make test` runs in a few seconds in debug.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// The host's clock: fixed, so that a failing case replays exactly.
fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-21T13:25:07.250Z")
        .expect("a time")
        .with_timezone(&Utc)
}

// ---- What a request is made of ----

const INSTANCES: &[&str] = &[
    "u-active",
    "u-pkg",
    "u-odpkg",
    "u-released",
    "u-debug",
    "u-prov",
    "u-none",
    "",
];

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(INSTANCES).prop_map(str::to_owned),
        2 => "[ -~]{0,24}",
        1 => ".{0,12}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => text().prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
        1 => any::<bool>().prop_map(Value::from),
        1 => Just(Value::Null),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(2, 12, 3, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..3).prop_map(Value::Array),
            vec(("[a-zA-Z]{1,8}", inner), 0..3)
                .prop_map(|f| Value::Object(f.into_iter().collect())),
        ]
    })
}

/// Quantities of every shape: exact, too precise, zero and negative, too large for a record or
/// for a decimal, not numbers at all; as strings and as JSON numbers.
fn quantity() -> impl Strategy<Value = Value> {
    const TEXTS: &[&str] = &[
        "1",
        "1.5",
        "0.0001",
        "2.50000",
        " 3 ",
        "0",
        "-1",
        "-0",
        "0.00001",
        "99999999.9999",
        "100000000",
        "79228162514264337593543950335",
        "79228162514264337593543950336",
        "7.9e28",
        "1e-30",
        "1e3",
        "NaN",
        "Infinity",
        "abc",
        "",
        "0x10",
        "1_000",
    ];
    prop_oneof![
        6 => select(TEXTS).prop_map(Value::from),
        2 => (1u32..10_000, 0u32..5).prop_map(|(n, scale)| Value::from(rust_decimal::Decimal::new(i64::from(n), scale).to_string())),
        1 => (1u32..10_000).prop_map(Value::from),
        1 => any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
        1 => leaf(),
    ]
}

/// Times around the host's clock, in any offset, and far from it; and not times at all.
fn occurred_at() -> impl Strategy<Value = Value> {
    let near = (
        prop_oneof![
            4 => -200i64..2,
            1 => select(vec![-30_240i64, -30_180, -29_000, 5, 60, 525_600]),
        ],
        0i64..60_000,
        select(vec![
            0i32,
            8 * 3600,
            -5 * 3600,
            23 * 3600 + 59 * 60,
            -(23 * 3600 + 59 * 60),
        ]),
    )
        .prop_map(|(minutes, millis, offset)| {
            let t = now() + Duration::minutes(minutes) - Duration::milliseconds(millis);
            let zone = FixedOffset::east_opt(offset).unwrap_or(FixedOffset::east_opt(0).unwrap());
            Value::from(t.with_timezone(&zone).to_rfc3339())
        });
    prop_oneof![
        6 => near,
        1 => select(vec![
            "9999-12-31T23:59:59-23:59",
            "0000-01-01T00:00:00+23:59",
            "2026-11-21",
            "2026-11-21T13:25:00",
            "yesterday",
            "",
            "2026-02-30T00:00:00Z",
        ])
        .prop_map(Value::from),
        1 => leaf(),
    ]
}

fn idempotency_key() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => select(vec!["k1", "k2", "k3", "k4"]).prop_map(Value::from),
        2 => "[ -~]{1,20}".prop_map(Value::from),
        1 => Just(Value::from("")),
        1 => (128usize..131).prop_map(|n| Value::from("k".repeat(n))),
        1 => leaf(),
    ]
}

/// One report: mostly one the rules take (so that batches get stored, and later ones meet what
/// earlier ones left: repeats, reused keys, full windows, used-up packages), else any of them.
fn record() -> impl Strategy<Value = Value> {
    prop_oneof![3 => takeable(), 1 => wild()]
}

fn takeable() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            3 => Just(("u-active", None)),
            1 => Just(("u-active", Some("u-pkg"))),
            1 => Just(("u-active", Some("u-odpkg"))),
        ],
        (1u32..2_000, 0u32..4),
        -170i64..0,
        "k[0-9]{1,2}",
    )
        .prop_map(|((instance, package), (n, scale), minutes, key)| {
            let mut m = Map::new();
            m.insert("instanceId".into(), instance.into());
            m.insert(
                "quantity".into(),
                rust_decimal::Decimal::new(i64::from(n), scale)
                    .to_string()
                    .into(),
            );
            m.insert(
                "occurredAt".into(),
                (now() + Duration::minutes(minutes)).to_rfc3339().into(),
            );
            m.insert("idempotencyKey".into(), key.into());
            if let Some(p) = package {
                m.insert("packageInstanceId".into(), p.into());
            }
            Value::Object(m)
        })
}

/// Well formed from the parts above, with fields dropped, retyped or added.
fn wild() -> impl Strategy<Value = Value> {
    (
        prop_oneof![6 => select(INSTANCES).prop_map(Value::from), 1 => leaf()],
        quantity(),
        occurred_at(),
        idempotency_key(),
        option::weighted(
            0.3,
            prop_oneof![
                6 => select(vec!["u-pkg", "u-odpkg", "u-active", "u-released", "u-debug", "u-none"]).prop_map(Value::from),
                1 => leaf(),
            ],
        ),
        prop_oneof![
            4 => Just(vec![]),
            1 => vec(
                (
                    select(vec!["instanceId", "quantity", "occurredAt", "idempotencyKey", "packageInstanceId", "other"]),
                    option::of(value()),
                ),
                1..3,
            ),
        ],
    )
        .prop_map(|(instance, quantity, at, key, package, changes)| {
            let mut m = Map::new();
            m.insert("instanceId".into(), instance);
            m.insert("quantity".into(), quantity);
            m.insert("occurredAt".into(), at);
            m.insert("idempotencyKey".into(), key);
            if let Some(p) = package {
                m.insert("packageInstanceId".into(), p);
            }
            for (field, v) in changes {
                match v {
                    Some(v) => m.insert(field.into(), v),
                    None => m.remove(field),
                };
            }
            Value::Object(m)
        })
}

/// A batch, or nearly one.
fn batch() -> impl Strategy<Value = Value> {
    (
        prop_oneof![6 => vec(record(), 0..4), 1 => vec(record(), 4..12)],
        prop_oneof![
            8 => Just(None),
            1 => ("[a-z]{1,8}", value()).prop_map(Some),
        ],
        prop::bool::weighted(0.03),
    )
        .prop_map(|(records, extra, not_a_list)| {
            let mut m = Map::new();
            m.insert(
                "records".into(),
                if not_a_list {
                    json!({"0": records.first()})
                } else {
                    Value::Array(records)
                },
            );
            if let Some((k, v)) = extra {
                m.insert(k, v);
            }
            Value::Object(m)
        })
}

/// Bare JSON tokens a string cannot carry, put in place of one report's quantity.
const RAW_QUANTITIES: &[&str] = &[
    "NaN",
    "1e400",
    "-1e400",
    "1e-400",
    "00012",
    "-0",
    "1.",
    ".5",
    "+1",
    "123456789012345678901234567890",
];

#[derive(Debug, Clone)]
enum Body {
    Json(Value),
    /// The batch with its first quantity replaced by a bare token.
    RawQuantity(Value, &'static str),
    /// Cut short, one byte changed.
    Damaged(Value, usize, (usize, u8)),
    Bytes(Vec<u8>),
}

impl Body {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Self::Json(v) => serde_json::to_vec(v).unwrap_or_default(),
            Self::RawQuantity(v, token) => {
                let mut v = v.clone();
                if let Some(q) = v.pointer_mut("/records/0/quantity") {
                    *q = Value::from("@@Q@@");
                }
                serde_json::to_string(&v)
                    .unwrap_or_default()
                    .replacen("\"@@Q@@\"", token, 1)
                    .into_bytes()
            }
            Self::Damaged(v, cut, (at, byte)) => {
                let mut b = serde_json::to_vec(v).unwrap_or_default();
                b.truncate(b.len().saturating_sub(*cut));
                if !b.is_empty() {
                    let i = at % b.len();
                    b[i] = *byte;
                }
                b
            }
            Self::Bytes(b) => b.clone(),
        }
    }

    /// How many reports the body holds, when its structure is intact (a damaged body may hold
    /// anything where a report was).
    fn reports(&self) -> Option<usize> {
        match self {
            Self::Json(v) | Self::RawQuantity(v, _) => v.get("records")?.as_array().map(Vec::len),
            Self::Damaged(..) | Self::Bytes(_) => None,
        }
    }
}

/// How many reports a body holds, when it is a JSON object with a `records` list.
fn reports_in(bytes: &[u8]) -> Option<usize> {
    serde_json::from_slice::<Value>(bytes)
        .ok()?
        .get("records")?
        .as_array()
        .map(Vec::len)
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        8 => batch().prop_map(Body::Json),
        1 => (batch(), select(RAW_QUANTITIES)).prop_map(|(b, t)| Body::RawQuantity(b, t)),
        1 => (batch(), 0usize..6, (any::<usize>(), any::<u8>())).prop_map(|(b, c, f)| Body::Damaged(b, c, f)),
        1 => vec(any::<u8>(), 0..128).prop_map(Body::Bytes),
    ]
}

/// An estimate's query: the instance and a period (RFC 3339), or anything URI-safe.
fn estimate_query() -> impl Strategy<Value = String> {
    let time = prop_oneof![
        (-2000i64..100).prop_map(|h| (now() + Duration::hours(h)).to_rfc3339()),
        select(vec![
            "9999-12-31T23:59:59-23:59",
            "0000-01-01T00:00:00+23:59",
            "yesterday",
            ""
        ])
        .prop_map(str::to_owned),
    ];
    let structured = (
        option::weighted(0.9, select(INSTANCES)),
        option::of(time.clone()),
        option::of(time),
        option::weighted(0.05, ("[a-z]{1,5}", "[a-z0-9]{0,5}")),
    )
        .prop_map(|(id, from, to, extra)| {
            let mut s = form_urlencoded::Serializer::new(String::new());
            if let Some(id) = id {
                s.append_pair("instanceId", id);
            }
            if let Some(from) = from {
                s.append_pair("from", &from);
            }
            if let Some(to) = to {
                s.append_pair("to", &to);
            }
            if let Some((k, v)) = extra {
                s.append_pair(&k, &v);
            }
            s.finish()
        });
    prop_oneof![
        6 => structured,
        1 => "[A-Za-z0-9=&%._~:+-]{0,60}",
    ]
}

#[derive(Debug, Clone)]
enum Ts {
    Now,
    Offset(i64),
    /// Never a time within the skew.
    Raw(String),
}

#[derive(Debug, Clone)]
enum Nonce {
    Fresh,
    Reuse(usize),
    Raw(String),
}

#[derive(Debug, Clone)]
enum Auth {
    /// No usage headers at all.
    None,
    /// Usage headers with values of any kind.
    Junk(Vec<(&'static str, String)>),
    Signed {
        wrong_key: bool,
        ts: Ts,
        nonce: Nonce,
    },
}

fn auth() -> impl Strategy<Value = Auth> {
    let ts = prop_oneof![
        6 => Just(Ts::Now),
        2 => prop_oneof![
            -2 * MAX_SKEW_MS..2 * MAX_SKEW_MS,
            select(vec![-MAX_SKEW_MS - 1, -MAX_SKEW_MS, MAX_SKEW_MS, MAX_SKEW_MS + 1]),
        ]
        .prop_map(Ts::Offset),
        1 => prop_oneof![
            "[0-9]{14,22}",
            "-[0-9]{1,19}",
            "[0-9]{0,6}[a-zA-Z:. ][0-9]{0,8}",
            select(vec!["0", "9223372036854775807", "-9223372036854775808", ""]).prop_map(str::to_owned),
        ]
        .prop_map(Ts::Raw),
    ];
    let nonce = prop_oneof![
        8 => Just(Nonce::Fresh),
        1 => any::<usize>().prop_map(Nonce::Reuse),
        1 => "[A-Za-z0-9_-]{1,80}".prop_map(Nonce::Raw),
    ];
    let junk = vec(
        (
            select(vec![HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE]),
            "[!-~]([ -~]{0,40}[!-~])?",
        ),
        0..4,
    );
    prop_oneof![
        1 => Just(Auth::None),
        1 => junk.prop_map(Auth::Junk),
        8 => (prop::bool::weighted(0.1), ts, nonce).prop_map(|(wrong_key, ts, nonce)| Auth::Signed { wrong_key, ts, nonce }),
    ]
}

#[derive(Debug, Clone)]
struct Request {
    method: &'static str,
    auth: Auth,
    body: Body,
    query: String,
    headers: Vec<(String, String)>,
}

fn request() -> impl Strategy<Value = Request> {
    (
        prop_oneof![
            6 => Just("POST"),
            3 => Just("GET"),
            1 => select(vec!["PUT", "DELETE", "PATCH"]),
        ],
        auth(),
        body(),
        estimate_query(),
        vec(("x-[a-z]{1,10}", "[!-~]{0,20}"), 0..3),
    )
        .prop_map(|(method, auth, body, query, headers)| Request {
            method,
            auth,
            body,
            query,
            headers,
        })
}

// ---- Running a case ----

struct Bed {
    store: Arc<MemoryStore>,
    jobs: Arc<MemoryQueue>,
    ingestion: UsageIngestion,
    estimates: UsageEstimates,
    used: Vec<String>,
    used_set: HashSet<String>,
    serial: u64,
}

async fn seed(
    store: &MemoryStore,
    id: &str,
    test: bool,
    active: bool,
    order: Option<OrderDetails>,
) {
    let created = now() - Duration::hours(3);
    let (mut inst, ev) = Instance::new_provisioning(
        &format!("O-{id}").into(),
        &format!("O-{id}-1").into(),
        id,
        test,
        created,
    );
    let mut events = vec![ev];
    if active && let Ok(Outcome::Changed(ev)) = inst.activate(sample_access(id), created) {
        events.push(ev);
    }
    inst.order = order;
    assert_eq!(
        store.create_for_order_line(&inst, &events).await.ok(),
        Some(CreateOutcome::Created)
    );
}

fn order(mode: ChargingMode, sku: &str, params: &[(&str, &str)]) -> Option<OrderDetails> {
    Some(OrderDetails {
        charging_mode: Some(mode),
        sku_code: Some(sku.into()),
        extend_params: params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..Default::default()
    })
}

async fn bed() -> Bed {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::at(now()));
    seed(
        &store,
        "u-active",
        false,
        true,
        order(ChargingMode::OnDemand, "sku-step", &[]),
    )
    .await;
    seed(
        &store,
        "u-pkg",
        false,
        true,
        order(
            ChargingMode::OnDemandPkg,
            "sku-pkg",
            &[("packageQuota", "10")],
        ),
    )
    .await;
    seed(
        &store,
        "u-odpkg",
        false,
        true,
        order(ChargingMode::OnDemandPkg, "sku-odpkg", &[]),
    )
    .await;
    seed(
        &store,
        "u-released",
        false,
        true,
        order(ChargingMode::OnDemand, "sku-tier", &[]),
    )
    .await;
    seed(
        &store,
        "u-debug",
        true,
        true,
        order(ChargingMode::OnDemand, "sku-step", &[]),
    )
    .await;
    seed(&store, "u-prov", false, false, None).await;
    mutate(store.as_ref(), "u-released", |i| {
        Ok(i.release(None, now() - Duration::hours(1)))
    })
    .await
    .expect("released");
    let jobs = Arc::new(MemoryQueue::new());
    let ingestion = UsageIngestion {
        key: Some(SecretKey::new(KEY)),
        nonces: store.clone(),
        instances: store.clone(),
        usage: store.clone(),
        jobs: jobs.clone(),
        quotas: Arc::new(PackageQuotaList::default()),
        clock: clock.clone(),
    };
    let estimates = UsageEstimates {
        key: Some(SecretKey::new(KEY)),
        nonces: store.clone(),
        instances: store.clone(),
        usage: store.clone(),
        prices: Arc::new(
            PriceList::from_json(
                r#"{"sku-step":{"model":"step","cycle":"day","bands":[{"upTo":"3","unitPrice":"0.3"},{"unitPrice":"0.2"}]},
                    "sku-tier":{"model":"tier","bands":[{"upTo":"3","unitPrice":"0.3"}]}}"#,
            )
            .expect("prices"),
        ),
        clock,
    };
    Bed {
        store,
        jobs,
        ingestion,
        estimates,
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
    applied: AtomicU64,
    statuses: [AtomicU64; 6],
}

const STATUSES: [u16; 6] = [200, 400, 401, 404, 409, 503];

static FIGURES: std::sync::LazyLock<Figures> = std::sync::LazyLock::new(Figures::default);

/// The usage headers a request carries, and whether the API must take it as authentic.
fn headers(
    b: &mut Bed,
    auth: &Auth,
    signed: &[u8],
) -> (Vec<(&'static str, String)>, bool, Option<String>) {
    match auth {
        Auth::None => (vec![], false, None),
        Auth::Junk(h) => (h.clone(), false, None),
        Auth::Signed {
            wrong_key,
            ts,
            nonce,
        } => {
            let now_ms = now().timestamp_millis();
            let (ts, ts_ok) = match ts {
                Ts::Now => (now_ms.to_string(), true),
                Ts::Offset(d) => ((now_ms + d).to_string(), d.abs() <= MAX_SKEW_MS),
                Ts::Raw(raw) => (raw.clone(), false),
            };
            b.serial += 1;
            let (nonce, nonce_ok) = match nonce {
                Nonce::Fresh => (format!("fuzz-nonce-{}", b.serial), true),
                Nonce::Reuse(n) if !b.used.is_empty() => (b.used[n % b.used.len()].clone(), false),
                Nonce::Reuse(_) => (format!("fuzz-nonce-{}", b.serial), true),
                Nonce::Raw(raw) => (
                    raw.clone(),
                    (8..=64).contains(&raw.len()) && !b.used_set.contains(raw),
                ),
            };
            let key = if *wrong_key { "someone-else" } else { KEY };
            let signature = usage_signature(key, &ts, &nonce, signed);
            (
                vec![
                    (HEADER_TIMESTAMP, ts),
                    (HEADER_NONCE, nonce.clone()),
                    (HEADER_SIGNATURE, signature),
                ],
                !wrong_key && ts_ok && nonce_ok,
                Some(nonce),
            )
        }
    }
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    k.sort_unstable();
    k
}

async fn run(requests: Vec<Request>) -> Result<(), TestCaseError> {
    let mut b = bed().await;
    for r in &requests {
        let get = r.method == "GET";
        let body = r.body.bytes();
        let signed = if get {
            r.query.as_bytes().to_vec()
        } else {
            body.clone()
        };
        let (usage_headers, authentic, nonce) = headers(&mut b, &r.auth, &signed);
        let mut builder = lambda_http::http::Request::builder()
            .method(r.method)
            .uri(format!("https://usage.example/usage?{}", r.query));
        for (name, value) in &usage_headers {
            builder = builder.header(*name, value);
        }
        for (name, value) in &r.headers {
            builder = builder.header(name, value);
        }
        let req = builder
            .body(lambda_http::Body::from(if get {
                vec![]
            } else {
                body.clone()
            }))
            .map_err(|e| TestCaseError::fail(format!("the request does not build: {e}")))?;
        let (full, without_nonces) = (b.store.snapshot(), b.store.snapshot_without_nonces());
        let queued = b.jobs.len();

        let resp = usage_ingest::route(&b.ingestion, &b.estimates, req).await;

        let status = resp.status().as_u16();
        prop_assert_eq!(
            resp.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/json")
        );
        let answer: Value = serde_json::from_slice(resp.body().as_ref())
            .map_err(|e| TestCaseError::fail(format!("the answer is not JSON: {e}")))?;
        let f = &*FIGURES;
        f.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(i) = STATUSES.iter().position(|s| *s == status) {
            f.statuses[i].fetch_add(1, Ordering::Relaxed);
        }
        prop_assert!(STATUSES.contains(&status), "status {}: {}", status, answer);
        if status == 200 {
            if get {
                prop_assert_eq!(
                    keys(&answer),
                    [
                        "amount",
                        "cycle",
                        "from",
                        "instanceId",
                        "model",
                        "packageQuantity",
                        "quantity",
                        "schema",
                        "skuCode",
                        "to",
                        "windows"
                    ],
                    "{}",
                    answer
                );
            } else {
                let k = keys(&answer);
                prop_assert!(
                    k == ["applied", "duplicates"]
                        || k == ["applied", "duplicates", "exhaustedPackages"],
                    "{}",
                    answer
                );
                let sum = answer["applied"]
                    .as_u64()
                    .unwrap_or(u64::MAX)
                    .saturating_add(answer["duplicates"].as_u64().unwrap_or(u64::MAX));
                prop_assert_eq!(Some(sum as usize), reports_in(&body), "{}", answer);
                f.applied
                    .fetch_add(answer["applied"].as_u64().unwrap_or(0), Ordering::Relaxed);
            }
        } else {
            let k = keys(&answer);
            prop_assert!(
                k == ["error", "retryable"] || k == ["error", "index", "retryable"],
                "{}",
                answer
            );
            prop_assert!(
                answer["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{}",
                answer
            );
            prop_assert_eq!(
                answer["retryable"].as_bool(),
                Some(status == 503),
                "{}",
                answer
            );
            if let Some(index) = answer.get("index") {
                prop_assert!(!get && status == 400, "{}", answer);
                let index = index.as_u64().map(|i| i as usize);
                prop_assert!(index.is_some(), "index not a number: {}", answer);
                if let Some(n) = r.body.reports() {
                    prop_assert!(index < Some(n), "index outside the batch: {}", answer);
                }
            }
        }
        if !authentic {
            prop_assert_eq!(status, 401, "not authentic: {}", answer);
            prop_assert!(
                b.store.snapshot() == full,
                "not authentic, yet the store changed"
            );
            prop_assert_eq!(b.jobs.len(), queued, "not authentic, yet a job was queued");
            continue;
        }
        f.authentic.fetch_add(1, Ordering::Relaxed);
        prop_assert!(
            !matches!(status, 401 | 503),
            "authentic, yet {}: {}",
            status,
            answer
        );
        if let Some(n) = nonce {
            b.used_set.insert(n.clone());
            b.used.push(n);
        }
        if status != 200 || get {
            prop_assert!(
                b.store.snapshot_without_nonces() == without_nonces,
                "refused (or only read), yet the store changed: {}",
                answer
            );
            prop_assert_eq!(b.jobs.len(), queued, "refused, yet a job was queued");
        }
    }
    Ok(())
}

#[test]
fn the_usage_api_answers_every_request_in_shape_and_stores_nothing_unauthenticated() {
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
    let statuses: Vec<String> = STATUSES
        .iter()
        .zip(&f.statuses)
        .filter(|(_, n)| n.load(Ordering::Relaxed) > 0)
        .map(|(s, n)| format!("{s}: {}", n.load(Ordering::Relaxed)))
        .collect();
    eprintln!(
        "usage fuzz: {} cases, {} requests ({} authentic, {} reports applied) in {:.1} s; statuses {}",
        cases(),
        f.requests.load(Ordering::Relaxed),
        f.authentic.load(Ordering::Relaxed),
        f.applied.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
        statuses.join(", ")
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}
