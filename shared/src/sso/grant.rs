//! What the OIDC provider hands out for a short while, each found by the SHA-256 of an opaque
//! value: a login waiting for KooGallery's callback, an authorization code (single use), and an
//! access token for `/userinfo` (docs/protocol/decisions.md §19).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// How long a login may wait for the unified login to come back.
pub const PENDING_LOGIN_TTL: Duration = Duration::minutes(15);
/// An authorization code's life (OAuth 2.0 Security BCP: short; single use regardless).
pub const CODE_TTL: Duration = Duration::seconds(60);
/// The provider's access token for `/userinfo`.
pub const ACCESS_TOKEN_TTL: Duration = Duration::minutes(60);

/// The three kinds of grant a [`crate::sso::GrantStore`] keeps apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GrantKind {
    PendingLogin,
    AuthorizationCode,
    AccessToken,
    /// A sign-in that did not start here, waiting for the user to confirm it (its session's
    /// cookie value, sealed).
    Confirmation,
}

impl GrantKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingLogin => "login",
            Self::AuthorizationCode => "code",
            Self::AccessToken => "token",
            Self::Confirmation => "confirm",
        }
    }
}

/// An authorization request of a client, waiting while the user signs in at KooGallery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingLogin {
    pub client_id: String,
    pub redirect_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// PKCE S256 challenge.
    pub code_challenge: String,
    pub scope: String,
    pub created_at: DateTime<Utc>,
}

/// An authorization code issued to a client for a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationCode {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    pub scope: String,
    pub session_key: String,
    pub created_at: DateTime<Utc>,
}

/// The provider's access token, good for `/userinfo` while its session lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedAccessToken {
    pub client_id: String,
    pub session_key: String,
    pub scope: String,
    pub expires_at: DateTime<Utc>,
}
