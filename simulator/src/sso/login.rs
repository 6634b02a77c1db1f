//! KooGallery's unified login page (docs/protocol/callbacks.md §10, "login entry"), as plain HTML
//! a headless browser can drive: no JavaScript, no external assets, inputs with stable ids
//! (`tenant`, `userName`, button `login`). A login issues a code and sends the browser (302) to
//! the app's login address with `code` and `tenant` and nothing else (the platform sends no
//! `state`).

use std::{fmt::Write as _, sync::Arc, time::Instant};

use axum::{
    body::Bytes,
    extract::{RawQuery, State},
    http::StatusCode,
    response::{Html, IntoResponse, Response},
};

use super::{Grant, Sso, SsoKind, State as SsoState, found, pairs, random_token};

/// `GET /unified-login/portal-login?ind=UNOP&appId=…`.
pub(super) async fn page(State(sso): State<Arc<Sso>>, RawQuery(query): RawQuery) -> Response {
    let query = pairs(query.unwrap_or_default().as_bytes());
    let state = sso.state();
    if query.get("ind").map(String::as_str) != Some("UNOP") {
        return refused("ind must be UNOP");
    }
    let app_id = query.get("appId").map(String::as_str).unwrap_or_default();
    if !state.apps.contains_key(app_id) {
        return refused(&format!("appId {app_id:?} is not a registered app"));
    }
    form(&state, app_id, None, StatusCode::OK)
}

/// `POST /unified-login/login` (form: `appId`, `tenant`, `userName`). Any user the tenant
/// registered may log in: authSync's `enable` is the vendor's to check, not the auth centre's.
pub(super) async fn login(State(sso): State<Arc<Sso>>, body: Bytes) -> Response {
    let form_data = pairs(&body);
    let get = |name: &str| form_data.get(name).map(String::as_str).unwrap_or_default();
    let (app_id, tenant_id, user_name) = (get("appId"), get("tenant"), get("userName").trim());
    let mut state = sso.state();
    let Some(address) = state.apps.get(app_id).cloned() else {
        state.note(
            SsoKind::Login,
            None,
            400,
            "unknown_app",
            "appId not registered",
        );
        return refused(&format!("appId {app_id:?} is not a registered app"));
    };
    let known = state.tenants.get(tenant_id).map(|t| {
        (
            t.clients.contains_key(app_id),
            t.users.contains_key(user_name),
        )
    });
    let problem = match known {
        None => Some(("unknown_tenant", "Unknown tenant.")),
        Some((false, _)) => Some(("no_client", "This tenant has not bound this app.")),
        Some((true, false)) => Some(("unknown_user", "Unknown user name for this tenant.")),
        Some((true, true)) => None,
    };
    let tenant = Some(tenant_id).filter(|t| !t.is_empty());
    if let Some((outcome, message)) = problem {
        state.note(SsoKind::Login, tenant, 401, outcome, message);
        return form(&state, app_id, Some(message), StatusCode::UNAUTHORIZED);
    }
    let code = random_token();
    let expires = Instant::now() + state.code_ttl;
    state.codes.insert(
        code.clone(),
        Grant {
            tenant: tenant_id.to_owned(),
            app_id: app_id.to_owned(),
            user_name: user_name.to_owned(),
            expires,
        },
    );
    state.note(SsoKind::Login, tenant, 302, "ok", "code issued");
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("code", &code)
        .append_pair("tenant", tenant_id)
        .finish();
    let separator = if address.contains('?') { '&' } else { '?' };
    found(&format!("{address}{separator}{query}"))
}

/// The login form for `app_id`, with an error line if any. Tenants that bound the app are offered
/// in a select; with none, a text field.
fn form(state: &SsoState, app_id: &str, error: Option<&str>, status: StatusCode) -> Response {
    let tenants: Vec<(&String, &String)> = state
        .tenants
        .iter()
        .filter(|(_, t)| t.clients.contains_key(app_id))
        .map(|(id, t)| (id, &t.name))
        .collect();
    let mut tenant_input = String::new();
    if tenants.is_empty() {
        tenant_input.push_str(r#"<input id="tenant" name="tenant" type="text" required>"#);
    } else {
        tenant_input.push_str(r#"<select id="tenant" name="tenant">"#);
        for (id, name) in tenants {
            let _ = write!(
                tenant_input,
                r#"<option value="{}">{} ({})</option>"#,
                escape(id),
                escape(name),
                escape(id)
            );
        }
        tenant_input.push_str("</select>");
    }
    let error = error
        .map(|e| format!(r#"<p id="error" role="alert">{}</p>"#, escape(e)))
        .unwrap_or_default();
    let body = format!(
        r#"<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>统一登录 (simulated)</title></head>
<body>
<h1>华为云云商店 统一登录 (simulated)</h1>
{error}<form method="post" action="/unified-login/login">
<input type="hidden" name="appId" value="{app}">
<p><label for="tenant">Tenant</label> {tenant_input}</p>
<p><label for="userName">User name</label> <input id="userName" name="userName" type="text" required></p>
<p><button id="login" type="submit">登录</button></p>
</form>
</body></html>
"#,
        app = escape(app_id),
    );
    (status, Html(body)).into_response()
}

/// A 400 page saying why the login page cannot be shown.
fn refused(why: &str) -> Response {
    let body = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>统一登录: bad request</title></head>\n\
         <body><h1>Bad request</h1><p id=\"error\">{}</p></body></html>\n",
        escape(why)
    );
    (StatusCode::BAD_REQUEST, Html(body)).into_response()
}

/// `text` safe inside HTML text and double-quoted attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
