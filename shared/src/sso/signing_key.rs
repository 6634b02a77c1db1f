//! The OIDC provider's ID-token signing keys (docs/protocol/decisions.md §19): ES256 (P-256),
//! the private half sealed at rest, the public half kept as its JWK so that publishing the key
//! set never opens a private key. The newest key signs; the one before it stays published.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredSigningKey {
    pub kid: String,
    /// `ES256`.
    pub alg: String,
    /// The PKCS#8 DER of the private key, base64, sealed (bound to [`signing_key_binding`]).
    pub sealed_private_key: String,
    /// The public JWK (`kty`, `crv`, `x`, `y`, `kid`, `alg`, `use`).
    pub public_jwk: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for StoredSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// What a signing key's private half is sealed to: `oidc-key/{kid}`.
pub fn signing_key_binding(kid: &str) -> String {
    format!("oidc-key/{kid}")
}
