//! The V2 basic-interface request signature (docs/protocol/callbacks.md §3.1,
//! docs/protocol/decisions.md §1–2), over the canonical payload or, failing that, the raw body
//! bytes.

use hmac::Mac;
use serde_json::{Map, Value};

use super::{HmacSha256, KeyRing, Matched, PayloadForm, SignatureError, hmac_sha256, java_cmp};

/// Why a body has no canonical payload.
#[derive(Debug, thiserror::Error)]
pub enum CanonicalError {
    /// The body does not parse as JSON (the error carries a position, never body content).
    #[error("body is not valid JSON: {0}")]
    InvalidJson(#[source] serde_json::Error),
    /// The body is JSON but not an object.
    #[error("body is not a JSON object")]
    NotAnObject,
}

/// Canonical payload (§3.1, §3.2, docs/protocol/decisions.md §1): parse the body as a JSON object,
/// drop top-level `null` values, sort top-level keys by Java `String.compareTo` (UTF-16 code units)
/// and serialise compactly; nested values are re-serialised compactly in received order, non-ASCII
/// is raw and `/` is not escaped (as Jackson does).
///
/// # Errors
/// [`CanonicalError`] if the body is not JSON or not a JSON object.
pub fn canonical_payload(body: &[u8]) -> Result<String, CanonicalError> {
    parse_body(body).map(|map| canonical_payload_of(&map))
}

/// The request body as a JSON object, parsed once: the canonical payload is built from it, and the
/// edge dispatches it after the signature matched (nothing acts on it before).
///
/// # Errors
/// [`CanonicalError`] if the body is not JSON or not a JSON object.
pub fn parse_body(body: &[u8]) -> Result<Map<String, Value>, CanonicalError> {
    // Jackson skips a UTF-8 byte-order mark; serde_json does not.
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    match serde_json::from_slice(body).map_err(CanonicalError::InvalidJson)? {
        Value::Object(map) => Ok(map),
        _ => Err(CanonicalError::NotAnObject),
    }
}

/// [`canonical_payload`] of an already-parsed object (the signer side).
#[must_use]
pub fn canonical_payload_of(map: &Map<String, Value>) -> String {
    let mut entries: Vec<(&String, &Value)> = map.iter().filter(|(_, v)| !v.is_null()).collect();
    entries.sort_by(|(a, _), (b, _)| java_cmp(a, b));
    // Written straight out, compact as `Value`'s `Display` is (same escaping, nested values in
    // received order thanks to `preserve_order`), without cloning the map.
    let mut out = Vec::with_capacity(64 * entries.len().max(1));
    out.push(b'{');
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json(&mut out, key);
        out.push(b':');
        write_json(&mut out, value);
    }
    out.push(b'}');
    // serde_json writes UTF-8 only.
    String::from_utf8(out).unwrap_or_default()
}

fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Writing JSON values and strings into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

/// MAC state of a V2 basic signature (§3.1), ready to finalise or verify.
fn basic_mac(access_key: &str, nonce: &str, timestamp: &str, payload: &[u8]) -> HmacSha256 {
    let inner = hex::encode(
        hmac_sha256(access_key.as_bytes())
            .chain_update(payload)
            .finalize()
            .into_bytes(),
    );
    hmac_sha256(access_key.as_bytes())
        .chain_update(access_key)
        .chain_update(nonce)
        .chain_update(timestamp)
        .chain_update(inner)
}

/// V2 basic-interface signature (§3.1):
/// `hex(HMAC(key, key + nonce + timestamp + hex(HMAC(key, payload))))`, lowercase.
#[must_use]
pub fn basic_signature(access_key: &str, nonce: &str, timestamp: &str, payload: &[u8]) -> String {
    hex::encode(
        basic_mac(access_key, nonce, timestamp, payload)
            .finalize()
            .into_bytes(),
    )
}

/// Verifies a V2 basic-interface signature on the raw request body (§3.1,
/// docs/protocol/decisions.md §1–2).
///
/// Tries, for each key of the ring (current first), the canonical payload and then the raw body
/// bytes. `signature` is hex in either case; the comparison is constant-time.
///
/// # Errors
/// [`SignatureError::Missing`] if empty, [`SignatureError::Malformed`] if not hex,
/// [`SignatureError::Mismatch`] otherwise.
pub fn verify_basic(
    keys: &KeyRing,
    nonce: &str,
    timestamp: &str,
    signature: &str,
    raw_body: &[u8],
) -> Result<Matched, SignatureError> {
    let parsed = parse_body(raw_body).ok();
    verify_basic_parsed(keys, nonce, timestamp, signature, raw_body, parsed.as_ref())
}

/// [`verify_basic`] with the body already parsed by [`parse_body`] (`None` when it is not a JSON
/// object): the edge parses once for the signature and for dispatch.
///
/// # Errors
/// As [`verify_basic`].
pub fn verify_basic_parsed(
    keys: &KeyRing,
    nonce: &str,
    timestamp: &str,
    signature: &str,
    raw_body: &[u8],
    parsed: Option<&Map<String, Value>>,
) -> Result<Matched, SignatureError> {
    let canonical = parsed.map(canonical_payload_of);
    verify_hex(
        keys,
        signature,
        raw_body,
        canonical,
        || parsed.map(canonical_fallbacks).unwrap_or_default(),
        |key, payload| basic_mac(key, nonce, timestamp, payload),
    )
}

/// docs/protocol/decisions.md §1's other canonical forms, tried only after the canonical payload
/// failed: top-level numbers and booleans as strings, nested object keys sorted, and both. A form
/// that equals one before it is left out.
fn canonical_fallbacks(map: &Map<String, Value>) -> Vec<(PayloadForm, Vec<u8>)> {
    let stringified: Map<String, Value> = map
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Value::Number(n) => Value::String(n.to_string()),
                Value::Bool(b) => Value::String(b.to_string()),
                other => other.clone(),
            };
            (k.clone(), v)
        })
        .collect();
    let nested_sorted = |m: &Map<String, Value>| -> Map<String, Value> {
        m.iter()
            .map(|(k, v)| (k.clone(), sort_nested_keys(v)))
            .collect()
    };
    let mut out: Vec<(PayloadForm, Vec<u8>)> = Vec::with_capacity(3);
    let first = canonical_payload_of(map).into_bytes();
    for (form, payload) in [
        (
            PayloadForm::CanonicalStringValues,
            canonical_payload_of(&stringified),
        ),
        (
            PayloadForm::CanonicalNestedSorted,
            canonical_payload_of(&nested_sorted(map)),
        ),
        (
            PayloadForm::CanonicalStringValuesNestedSorted,
            canonical_payload_of(&nested_sorted(&stringified)),
        ),
    ] {
        let payload = payload.into_bytes();
        if payload != first && out.iter().all(|(_, p)| *p != payload) {
            out.push((form, payload));
        }
    }
    out
}

/// `value` with the keys of every nested object sorted (Java `String.compareTo` order).
fn sort_nested_keys(value: &Value) -> Value {
    match value {
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_by(|(a, _), (b, _)| java_cmp(a, b));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sort_nested_keys(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sort_nested_keys).collect()),
        other => other.clone(),
    }
}

/// Shared body of [`verify_basic`] and [`verify_kit`]: the canonical payload first (with every
/// key of the ring), then the `fallbacks` (built only if the canonical payload failed), then the
/// raw body bytes.
pub(super) fn verify_hex(
    keys: &KeyRing,
    signature: &str,
    raw_body: &[u8],
    canonical: Option<String>,
    fallbacks: impl FnOnce() -> Vec<(PayloadForm, Vec<u8>)>,
    mac: impl Fn(&str, &[u8]) -> HmacSha256,
) -> Result<Matched, SignatureError> {
    let signature = signature.trim();
    if signature.is_empty() {
        return Err(SignatureError::Missing);
    }
    // `hex` accepts both cases (§3.1: compare case-insensitively). A SHA-256 tag (64 digits) is
    // decoded onto the stack; any other length is decoded only to tell malformed from mismatched.
    let mut tag = [0u8; 32];
    let other_length;
    let tag: &[u8] = if signature.len() == 2 * tag.len() {
        hex::decode_to_slice(signature, &mut tag).map_err(|_| SignatureError::Malformed)?;
        &tag
    } else {
        other_length = hex::decode(signature).map_err(|_| SignatureError::Malformed)?;
        &other_length
    };
    let matches =
        |form: PayloadForm, payload: &[u8]| keys.matching(tag, form, |key| mac(key, payload));

    let canonical = canonical.map(String::into_bytes);
    if let Some(c) = &canonical
        && let Some(m) = matches(PayloadForm::Canonical, c)
    {
        return Ok(m);
    }
    let mut tried: Vec<Vec<u8>> = canonical.into_iter().collect();
    for (form, payload) in fallbacks() {
        if let Some(m) = matches(form, &payload) {
            return Ok(m);
        }
        tried.push(payload);
    }
    if tried.iter().all(|p| p.as_slice() != raw_body)
        && let Some(m) = matches(PayloadForm::RawBody, raw_body)
    {
        return Ok(m);
    }
    Err(SignatureError::Mismatch)
}
