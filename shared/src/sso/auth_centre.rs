//! The tenant's auth centre (docs/protocol/callbacks.md §10; docs/protocol/openapi.md §9): the
//! [`AuthCentre`] port (code exchange, refresh, user info) and the base URL every call is made on,
//! the tenant's `domainName` from tenantSync. The HTTP client is `koogallery_openapi::sso`.

use async_trait::async_trait;
use url::Url;

use crate::failure::Detail;

/// A tenant's `domainName`, checked: `https://`, or `http://` on a loopback host only (the
/// simulator and tests); no credentials, query or fragment. Certificates are always verified by
/// the client that calls it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthCentreBase(Url);

impl AuthCentreBase {
    /// # Errors
    /// [`AuthCentreError::InvalidDomain`] naming what is wrong.
    pub fn parse(domain_name: &str) -> Result<Self, AuthCentreError> {
        let bad = |why: &str| AuthCentreError::InvalidDomain(format!("{domain_name:?}: {why}"));
        let url = Url::parse(domain_name.trim()).map_err(|e| bad(&e.to_string()))?;
        let Some(loopback) = super::client::loopback_host(&url) else {
            return Err(bad("no host"));
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => return Err(bad("must be https:// (http:// only on a loopback host)")),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("must not carry credentials"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("must not carry a query or fragment"));
        }
        Ok(Self(url))
    }

    fn join(&self, tail: &str) -> Url {
        let mut url = self.0.clone();
        let path = format!("{}/{tail}", url.path().trim_end_matches('/'));
        url.set_path(&path);
        url
    }

    /// `{domainName}/api/v1/oauth2/token`: code exchange and refresh.
    pub fn token_url(&self) -> Url {
        self.join("api/v1/oauth2/token")
    }

    /// `{domainName}/api/v1/oauth2/userinfo`.
    pub fn userinfo_url(&self) -> Url {
        self.join("api/v1/oauth2/userinfo")
    }

    /// `{domainName}/api/v1/logout?redirect_url=…`, where the browser goes after the local
    /// session has ended.
    pub fn logout_url(&self, redirect_url: Option<&str>) -> Url {
        let mut url = self.join("api/v1/logout");
        if let Some(r) = redirect_url {
            url.query_pairs_mut().append_pair("redirect_url", r);
        }
        url
    }
}

/// The tenant's OAuth client (applicationSync), its secret opened for the call only.
pub struct ClientCredentials<'a> {
    pub client_id: &'a str,
    pub client_secret: &'a str,
}

/// A token answer. `refresh_token` is optional: one of the documented examples has none, and an
/// answer without one keeps the previous (docs/protocol/decisions.md §19). `Debug` prints no token.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenGrant {
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// Seconds; the documented default is 7200 when absent.
    pub expires_in: Option<u64>,
}

impl std::fmt::Debug for TokenGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenGrant")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// The access token's lifetime when the answer does not say (docs/protocol/callbacks.md §10).
pub const DEFAULT_ACCESS_SECONDS: u64 = 7200;
/// The refresh token's lifetime (docs/protocol/callbacks.md §10: 30 days by default).
pub const REFRESH_TOKEN_DAYS: i64 = 30;

/// What the auth centre says of the user (userinfo). Only `userName` is required: the documented
/// success example shows `id, name, userName, mobile, email`, so the rest is optional and role
/// and organization come from authSync when absent (docs/protocol/callbacks.md §10).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthCentreUser {
    pub user_name: String,
    pub id: Option<String>,
    pub user_id: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub mobile: Option<String>,
    pub role: Option<String>,
    pub organization_name: Option<String>,
    pub organization_code: Option<String>,
    pub project_name: Option<String>,
    pub tenant: Option<String>,
}

/// A failed call to the auth centre. Every one of them refuses the login (docs/protocol/
/// decisions.md §19); whether it ends a live session depends on [`Self::is_refusal`].
#[derive(Debug, thiserror::Error)]
pub enum AuthCentreError {
    /// The auth centre said no (a 4xx: `invalid_grant`, `invalid_client`, `unauthorized`).
    #[error("the auth centre refused ({status}): {error}: {description}")]
    Refused {
        status: u16,
        error: String,
        description: String,
    },
    /// It could not be reached, timed out, or answered 5xx: worth trying again later.
    #[error("the auth centre is unavailable: {0}")]
    Unavailable(#[source] Detail),
    /// It answered 2xx with something that is not the documented shape.
    #[error("the auth centre's answer is not understood: {0}")]
    BadAnswer(#[source] Detail),
    /// The tenant's `domainName` cannot be called.
    #[error("the tenant's domainName is not usable: {0}")]
    InvalidDomain(String),
}

impl AuthCentreError {
    /// The auth centre itself refused: the grant (code or refresh token) is dead.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::Refused { .. })
    }

    /// The auth centre could not be used as configured: unreachable, 5xx, not understood, an
    /// unusable domain, or our client refused (`invalid_client`). What an operator is alerted to;
    /// a user's spent code or expired token is not.
    pub fn is_failure_of_the_service(&self) -> bool {
        match self {
            Self::Refused { error, .. } => error == "invalid_client",
            _ => true,
        }
    }
}

/// The tenant's auth centre. Each adapter passes the simulator tests in `adapters/openapi`.
#[async_trait]
pub trait AuthCentre: Send + Sync {
    /// `grant_type=authorization_code`: the code (single use) for tokens.
    async fn exchange_code(
        &self,
        base: &AuthCentreBase,
        client: ClientCredentials<'_>,
        code: &str,
        redirect_uri: Option<&str>,
    ) -> Result<TokenGrant, AuthCentreError>;

    /// `grant_type=refresh_token`.
    async fn refresh(
        &self,
        base: &AuthCentreBase,
        client: ClientCredentials<'_>,
        refresh_token: &str,
    ) -> Result<TokenGrant, AuthCentreError>;

    async fn user_info(
        &self,
        base: &AuthCentreBase,
        access_token: &str,
    ) -> Result<AuthCentreUser, AuthCentreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http_is_a_usable_domain() {
        for ok in [
            "https://example.tenantaccount.com",
            "https://idaas.example.com/base/",
            "http://127.0.0.1:8081",
            "http://localhost:9000",
            "http://[::1]:80",
        ] {
            assert!(AuthCentreBase::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://example.tenantaccount.com",
            "ftp://127.0.0.1",
            "https://u:p@example.com",
            "https://example.com?x=1",
            "example.com",
            "",
        ] {
            assert!(
                matches!(
                    AuthCentreBase::parse(bad),
                    Err(AuthCentreError::InvalidDomain(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn endpoints_hang_under_the_domain_with_its_path() {
        let base = AuthCentreBase::parse("https://idaas.example.com/base/").unwrap();
        assert_eq!(
            base.token_url().as_str(),
            "https://idaas.example.com/base/api/v1/oauth2/token"
        );
        assert_eq!(
            base.userinfo_url().as_str(),
            "https://idaas.example.com/base/api/v1/oauth2/userinfo"
        );
        assert_eq!(
            base.logout_url(Some("https://app.example.com/bye?a=1&b=2"))
                .as_str(),
            "https://idaas.example.com/base/api/v1/logout?redirect_url=https%3A%2F%2Fapp.example.com%2Fbye%3Fa%3D1%26b%3D2"
        );
        let root = AuthCentreBase::parse("https://example.tenantaccount.com").unwrap();
        assert_eq!(
            root.logout_url(None).as_str(),
            "https://example.tenantaccount.com/api/v1/logout"
        );
    }
}
