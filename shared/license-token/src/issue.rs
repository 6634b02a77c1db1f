//! The signing side (feature `issue`): turns claims into a signed version 1 token.

use alloc::string::String;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer as _, SigningKey};

use crate::{Claims, PREFIX, PublicKey};

/// Issues tokens with one signing key, named `kid` in the published key set.
pub struct Issuer {
    kid: String,
    key: SigningKey,
}

impl Issuer {
    /// The issuer for the key whose 32-byte Ed25519 secret (the RFC 8032 seed) is `secret`.
    pub fn from_secret(kid: impl Into<String>, secret: [u8; 32]) -> Self {
        Issuer {
            kid: kid.into(),
            key: SigningKey::from_bytes(&secret),
        }
    }

    /// The key id written into every token.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key to publish under [`Issuer::kid`].
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.key.verifying_key())
    }

    /// The signed token for `claims`. Their `kid` is replaced by this issuer's, so a token always
    /// names the key that signed it.
    pub fn issue(&self, claims: &Claims) -> String {
        let claims = Claims {
            kid: self.kid.clone(),
            ..claims.clone()
        };
        // Serialising plain strings and integers cannot fail.
        let json = serde_json::to_vec(&claims).expect("claims serialise to JSON");
        let mut token = String::from(PREFIX);
        URL_SAFE_NO_PAD.encode_string(json, &mut token);
        let signature = self.key.sign(token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.to_bytes(), &mut token);
        token
    }
}

impl core::fmt::Debug for Issuer {
    // The signing key stays out of logs.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Issuer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}
