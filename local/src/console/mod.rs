//! The operator console and its API on the local host (docs/operations.md, "The operator
//! console"): `koogallery::operator`'s views and actions over HTTP.
//!
//! - `/admin/api/…`: JSON (`operator::view`, `"v": 1`), for `koogallery-admin`; every call carries
//!   `Authorization: Bearer <admin token>` (401 without, 403 with another).
//! - `/admin/…`: the same views as pages for a browser ([`pages`]). Signing in with the admin token
//!   sets a session cookie (`HttpOnly`, `SameSite=Strict`, 12 hours; a MAC of its expiry under the
//!   token, so a new token ends every session); every action is a form `POST` carrying a CSRF
//!   token derived the same way. Without a session a page answers 401 with the sign-in form.
//!
//! Nothing here is served by a cloud deployment's production URL: on AWS the same views are the
//! admin function's, behind IAM.

mod api;
mod charts;
mod pages;
mod session;

use std::sync::Arc;

use axum::{
    Router,
    routing::{get, post},
};
use koogallery::operator::{Operator, Who};

use crate::AdminToken;

/// What the console's routes share.
#[derive(Clone)]
pub(crate) struct Console {
    pub(crate) operator: Arc<Operator>,
    pub(crate) token: AdminToken,
    /// Whether the host serves HTTPS: the session cookie is then `Secure`.
    pub(crate) https: bool,
}

/// The header `koogallery-admin` names its user in (kept with every action).
pub const OPERATOR_HEADER: &str = "x-koogallery-operator";

impl Console {
    /// Who asked: the admin token's holder, as the caller names itself.
    fn who(&self, headers: &axum::http::HeaderMap, via: &str) -> Who {
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

/// The console's routes: the JSON API and the pages.
pub(crate) fn routes(console: Console) -> Router {
    Router::new()
        .route("/admin/api/instances", get(api::instances))
        .route("/admin/api/instances/{id}", get(api::instance))
        .route("/admin/api/exchanges", get(api::exchanges))
        .route("/admin/api/dead-letters", get(api::dead_letters))
        .route("/admin/api/dead-letters/redrive", post(api::redrive))
        .route("/admin/api/dead-letters/discard", post(api::discard))
        .route("/admin/api/reconcile", post(api::reconcile))
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
}
