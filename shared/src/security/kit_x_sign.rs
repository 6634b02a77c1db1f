//! The V2 Kit `x-sign` (docs/protocol/callbacks.md §3.2): its own key, no inner HMAC
//! (docs/protocol/decisions.md §2).

use hmac::Mac;

use serde_json::{Map, Value};

use super::{
    HmacSha256, KeyRing, Matched, SignatureError, canonical_payload_of, hmac_sha256, parse_body,
    v2_basic::verify_hex,
};

/// MAC state of a V2 Kit `x-sign` (§3.2): no inner HMAC.
fn kit_mac(kit_key: &str, nonce: &str, timestamp: &str, payload: &[u8]) -> HmacSha256 {
    hmac_sha256(kit_key.as_bytes())
        .chain_update(kit_key)
        .chain_update(nonce)
        .chain_update(timestamp)
        .chain_update(payload)
}

/// V2 Kit `x-sign` (§3.2): lowercase `hex(HMAC(key, key + nonce + timestamp + payload))`.
#[must_use]
pub fn kit_signature(kit_key: &str, nonce: &str, timestamp: &str, payload: &[u8]) -> String {
    hex::encode(
        kit_mac(kit_key, nonce, timestamp, payload)
            .finalize()
            .into_bytes(),
    )
}

/// Verifies a V2 Kit `x-sign` on the raw request body (§3.2, docs/protocol/decisions.md §1–2); same
/// rules as [`verify_basic`].
///
/// # Errors
/// As [`verify_basic`].
pub fn verify_kit(
    keys: &KeyRing,
    nonce: &str,
    timestamp: &str,
    signature: &str,
    raw_body: &[u8],
) -> Result<Matched, SignatureError> {
    let parsed = parse_body(raw_body).ok();
    verify_kit_parsed(keys, nonce, timestamp, signature, raw_body, parsed.as_ref())
}

/// [`verify_kit`] on a body the caller has parsed already (the edge parses once).
///
/// # Errors
/// As [`verify_kit`].
pub fn verify_kit_parsed(
    keys: &KeyRing,
    nonce: &str,
    timestamp: &str,
    signature: &str,
    raw_body: &[u8],
    parsed: Option<&Map<String, Value>>,
) -> Result<Matched, SignatureError> {
    let canonical = parsed.map(canonical_payload_of);
    // docs/protocol/decisions.md §1's fallback forms are the basic interfaces' (the sample's
    // `Map<String,String>`); Kit bodies carry arrays and objects, so only the canonical payload and
    // the raw bytes.
    verify_hex(
        keys,
        signature,
        raw_body,
        canonical,
        Vec::new,
        |key, payload| kit_mac(key, nonce, timestamp, payload),
    )
}
