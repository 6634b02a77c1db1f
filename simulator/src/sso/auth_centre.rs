//! The tenant's auth centre (docs/protocol/callbacks.md §10, docs/protocol/openapi.md §9):
//! `POST /api/v1/oauth2/token` for both grants, `GET /api/v1/oauth2/userinfo`,
//! `GET /api/v1/logout`. Errors are answered in the OAuth shape the docs show
//! (`{"error","error_description"}`), never with a code, token or secret in them.

use std::{sync::Arc, time::Instant};

use axum::{
    Json,
    body::Bytes,
    extract::{RawQuery, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use super::{Grant, Sso, SsoFault, SsoKind, State as SsoState, found, pairs, random_token};

/// An answer and what the log says of it.
struct Outcome {
    status: u16,
    body: Value,
    tenant: Option<String>,
    detail: &'static str,
}

fn error(status: u16, error: &str, description: &str, detail: &'static str) -> Outcome {
    Outcome {
        status,
        body: json!({"error": error, "error_description": description}),
        tenant: None,
        detail,
    }
}

fn invalid_grant(kind: SsoKind, detail: &'static str) -> Outcome {
    let description = if kind == SsoKind::Refresh {
        "Invalid refresh token"
    } else {
        "Invalid authorization code"
    };
    error(400, "invalid_grant", description, detail)
}

fn server_error() -> Outcome {
    error(
        500,
        "server_error",
        "simulated internal error",
        "fault ServerError",
    )
}

fn send(state: &mut SsoState, kind: SsoKind, out: Outcome) -> Response {
    let outcome = out
        .body
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("ok")
        .to_owned();
    state.note(
        kind,
        out.tenant.as_deref(),
        out.status,
        &outcome,
        out.detail,
    );
    (
        StatusCode::from_u16(out.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CACHE_CONTROL, "no-store")],
        Json(out.body),
    )
        .into_response()
}

/// `POST /api/v1/oauth2/token`.
pub(super) async fn token(
    State(sso): State<Arc<Sso>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = pairs(&body);
    let kind = match form.get("grant_type").map(String::as_str) {
        Some("refresh_token") => SsoKind::Refresh,
        _ => SsoKind::Token,
    };
    let mut state = sso.state();
    let out = exchange(&mut state, kind, &headers, &form);
    send(&mut state, kind, out)
}

fn exchange(
    state: &mut SsoState,
    kind: SsoKind,
    headers: &HeaderMap,
    form: &std::collections::HashMap<String, String>,
) -> Outcome {
    let fault = state.take_fault(kind);
    if fault == Some(SsoFault::ServerError) {
        return server_error();
    }
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !form_type {
        return error(
            400,
            "invalid_request",
            "Content-Type must be application/x-www-form-urlencoded",
            "wrong content type",
        );
    }
    let field = |name: &str| form.get(name).map(String::as_str).filter(|v| !v.is_empty());
    let grant_field = if kind == SsoKind::Refresh {
        "refresh_token"
    } else {
        "code"
    };
    let (Some(client_id), Some(secret), Some(presented)) = (
        field("client_id"),
        field("client_secret"),
        field(grant_field),
    ) else {
        return error(
            400,
            "invalid_request",
            "Missing client_id, client_secret, code or refresh_token",
            "missing parameter",
        );
    };
    if kind == SsoKind::Token && field("grant_type") != Some("authorization_code") {
        return error(
            400,
            "unsupported_grant_type",
            "Unsupported grant type",
            "unsupported grant_type",
        );
    }
    // The client is authenticated first, as an OAuth server does: some tenant's client for some
    // app must have this id and secret (all tenants share the simulator's one domain).
    let clients: Vec<(String, String)> = state
        .tenants
        .iter()
        .flat_map(|(tid, t)| {
            t.clients
                .iter()
                .filter(|(_, (id, s))| id == client_id && s == secret)
                .map(move |(app, _)| (tid.clone(), app.clone()))
        })
        .collect();
    if clients.is_empty() {
        return error(
            401,
            "invalid_client",
            "Bad client credentials",
            "unknown client or wrong secret",
        );
    }
    let now = Instant::now();
    let store = if kind == SsoKind::Refresh {
        &mut state.refresh
    } else {
        &mut state.codes
    };
    let Some(grant) = store.get(presented).cloned() else {
        return invalid_grant(kind, "unknown, used or expired");
    };
    if !clients
        .iter()
        .any(|(t, a)| *t == grant.tenant && *a == grant.app_id)
    {
        // Issued to another tenant's or app's client: it stays usable by its own client.
        return invalid_grant(kind, "issued for another client");
    }
    if grant.expires <= now {
        store.remove(presented);
        return invalid_grant(kind, "expired");
    }
    let tenant = Some(grant.tenant.clone());
    match fault {
        Some(SsoFault::UsedCode) => {
            store.remove(presented);
            return Outcome {
                tenant,
                ..invalid_grant(kind, "fault UsedCode")
            };
        }
        Some(SsoFault::ExpiredRefresh) => {
            store.remove(presented);
            return Outcome {
                tenant,
                ..invalid_grant(kind, "fault ExpiredRefresh")
            };
        }
        _ => {}
    }
    let no_refresh = state.take_no_refresh();
    // A code is single use; a refresh token rotates unless no new one is issued.
    if kind == SsoKind::Token || !no_refresh {
        let store = if kind == SsoKind::Refresh {
            &mut state.refresh
        } else {
            &mut state.codes
        };
        store.remove(presented);
    }
    let access = random_token();
    state.access.insert(
        access.clone(),
        Grant {
            expires: now + state.access_ttl,
            ..grant.clone()
        },
    );
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": state.access_ttl.as_secs(),
        "scope": "get_user_info",
    });
    if !no_refresh {
        let refresh = random_token();
        state.refresh.insert(
            refresh.clone(),
            Grant {
                expires: now + state.refresh_ttl,
                ..grant
            },
        );
        body["refresh_token"] = Value::String(refresh);
    }
    Outcome {
        status: 200,
        body,
        tenant,
        detail: if no_refresh {
            "fault NoRefreshToken"
        } else {
            "issued"
        },
    }
}

/// `GET /api/v1/oauth2/userinfo`.
pub(super) async fn userinfo(State(sso): State<Arc<Sso>>, headers: HeaderMap) -> Response {
    let mut state = sso.state();
    let out = user_of(&mut state, &headers);
    send(&mut state, SsoKind::Userinfo, out)
}

fn unauthorized(detail: &'static str) -> Outcome {
    error(
        401,
        "unauthorized",
        "Full authentication is required to access this resource",
        detail,
    )
}

fn user_of(state: &mut SsoState, headers: &HeaderMap) -> Outcome {
    match state.take_fault(SsoKind::Userinfo) {
        Some(SsoFault::ServerError) => return server_error(),
        Some(SsoFault::Unauthorized) => return unauthorized("fault Unauthorized"),
        _ => {}
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let Some(token) = bearer else {
        return unauthorized("no bearer token");
    };
    let Some(grant) = state.access.get(token).cloned() else {
        return unauthorized("unknown access token");
    };
    if grant.expires <= Instant::now() {
        state.access.remove(token);
        return Outcome {
            tenant: Some(grant.tenant),
            ..unauthorized("access token expired")
        };
    }
    let found = state
        .tenants
        .get(&grant.tenant)
        .and_then(|t| t.users.get(&grant.user_name).map(|u| (t, u)));
    let Some((tenant, user)) = found else {
        return unauthorized("user no longer registered");
    };
    let id = uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("{}/{}", grant.tenant, user.user_name).as_bytes(),
    )
    .to_string();
    let body = json!({
        "id": id,
        "userName": user.user_name,
        "name": user.name,
        "email": user.email,
        "mobile": user.mobile,
        "role": user.role,
        "organizationName": user
            .organization_name
            .clone()
            .unwrap_or_else(|| format!("部门 {}", user.org_code)),
        "organizationCode": user.org_code,
        "userId": id,
        "projectName": tenant.name,
        "tenant": grant.tenant,
    });
    Outcome {
        status: 200,
        body,
        tenant: Some(grant.tenant),
        detail: "user info",
    }
}

/// `GET /api/v1/logout?redirect_url=…`: 302 to `redirect_url`, or without it to the login page
/// (of the one registered app when there is exactly one).
pub(super) async fn logout(State(sso): State<Arc<Sso>>, RawQuery(query): RawQuery) -> Response {
    let query = pairs(query.unwrap_or_default().as_bytes());
    let mut state = sso.state();
    if state.take_fault(SsoKind::Logout) == Some(SsoFault::ServerError) {
        return send(&mut state, SsoKind::Logout, server_error());
    }
    let target = match query.get("redirect_url").filter(|u| !u.is_empty()) {
        Some(url) => match reqwest::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => u.to_string(),
            _ => {
                let out = error(
                    400,
                    "invalid_request",
                    "redirect_url is not an http(s) URL",
                    "bad redirect_url",
                );
                return send(&mut state, SsoKind::Logout, out);
            }
        },
        None => {
            let mut page = "/unified-login/portal-login?ind=UNOP".to_owned();
            if let (1, Some(app)) = (state.apps.len(), state.apps.keys().next()) {
                page.push_str("&appId=");
                page.extend(form_urlencoded::byte_serialize(app.as_bytes()));
            }
            page
        }
    };
    state.note(SsoKind::Logout, None, 302, "ok", "redirected");
    found(&target)
}
