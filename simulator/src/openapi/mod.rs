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
//!
//! License 2.0 and the string / file upload (§4, §5) are served too ([`license`]): the
//! `PLTEST…` codes are known, License faults are queued with [`OpenApiSim::inject_license_fault`]
//! (or `POST /_sim/license/faults`).
//!
//! Both listeners also serve 联营 SSO ([`crate::sso`]): KooGallery's unified login page at
//! `/unified-login/portal-login` and every tenant's auth centre at `/api/v1/…`, so a tenant's
//! `domainName` is this simulator's primary URL.

mod gateway;
pub mod license;
mod query_order;
mod usage_push;

#[cfg(test)]
mod license_tests;

pub use gateway::{Fault, Seen};
pub use license::{LicenseFault, LicenseUsage, SimLicense, SimUpload};
pub(crate) use query_order::time_14;
pub use query_order::{QUERY_ORDER_PATH, SimOrder};
pub use usage_push::{MAX_USAGE_RECORDS, USAGE_HORIZON_DAYS, USAGE_PATH, UsageRecord};

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use chrono::Utc;
use serde_json::Value;

use crate::sso::{Sso, SsoFault, SsoSeen, SsoSettings, SsoTenantRegistration};

use query_order::{place_order, query_order};
use usage_push::{Usage, usage_push, usage_received};

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
    /// License codes, License faults, usage reports and uploads (docs/protocol/openapi.md §4, §5).
    licenses: Mutex<license::Licenses>,
    /// Set by a `LostAnswer` fault: how long the request now in hand holds its answer.
    hold_answer_ms: std::sync::atomic::AtomicU64,
    /// Usage pushes whose answer a `LostAnswer` fault has begun to hold.
    answers_held: std::sync::atomic::AtomicUsize,
    /// Set by a `MktFor` fault: the code every request meets until when.
    refusing: Mutex<Option<(String, std::time::Instant)>>,
    /// The unified login page and the tenants' auth centre (docs/protocol/callbacks.md §10),
    /// served beside the open API on both listeners.
    sso: Arc<Sso>,
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
            licenses: Mutex::new(license::Licenses::default()),
            hold_answer_ms: std::sync::atomic::AtomicU64::new(0),
            answers_held: std::sync::atomic::AtomicUsize::new(0),
            refusing: Mutex::new(None),
            sso: Arc::new(Sso::default()),
        });
        let mut addrs = Vec::new();
        for (name, addr) in [("primary", primary), ("fallback", fallback)] {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            addrs.push(listener.local_addr()?);
            let app = router(HostState {
                inner: inner.clone(),
                name,
            })
            .merge(crate::sso::router(inner.sso.clone()));
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

    /// Registers (or replaces) SSO app `app_id` and its login address (应用登录地址), where the
    /// unified login sends the browser with `code` and `tenant`.
    ///
    /// # Errors
    /// An empty `app_id`, or a login address that is not an http(s) URL.
    pub fn register_sso_app(&self, app_id: &str, login_address: &str) -> Result<(), String> {
        self.inner.sso.register_app(app_id, login_address)
    }

    /// Registers an SSO tenant with its client for one app and its users (see
    /// [`SsoTenantRegistration::kit`] for the tenant a kit run syncs).
    ///
    /// # Errors
    /// An empty id, client or secret, or a user without `userName`.
    pub fn register_sso_tenant(&self, tenant: SsoTenantRegistration) -> Result<(), String> {
        self.inner.sso.register_tenant(tenant)
    }

    /// Changes the SSO lifetimes given (access token, refresh token, code).
    pub fn sso_settings(&self, settings: SsoSettings) {
        self.inner.sso.settings(settings);
    }

    /// Queues an SSO fault for the first later request it applies to.
    pub fn push_sso_fault(&self, fault: SsoFault) {
        self.inner.sso.push_fault(fault);
    }

    /// Drops every queued SSO fault.
    pub fn clear_sso_faults(&self) {
        self.inner.sso.clear_faults();
    }

    /// Every SSO request received so far (never a code, token or secret).
    pub fn sso_seen(&self) -> Vec<SsoSeen> {
        self.inner.sso.seen()
    }

    /// Changes a license code's status (`ALIVE`, `EXPIRED`, `RELEASED`, or any other word).
    ///
    /// # Errors
    /// The code is neither kept nor a `PLTEST…` code.
    pub fn set_license_status(&self, code: &str, status: &str) -> Result<(), String> {
        self.inner
            .licenses
            .lock()
            .map_err(|_| "poisoned".to_owned())
            .and_then(|mut l| l.set_status(code, status))
    }

    /// A license code as KooGallery keeps it (a `PLTEST…` code before activation too).
    pub fn license(&self, code: &str) -> Option<SimLicense> {
        self.inner
            .licenses
            .lock()
            .ok()
            .and_then(|mut l| l.get(code))
    }

    /// Queues `fault` (`count` times) for the next License calls that pass the gateway.
    pub fn inject_license_fault(&self, fault: LicenseFault) {
        if let Ok(mut l) = self.inner.licenses.lock() {
            l.inject(fault);
        }
    }

    /// Software usage recorded so far, one entry per code per accepted report.
    pub fn license_usage(&self) -> Vec<LicenseUsage> {
        self.inner
            .licenses
            .lock()
            .map(|l| l.usage())
            .unwrap_or_default()
    }

    /// Uploads accepted so far.
    pub fn uploads(&self) -> Vec<SimUpload> {
        self.inner
            .licenses
            .lock()
            .map(|l| l.uploads())
            .unwrap_or_default()
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
        .route(
            license::LICENSE_ACTIVATE_V1_PATH,
            post(license::activate_v1),
        )
        .route(
            license::LICENSE_ACTIVATE_V2_PATH,
            post(license::activate_v2),
        )
        .route(
            license::LICENSE_HEARTBEAT_V1_PATH,
            post(license::heartbeat_v1),
        )
        .route(
            license::LICENSE_USAGE_V2_PATH,
            post(license::software_usage),
        )
        // The gateway takes app-authenticated bodies up to 12 MB (§1.2); axum's default is 2 MB.
        .route(
            license::UPLOAD_ROUTE,
            post(license::upload).layer(DefaultBodyLimit::max(license::MAX_UPLOAD_BYTES)),
        )
        .route("/_sim/license/faults", post(license::inject_fault))
        .route("/_sim/license/usage", get(license::usage_received))
        .route("/_sim/license/{code}", get(license::show))
        .route("/_sim/license/{code}/status", post(license::set_status))
        .route("/_sim/uploads", get(license::uploads_received))
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

async fn inject_fault(State(state): State<HostState>, Json(fault): Json<Fault>) -> StatusCode {
    state.inner.inject(fault);
    StatusCode::NO_CONTENT
}
