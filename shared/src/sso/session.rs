//! The SSO session (docs/protocol/decisions.md §19): server-side, found by the SHA-256 of an opaque
//! 256-bit cookie value, holding the auth centre's tokens sealed (never in the browser, the
//! vendor's app or the logs), the user's identity as authSync and userinfo gave it, and the OIDC
//! clients that were told of it (their back-channel logout when it ends).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::AuthCentreUser;
use crate::directory::{TenantKey, User};

/// A token within this margin of its expiry is refreshed before use
/// (docs/protocol/decisions.md §19).
pub const REFRESH_MARGIN: Duration = Duration::minutes(5);

/// How long one request may hold the right to refresh a session's tokens (two auth-centre calls
/// of at most 5 s each fit well inside).
pub const REFRESH_LEASE: Duration = Duration::seconds(30);

/// Who signed in: the 联营 account of the tenant, with what authSync and userinfo say of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    /// authSync's and userinfo's `userName`.
    pub user_name: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
    /// `user` or `admin`.
    pub role: String,
    pub org_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_name: Option<String>,
}

impl Identity {
    /// The identity: userinfo's fields where it gives them, authSync's otherwise
    /// (docs/protocol/callbacks.md §10).
    pub fn of_sign_in(info: &AuthCentreUser, user: &User) -> Self {
        let pick = |a: &Option<String>, b: &str| {
            a.as_deref()
                .filter(|v| !v.trim().is_empty())
                .unwrap_or(b)
                .to_owned()
        };
        let some = |a: &Option<String>, b: &Option<String>| {
            a.clone()
                .filter(|v| !v.trim().is_empty())
                .or_else(|| b.clone())
        };
        Self {
            user_name: user.user_name.clone(),
            name: pick(&info.name, &user.name),
            email: some(&info.email, &user.email),
            mobile: some(&info.mobile, &user.mobile),
            role: pick(&info.role, &user.role),
            org_code: pick(&info.organization_code, &user.org_code),
            org_name: info
                .organization_name
                .clone()
                .filter(|v| !v.trim().is_empty()),
        }
    }
}

/// One signed-in browser. Stored as [`crate::sso::record`]'s session record.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// The SHA-256 of the cookie value ([`crate::sso::Opaque::key`]).
    pub key: String,
    /// A public random ID for the OIDC `sid` claim (never the cookie value).
    pub sid: String,
    pub instance_id: String,
    pub tenant_id: String,
    pub tenant_name: String,
    pub app_id: String,
    pub identity: Identity,
    /// The auth centre's access token, sealed (bound to [`Session::binding`]).
    pub sealed_access_token: String,
    /// Its refresh token, sealed; `None` when the auth centre gave none (then the session ends
    /// with the access token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_refresh_token: Option<String>,
    pub access_expires_at: DateTime<Utc>,
    /// When the last refresh token stops working (30 days from its issue): the session never
    /// outlives it.
    pub refresh_expires_at: DateTime<Utc>,
    pub auth_time: DateTime<Utc>,
    /// The OIDC clients that received an ID token in this session.
    #[serde(default)]
    pub clients: Vec<String>,
    /// Until when one request holds the right to refresh the tokens (see `login.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refreshing_until: Option<DateTime<Utc>>,
    /// Bumped by every change: a change is written only over the version it read.
    pub version: u64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("sid", &self.sid)
            .field("instance_id", &self.instance_id)
            .field("tenant_id", &self.tenant_id)
            .field("app_id", &self.app_id)
            .field("user_name", &self.identity.user_name)
            .field("access_expires_at", &self.access_expires_at)
            .field("refresh_expires_at", &self.refresh_expires_at)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub fn tenant_key(&self) -> TenantKey {
        TenantKey::new(self.instance_id.clone(), self.tenant_id.clone())
    }

    /// What its sealed tokens are bound to: another session's record cannot open them.
    pub fn binding(&self) -> String {
        session_binding(&self.key)
    }

    /// Over: past its refresh token, or past its access token with no refresh token to renew it.
    pub fn is_over(&self, now: DateTime<Utc>) -> bool {
        now >= self.refresh_expires_at
            || (self.sealed_refresh_token.is_none() && now >= self.access_expires_at)
    }

    /// The access token is within [`REFRESH_MARGIN`] of its expiry (or past it).
    pub fn needs_refresh(&self, now: DateTime<Utc>) -> bool {
        now + REFRESH_MARGIN >= self.access_expires_at
    }
}

/// The OIDC `sub` of a user: stable per (tenant, user), the same for every client and every
/// login, revealing neither: base64url of SHA-256 over the length-prefixed pair.
pub fn subject(tenant_id: &str, user_name: &str) -> String {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    use sha2::{Digest as _, Sha256};
    let mut h = Sha256::new();
    h.update(b"koogallery-sso-sub/v1");
    for part in [tenant_id, user_name] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    URL_SAFE_NO_PAD.encode(h.finalize())
}

/// What a session's tokens are sealed to: `sso-session/{key}`.
pub fn session_binding(key: &str) -> String {
    format!("sso-session/{key}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sso::record::tests::sample_session;

    #[test]
    fn a_session_never_outlives_its_refresh_token_nor_an_unrenewable_access_token() {
        let t0 = DateTime::parse_from_rfc3339("2026-12-05T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let s = sample_session(t0);
        assert!(!s.needs_refresh(t0));
        assert!(s.needs_refresh(t0 + Duration::minutes(115)));
        assert!(!s.needs_refresh(t0 + Duration::minutes(114)));
        assert!(
            !s.is_over(t0 + Duration::hours(3)),
            "the refresh token renews it"
        );
        assert!(s.is_over(t0 + Duration::days(30)));
        let mut no_refresh = s.clone();
        no_refresh.sealed_refresh_token = None;
        assert!(!no_refresh.is_over(t0 + Duration::minutes(119)));
        assert!(no_refresh.is_over(t0 + Duration::hours(2)));
        assert!(!format!("{s:?}").contains("sealed"), "{s:?}");
    }
}
