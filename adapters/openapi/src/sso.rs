//! The tenant's auth centre over HTTPS (docs/protocol/callbacks.md §10; docs/protocol/openapi.md §9):
//! the [`AuthCentre`] the SSO login step and the session's refresh call. reqwest with rustls:
//! certificates are always verified, and the base URL was checked (`https://`, or `http://` on a
//! loopback host) before a call is made. No token, secret or code is ever logged.

use std::time::Duration;

use async_trait::async_trait;
use koogallery::failure::Detail;
use koogallery::sso::{
    AuthCentre, AuthCentreBase, AuthCentreError, AuthCentreUser, TokenGrant,
    auth_centre::ClientCredentials,
};
use serde_json::Value;

use crate::{ClientBuildError, install_tls_provider};

/// The longest a call to the auth centre may take, connect included: the login step makes two
/// in a row while the browser waits.
pub const AUTH_CENTRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest piece of an unexpected answer quoted in an error.
const SNIPPET: usize = 200;

pub struct AuthCentreClient {
    http: reqwest::Client,
}

impl AuthCentreClient {
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn new(timeout: Duration) -> Result<Self, ClientBuildError> {
        install_tls_provider();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirect from a token endpoint would resend the secret elsewhere: never follow.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(ClientBuildError)?;
        Ok(Self { http })
    }

    async fn token(
        &self,
        base: &AuthCentreBase,
        form: &[(&str, &str)],
    ) -> Result<TokenGrant, AuthCentreError> {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let answer = self
            .http
            .post(base.token_url())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await;
        let json = read(answer, "token").await?;
        parse_token(&json)
    }
}

/// The answer's JSON on 2xx; [`AuthCentreError::Refused`] on 4xx (with OAuth's `error` and
/// `error_description` when given); [`AuthCentreError::Unavailable`] on 5xx and transport errors.
async fn read(
    answer: Result<reqwest::Response, reqwest::Error>,
    call: &str,
) -> Result<Value, AuthCentreError> {
    let resp = answer.map_err(|e| {
        // reqwest's error text names the URL, which carries no secret here (forms go in bodies).
        AuthCentreError::Unavailable(Detail::caused_by(format!("{call} call failed"), e))
    })?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| {
        AuthCentreError::Unavailable(Detail::caused_by(format!("{call} answer unreadable"), e))
    })?;
    let json: Option<Value> = serde_json::from_str(&text).ok();
    // 429 and 408 say "not now", not "no": a rate-limited refresh must not end sessions.
    if status.is_server_error()
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || status == reqwest::StatusCode::REQUEST_TIMEOUT
    {
        return Err(AuthCentreError::Unavailable(Detail::new(format!(
            "{call} answered HTTP {status}"
        ))));
    }
    if !status.is_success() {
        let field = |k: &str| {
            json.as_ref()
                .and_then(|j| j.get(k))
                .and_then(Value::as_str)
                .unwrap_or("")
                .chars()
                .take(SNIPPET)
                .collect::<String>()
        };
        return Err(AuthCentreError::Refused {
            status: status.as_u16(),
            error: Some(field("error"))
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "http_error".into()),
            description: field("error_description"),
        });
    }
    json.ok_or_else(|| {
        AuthCentreError::BadAnswer(Detail::new(format!(
            "{call} answered HTTP {status} with a body that is not JSON ({} bytes)",
            text.len()
        )))
    })
}

fn string(json: &Value, key: &str) -> Option<String> {
    match json.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The token answer: `access_token` required; `refresh_token` optional (one documented example
/// has none); `expires_in` as a number or a numeric string (liberal in what we accept).
fn parse_token(json: &Value) -> Result<TokenGrant, AuthCentreError> {
    let access_token = string(json, "access_token").ok_or_else(|| {
        AuthCentreError::BadAnswer(Detail::new("the token answer has no access_token"))
    })?;
    let expires_in = match json.get("expires_in") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    Ok(TokenGrant {
        access_token,
        refresh_token: string(json, "refresh_token"),
        expires_in,
    })
}

/// userinfo: `userName` required, everything else optional (docs/protocol/callbacks.md §10).
fn parse_user(json: &Value) -> Result<AuthCentreUser, AuthCentreError> {
    let user_name = string(json, "userName")
        .ok_or_else(|| AuthCentreError::BadAnswer(Detail::new("userinfo has no userName")))?;
    Ok(AuthCentreUser {
        user_name,
        id: string(json, "id"),
        user_id: string(json, "userId"),
        name: string(json, "name"),
        email: string(json, "email"),
        mobile: string(json, "mobile"),
        role: string(json, "role"),
        organization_name: string(json, "organizationName"),
        organization_code: string(json, "organizationCode"),
        project_name: string(json, "projectName"),
        tenant: string(json, "tenant"),
    })
}

#[async_trait]
impl AuthCentre for AuthCentreClient {
    async fn exchange_code(
        &self,
        base: &AuthCentreBase,
        client: ClientCredentials<'_>,
        code: &str,
        redirect_uri: Option<&str>,
    ) -> Result<TokenGrant, AuthCentreError> {
        let mut form = vec![
            ("client_id", client.client_id),
            ("client_secret", client.client_secret),
            ("code", code),
            ("grant_type", "authorization_code"),
        ];
        if let Some(r) = redirect_uri {
            form.push(("redirect_uri", r));
        }
        self.token(base, &form).await
    }

    async fn refresh(
        &self,
        base: &AuthCentreBase,
        client: ClientCredentials<'_>,
        refresh_token: &str,
    ) -> Result<TokenGrant, AuthCentreError> {
        self.token(
            base,
            &[
                ("client_id", client.client_id),
                ("client_secret", client.client_secret),
                ("refresh_token", refresh_token),
                ("grant_type", "refresh_token"),
            ],
        )
        .await
    }

    async fn user_info(
        &self,
        base: &AuthCentreBase,
        access_token: &str,
    ) -> Result<AuthCentreUser, AuthCentreError> {
        let answer = self
            .http
            .get(base.userinfo_url())
            .bearer_auth(access_token)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await;
        parse_user(&read(answer, "userinfo").await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer(status: u16, body: &str) -> Result<Value, AuthCentreError> {
        let resp = http::Response::builder()
            .status(status)
            .body(body.to_owned())
            .unwrap();
        read(Ok(reqwest::Response::from(resp)), "token").await
    }

    #[tokio::test]
    async fn only_a_refusal_is_a_refusal_and_rate_limits_are_not() {
        let e = answer(
            400,
            r#"{"error":"invalid_grant","error_description":"Invalid refresh token"}"#,
        )
        .await
        .unwrap_err();
        assert!(e.is_refusal() && !e.is_failure_of_the_service(), "{e}");
        let e = answer(401, r#"{"error":"invalid_client"}"#)
            .await
            .unwrap_err();
        assert!(e.is_refusal() && e.is_failure_of_the_service(), "{e}");
        for status in [429, 408, 500, 503] {
            let e = answer(status, "busy").await.unwrap_err();
            assert!(
                matches!(e, AuthCentreError::Unavailable(_)),
                "{status} must not end sessions: {e}"
            );
        }
        assert!(matches!(
            answer(200, "<html>").await,
            Err(AuthCentreError::BadAnswer(_))
        ));
    }

    #[test]
    fn token_answers_are_read_liberally() {
        let g = parse_token(&serde_json::json!({
            "access_token": "a", "token_type": "Bearer", "expires_in": "7200", "scope": "get_user_info"
        }))
        .unwrap();
        assert_eq!(
            (g.access_token.as_str(), g.refresh_token, g.expires_in),
            ("a", None, Some(7200))
        );
        let g = parse_token(
            &serde_json::json!({"access_token": "a", "refresh_token": "r", "expires_in": 60}),
        )
        .unwrap();
        assert_eq!(
            (g.refresh_token.as_deref(), g.expires_in),
            (Some("r"), Some(60))
        );
        assert!(matches!(
            parse_token(&serde_json::json!({"token_type": "Bearer"})),
            Err(AuthCentreError::BadAnswer(_))
        ));
        let u =
            parse_user(&serde_json::json!({"id": 7, "userName": "u@t", "name": "王伟"})).unwrap();
        assert_eq!(
            (u.id.as_deref(), u.user_name.as_str(), u.role),
            (Some("7"), "u@t", None)
        );
        assert!(parse_user(&serde_json::json!({"name": "x"})).is_err());
    }
}
