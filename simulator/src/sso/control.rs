//! The SSO control API (`/_sim/sso/…`), as `/_sim/orders` and `/_sim/faults` are for the open
//! API: registrations the kit run's syncs would have made, lifetimes, faults, and the log.

use std::sync::Arc;

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Sso, SsoFault, SsoSettings, SsoTenantRegistration};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AppRegistration {
    app_id: String,
    login_address: String,
}

fn done(result: Result<(), String>) -> Response {
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(why) => (StatusCode::BAD_REQUEST, Json(json!({"error": why}))).into_response(),
    }
}

/// `POST /_sim/sso/apps` `{"appId","loginAddress"}`.
pub(super) async fn app(State(sso): State<Arc<Sso>>, Json(app): Json<AppRegistration>) -> Response {
    done(sso.register_app(&app.app_id, &app.login_address))
}

/// `POST /_sim/sso/tenants` `{"tenantId","name","appId","clientId","clientSecret","users":[…]}`.
pub(super) async fn tenant(
    State(sso): State<Arc<Sso>>,
    Json(reg): Json<SsoTenantRegistration>,
) -> Response {
    done(sso.register_tenant(reg))
}

/// `POST /_sim/sso/settings` `{"accessTokenSeconds","refreshTokenSeconds","codeSeconds"}`.
pub(super) async fn settings(
    State(sso): State<Arc<Sso>>,
    Json(settings): Json<SsoSettings>,
) -> StatusCode {
    sso.settings(settings);
    StatusCode::NO_CONTENT
}

/// `POST /_sim/sso/faults` `{"kind":"usedCode"}` (or `expiredRefresh`, `serverError`,
/// `noRefreshToken`, `unauthorized`; `{"kind":"clear"}` drops every queued fault).
pub(super) async fn fault(State(sso): State<Arc<Sso>>, Json(request): Json<Value>) -> Response {
    if request.get("kind").and_then(Value::as_str) == Some("clear") {
        sso.clear_faults();
        return done(Ok(()));
    }
    match serde_json::from_value::<SsoFault>(request) {
        Ok(fault) => {
            sso.push_fault(fault);
            done(Ok(()))
        }
        Err(e) => done(Err(format!("not an SSO fault: {e}"))),
    }
}

/// `GET /_sim/sso/seen`.
pub(super) async fn seen(State(sso): State<Arc<Sso>>) -> Json<Vec<super::SsoSeen>> {
    Json(sso.seen())
}
