//! Every signature and cipher the KooGallery protocol uses, one file per scheme
//! (docs/protocol/callbacks.md §3, docs/protocol/decisions.md §1–4):
//!
//! * [`v2_basic`]: the V2 basic-interface request signature (§3.1) and its canonical payload.
//! * [`kit_x_sign`]: the V2 Kit `x-sign` (§3.2).
//! * [`kit_client_secret`]: RSA-OAEP for applicationSync's `clientSecret` (§3.5,
//!   docs/protocol/decisions.md §14).
//! * [`v1_auth_token`]: the retired V1 GET interface's `authToken` (§3.6).
//! * [`body_sign`]: the `Body-Sign` response header (§3.3).
//! * [`credential_cipher`]: SHA1PRNG-keyed AES-CBC for credentials (§3.4).
//! * [`webhook`]: the signature on the events this product POSTs to the vendor's own webhook.
//! * [`replay`]: the nonce replay guard's port (docs/protocol/decisions.md §1).
//!
//! Room is left for the License signatures: each gets its own file here.
//!
//! Every verification compares MACs in constant time (`Mac::verify_slice`) and accepts the current
//! and the previous key of a [`KeyRing`] (docs/protocol/decisions.md §2). Nothing here logs; keys
//! never appear in `Debug`/`Display` output.

use std::cmp::Ordering;
use std::fmt;

use hmac::{Hmac, KeyInit};
use sha2::Sha256;

pub mod apig;
pub mod at_rest;
pub mod body_sign;
pub mod credential_cipher;
pub mod kit_client_secret;
pub mod kit_x_sign;
pub mod replay;
pub mod usage_push;
pub mod v1_auth_token;
pub mod v2_basic;
pub mod webhook;

pub use body_sign::{body_sign_header, verify_body_sign};
pub use kit_x_sign::{kit_signature, verify_kit, verify_kit_parsed};
pub use v1_auth_token::{v1_auth_token, verify_v1_auth_token};
pub use v2_basic::{
    CanonicalError, basic_signature, canonical_payload, canonical_payload_of, parse_body,
    verify_basic, verify_basic_parsed,
};

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// A secret key string (accessKey / Kit key). `Debug` and `Display` print `<redacted>`; never log
/// it.
#[derive(Clone)]
pub struct SecretKey(String);

impl SecretKey {
    /// Wraps a key string.
    #[must_use]
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The key itself, for computing MACs. Do not log it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The current key plus an optional previous key still accepted during rotation
/// (docs/protocol/decisions.md §2).
#[derive(Clone, Debug)]
pub struct KeyRing {
    /// The key the platform is expected to sign with.
    pub current: SecretKey,
    /// The key before the last rotation, still accepted.
    pub previous: Option<SecretKey>,
}

impl KeyRing {
    /// A ring of the current key and, during a rotation, the previous one.
    #[must_use]
    pub fn new(current: SecretKey, previous: Option<SecretKey>) -> Self {
        Self { current, previous }
    }

    /// The current key first, then the previous one if any.
    pub fn keys(&self) -> impl Iterator<Item = &SecretKey> {
        std::iter::once(&self.current).chain(self.previous.as_ref())
    }
}

/// Which key of a ring verified a request. The answer is signed, and credentials encrypted, with
/// that same key, so a platform still on the previous key can read them
/// (docs/protocol/decisions.md §13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyUsed {
    #[default]
    Current,
    Previous,
}

impl KeyRing {
    /// Which key of the ring, current first, made `tag` over a payload in `form`: each key's MAC
    /// (`mac` of the key) is compared with it in constant time (`Mac::verify_slice`). `None` if no
    /// key did. Every signature a ring verifies goes through here (docs/protocol/decisions.md §2).
    pub(crate) fn matching(
        &self,
        tag: &[u8],
        form: PayloadForm,
        mac: impl Fn(&str) -> HmacSha256,
    ) -> Option<Matched> {
        use hmac::Mac;
        self.keys()
            .position(|key| mac(key.expose()).verify_slice(tag).is_ok())
            .map(|index| Matched {
                previous_key: index > 0,
                payload: form,
            })
    }

    /// The key `used` names (the current one when the ring has no previous key).
    #[must_use]
    pub fn key(&self, used: KeyUsed) -> &SecretKey {
        match (used, &self.previous) {
            (KeyUsed::Previous, Some(previous)) => previous,
            _ => &self.current,
        }
    }
}

/// Why a request signature was rejected (all map to result code `000001`, §3.1).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// No signature, or an empty one.
    #[error("signature missing")]
    Missing,
    /// Not decodable (not hex for V2 signatures, not Base64 for a V1 `authToken`).
    #[error("signature is not hex")]
    Malformed,
    /// No key of the ring and no payload form produced this signature.
    #[error("signature does not match")]
    Mismatch,
}

/// Which key and which payload form matched (for logs; contains no secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matched {
    /// `true` if the previous key of the ring matched, i.e. the platform still signs with it.
    pub previous_key: bool,
    /// The payload form that matched.
    pub payload: PayloadForm,
}

impl Matched {
    /// Which key matched.
    #[must_use]
    pub fn key_used(&self) -> KeyUsed {
        if self.previous_key {
            KeyUsed::Previous
        } else {
            KeyUsed::Current
        }
    }
}

/// The payload form a signature matched (docs/protocol/decisions.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadForm {
    /// The canonical payload of [`canonical_payload`] (for V1: the sorted `k=v&…` string).
    Canonical,
    /// docs/protocol/decisions.md §1's fallback: the canonical payload with top-level numbers and
    /// booleans as strings (the official sample binds the body as `Map<String,String>`).
    CanonicalStringValues,
    /// docs/protocol/decisions.md §1's fallback: the canonical payload with nested object keys
    /// sorted too.
    CanonicalNestedSorted,
    /// Both of the above at once.
    CanonicalStringValuesNestedSorted,
    /// The raw request body bytes (fallback for bodies the platform may not canonicalise, §3.1).
    RawBody,
}

/// Java `String.compareTo`: lexicographic over UTF-16 code units (differs from UTF-8 byte order
/// for characters above U+FFFF versus U+E000..U+FFFF).
pub(crate) fn java_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

pub(crate) fn hmac_sha256(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length")
}

#[cfg(test)]
mod tests;
