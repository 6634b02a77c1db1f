//! `koogallery-sim serve-openapi`: KooGallery's open API as a vendor's client meets it (spec
//! docs/protocol/openapi.md §0–§2, §8), on two loopback listeners that play the primary and the
//! fallback host.
//!
//! Every request's APIG signature is verified as the gateway does (`APIG.0303` for a bad
//! signature, an unknown AK, or more than 15 minutes of skew). Query Order serves the orders placed
//! with [`OpenApiSim::place`] (or `POST /_sim/orders`) and KooGallery's documented `MOCK…` orders.
//! Faults are injected on demand, one per request in order ([`Fault`], or `POST /_sim/faults`),
//! and the primary host can be taken down ([`OpenApiSim::set_primary_down`]): it then answers 503,
//! which a client must treat as a host to fall back from.

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use crate::platform::{apig, usage_sign};
use axum::{
    Json, Router,
    body::Bytes,
    extract::{RawQuery, State},
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use chrono::{DateTime, Months, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

/// An order as KooGallery keeps it; what Query Order answers for its one line.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimOrder {
    pub order_id: String,
    pub order_line_id: String,
    #[serde(default = "new_type")]
    pub order_type: String,
    #[serde(default = "period")]
    pub charging_mode: String,
    #[serde(default)]
    pub period_type: Option<String>,
    #[serde(default)]
    pub period_number: Option<u32>,
    #[serde(default)]
    pub expire_time: Option<DateTime<Utc>>,
    #[serde(default = "sku")]
    pub sku_code: String,
    #[serde(default = "product")]
    pub product_id: String,
    #[serde(default = "product_name")]
    pub product_name: String,
    #[serde(default)]
    pub linear_value: Option<u32>,
    #[serde(default = "customer")]
    pub customer_id: String,
    #[serde(default = "customer_name")]
    pub customer_name: String,
}

fn new_type() -> String {
    "NEW".into()
}
fn period() -> String {
    "PERIOD".into()
}
fn sku() -> String {
    "sim-sku-standard".into()
}
fn product() -> String {
    "OFFI000000000000000001".into()
}
fn product_name() -> String {
    "Simulated product, standard edition".into()
}
fn customer() -> String {
    "sim0000000000000000000000000001".into()
}
fn customer_name() -> String {
    "sim_buyer_01".into()
}

impl SimOrder {
    /// A new yearly purchase of `seats` (the linear attribute), expiring a year from `now`.
    pub fn yearly(order_id: &str, seats: u32, now: DateTime<Utc>) -> Self {
        Self {
            order_id: order_id.to_owned(),
            order_line_id: format!("{order_id}-000001"),
            order_type: new_type(),
            charging_mode: period(),
            period_type: Some("year".into()),
            period_number: Some(1),
            expire_time: now.checked_add_months(Months::new(12)),
            sku_code: "sim-sku-pro".into(),
            product_id: product(),
            product_name: "Simulated product, pro edition, yearly".into(),
            linear_value: Some(seats),
            customer_id: customer(),
            customer_name: customer_name(),
        }
    }

    /// KooGallery's documented mock orders (docs/protocol/openapi.md §2), line `<id>-000001`.
    pub fn mocks(now: DateTime<Utc>) -> Vec<Self> {
        let mk = |id: &str, kind: &str, mode: &str, period: Option<(&str, u32)>| Self {
            order_type: kind.into(),
            charging_mode: mode.into(),
            period_type: period.map(|p| p.0.to_owned()),
            period_number: period.map(|p| p.1),
            expire_time: period.and_then(|(unit, n)| match unit {
                "year" => now.checked_add_months(Months::new(12 * n)),
                "month" => now.checked_add_months(Months::new(n)),
                _ => now.checked_add_signed(chrono::Duration::days(i64::from(n))),
            }),
            linear_value: Some(50),
            ..Self::yearly(id, 50, now)
        };
        vec![
            mk("MOCKPERIODYEARNEW", "NEW", "PERIOD", Some(("year", 1))),
            mk("MOCKONETIMENEW", "NEW", "ONE_TIME", None),
            mk("MOCKONDEMAND", "NEW", "ON_DEMAND", None),
            mk(
                "MOCKONDEMANDPKG",
                "NEW",
                "ON_DEMAND_PKG",
                Some(("month", 1)),
            ),
            mk("MOCKPERIODDAYTRIAL", "TRIAL", "PERIOD", Some(("day", 7))),
            mk(
                "MOCKMONTYTRIALTOFORMAL",
                "TRIAL_TO_FORMAL",
                "PERIOD",
                Some(("month", 1)),
            ),
            mk(
                "MOCKMONTYUNSUBSCRIBE",
                "UNSUBSCRIBE",
                "PERIOD",
                Some(("month", 1)),
            ),
            mk("MOCKMONTYRENEW", "RENEW", "PERIOD", Some(("month", 1))),
            mk("MOCKMONTYCHANGE", "CHANGE", "PERIOD", Some(("month", 1))),
        ]
    }

    /// Query Order's `orderInfo` for this order.
    pub fn order_info(&self) -> Value {
        json!({
            "orderId": self.order_id,
            "orderType": self.order_type,
            "createTime": time_14(Utc::now()),
            "orderLine": [{
                "orderLineId": self.order_line_id,
                "chargingMode": self.charging_mode,
                "periodType": self.period_type,
                "periodNumber": self.period_number,
                "expireTime": self.expire_time.map(time_14),
                "productInfo": [{
                    "productId": self.product_id,
                    "skuCode": self.sku_code,
                    "linearValue": self.linear_value,
                    "productName": self.product_name,
                }],
                "extendParams": [{"name": "emailDomainName", "value": "buyer.example.com"}],
                "currency": "100",
                "currencyAfterDiscount": "100",
            }],
            "buyerInfo": {
                "customerId": self.customer_id,
                "customerName": self.customer_name,
                "customerType": 0,
                "email": null,
                "userId": null,
                "userName": null,
            },
            "extendParams": [],
        })
    }
}

/// What the next request meets, in order of injection.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Fault {
    /// Answer this HTTP status with an `MKT.0999` body (502–504: with no body, as a proxy would).
    Status { status: u16 },
    /// Wait this long before answering.
    Slow { millis: u64 },
    /// Answer this `MKT.*` code (with its documented HTTP status).
    Mkt { code: String },
    /// Do the work (a usage push is accepted), then hold the answer this long: past the client's
    /// timeout the answer is lost, and the client cannot know it succeeded.
    LostAnswer { millis: u64 },
    /// Answer this `MKT.*` code to every request for this long, from the request that meets it
    /// (KooGallery refusing everything for a while, e.g. `MKT.0100`), then recover.
    MktFor { code: String, millis: u64 },
}

/// A request the simulator received, for assertions.
#[derive(Debug, Clone)]
pub struct Seen {
    pub host: &'static str,
    pub path: String,
    pub query: String,
    pub host_header: String,
    pub authorized: bool,
}

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
struct Usage {
    accepted: Vec<UsageRecord>,
    /// Records dropped as repeats: the same instance and window (docs/protocol/openapi.md §3 rule
    /// 5), or the same `metering_sn`.
    duplicates: usize,
    /// Repeats whose content differs from the record first accepted for that window or serial:
    /// what a vendor must never send (the second would be dropped, its usage unbilled or wrong).
    conflicting: Vec<UsageRecord>,
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

struct Inner {
    keys: HashMap<String, String>,
    /// The seller's interconnection key: the usage push's body signature
    /// (docs/protocol/openapi.md §3).
    interconnection_key: Mutex<String>,
    usage: Mutex<Usage>,
    orders: Mutex<HashMap<String, SimOrder>>,
    faults: Mutex<VecDeque<Fault>>,
    primary_down: AtomicBool,
    seen: Mutex<Vec<Seen>>,
    /// Set by a `LostAnswer` fault: how long the request now in hand holds its answer.
    hold_answer_ms: std::sync::atomic::AtomicU64,
    /// Usage pushes whose answer a `LostAnswer` fault has begun to hold.
    answers_held: std::sync::atomic::AtomicUsize,
    /// Set by a `MktFor` fault: the code every request meets until when.
    refusing: Mutex<Option<(String, std::time::Instant)>>,
}

impl Inner {
    fn place(&self, order: SimOrder) {
        if let Ok(mut orders) = self.orders.lock() {
            orders.insert(order.order_id.clone(), order);
        }
    }

    fn inject(&self, fault: Fault) {
        if let Ok(mut faults) = self.faults.lock() {
            faults.push_back(fault);
        }
    }
}

/// The simulated open API, shared by its two listeners.
#[derive(Clone)]
pub struct OpenApiSim {
    inner: Arc<Inner>,
    pub primary: SocketAddr,
    pub fallback: SocketAddr,
}

#[derive(Clone)]
struct HostState {
    inner: Arc<Inner>,
    name: &'static str,
}

impl OpenApiSim {
    /// Listens on `primary` and `fallback` (port 0: any free port) for the AK/SK pairs in `keys`.
    pub async fn start(
        keys: HashMap<String, String>,
        primary: SocketAddr,
        fallback: SocketAddr,
    ) -> std::io::Result<Self> {
        let now = Utc::now();
        let orders = SimOrder::mocks(now)
            .into_iter()
            .map(|o| (o.order_id.clone(), o))
            .collect();
        let inner = Arc::new(Inner {
            keys,
            interconnection_key: Mutex::new(koogallery::config::DEV_ACCESS_KEY.to_owned()),
            usage: Mutex::new(Usage::default()),
            orders: Mutex::new(orders),
            faults: Mutex::new(VecDeque::new()),
            primary_down: AtomicBool::new(false),
            seen: Mutex::new(Vec::new()),
            hold_answer_ms: std::sync::atomic::AtomicU64::new(0),
            answers_held: std::sync::atomic::AtomicUsize::new(0),
            refusing: Mutex::new(None),
        });
        let mut addrs = Vec::new();
        for (name, addr) in [("primary", primary), ("fallback", fallback)] {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            addrs.push(listener.local_addr()?);
            let app = router(HostState {
                inner: inner.clone(),
                name,
            });
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
        }
        Ok(Self {
            inner,
            primary: addrs[0],
            fallback: addrs[1],
        })
    }

    pub fn primary_url(&self) -> String {
        format!("http://{}", self.primary)
    }

    pub fn fallback_url(&self) -> String {
        format!("http://{}", self.fallback)
    }

    /// Makes `order` known to Query Order.
    pub fn place(&self, order: SimOrder) {
        self.inner.place(order);
    }

    /// Queues `fault` for the next request that reaches either host.
    pub fn inject(&self, fault: Fault) {
        self.inner.inject(fault);
    }

    /// While down, the primary host answers 503 to everything.
    pub fn set_primary_down(&self, down: bool) {
        self.inner.primary_down.store(down, Ordering::SeqCst);
    }

    /// The key usage pushes are body-signed with (the basic interfaces' access key; the
    /// development key unless set).
    pub fn set_interconnection_key(&self, key: &str) {
        if let Ok(mut k) = self.inner.interconnection_key.lock() {
            *k = key.to_owned();
        }
    }

    /// Repeats that differed from the record accepted first for their window or serial.
    pub fn usage_conflicts(&self) -> Vec<UsageRecord> {
        self.inner
            .usage
            .lock()
            .map(|u| u.conflicting.clone())
            .unwrap_or_default()
    }

    /// Usage records accepted so far, in order, and how many repeats were dropped.
    pub fn usage(&self) -> (Vec<UsageRecord>, usize) {
        self.inner
            .usage
            .lock()
            .map(|u| (u.accepted.clone(), u.duplicates))
            .unwrap_or_default()
    }

    /// How many usage pushes a `LostAnswer` fault has held the answer of, counted as the hold
    /// begins: their records are accepted and the answer is not sent yet (the push is in flight).
    pub fn answers_held(&self) -> usize {
        self.inner.answers_held.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.inner
            .seen
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }
}

fn router(state: HostState) -> Router {
    Router::new()
        .route(QUERY_ORDER_PATH, get(query_order))
        .route(USAGE_PATH, post(usage_push))
        .route("/_sim/orders", post(place_order))
        .route("/_sim/faults", post(inject_fault))
        .route("/_sim/usage", get(usage_received))
        .with_state(state)
}

fn answer(status: u16, body: Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        Json(body),
    )
        .into_response()
}

/// The documented HTTP status of an `MKT.*` code (docs/protocol/openapi.md §8).
fn mkt_status(code: &str) -> u16 {
    match code {
        "MKT.0101" | "MKT.0102" | "MKT.0199" => 400,
        "MKT.0150" | "MKT.0151" | "MKT.0154" => 401,
        "MKT.0250" => 406,
        _ => 500,
    }
}

/// Query Order (docs/protocol/openapi.md §2). KooGallery's own constants, not the service's, so a
/// wrong path on either side shows.
pub const QUERY_ORDER_PATH: &str = "/api/mkp-openapi-public/global/v1/order/query";

/// KooGallery's `yyyyMMddHHmmss` times, UTC (docs/protocol/openapi.md §2 `createTime`,
/// docs/protocol/callbacks.md §6.3 `expireTime`).
pub(crate) fn time_14(t: DateTime<Utc>) -> String {
    t.format("%Y%m%d%H%M%S").to_string()
}

/// The new usage push (docs/protocol/openapi.md §3).
pub const USAGE_PATH: &str = "/api/mkp-openapi-public/global/v1/isv/usage-data";
/// Records per push, and how far back a window may begin (docs/protocol/openapi.md §3).
pub const MAX_USAGE_RECORDS: usize = 1000;
pub const USAGE_HORIZON_DAYS: i64 = 21;

/// The gateway's part, shared by every API: note the request, refuse a down primary or a bad
/// signature, apply the next injected fault. `Err` is the answer to send instead.
async fn gateway(
    state: &HostState,
    method: &Method,
    uri: &Uri,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
    envelope: (&str, &str),
) -> Result<(), Response> {
    let pairs: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let borrowed: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let verified = apig::verify(
        &apig::Request {
            method: method.as_str(),
            path: uri.path(),
            query,
            headers: &borrowed,
            body,
        },
        Utc::now(),
        |ak| state.inner.keys.get(ak).cloned(),
    );
    if let Ok(mut seen) = state.inner.seen.lock() {
        seen.push(Seen {
            host: state.name,
            path: uri.path().to_owned(),
            query: query.to_owned(),
            host_header: headers
                .get("host")
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            authorized: verified.is_ok(),
        });
    }
    if state.name == "primary" && state.inner.primary_down.load(Ordering::SeqCst) {
        return Err(StatusCode::SERVICE_UNAVAILABLE.into_response());
    }
    if let Err(refused) = verified {
        return Err(answer(
            401,
            json!({"error_code": refused.code, "error_msg": refused.message}),
        ));
    }
    let (code_field, msg_field) = envelope;
    let refusing = state.inner.refusing.lock().ok().and_then(|mut r| {
        r.take_if(|(_, until)| *until <= std::time::Instant::now());
        r.as_ref().map(|(code, _)| code.clone())
    });
    if let Some(code) = refusing {
        return Err(answer(
            mkt_status(&code),
            json!({code_field: code, msg_field: "simulated: refusing every request for a while"}),
        ));
    }
    let fault = state
        .inner
        .faults
        .lock()
        .ok()
        .and_then(|mut f| f.pop_front());
    match fault {
        Some(Fault::Status { status }) if (502..=504).contains(&status) => {
            Err(StatusCode::from_u16(status)
                .unwrap_or(StatusCode::BAD_GATEWAY)
                .into_response())
        }
        Some(Fault::Status { status }) => Err(answer(
            status,
            json!({code_field: "MKT.0999", msg_field: "simulated internal error"}),
        )),
        Some(Fault::Mkt { code }) => Err(answer(
            mkt_status(&code),
            json!({code_field: code, msg_field: "simulated"}),
        )),
        Some(Fault::Slow { millis }) => {
            tokio::time::sleep(Duration::from_millis(millis)).await;
            Ok(())
        }
        Some(Fault::LostAnswer { millis }) => {
            state.inner.hold_answer_ms.store(millis, Ordering::SeqCst);
            Ok(())
        }
        Some(Fault::MktFor { code, millis }) => {
            let until = std::time::Instant::now() + Duration::from_millis(millis);
            if let Ok(mut r) = state.inner.refusing.lock() {
                *r = Some((code.clone(), until));
            }
            Err(answer(
                mkt_status(&code),
                json!({code_field: code, msg_field: "simulated: refusing every request for a while"}),
            ))
        }
        None => Ok(()),
    }
}

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

async fn usage_push(
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
    if !usage_sign::verify(
        &key,
        header("ts"),
        header("nonce"),
        &body,
        header("signature"),
    ) {
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
    if push.usage_records.len() > MAX_USAGE_RECORDS {
        return usage_error(
            "MKT.9003",
            format!(
                "{} records; at most {MAX_USAGE_RECORDS}",
                push.usage_records.len()
            ),
        );
    }
    let horizon = Utc::now() - chrono::Duration::days(USAGE_HORIZON_DAYS);
    for r in &push.usage_records {
        let Ok(begin) = chrono::NaiveDateTime::parse_from_str(&r.begin_time, apig::DATE_FORMAT)
        else {
            return usage_error(
                "MKT.9002",
                format!("begin_time {:?} is not yyyyMMddTHHmmssZ", r.begin_time),
            );
        };
        if begin.and_utc() < horizon {
            return usage_error(
                "MKT.9004",
                format!(
                    "begin_time {} is more than {USAGE_HORIZON_DAYS} days ago",
                    r.begin_time
                ),
            );
        }
        if !valid_usage_value(&r.usage_value)
            || r.metering_sn.is_empty()
            || r.instance_id.is_empty()
        {
            return usage_error(
                "MKT.9002",
                format!("invalid usage record {}", r.metering_sn),
            );
        }
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

async fn query_order(
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
        ("resultCode", "resultMsg"),
    )
    .await
    {
        return refused;
    }
    let params: HashMap<String, String> = form_urlencoded_pairs(&query);
    let Some(order_id) = params.get("orderId") else {
        return answer(
            400,
            json!({"resultCode":"MKT.0101","resultMsg":"orderId is mandatory"}),
        );
    };
    let order = state
        .inner
        .orders
        .lock()
        .ok()
        .and_then(|o| o.get(order_id).cloned());
    match order {
        Some(order)
            if params
                .get("orderLineId")
                .is_none_or(|line| *line == order.order_line_id) =>
        {
            answer(
                200,
                json!({"resultCode":"MKT.0000","resultMsg":"Success","orderInfo": order.order_info()}),
            )
        }
        _ => answer(
            400,
            json!({"resultCode":"MKT.0101","resultMsg": format!("order {order_id} does not exist")}),
        ),
    }
}

fn form_urlencoded_pairs(query: &str) -> HashMap<String, String> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

async fn place_order(State(state): State<HostState>, Json(order): Json<SimOrder>) -> StatusCode {
    state.inner.place(order);
    StatusCode::NO_CONTENT
}

/// What KooGallery holds: the accepted records, the dropped repeats, the conflicting ones.
async fn usage_received(State(state): State<HostState>) -> Response {
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

async fn inject_fault(State(state): State<HostState>, Json(fault): Json<Fault>) -> StatusCode {
    state.inner.inject(fault);
    StatusCode::NO_CONTENT
}
