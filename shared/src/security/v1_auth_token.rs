//! The retired V1 GET interface's `authToken` (docs/protocol/callbacks.md §3.6).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::Mac;

use super::{HmacSha256, KeyRing, Matched, PayloadForm, SignatureError, hmac_sha256, java_cmp};

/// Name of the V1 token parameter, never part of the signed string (§3.6).
const V1_AUTH_TOKEN_PARAM: &str = "authToken";

/// The string a V1 `authToken` signs (§3.6): all params but `authToken`, sorted by name in Java
/// `TreeMap` order, joined as `k=v&…`. Of repeated names the first value counts, as in Huawei's
/// helper (`getParameterMap().get(k)[0]`).
pub(super) fn v1_signed_string(params: &[(&str, &str)]) -> String {
    let mut sorted: Vec<(&str, &str)> = params
        .iter()
        .copied()
        .filter(|(name, _)| *name != V1_AUTH_TOKEN_PARAM)
        .collect();
    // Stable sort, so `dedup_by` keeps the first occurrence of a name.
    sorted.sort_by(|(a, _), (b, _)| java_cmp(a, b));
    sorted.dedup_by(|later, earlier| later.0 == earlier.0);
    sorted
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn v1_mac(access_key: &str, time_stamp: &str, params: &[(&str, &str)]) -> HmacSha256 {
    let mut key = String::with_capacity(access_key.len() + time_stamp.len());
    key.push_str(access_key);
    key.push_str(time_stamp);
    hmac_sha256(key.as_bytes()).chain_update(v1_signed_string(params))
}

/// V1 `authToken` (§3.6): `Base64(HMAC(key = access_key + time_stamp, sorted "k=v&…"))`.
///
/// `params` are all request parameters (URL-decoded), *including* `timeStamp`; an `authToken`
/// entry is ignored.
#[must_use]
pub fn v1_auth_token(access_key: &str, time_stamp: &str, params: &[(&str, &str)]) -> String {
    BASE64.encode(
        v1_mac(access_key, time_stamp, params)
            .finalize()
            .into_bytes(),
    )
}

/// Verifies a V1 `authToken` (§3.6) in constant time against each key of the ring.
///
/// A space in the token is read as `+` (a `+` that went through form decoding unescaped).
/// On success the payload form is always [`PayloadForm::Canonical`].
///
/// # Errors
/// [`SignatureError::Missing`] if empty, [`SignatureError::Malformed`] if not Base64,
/// [`SignatureError::Mismatch`] otherwise.
pub fn verify_v1_auth_token(
    keys: &KeyRing,
    time_stamp: &str,
    params: &[(&str, &str)],
    auth_token: &str,
) -> Result<Matched, SignatureError> {
    // Spaces back to `+` before trimming: a token that starts with a `+` sent unescaped arrives
    // with a leading space, which a trim would drop.
    let auth_token = auth_token.replace(' ', "+");
    let auth_token = auth_token.trim();
    if auth_token.is_empty() {
        return Err(SignatureError::Missing);
    }
    let tag = BASE64
        .decode(auth_token)
        .map_err(|_| SignatureError::Malformed)?;
    keys.matching(&tag, PayloadForm::Canonical, |key| {
        v1_mac(key, time_stamp, params)
    })
    .ok_or(SignatureError::Mismatch)
}
