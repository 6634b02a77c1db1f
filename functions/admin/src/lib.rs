//! The operator console and its API (docs/operations.md, "The operator console"):
//! `koogallery::operator`'s views and actions over HTTP, on the local host (mounted by
//! `koogallery-local`'s admin routes) and on AWS as the admin function (`lambda`, behind a
//! function URL with `AuthType: AWS_IAM`).
//!
//! - `/admin/api/…`: JSON (`operator::view`, `"v": 1`), for `koogallery-admin`.
//! - `/admin/…`: the same views as pages for a browser ([`pages`]); reads are `GET`s, every
//!   action a form `POST`.
//!
//! Who may call is the [`Auth`] mode's:
//!
//! - [`Auth::Token`] (the local host): every API call carries `Authorization: Bearer <admin
//!   token>` (401 without, 403 with another). Signing in with the admin token sets a session
//!   cookie (`HttpOnly`, `SameSite=Strict`, 12 hours; a MAC of its expiry under the token, so a
//!   new token ends every session); every action carries a CSRF token derived the same way.
//!   Without a session a page answers 401 with the sign-in form. `Who` is the name the caller
//!   gives in `x-koogallery-operator`, "(admin token, …)".
//! - [`Auth::Iam`] (the admin function): the function URL's `AuthType: AWS_IAM` has checked the
//!   caller's SigV4 signature and its `lambda:InvokeFunctionUrl` permission before the code
//!   runs, and hands over the caller ([`IamCaller`], from the request context's
//!   `authorizer.iam.userArn`). The API and the pages answer without a token or a cookie;
//!   `Who` is the caller's ARN. A request without an [`IamCaller`] is refused (401): it did not
//!   come through the function URL.
//!
//! **CSRF in IAM mode.** The function URL refuses every unsigned request, and nothing but the
//! caller's own credentials can sign one: a page elsewhere cannot make a browser send a signed
//! request, so a forged form post never reaches the function. The console takes no CSRF token
//! in this mode (the forms still carry the field, empty). A browser reaches the console only
//! through `koogallery-admin console --aws`, the local proxy that signs each request; the proxy
//! is therefore what a forged request would have to go through, and it refuses one: a one-time
//! token printed at start sets its cookie (`HttpOnly`, `SameSite=Strict`), every request must
//! carry that cookie and name the proxy as its `Host`, and a `POST` must come from the proxy's
//! own origin (`Origin`/`Sec-Fetch-Site`). A CSRF token under a per-deployment secret would
//! have needed a secret (and its rotation) for no gain the signature does not already give.

mod accounts;
mod api;
mod charts;
mod pages;
mod session;

mod token;

#[cfg(feature = "lambda")]
pub mod lambda;

pub use token::{AdminToken, TOKEN_FILE, bearer_refusal};

use std::sync::Arc;

use axum::{
    Router,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use koogallery::operator::{Operator, Who};

/// How the console's callers are authenticated (the crate's documentation says what each mode
/// checks).
#[derive(Clone, Debug)]
pub enum Auth {
    /// The local host: the admin token, as a bearer (the API) or a session cookie (the pages).
    Token {
        token: AdminToken,
        /// Whether the host serves HTTPS: the session cookie is then `Secure`.
        https: bool,
    },
    /// Behind a function URL with `AuthType: AWS_IAM`: the caller is the request's [`IamCaller`].
    Iam,
}

/// The IAM principal a function URL authenticated, put in the request's extensions by whoever
/// turns the Lambda event into a request (`lambda`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IamCaller(pub String);

/// What the console's routes share.
#[derive(Clone)]
pub struct Console {
    pub operator: Arc<Operator>,
    pub auth: Auth,
}

/// The header `koogallery-admin` names its user in (kept with every action).
pub const OPERATOR_HEADER: &str = "x-koogallery-operator";

impl Console {
    /// Who asked: in IAM mode the caller's ARN; else the admin token's holder, as the caller
    /// names itself.
    fn who(&self, headers: &HeaderMap, via: &str) -> Who {
        if let Some(arn) = headers
            .get(IAM_CALLER_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|_| matches!(self.auth, Auth::Iam))
        {
            return Who(format!("{arn} (IAM, {via})"));
        }
        let named = headers
            .get(OPERATOR_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.chars()
                    .filter(|c| !c.is_control())
                    .take(100)
                    .collect::<String>()
            })
            .filter(|v| !v.trim().is_empty());
        Who(match named {
            Some(name) => format!("{name} (admin token, {via})"),
            None => format!("admin token holder ({via})"),
        })
    }
}

impl Console {
    /// The API's refusal of an unauthenticated call, if any: a missing or wrong bearer token in
    /// token mode; none in IAM mode ([`routes`] has refused a call without its caller).
    fn api_refusal(&self, headers: &HeaderMap) -> Option<Response> {
        match &self.auth {
            Auth::Token { token, .. } => bearer_refusal(token, headers),
            Auth::Iam => None,
        }
    }

    /// The page request's session: its cookie's in token mode; in IAM mode, always one (the
    /// function URL authenticated the caller).
    fn session(&self, headers: &HeaderMap, now: i64) -> Option<session::Session> {
        match &self.auth {
            Auth::Token { token, .. } => session::Session::from_headers(headers, token, now),
            Auth::Iam => Some(session::Session::iam()),
        }
    }

    /// The CSRF token the session's forms carry (none in IAM mode: see the crate's documentation).
    fn csrf(&self, s: &session::Session) -> String {
        match &self.auth {
            Auth::Token { token, .. } => s.csrf(token),
            Auth::Iam => String::new(),
        }
    }

    /// Whether `presented` is the session's CSRF token (IAM mode takes none).
    fn csrf_matches(&self, s: &session::Session, presented: &str) -> bool {
        match &self.auth {
            Auth::Token { token, .. } => s.csrf_matches(token, presented),
            Auth::Iam => true,
        }
    }
}

/// The header the IAM caller is handed to the handlers in: set from [`IamCaller`] by
/// [`routes`]' own layer, after removing any the request carried.
const IAM_CALLER_HEADER: &str = "x-koogallery-iam-caller";

/// In IAM mode: the request's [`IamCaller`] into [`IAM_CALLER_HEADER`] (a caller cannot set it
/// itself: whatever the request carried is dropped first), or a 401 without one.
async fn iam_caller(
    axum::extract::State(auth): axum::extract::State<Auth>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    request.headers_mut().remove(IAM_CALLER_HEADER);
    if let Auth::Iam = auth {
        let caller = request
            .extensions()
            .get::<IamCaller>()
            .and_then(|c| header::HeaderValue::from_str(&c.0).ok());
        match caller {
            Some(arn) => {
                request.headers_mut().insert(IAM_CALLER_HEADER, arn);
            }
            None => {
                tracing::warn!("operator call refused: no IAM caller in the request context");
                return (
                    StatusCode::UNAUTHORIZED,
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"error":"the admin function answers only calls signed with AWS credentials (SigV4)"}"#,
                )
                    .into_response();
            }
        }
    }
    next.run(request).await
}

/// A JSON answer with `status`.
pub fn json_answer(status: u16, body: serde_json::Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The console's routes: the JSON API and the pages.
pub fn routes(console: Console) -> Router {
    let auth = console.auth.clone();
    Router::new()
        .route("/admin/api/instances", get(api::instances))
        .route("/admin/api/instances/{id}", get(api::instance))
        .route("/admin/api/exchanges", get(api::exchanges))
        .route("/admin/api/dead-letters", get(api::dead_letters))
        .route("/admin/api/dead-letters/redrive", post(api::redrive))
        .route("/admin/api/dead-letters/discard", post(api::discard))
        .route(
            "/admin/api/reconcile",
            get(api::passes).post(api::reconcile),
        )
        .route("/admin", get(pages::home))
        .route("/admin/", get(pages::home))
        .route("/admin/login", get(pages::login_form).post(pages::login))
        .route("/admin/logout", post(pages::logout))
        .route("/admin/instances", get(pages::instances))
        .route("/admin/instances/{id}", get(pages::instance))
        .route("/admin/dead-letters", get(pages::dead_letters))
        .route("/admin/dead-letters/redrive", post(pages::redrive))
        .route("/admin/dead-letters/discard", post(pages::discard))
        .route("/admin/exchanges", get(pages::exchanges))
        .route("/admin/reconcile", post(pages::reconcile))
        .with_state(console)
        .layer(axum::middleware::from_fn_with_state(auth, iam_caller))
}

#[cfg(test)]
mod tests;
