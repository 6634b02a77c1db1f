//! The authorization endpoint and KooGallery's login address (docs/protocol/callbacks.md §10;
//! docs/protocol/decisions.md §19).
//!
//! `/oidc/authorize` checks the client and its exact redirect URI first (an error before that is
//! a page, never a redirect), then the rest (errors go back to the client). With a live session
//! it issues a code at once; otherwise it keeps the request as a pending login, ties it to the
//! browser with the `kg_login` cookie, and sends the browser to KooGallery's unified login.
//! `/sso/callback` receives `code` and `tenant` from the unified login (no `state`), or also a
//! `state` this service issued; it signs in through [`koogallery::sso::Sso::login`], sets the
//! session cookie and finishes the pending login, or, when the login started at KooGallery, sends
//! the user to the client's `initiate_login_uri` (OIDC third-party initiated login).

use http::StatusCode;
use koogallery::sso::{
    AuthorizationCode, GrantKind, OidcClient, Opaque, PendingLogin, Session,
    grant::{CODE_TTL, PENDING_LOGIN_TTL},
    record,
};
use url::Url;

use crate::{Answer, LOGIN_COOKIE, Provider, Request, SESSION_COOKIE, unavailable, web};

/// A PKCE challenge: base64url of a SHA-256, 43 characters.
fn valid_challenge(c: &str) -> bool {
    c.len() == 43
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `uri` with `params` appended to its query.
fn with_params(uri: &str, params: &[(&str, &str)]) -> String {
    match Url::parse(uri) {
        Ok(mut url) => {
            {
                let mut q = url.query_pairs_mut();
                for (k, v) in params {
                    q.append_pair(k, v);
                }
            }
            url.to_string()
        }
        Err(_) => uri.to_owned(),
    }
}

fn bad_request(text: &str) -> Answer {
    web::page(StatusCode::BAD_REQUEST, "Sign-in request refused", text)
}

/// An error sent back to the client's verified redirect URI (RFC 6749 §4.1.2.1).
fn to_client(
    p: &Provider,
    redirect_uri: &str,
    error: &str,
    description: &str,
    state: Option<&str>,
) -> Answer {
    let mut params = vec![
        ("error", error),
        ("error_description", description),
        ("iss", p.settings.issuer()),
    ];
    if let Some(s) = state {
        params.push(("state", s));
    }
    Answer::redirect(&with_params(redirect_uri, &params))
}

pub async fn authorize(p: &Provider, req: &Request<'_>) -> Answer {
    let q = req.query();
    let (client_id, redirect_uri) = match (q.one("client_id"), q.one("redirect_uri")) {
        (Ok(Some(c)), Ok(Some(r))) => (c, r),
        _ => return bad_request("client_id and redirect_uri are required, once each."),
    };
    let client = match p.sso.store().client(client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return bad_request("The client is not registered with this provider."),
        Err(e) => {
            tracing::error!(error = %e, "OIDC client lookup failed");
            return unavailable();
        }
    };
    if !client.allows_redirect(redirect_uri) {
        return bad_request(
            "The redirect_uri is not one the client registered (compared exactly).",
        );
    }
    let state = match q.one("state") {
        Ok(s) => s,
        Err(e) => return to_client(p, redirect_uri, "invalid_request", &e, None),
    };
    let err =
        |error: &str, description: &str| to_client(p, redirect_uri, error, description, state);
    let one = |name: &str| q.one(name);
    let (Ok(response_type), Ok(scope), Ok(nonce), Ok(challenge), Ok(method), Ok(prompt)) = (
        one("response_type"),
        one("scope"),
        one("nonce"),
        one("code_challenge"),
        one("code_challenge_method"),
        one("prompt"),
    ) else {
        return err("invalid_request", "a parameter is given more than once");
    };
    if response_type != Some("code") {
        return err(
            "unsupported_response_type",
            "only response_type=code is served",
        );
    }
    let scope = scope.unwrap_or_default();
    if !scope.split(' ').any(|s| s == "openid") {
        return err("invalid_scope", "scope must include openid");
    }
    let Some(challenge) = challenge.filter(|c| valid_challenge(c)) else {
        return err("invalid_request", "PKCE is required: code_challenge (S256)");
    };
    if method != Some("S256") {
        return err("invalid_request", "code_challenge_method must be S256");
    }
    if nonce.is_some_and(|n| n.len() > 512) || state.is_some_and(|s| s.len() > 2048) {
        return err("invalid_request", "state or nonce is too long");
    }
    let pending = PendingLogin {
        client_id: client.client_id.clone(),
        redirect_uri: redirect_uri.to_owned(),
        state: state.map(str::to_owned),
        nonce: nonce.map(str::to_owned),
        code_challenge: challenge.to_owned(),
        scope: scope.to_owned(),
        created_at: p.sso.now(),
    };
    let Ok(max_age) = one("max_age") else {
        return err("invalid_request", "max_age is given more than once");
    };
    let max_age = match max_age.map(str::parse::<i64>) {
        None => None,
        Some(Ok(secs)) if secs >= 0 => Some(secs),
        Some(_) => return err("invalid_request", "max_age must be a number of seconds"),
    };
    let force_login = prompt.is_some_and(|v| v.split(' ').any(|x| x == "login"));
    if !force_login {
        match p.session_of(req).await {
            // OIDC Core §3.1.2.1: a session older than max_age signs in again.
            Ok(Some(session))
                if max_age.is_none_or(|m| (p.sso.now() - session.auth_time).num_seconds() <= m) =>
            {
                return issue_code(p, session, &client, &pending).await;
            }
            Ok(Some(_)) => {}
            Ok(None) => {}
            Err(answer) => return answer,
        }
    }
    if prompt.is_some_and(|v| v.split(' ').any(|x| x == "none")) {
        return err("login_required", "no signed-in session");
    }
    let id = Opaque::random();
    let now = p.sso.now();
    if let Err(e) = p
        .sso
        .store()
        .put_grant(
            GrantKind::PendingLogin,
            &id.key(),
            &record::encode_pending_login(&pending),
            now + PENDING_LOGIN_TTL,
        )
        .await
    {
        tracing::error!(error = %e, "pending login not stored");
        return unavailable();
    }
    Answer::redirect(&p.settings.unified_login_url()).with_cookie(p.cookies().set(
        &p.cookie_name(LOGIN_COOKIE),
        id.expose(),
        PENDING_LOGIN_TTL.num_seconds(),
    ))
}

/// A code for `session`, sent to the client's redirect URI.
async fn issue_code(
    p: &Provider,
    session: Session,
    client: &OidcClient,
    pending: &PendingLogin,
) -> Answer {
    let now = p.sso.now();
    let session = match p.sso.add_client(session, &client.client_id).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "session not updated");
            return unavailable();
        }
    };
    let code = Opaque::random();
    let grant = AuthorizationCode {
        client_id: client.client_id.clone(),
        redirect_uri: pending.redirect_uri.clone(),
        code_challenge: pending.code_challenge.clone(),
        nonce: pending.nonce.clone(),
        scope: pending.scope.clone(),
        session_key: session.key.clone(),
        created_at: now,
    };
    if let Err(e) = p
        .sso
        .store()
        .put_grant(
            GrantKind::AuthorizationCode,
            &code.key(),
            &record::encode_code(&grant),
            now + CODE_TTL,
        )
        .await
    {
        tracing::error!(error = %e, "authorization code not stored");
        return unavailable();
    }
    let mut params = vec![("code", code.expose()), ("iss", p.settings.issuer())];
    if let Some(s) = &pending.state {
        params.push(("state", s));
    }
    Answer::redirect(&with_params(&pending.redirect_uri, &params))
}

/// The pending login this callback finishes: the one its `state` names (which must exist), else
/// the one the browser's `kg_login` cookie names, else none (the login started at KooGallery).
async fn pending_of(
    p: &Provider,
    req: &Request<'_>,
    state: Option<&str>,
) -> Result<Option<PendingLogin>, Answer> {
    let cookie = req
        .cookie(&p.cookie_name(LOGIN_COOKIE))
        .and_then(|c| Opaque::parse(&c));
    // A `state` names the login this browser started: it must be the browser's own `kg_login`
    // (a state from the URL alone would let another browser finish it).
    let id = match state {
        Some(s) => match (Opaque::parse(s), &cookie) {
            (Some(id), Some(c)) if &id == c => Some(id),
            _ => {
                return Err(refused(
                    "The sign-in's state is not one this browser started here.",
                ));
            }
        },
        None => cookie,
    };
    let Some(id) = id else { return Ok(None) };
    match p
        .sso
        .store()
        .take_grant(GrantKind::PendingLogin, &id.key(), p.sso.now())
        .await
    {
        Ok(Some(text)) => match record::decode_pending_login(&text) {
            Ok(pending) => Ok(Some(pending)),
            Err(e) => {
                tracing::error!(error = %e, "pending login unreadable");
                Err(unavailable())
            }
        },
        Ok(None) if state.is_some() => Err(refused(
            "The sign-in's state is unknown, used or expired. Please start again from the application.",
        )),
        // An expired or used cookie: the login goes on as one started at KooGallery.
        Ok(None) => Ok(None),
        Err(e) => {
            tracing::error!(error = %e, "pending login lookup failed");
            Err(unavailable())
        }
    }
}

fn refused(text: &str) -> Answer {
    web::page(StatusCode::FORBIDDEN, "Sign-in refused", text)
}

/// `GET /sso/callback?code=…&tenant=…[&state=…]`: KooGallery's login address.
pub async fn callback(p: &Provider, req: &Request<'_>) -> Answer {
    let q = req.query();
    let clear_login = p.cookies().clear(&p.cookie_name(LOGIN_COOKIE));
    let (Ok(Some(code)), Ok(Some(tenant)), Ok(state)) =
        (q.one("code"), q.one("tenant"), q.one("state"))
    else {
        return refused("The sign-in came back without code and tenant (once each).")
            .with_cookie(clear_login);
    };
    let pending = match pending_of(p, req, state).await {
        Ok(pending) => pending,
        Err(answer) => return answer.with_cookie(clear_login),
    };
    let logged_in = match p.sso.login(code, tenant).await {
        Ok(l) => l,
        Err(e) if e.is_refusal() => {
            tracing::warn!(tenant, outcome = e.outcome(), error = %e, "SSO login refused");
            return refused(&refusal_text(&e)).with_cookie(clear_login);
        }
        Err(e) => {
            tracing::error!(tenant, error = %e, "SSO login failed");
            return unavailable().with_cookie(clear_login);
        }
    };
    let Some(pending) = pending else {
        // Not started by this browser here: nothing ties KooGallery's code to this browser (the
        // unified login returns no state), so a link to someone else's callback could sign this
        // browser in as them. The user confirms who they are first (confirm.rs).
        return crate::confirm::ask(p, logged_in)
            .await
            .with_cookie(clear_login);
    };
    // The browser's previous session, if any, ends: a new sign-in replaces it.
    end_previous(p, req, &logged_in.session.key).await;
    let session_cookie = session_cookie(p, &logged_in);
    let answer = match p.sso.store().client(&pending.client_id).await {
        Ok(Some(client)) if client.allows_redirect(&pending.redirect_uri) => {
            issue_code(p, logged_in.session, &client, &pending).await
        }
        Ok(_) => refused("The application that started this sign-in is no longer registered."),
        Err(e) => {
            tracing::error!(error = %e, "OIDC client lookup failed");
            unavailable()
        }
    };
    answer.with_cookie(session_cookie).with_cookie(clear_login)
}

/// The session cookie of a sign-in, for as long as its refresh token lasts.
pub(crate) fn session_cookie(p: &Provider, logged_in: &koogallery::sso::LoggedIn) -> String {
    let max_age = (logged_in.session.refresh_expires_at - p.sso.now()).num_seconds();
    p.cookies().set(
        &p.cookie_name(SESSION_COOKIE),
        logged_in.cookie.expose(),
        max_age,
    )
}

/// Ends the session the browser's cookie names (unless it is `keep`), telling its clients.
pub(crate) async fn end_previous(p: &Provider, req: &Request<'_>, keep: &str) {
    let Some(old) = req
        .cookie(&p.cookie_name(SESSION_COOKIE))
        .and_then(|c| Opaque::parse(&c))
        .map(|c| c.key())
        .filter(|k| k != keep)
    else {
        return;
    };
    match p.sso.logout(&old).await {
        Ok(Some(session)) => {
            p.ended(&[session], "replaced", koogallery::sso::Delivery::Queued)
                .await
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "the browser's previous session was not ended"),
    }
}

/// A login that started at KooGallery: the app with an `initiate_login_uri` starts its own login
/// (which finds this session), else a page says who signed in.
pub(crate) async fn started_at_koogallery(p: &Provider, session: &Session) -> Answer {
    let clients = p.sso.store().clients().await.unwrap_or_default();
    let mut targets = clients
        .iter()
        .filter_map(|c| c.initiate_login_uri.as_deref());
    match (targets.next(), targets.next()) {
        (Some(uri), None) => Answer::redirect(&with_params(uri, &[("iss", p.settings.issuer())])),
        _ => web::page(
            StatusCode::OK,
            "Signed in",
            &format!(
                "Signed in as {} ({}). Open the application to continue.",
                session.identity.name, session.tenant_name
            ),
        ),
    }
}

/// What the 403 page tells the user: the reason in words, no internal detail.
fn refusal_text(e: &koogallery::sso::LoginError) -> String {
    use koogallery::sso::LoginError as L;
    match e {
        L::UnknownTenant(_) | L::UnknownApp { .. } => {
            "Your organization has no subscription to this application.".into()
        }
        L::NotAuthorized { .. } | L::TenantMismatch { .. } => {
            "Your account is not authorized to use this application. Ask your organization's administrator to grant access.".into()
        }
        L::AuthCentre(_) => {
            "The sign-in could not be confirmed with your organization's login service. Please sign in again.".into()
        }
        L::BadRequest(_) | L::Store(_) | L::Seal(_) => "The sign-in could not be completed.".into(),
    }
}
