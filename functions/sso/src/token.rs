//! The token endpoint and userinfo (OpenID Connect Core §3.1.3, §5.3): a code exchanged once, by
//! the client it was issued to, with the same redirect URI and the PKCE verifier of its
//! challenge, for an ES256 ID token and an opaque access token; userinfo answers while the session
//! lives.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use http::{StatusCode, header};
use koogallery::sso::{GrantKind, IssuedAccessToken, OidcClient, Opaque, record};
use sha2::{Digest as _, Sha256};

use crate::claims::{IdToken, UserClaims};
use crate::{Answer, Provider, Request};

fn invalid_grant(why: &str) -> Answer {
    Answer::oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", why)
}

fn invalid_client() -> Answer {
    Answer::oauth_error(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "client authentication failed",
    )
    .with_header(header::WWW_AUTHENTICATE, "Basic realm=\"oidc\"")
}

fn server_error() -> Answer {
    Answer::oauth_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "the provider's store is unavailable; try again",
    )
}

/// RFC 7636 §4.1: 43–128 characters of the unreserved set.
fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// The client, authenticated by `client_secret_basic` or `client_secret_post` (one of them).
async fn client_of(
    p: &Provider,
    req: &Request<'_>,
    form: &crate::web::Params,
) -> Result<OidcClient, Answer> {
    let posted = (form.one("client_id"), form.one("client_secret"));
    // A Basic header that does not decode is a failed authentication, not a fallback.
    let basic = req.basic().map_err(|_| invalid_client())?;
    let (id, secret) = match (basic, posted) {
        // Basic, and a form `client_id` (allowed by RFC 6749) only if it names the same client.
        (Some(basic), (Ok(form_id), Ok(None))) if form_id.is_none_or(|f| f == basic.0) => basic,
        (None, (Ok(Some(id)), Ok(Some(secret)))) => (id.to_owned(), secret.to_owned()),
        _ => return Err(invalid_client()),
    };
    match p.sso.store().client(&id).await {
        Ok(Some(c)) if c.secret_matches(&secret) => Ok(c),
        Ok(_) => Err(invalid_client()),
        Err(e) => {
            tracing::error!(error = %e, "OIDC client lookup failed");
            Err(server_error())
        }
    }
}

pub async fn token(p: &Provider, req: &Request<'_>) -> Answer {
    let form = req.form();
    let client = match client_of(p, req, &form).await {
        Ok(c) => c,
        Err(a) => return a,
    };
    let (Ok(grant_type), Ok(code), Ok(redirect_uri), Ok(verifier)) = (
        form.one("grant_type"),
        form.one("code"),
        form.one("redirect_uri"),
        form.one("code_verifier"),
    ) else {
        return Answer::oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "a parameter is given more than once",
        );
    };
    if grant_type != Some("authorization_code") {
        return Answer::oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only authorization_code is served",
        );
    }
    let Some(code) = code.and_then(Opaque::parse) else {
        return invalid_grant("the code is missing or malformed");
    };
    let now = p.sso.now();
    // Taken before any other check: a code is single use even when this request fails.
    let grant = match p
        .sso
        .store()
        .take_grant(GrantKind::AuthorizationCode, &code.key(), now)
        .await
    {
        Ok(Some(text)) => match record::decode_code(&text) {
            Ok(g) => g,
            Err(e) => {
                tracing::error!(error = %e, "authorization code unreadable");
                return server_error();
            }
        },
        Ok(None) => return invalid_grant("the code is unknown, used or expired"),
        Err(e) => {
            tracing::error!(error = %e, "authorization code lookup failed");
            return server_error();
        }
    };
    if grant.client_id != client.client_id {
        return invalid_grant("the code was issued to another client");
    }
    if redirect_uri != Some(grant.redirect_uri.as_str()) {
        return invalid_grant("redirect_uri differs from the authorization request's");
    }
    let Some(verifier) = verifier.filter(|v| valid_verifier(v)) else {
        return invalid_grant("code_verifier is missing or malformed");
    };
    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != grant.code_challenge {
        return invalid_grant("code_verifier does not match the code_challenge");
    }
    let session = match p.session_by_key(&grant.session_key).await {
        Ok(Some(s)) => s,
        Ok(None) => return invalid_grant("the sign-in session has ended"),
        Err(_) => return server_error(),
    };
    let id_token = IdToken {
        iss: p.settings.issuer().to_owned(),
        aud: client.client_id.clone(),
        azp: client.client_id.clone(),
        exp: (now + p.settings.id_token_ttl).timestamp(),
        iat: now.timestamp(),
        auth_time: session.auth_time.timestamp(),
        nonce: grant.nonce.clone(),
        sid: session.sid.clone(),
        user: UserClaims::of(&session, &grant.scope),
    };
    let id_token = match p.keys.sign(&id_token, "JWT", now).await {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "ID token not signed");
            return server_error();
        }
    };
    let access = Opaque::random();
    let issued = IssuedAccessToken {
        client_id: client.client_id.clone(),
        session_key: session.key.clone(),
        scope: grant.scope.clone(),
        expires_at: now + p.settings.access_token_ttl,
    };
    if let Err(e) = p
        .sso
        .store()
        .put_grant(
            GrantKind::AccessToken,
            &access.key(),
            &record::encode_access_token(&issued),
            issued.expires_at,
        )
        .await
    {
        tracing::error!(error = %e, "access token not stored");
        return server_error();
    }
    tracing::info!(client = %client.client_id, sid = %session.sid, "OIDC tokens issued");
    Answer::json(
        StatusCode::OK,
        &serde_json::json!({
            "access_token": access.expose(),
            "token_type": "Bearer",
            "expires_in": p.settings.access_token_ttl.num_seconds(),
            "id_token": id_token,
            "scope": grant.scope,
        }),
    )
    .with_header(header::PRAGMA, "no-cache")
}

fn invalid_token(why: &str) -> Answer {
    Answer::oauth_error(StatusCode::UNAUTHORIZED, "invalid_token", why).with_header(
        header::WWW_AUTHENTICATE,
        &format!("Bearer error=\"invalid_token\", error_description=\"{why}\""),
    )
}

pub async fn userinfo(p: &Provider, req: &Request<'_>) -> Answer {
    let Some(token) = req.bearer().and_then(|t| Opaque::parse(&t)) else {
        return invalid_token("a Bearer access token is required");
    };
    let now = p.sso.now();
    let issued = match p
        .sso
        .store()
        .grant(GrantKind::AccessToken, &token.key(), now)
        .await
    {
        Ok(Some(text)) => match record::decode_access_token(&text) {
            Ok(i) => i,
            Err(e) => {
                tracing::error!(error = %e, "access token unreadable");
                return server_error();
            }
        },
        Ok(None) => return invalid_token("the access token is unknown or expired"),
        Err(e) => {
            tracing::error!(error = %e, "access token lookup failed");
            return server_error();
        }
    };
    match p.session_by_key(&issued.session_key).await {
        Ok(Some(session)) => Answer::json(
            StatusCode::OK,
            &serde_json::to_value(UserClaims::of(&session, &issued.scope)).unwrap_or_default(),
        ),
        Ok(None) => invalid_token("the sign-in session has ended"),
        Err(_) => server_error(),
    }
}
