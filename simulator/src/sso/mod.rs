//! 联营 SSO as the vendor meets it (docs/protocol/callbacks.md §10, docs/protocol/openapi.md §9):
//! KooGallery's unified login page and the tenant's auth centre, served by `serve-openapi`.
//!
//! The simulator plays every tenant's auth centre on its own listeners, so a tenant's
//! `domainName` is the simulator's primary URL and the auth centre answers at `/api/v1/…` there
//! (the fallback listener serves the same). The unified login page, `#/portal-login` on
//! `macroverse.huaweicloud.com`, is a real path here, `GET /unified-login/portal-login?ind=UNOP&appId=…`,
//! since a server never sees a fragment.
//!
//! Routes:
//! * `GET /unified-login/portal-login?ind=UNOP&appId=…`: a form (inputs `tenant`, `userName`,
//!   button `login`); `POST /unified-login/login` issues a code and redirects to the app's login
//!   address with `?code=…&tenant=…` (no `state`, as the real platform).
//! * `POST /api/v1/oauth2/token` (authorization code and refresh grants),
//!   `GET /api/v1/oauth2/userinfo`, `GET /api/v1/logout?redirect_url=…`.
//! * Control: `POST /_sim/sso/apps`, `/_sim/sso/tenants`, `/_sim/sso/settings`, `/_sim/sso/faults`,
//!   `GET /_sim/sso/seen`.
//!
//! What the real auth centre does not document, decided here: a refresh rotates (the old refresh
//! token stops working); a login does not check authSync's `enable` (the vendor must); userinfo's
//! `organizationName` is the registered user's `organizationName` if given, else
//! `部门 {orgCode}`; `id` and `userId` are one UUID derived from tenant and userName; the primary
//! host's `set_primary_down` does not touch SSO (the auth centre is the tenant's host, not
//! KooGallery's open API).

mod auth_centre;
mod control;
mod login;
mod tenants;
#[cfg(test)]
mod tests;

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use axum::{
    Router,
    routing::{get, post},
};
use serde::{Deserialize, Serialize};

pub use tenants::{KIT_TENANT_NAME, SsoTenantRegistration, SsoUser};

/// What the next SSO request of the kind a fault applies to meets. Each fault waits, in order of
/// injection, for the first request it applies to, and is spent by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum SsoFault {
    /// The next authorization-code exchange answers 400 `invalid_grant` even for a good code
    /// (the code is spent, as if a first exchange had used it).
    UsedCode,
    /// The next refresh answers 400 `invalid_grant` "Invalid refresh token" (the refresh token is
    /// dropped, as if it had expired).
    ExpiredRefresh,
    /// The next auth-centre call (token, refresh, userinfo or logout) answers 500 with a body.
    ServerError,
    /// The next *successful* token answer (either grant) carries no `refresh_token`; on a refresh,
    /// the old refresh token then stays valid (nothing replaces it).
    NoRefreshToken,
    /// The next userinfo answers 401 `unauthorized`.
    Unauthorized,
}

impl SsoFault {
    /// Whether a request of `kind` meets this fault when it arrives (`NoRefreshToken` is taken
    /// only when a success is answered).
    fn met_by(self, kind: SsoKind) -> bool {
        match self {
            Self::UsedCode => kind == SsoKind::Token,
            Self::ExpiredRefresh => kind == SsoKind::Refresh,
            Self::ServerError => kind != SsoKind::Login,
            Self::NoRefreshToken => false,
            Self::Unauthorized => kind == SsoKind::Userinfo,
        }
    }
}

/// Which SSO request was received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SsoKind {
    /// `POST /unified-login/login`.
    Login,
    /// The token endpoint with `grant_type=authorization_code` (or none, or another).
    Token,
    /// The token endpoint with `grant_type=refresh_token`.
    Refresh,
    Userinfo,
    Logout,
}

/// One SSO request received, for assertions. Never holds a code, token or secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SsoSeen {
    pub kind: SsoKind,
    /// The tenant the request concerned, when known.
    pub tenant: Option<String>,
    /// The HTTP status answered.
    pub status: u16,
    /// `ok`, or the OAuth error answered (`invalid_grant`, `invalid_client`, …).
    pub outcome: String,
    /// Why, in a few words (e.g. `code already used`, `fault UsedCode`).
    pub detail: String,
}

/// Lifetimes, changeable for tests (`POST /_sim/sso/settings`); an absent field is unchanged.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SsoSettings {
    /// Access-token lifetime (default 7200 s, the documented `expires_in`).
    pub access_token_seconds: Option<u64>,
    /// Refresh-token lifetime (default 30 days).
    pub refresh_token_seconds: Option<u64>,
    /// Authorization-code lifetime (default 5 minutes).
    pub code_seconds: Option<u64>,
}

struct Tenant {
    name: String,
    /// appId → (clientId, clientSecret).
    clients: HashMap<String, (String, String)>,
    users: HashMap<String, SsoUser>,
}

/// Whom a code or token was issued to.
#[derive(Clone)]
struct Grant {
    tenant: String,
    app_id: String,
    user_name: String,
    expires: Instant,
}

struct State {
    /// appId → the registered login address (应用登录地址).
    apps: BTreeMap<String, String>,
    tenants: BTreeMap<String, Tenant>,
    codes: HashMap<String, Grant>,
    access: HashMap<String, Grant>,
    refresh: HashMap<String, Grant>,
    faults: VecDeque<SsoFault>,
    seen: Vec<SsoSeen>,
    access_ttl: Duration,
    refresh_ttl: Duration,
    code_ttl: Duration,
}

impl State {
    fn note(
        &mut self,
        kind: SsoKind,
        tenant: Option<&str>,
        status: u16,
        outcome: &str,
        detail: &str,
    ) {
        self.seen.push(SsoSeen {
            kind,
            tenant: tenant.map(str::to_owned),
            status,
            outcome: outcome.to_owned(),
            detail: detail.to_owned(),
        });
    }

    /// The first queued fault a request of `kind` meets, removed from the queue.
    fn take_fault(&mut self, kind: SsoKind) -> Option<SsoFault> {
        let at = self.faults.iter().position(|f| f.met_by(kind))?;
        self.faults.remove(at)
    }

    /// Whether a `NoRefreshToken` fault is queued; it is spent.
    fn take_no_refresh(&mut self) -> bool {
        match self
            .faults
            .iter()
            .position(|f| *f == SsoFault::NoRefreshToken)
        {
            Some(at) => self.faults.remove(at).is_some(),
            None => false,
        }
    }
}

/// The SSO side of the simulator, shared by both listeners.
pub struct Sso {
    state: Mutex<State>,
}

impl Default for Sso {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                apps: BTreeMap::new(),
                tenants: BTreeMap::new(),
                codes: HashMap::new(),
                access: HashMap::new(),
                refresh: HashMap::new(),
                faults: VecDeque::new(),
                seen: Vec::new(),
                access_ttl: Duration::from_secs(7200),
                refresh_ttl: Duration::from_secs(30 * 24 * 3600),
                code_ttl: Duration::from_secs(300),
            }),
        }
    }
}

impl Sso {
    /// The state; a panic elsewhere while it was held leaves it usable (every change is whole).
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers (or replaces) app `app_id`'s login address.
    ///
    /// # Errors
    /// The address is not an absolute http(s) URL, or `app_id` is empty.
    pub fn register_app(&self, app_id: &str, login_address: &str) -> Result<(), String> {
        if app_id.is_empty() {
            return Err("appId is empty".into());
        }
        match reqwest::Url::parse(login_address) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => {
                return Err(format!(
                    "loginAddress {login_address:?} is not an http(s) URL"
                ));
            }
        }
        self.state()
            .apps
            .insert(app_id.to_owned(), login_address.to_owned());
        Ok(())
    }

    /// Registers a tenant, its client for one app and its users.
    ///
    /// # Errors
    /// An empty tenantId, appId, clientId or clientSecret, or a user without userName.
    pub fn register_tenant(&self, reg: SsoTenantRegistration) -> Result<(), String> {
        for (field, value) in [
            ("tenantId", &reg.tenant_id),
            ("appId", &reg.app_id),
            ("clientId", &reg.client_id),
            ("clientSecret", &reg.client_secret),
        ] {
            if value.is_empty() {
                return Err(format!("{field} is empty"));
            }
        }
        if reg.users.iter().any(|u| u.user_name.is_empty()) {
            return Err("a user has an empty userName".into());
        }
        let mut state = self.state();
        let tenant = state
            .tenants
            .entry(reg.tenant_id.clone())
            .or_insert_with(|| Tenant {
                name: String::new(),
                clients: HashMap::new(),
                users: HashMap::new(),
            });
        if !reg.name.is_empty() || tenant.name.is_empty() {
            tenant.name = reg.name;
        }
        tenant
            .clients
            .insert(reg.app_id, (reg.client_id, reg.client_secret));
        for user in reg.users {
            tenant.users.insert(user.user_name.clone(), user);
        }
        Ok(())
    }

    /// Changes the lifetimes given; others stay.
    pub fn settings(&self, settings: SsoSettings) {
        let mut state = self.state();
        if let Some(s) = settings.access_token_seconds {
            state.access_ttl = Duration::from_secs(s);
        }
        if let Some(s) = settings.refresh_token_seconds {
            state.refresh_ttl = Duration::from_secs(s);
        }
        if let Some(s) = settings.code_seconds {
            state.code_ttl = Duration::from_secs(s);
        }
    }

    /// Queues `fault` (see [`SsoFault`] for which request meets it).
    pub fn push_fault(&self, fault: SsoFault) {
        self.state().faults.push_back(fault);
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    /// Every SSO request received so far, in order.
    pub fn seen(&self) -> Vec<SsoSeen> {
        self.state().seen.clone()
    }
}

/// The SSO routes, on `sso`.
pub(crate) fn router(sso: Arc<Sso>) -> Router {
    Router::new()
        .route("/unified-login/portal-login", get(login::page))
        .route("/unified-login/login", post(login::login))
        .route("/api/v1/oauth2/token", post(auth_centre::token))
        .route("/api/v1/oauth2/userinfo", get(auth_centre::userinfo))
        .route("/api/v1/logout", get(auth_centre::logout))
        .route("/_sim/sso/apps", post(control::app))
        .route("/_sim/sso/tenants", post(control::tenant))
        .route("/_sim/sso/settings", post(control::settings))
        .route("/_sim/sso/faults", post(control::fault))
        .route("/_sim/sso/seen", get(control::seen))
        .with_state(sso)
}

/// A random code or token: 32 hex digits, unguessable (UUID v4).
fn random_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The pairs of a query string or form body.
fn pairs(raw: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(raw).into_owned().collect()
}

/// A 302 to `location` (axum's `Redirect` answers 303, 307 or 308; the platform answers 302).
fn found(location: &str) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    match axum::http::HeaderValue::from_str(location) {
        Ok(value) => (
            axum::http::StatusCode::FOUND,
            [(axum::http::header::LOCATION, value)],
        )
            .into_response(),
        Err(_) => axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
