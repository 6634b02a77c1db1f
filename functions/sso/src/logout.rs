//! Logout (OpenID Connect RP-Initiated Logout 1.0 and Back-Channel Logout 1.0;
//! docs/protocol/decisions.md §19): the session ends here first, every client that received an ID
//! token in it is told with a signed logout token, and the browser goes on to the auth centre's
//! logout (`{domainName}/api/v1/logout?redirect_url=…`), which brings it back to the client's
//! registered post-logout page or to `/sso/logged-out`.

use std::time::Duration;

use http::StatusCode;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use koogallery::sso::{Opaque, Session};

use crate::claims::LogoutToken;
use crate::{Answer, Provider, Request, SESSION_COOKIE, web};

/// Each back-channel POST's limit: a slow client must not hold the user's logout.
pub const BACKCHANNEL_TIMEOUT: Duration = Duration::from_secs(3);

/// Tells every client of an ended session (those with a back-channel logout URI). Failures are
/// logged, never retried: the session is gone here either way, and a client's own session is its
/// own to expire.
pub async fn tell_clients(p: &Provider, session: &Session) {
    let sends = session
        .clients
        .iter()
        .map(|client_id| tell_client(p, session, client_id));
    // Side by side: a slow client must not hold the others (each has its own 3 s limit).
    futures_util::future::join_all(sends).await;
}

async fn tell_client(p: &Provider, session: &Session, client_id: &str) {
    let now = p.sso.now();
    let client = match p.sso.store().client(client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(client = %client_id, error = %e, "back-channel logout skipped");
            return;
        }
    };
    let Some(uri) = client.backchannel_logout_uri.as_deref() else {
        return;
    };
    let claims = LogoutToken::new(p.settings.issuer(), client_id, session, now.timestamp());
    let token = match p.keys.sign(&claims, "logout+jwt", now).await {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "logout token not signed");
            return;
        }
    };
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("logout_token", &token)
        .finish();
    let sent = p
        .backchannel
        .post(uri)
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body)
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => {
            tracing::info!(client = %client_id, sid = %session.sid, "back-channel logout sent")
        }
        Ok(r) => {
            tracing::warn!(client = %client_id, status = %r.status(), "back-channel logout refused")
        }
        // Without the URL: a client's back-channel logout URI may carry a token in its query.
        Err(e) => {
            tracing::warn!(client = %client_id, error = %e.without_url(), "back-channel logout failed")
        }
    }
}

/// The client an `id_token_hint` was issued to, if the hint is one of our ID tokens (expired ones
/// included, as RP-Initiated Logout allows).
async fn hinted_client(p: &Provider, hint: &str) -> Option<String> {
    let kid = jsonwebtoken::decode_header(hint).ok()?.kid?;
    let set: JwkSet = serde_json::from_value(p.keys.jwks(p.sso.now()).await.ok()?).ok()?;
    let key = DecodingKey::from_jwk(set.find(&kid)?).ok()?;
    let mut v = Validation::new(Algorithm::ES256);
    v.validate_exp = false;
    v.validate_aud = false;
    v.set_issuer(&[p.settings.issuer()]);
    let data = jsonwebtoken::decode::<serde_json::Value>(hint, &key, &v).ok()?;
    data.claims.get("aud")?.as_str().map(str::to_owned)
}

pub async fn end_session(p: &Provider, req: &Request<'_>) -> Answer {
    // RP-Initiated Logout: GET with a query, or POST with a form.
    let q = if req.method == http::Method::POST {
        req.form()
    } else {
        req.query()
    };
    let one = |n: &str| q.one(n).ok().flatten();
    let hinted = match one("id_token_hint") {
        Some(hint) => hinted_client(p, hint).await,
        None => None,
    };
    let client_id = match (one("client_id"), hinted) {
        // A hint for another client than the one named: neither is trusted for the redirect.
        (Some(c), Some(h)) if c != h => None,
        (Some(c), _) => Some(c.to_owned()),
        (None, h) => h,
    };
    // The post-logout page only if the client registered it (exactly); else ours.
    let mut after = p.settings.url("/sso/logged-out");
    if let (Some(uri), Some(id)) = (one("post_logout_redirect_uri"), &client_id)
        && let Ok(Some(client)) = p.sso.store().client(id).await
        && client.allows_post_logout_redirect(uri)
    {
        after = match one("state") {
            Some(state) => url::Url::parse_with_params(uri, &[("state", state)])
                .map(|u| u.to_string())
                .unwrap_or_else(|_| uri.to_owned()),
            None => uri.to_owned(),
        };
    }
    let clear = p.cookies().clear(&p.cookie_name(SESSION_COOKIE));
    let Some(cookie) = req
        .cookie(&p.cookie_name(SESSION_COOKIE))
        .and_then(|c| Opaque::parse(&c))
    else {
        return Answer::redirect(&after).with_cookie(clear);
    };
    let ended = match p.sso.logout(&cookie.key()).await {
        Ok(ended) => ended,
        Err(e) => {
            tracing::error!(error = %e, "logout failed");
            return web::page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-out unavailable",
                "The sign-out could not be completed. Please try again.",
            );
        }
    };
    let Some(session) = ended else {
        return Answer::redirect(&after).with_cookie(clear);
    };
    p.ended(
        std::slice::from_ref(&session),
        "logged_out",
        koogallery::sso::Delivery::Queued,
    )
    .await;
    let target = match p.sso.auth_centre_logout_url(&session, &after).await {
        Ok(Some(url)) => url.to_string(),
        Ok(None) => after,
        Err(e) => {
            tracing::warn!(error = %e, "tenant lookup failed; the auth centre's logout is skipped");
            after
        }
    };
    Answer::redirect(&target).with_cookie(clear)
}

#[async_trait::async_trait]
impl koogallery::sso::SessionEnder for Provider {
    async fn end_sessions(
        &self,
        tenant: &koogallery::directory::TenantKey,
        scope: &koogallery::sso::EndScope,
    ) -> Result<usize, koogallery::storage::StoreError> {
        let ended = self.sso.end_by_directory(tenant, scope).await?;
        let reason = match scope {
            koogallery::sso::EndScope::Users { .. } => "user_revoked",
            _ => "tenant_or_app_deleted",
        };
        if !ended.is_empty() {
            // Called by the worker delivering this tenant's events: it delivers these too.
            self.ended(&ended, reason, koogallery::sso::Delivery::ThisPass)
                .await;
        }
        Ok(ended.len())
    }
}
