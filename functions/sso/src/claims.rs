//! What the vendor's app learns of the user (docs/protocol/decisions.md §19): the ID token's and
//! userinfo's claims, the stable subject, and the back-channel logout token (OpenID Connect
//! Back-Channel Logout 1.0 §2.4).

use koogallery::sso::Session;
use serde::Serialize;

/// The claims this provider can issue (discovery's `claims_supported`).
pub const CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "sid",
    "name",
    "preferred_username",
    "email",
    "phone_number",
    "tenant_id",
    "tenant_name",
    "instance_id",
    "app_id",
    "role",
    "org_code",
    "org_name",
];

pub use koogallery::sso::session::subject;

/// The user's claims, by scope: the KooGallery identity always; `name` and
/// `preferred_username` with `profile`, `email` with `email`, `phone_number` with `phone`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct UserClaims {
    pub sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    pub tenant_id: String,
    pub tenant_name: String,
    pub instance_id: String,
    pub app_id: String,
    pub role: String,
    pub org_code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_name: Option<String>,
}

impl UserClaims {
    pub fn of(session: &Session, scope: &str) -> Self {
        let has = |s: &str| scope.split(' ').any(|x| x == s);
        let id = &session.identity;
        Self {
            sub: subject(&session.tenant_id, &id.user_name),
            name: has("profile").then(|| id.name.clone()),
            preferred_username: has("profile").then(|| id.user_name.clone()),
            email: id.email.clone().filter(|_| has("email")),
            phone_number: id.mobile.clone().filter(|_| has("phone")),
            tenant_id: session.tenant_id.clone(),
            tenant_name: session.tenant_name.clone(),
            instance_id: session.instance_id.clone(),
            app_id: session.app_id.clone(),
            role: id.role.clone(),
            org_code: id.org_code.clone(),
            org_name: id.org_name.clone(),
        }
    }
}

/// The ID token (OIDC Core §2).
#[derive(Debug, Serialize)]
pub struct IdToken {
    pub iss: String,
    pub aud: String,
    pub azp: String,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    pub sid: String,
    #[serde(flatten)]
    pub user: UserClaims,
}

/// The logout token POSTed to a client's back-channel logout URI.
#[derive(Debug, Serialize)]
pub struct LogoutToken {
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub sub: String,
    pub sid: String,
    pub events: serde_json::Value,
}

impl LogoutToken {
    pub fn new(iss: &str, client_id: &str, session: &Session, now: i64) -> Self {
        Self {
            iss: iss.to_owned(),
            aud: client_id.to_owned(),
            iat: now,
            exp: now + 120,
            jti: koogallery::sso::Opaque::random().expose().to_owned(),
            sub: subject(&session.tenant_id, &session.identity.user_name),
            sid: session.sid.clone(),
            events: serde_json::json!({"http://schemas.openid.net/event/backchannel-logout": {}}),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subject_is_stable_per_tenant_and_user_and_keeps_them_apart() {
        let a = subject("t1", "alice");
        assert_eq!(a, subject("t1", "alice"));
        assert_ne!(a, subject("t2", "alice"));
        assert_ne!(subject("t1", "a\0lice"), subject("t1\0a", "lice"));
        assert_eq!(a.len(), 43);
        assert!(!a.contains("alice"));
    }
}
