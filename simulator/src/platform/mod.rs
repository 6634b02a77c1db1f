//! KooGallery's own side of the protocol's signatures, ciphers and billing, written for the
//! simulator from docs/protocol/callbacks.md §3, docs/protocol/openapi.md §1, §3 and their test
//! vectors (callbacks.md §14, openapi.md §10).
//!
//! The simulator plays KooGallery against the service; if both sides signed, verified and priced
//! with the same code they would agree by construction. So none of this calls the `koogallery`
//! crate: only the well-kept primitives (hmac, sha1/sha2, aes/cbc, rsa, base64, hex).

pub mod apig;
pub mod basic_sign;
pub mod bill;
pub mod body_sign;
pub mod client_secret;
pub mod credentials;
pub mod kit_sign;
pub mod usage_sign;

use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;

/// HMAC-SHA256 as every KooGallery scheme uses it.
pub(crate) type HmacSha256 = Hmac<Sha256>;

/// An HMAC-SHA256 keyed with `key` (any length is a valid HMAC key).
pub(crate) fn mac(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length")
}

/// HMAC-SHA256 of the concatenation of `parts` under `key`.
pub(crate) fn hmac_of(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut m = mac(key);
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// Whether `given` (hex, either case) is the HMAC-SHA256 of `parts` under `key`, compared in
/// constant time.
pub(crate) fn hex_mac_matches(key: &[u8], parts: &[&[u8]], given: &str) -> bool {
    let Ok(tag) = hex::decode(given.trim()) else {
        return false;
    };
    let mut m = mac(key);
    for p in parts {
        m.update(p);
    }
    m.verify_slice(&tag).is_ok()
}
