//! Single sign-on for 联营 products (docs/protocol/callbacks.md §10; docs/protocol/decisions.md
//! §19): KooGallery's login address (`/sso/callback`, where the unified login sends `code` and
//! `tenant`) and an OpenID Connect provider for the vendor's own applications, so that they sign
//! their users in with any ordinary OIDC library while the login step behind it is KooGallery's.
//!
//! | route | what |
//! |---|---|
//! | `GET /.well-known/openid-configuration` | discovery ([`discovery`]) |
//! | `GET /oidc/jwks` | the signing keys, the previous one during rotation ([`keys`]) |
//! | `GET /oidc/authorize` | authorization code flow with PKCE S256, exact redirect URIs ([`authorize`]) |
//! | `GET /sso/callback` | KooGallery's login address ([`authorize`]) |
//! | `POST /oidc/token` | code → ID token and access token ([`token`]) |
//! | `GET, POST /oidc/userinfo` | the user's claims ([`token`]) |
//! | `GET /oidc/logout` | end-session: local session, back-channel logout, the auth centre's logout ([`logout`]) |
//! | `GET /sso/logged-out` | where a logout lands when the app named no page |
//!
//! [`Provider::handle`] serves them for every host: the local host's axum router and the Lambda
//! function call it with a [`web::Request`].

pub mod authorize;
pub mod build;
pub mod claims;
pub mod clients;
pub mod confirm;
pub mod discovery;
pub mod jose;
pub mod keys;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod logout;
pub mod settings;
pub mod token;
pub mod web;

use std::sync::Arc;

use http::{Method, StatusCode};
use koogallery::sso::{Current, Delivery, Opaque, Session, Sso};

pub use keys::KeyRing;
pub use settings::ProviderSettings;
pub use web::{Answer, Request};

/// The session cookie: the opaque session ID, nothing else (docs/protocol/decisions.md §19).
pub const SESSION_COOKIE: &str = "kg_sso";
/// The cookie that ties KooGallery's callback to the login started here (the unified login
/// carries no `state`).
pub const LOGIN_COOKIE: &str = "kg_login";

/// Every path [`Provider::handle`] serves (a host routes these to it).
pub const PATHS: &[&str] = &[
    "/.well-known/openid-configuration",
    "/oidc/jwks",
    "/oidc/authorize",
    "/oidc/token",
    "/oidc/userinfo",
    "/oidc/logout",
    "/sso/callback",
    "/sso/continue",
    "/sso/logged-out",
];

/// The OIDC provider and KooGallery's login address over the SSO domain.
pub struct Provider {
    sso: Arc<Sso>,
    keys: KeyRing,
    settings: ProviderSettings,
    backchannel: reqwest::Client,
}

impl Provider {
    /// # Errors
    /// The back-channel HTTP client cannot be built.
    pub fn new(
        sso: Arc<Sso>,
        keys: KeyRing,
        settings: ProviderSettings,
    ) -> Result<Self, koogallery_openapi::ClientBuildError> {
        koogallery_openapi::install_tls_provider();
        let backchannel = reqwest::Client::builder()
            .timeout(logout::BACKCHANNEL_TIMEOUT)
            .connect_timeout(logout::BACKCHANNEL_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(koogallery_openapi::ClientBuildError::from_reqwest)?;
        Ok(Self {
            sso,
            keys,
            settings,
            backchannel,
        })
    }

    pub fn sso(&self) -> &Arc<Sso> {
        &self.sso
    }

    pub fn settings(&self) -> &ProviderSettings {
        &self.settings
    }

    fn sealer(&self) -> &std::sync::Arc<dyn koogallery::security::at_rest::CredentialSealer> {
        self.sso.sealer()
    }

    /// Serves one request.
    pub async fn handle(&self, req: &Request<'_>) -> Answer {
        let m = req.method;
        match req.path {
            "/.well-known/openid-configuration" if m == Method::GET => {
                discovery::discovery(&self.settings)
            }
            "/oidc/jwks" if m == Method::GET => discovery::jwks(self).await,
            "/oidc/authorize" if m == Method::GET => authorize::authorize(self, req).await,
            "/sso/callback" if m == Method::GET => authorize::callback(self, req).await,
            "/sso/continue" if m == Method::POST => confirm::confirm(self, req).await,
            "/oidc/token" if m == Method::POST => token::token(self, req).await,
            "/oidc/userinfo" if m == Method::GET || m == Method::POST => {
                token::userinfo(self, req).await
            }
            "/oidc/logout" if m == Method::GET || m == Method::POST => {
                logout::end_session(self, req).await
            }
            "/sso/logged-out" if m == Method::GET => web::page(
                StatusCode::OK,
                "Signed out",
                "You have signed out. You may close this page.",
            ),
            p if PATHS.contains(&p) => Answer::json(
                StatusCode::METHOD_NOT_ALLOWED,
                &serde_json::json!({"error": format!("{m} is not served on {p}")}),
            ),
            p => Answer::json(
                StatusCode::NOT_FOUND,
                &serde_json::json!({"error": format!("no SSO route {p}")}),
            ),
        }
    }

    /// The live session of the request's cookie, if any. A session that ended on this lookup has
    /// its clients told (back-channel logout).
    async fn session_of(&self, req: &Request<'_>) -> Result<Option<Session>, Answer> {
        let Some(cookie) = req
            .cookie(&self.cookie_name(SESSION_COOKIE))
            .and_then(|c| Opaque::parse(&c))
        else {
            return Ok(None);
        };
        self.session_by_key(&cookie.key()).await
    }

    async fn session_by_key(&self, key: &str) -> Result<Option<Session>, Answer> {
        match self.sso.current(key).await {
            Ok(Current::Live(s)) => Ok(Some(s)),
            Ok(Current::Ended(s, why)) => {
                self.ended(std::slice::from_ref(&s), why.as_str(), Delivery::Queued)
                    .await;
                Ok(None)
            }
            Ok(Current::Absent) => Ok(None),
            Err(e) => {
                tracing::error!(error = %e, "SSO session lookup failed");
                Err(unavailable())
            }
        }
    }

    /// A cookie's name: `__Host-` first when it is `Secure`, so no sibling subdomain can set
    /// or shadow it (it then has no `Domain` and `Path=/`).
    fn cookie_name(&self, name: &str) -> String {
        if self.settings.secure_cookies() {
            format!("__Host-{name}")
        } else {
            name.to_owned()
        }
    }

    /// Sessions that ended here: their clients told by back-channel logout, and the vendor's
    /// webhook by a `sessionsEnded` directory event.
    pub(crate) async fn ended(&self, sessions: &[Session], reason: &str, delivery: Delivery) {
        futures_util::future::join_all(sessions.iter().map(|s| logout::tell_clients(self, s)))
            .await;
        if let Err(e) = self.sso.announce_ended(sessions, reason, delivery).await {
            tracing::error!(error = %e, "sessionsEnded not recorded for the webhook");
        }
    }

    fn cookies(&self) -> web::CookiePolicy {
        web::CookiePolicy {
            secure: self.settings.secure_cookies(),
        }
    }
}

/// 503 page: our own store or key failed; the user may try again.
fn unavailable() -> Answer {
    web::page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Sign-in unavailable",
        "The sign-in service cannot reach its store right now. Please try again in a moment.",
    )
}
