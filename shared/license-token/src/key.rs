//! Ed25519 public keys, and the JWK set the service publishes them in.

use alloc::string::String;
use alloc::vec::Vec;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::VerifyingKey;
use serde::Deserialize;

use crate::VerifyError;

/// An Ed25519 public key (32 bytes), checked to be a valid curve point when built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub(crate) VerifyingKey);

impl PublicKey {
    /// The key from its 32 bytes; `Malformed` when they are not a point on the curve.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, VerifyError> {
        VerifyingKey::from_bytes(bytes)
            .map(PublicKey)
            .map_err(|_| VerifyError::Malformed)
    }

    /// The key from base64url without padding (a JWK's `x`).
    pub fn from_base64url(text: &str) -> Result<Self, VerifyError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| VerifyError::Malformed)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| VerifyError::Malformed)?;
        Self::from_bytes(&bytes)
    }

    /// The key's 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The key as base64url without padding, as published in a JWK's `x`.
    pub fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.as_bytes())
    }
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kid: Option<String>,
    kty: String,
    crv: Option<String>,
    x: Option<String>,
}

/// The Ed25519 keys of a published JWK set, `{"keys":[{"kid","kty":"OKP","crv":"Ed25519","x"}]}`,
/// as `(kid, key)` pairs for [`crate::verify`].
///
/// Keys of other types or curves are skipped, so the service can publish them beside these
/// without breaking software already shipped. `Malformed` when the document is not such a set, or
/// when an Ed25519 key has no `kid` or an `x` that is not a valid key.
pub fn keys_from_jwks(json: &str) -> Result<Vec<(String, PublicKey)>, VerifyError> {
    let jwks: Jwks = serde_json::from_str(json).map_err(|_| VerifyError::Malformed)?;
    let mut keys = Vec::new();
    for jwk in jwks.keys {
        if jwk.kty != "OKP" || jwk.crv.as_deref() != Some("Ed25519") {
            continue;
        }
        let (Some(kid), Some(x)) = (jwk.kid, jwk.x) else {
            return Err(VerifyError::Malformed);
        };
        keys.push((kid, PublicKey::from_base64url(&x)?));
    }
    Ok(keys)
}
