//! Offline verification of a token: prefix, key, signature, version, offline window.

use alloc::string::String;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use core::borrow::Borrow;
use ed25519_dalek::Signature;
use serde::Deserialize;

use crate::{Claims, PublicKey, VerifyError};

/// What every version 1 token starts with, its dot included.
pub const PREFIX: &str = "KGL1.";

/// Claims whose signature verified, whose version is 1, and whose offline window was open at the
/// time given to [`verify`]. Only [`verify`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    claims: Claims,
}

impl Verified {
    /// The verified claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// The verified claims, owned.
    pub fn into_claims(self) -> Claims {
        self.claims
    }

    /// Whether the license may be used at `now_unix` ([`Claims::usable_at`]).
    pub fn usable_at(&self, now_unix: u64) -> bool {
        self.claims.usable_at(now_unix)
    }
}

// Read from the payload before the signature is checked: only to pick the key.
#[derive(Deserialize)]
struct KidOnly {
    kid: String,
}

// Read after the signature: the version decides how the rest is read, so a later version whose
// claims differ is reported as unsupported rather than malformed.
#[derive(Deserialize)]
struct VersionOnly {
    v: u64,
}

/// Verifies `token` with the `(kid, key)` pairs in `keys` (e.g. [`crate::keys_from_jwks`]'s, or
/// `&[("kid", &key)]`) at `now_unix` (unix seconds), and returns its claims.
///
/// The checks and their order are in the crate documentation. A token that verifies may still not
/// allow use of the license: ask [`Verified::usable_at`].
pub fn verify<K, P>(token: &str, keys: &[(K, P)], now_unix: u64) -> Result<Verified, VerifyError>
where
    K: AsRef<str>,
    P: Borrow<PublicKey>,
{
    let rest = token.strip_prefix(PREFIX).ok_or(VerifyError::Malformed)?;
    let (payload_b64, signature_b64) = rest.split_once('.').ok_or(VerifyError::Malformed)?;
    if signature_b64.contains('.') {
        return Err(VerifyError::Malformed);
    }
    // Everything before the second dot.
    let signed = &token[..PREFIX.len() + payload_b64.len()];

    let payload = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| VerifyError::Malformed)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| VerifyError::Malformed)?;
    let signature = Signature::from_slice(&signature).map_err(|_| VerifyError::Malformed)?;

    let KidOnly { kid } = serde_json::from_slice(&payload).map_err(|_| VerifyError::Malformed)?;
    let key = keys
        .iter()
        .find(|(k, _)| k.as_ref() == kid)
        .map(|(_, key)| key.borrow())
        .ok_or(VerifyError::UnknownKey)?;
    // Strict: rejects weak keys and non-canonical signatures, so one token has one valid signature.
    key.0
        .verify_strict(signed.as_bytes(), &signature)
        .map_err(|_| VerifyError::BadSignature)?;

    let VersionOnly { v } = serde_json::from_slice(&payload).map_err(|_| VerifyError::Malformed)?;
    if v != 1 {
        return Err(VerifyError::UnsupportedVersion);
    }
    let claims: Claims = serde_json::from_slice(&payload).map_err(|_| VerifyError::Malformed)?;
    if claims.offline_until < now_unix {
        return Err(VerifyError::OfflineWindowOver);
    }
    Ok(Verified { claims })
}
