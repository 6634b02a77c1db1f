//! Confirming a sign-in that did not start here (docs/protocol/decisions.md §19). KooGallery's
//! unified login returns no `state`, so a callback with no login pending in this browser could be
//! someone else's link (login CSRF: the victim's browser signed in as the attacker). Its session
//! is created but not given to the browser until the user confirms, on a page served to this
//! browser only: `POST /sso/continue` must carry the token of the form and of the `kg_confirm`
//! cookie set with the page (a cross-site form post has neither).

use http::StatusCode;
use koogallery::sso::{GrantKind, LoggedIn, Opaque, grant::PENDING_LOGIN_TTL};

use crate::authorize::{end_previous, session_cookie, started_at_koogallery};
use crate::web::{Answer, escape};
use crate::{Provider, Request, unavailable, web};

/// The cookie that binds the confirmation to the browser that was shown it.
pub const CONFIRM_COOKIE: &str = "kg_confirm";

/// What is kept until the user confirms: the new session's cookie value, sealed.
fn binding(token_key: &str) -> String {
    format!("sso-confirm/{token_key}")
}

/// The page asking the user to continue as who signed in.
pub async fn ask(p: &Provider, logged_in: LoggedIn) -> Answer {
    let token = Opaque::random();
    let now = p.sso.now();
    let kept = match p
        .sealer()
        .seal(&binding(&token.key()), logged_in.cookie.expose())
        .await
    {
        Ok(sealed) => p
            .sso
            .store()
            .put_grant(
                GrantKind::Confirmation,
                &token.key(),
                &sealed,
                now + PENDING_LOGIN_TTL,
            )
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = kept {
        tracing::error!(error = %e, "sign-in confirmation not stored");
        return unavailable();
    }
    let s = &logged_in.session;
    let who = format!("{} ({})", s.identity.name, s.tenant_name);
    Answer::html(
        StatusCode::OK,
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Continue</title></head>\
             <body><h1 id=\"title\">Continue as {who}?</h1>\
             <p id=\"message\">You signed in through Huawei Cloud KooGallery as <b id=\"who\">{who}</b>. \
             If you did not just sign in, close this page.</p>\
             <form method=\"post\" action=\"/sso/continue\"><input type=\"hidden\" name=\"token\" value=\"{t}\">\
             <button id=\"continue\" type=\"submit\">Continue</button></form></body></html>",
            who = escape(&who),
            t = token.expose()
        ),
    )
    .with_cookie(p.cookies().set(
        &p.cookie_name(CONFIRM_COOKIE),
        token.expose(),
        PENDING_LOGIN_TTL.num_seconds(),
    ))
}

/// `POST /sso/continue`: the confirmed session given to this browser.
pub async fn confirm(p: &Provider, req: &Request<'_>) -> Answer {
    let clear = p.cookies().clear(&p.cookie_name(CONFIRM_COOKIE));
    let refused = |text: &str| web::page(StatusCode::FORBIDDEN, "Sign-in refused", text);
    let form = req.form();
    let cookie = req
        .cookie(&p.cookie_name(CONFIRM_COOKIE))
        .and_then(|c| Opaque::parse(&c));
    let token = form.one("token").ok().flatten().and_then(Opaque::parse);
    let (Some(token), Some(cookie)) = (token, cookie) else {
        return refused("This confirmation was not shown in this browser. Please sign in again.")
            .with_cookie(clear);
    };
    if token != cookie {
        return refused("This confirmation was not shown in this browser. Please sign in again.")
            .with_cookie(clear);
    }
    let now = p.sso.now();
    let sealed = match p
        .sso
        .store()
        .take_grant(GrantKind::Confirmation, &token.key(), now)
        .await
    {
        Ok(Some(sealed)) => sealed,
        Ok(None) => {
            return refused("This confirmation is used or expired. Please sign in again.")
                .with_cookie(clear);
        }
        Err(e) => {
            tracing::error!(error = %e, "sign-in confirmation lookup failed");
            return unavailable();
        }
    };
    let value = match p.sealer().open(&binding(&token.key()), &sealed).await {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(error = %e, "sign-in confirmation unreadable");
            return unavailable();
        }
    };
    let Some(session_cookie_value) = Opaque::parse(&value) else {
        return unavailable();
    };
    let session = match p.sso.store().session(&session_cookie_value.key()).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return refused("This sign-in has ended. Please sign in again.").with_cookie(clear);
        }
        Err(e) => {
            tracing::error!(error = %e, "session lookup failed");
            return unavailable();
        }
    };
    end_previous(p, req, &session.key).await;
    let logged_in = LoggedIn {
        cookie: session_cookie_value,
        session,
    };
    started_at_koogallery(p, &logged_in.session)
        .await
        .with_cookie(session_cookie(p, &logged_in))
        .with_cookie(clear)
}
