//! The `Body-Sign` response header (docs/protocol/callbacks.md §3.3,
//! docs/protocol/decisions.md §3), over the exact bytes sent.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::Mac;

use super::hmac_sha256;

/// The only `sign_type` of a `Body-Sign` header (§3.3).
const BODY_SIGN_TYPE: &str = "HMAC-SHA256";

/// `Body-Sign` response header value (§3.3, docs/protocol/decisions.md §3), over the exact bytes
/// sent: `sign_type="HMAC-SHA256", signature="<Base64(HMAC(access_key, body))>"`.
#[must_use]
pub fn body_sign_header(access_key: &str, body: &[u8]) -> String {
    let signature = BASE64.encode(
        hmac_sha256(access_key.as_bytes())
            .chain_update(body)
            .finalize()
            .into_bytes(),
    );
    format!("sign_type=\"{BODY_SIGN_TYPE}\", signature=\"{signature}\"")
}

/// Checks a `Body-Sign` header (§3.3), as `KooGallery` would (used by the simulator).
///
/// Requires `sign_type="HMAC-SHA256"` and a quoted `signature`; whitespace around `=` and `,` is
/// accepted (`signature="x"` and `signature= "x"`). Constant-time comparison.
#[must_use]
pub fn verify_body_sign(access_key: &str, body: &[u8], header: &str) -> bool {
    let Some(signature) = parse_body_sign(header) else {
        return false;
    };
    let Ok(tag) = BASE64.decode(signature) else {
        return false;
    };
    hmac_sha256(access_key.as_bytes())
        .chain_update(body)
        .verify_slice(&tag)
        .is_ok()
}

/// The `signature` value of a well-formed `Body-Sign` header with `sign_type="HMAC-SHA256"`.
fn parse_body_sign(header: &str) -> Option<&str> {
    let mut sign_type = None;
    let mut signature = None;
    for part in header.split(',') {
        let (name, value) = part.split_once('=')?;
        let value = value.trim().strip_prefix('"')?.strip_suffix('"')?;
        let slot = match name.trim() {
            "sign_type" => &mut sign_type,
            "signature" => &mut signature,
            _ => return None,
        };
        if slot.replace(value).is_some() {
            return None;
        }
    }
    if sign_type? != BODY_SIGN_TYPE {
        return None;
    }
    signature
}
