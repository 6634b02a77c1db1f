//! KooGallery's check of the vendor's `Body-Sign` answer header (docs/protocol/callbacks.md §3.3;
//! vector §14.6).
//!
//! `Body-Sign: sign_type="HMAC-SHA256", signature="<Base64(HMAC-SHA256(key, body bytes))>"`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::Mac as _;

use super::{hmac_of, mac};

/// The only `sign_type` (§3.3).
const SIGN_TYPE: &str = "HMAC-SHA256";

/// A `Body-Sign` value over `body` (for the simulator's own stand-in vendors in tests and the
/// storm's careless host): the spacing of the §14.6 vector.
#[must_use]
pub fn header(key: &str, body: &[u8]) -> String {
    let signature = STANDARD.encode(hmac_of(key.as_bytes(), &[body]));
    format!("sign_type=\"{SIGN_TYPE}\", signature=\"{signature}\"")
}

/// Whether `header` signs the exact `body` bytes under `key`. `sign_type` must be `HMAC-SHA256`;
/// both `signature="…"` and `signature= "…"` are accepted (§3.3 leaves the space open), and the
/// MAC is compared in constant time.
#[must_use]
pub fn verify(key: &str, body: &[u8], header: &str) -> bool {
    let (mut sign_type, mut signature) = (None, None);
    for part in header.split(',') {
        let Some((name, value)) = part.split_once('=') else {
            return false;
        };
        let value = value.trim();
        let Some(value) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
            return false;
        };
        match name.trim() {
            "sign_type" => sign_type = Some(value),
            "signature" => signature = Some(value),
            _ => {}
        }
    }
    if sign_type != Some(SIGN_TYPE) {
        return false;
    }
    let Some(Ok(tag)) = signature.map(|s| STANDARD.decode(s)) else {
        return false;
    };
    let mut m = mac(key.as_bytes());
    m.update(body);
    m.verify_slice(&tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "TestAccessKey-0123456789abcdef";
    const BODY: &[u8] = br#"{"resultCode":"000000","resultMsg":"success."}"#;
    const VECTOR: &str =
        r#"sign_type="HMAC-SHA256", signature="lIbWpCdruz2b0FKa477a/WszWOjjUk9g6vb3wt8QNxg=""#;

    /// callbacks.md §14.6, in the spacings §3.3 allows.
    #[test]
    fn vector_14_6() {
        assert_eq!(header(KEY, BODY), VECTOR);
        for h in [
            VECTOR,
            r#"sign_type="HMAC-SHA256", signature= "lIbWpCdruz2b0FKa477a/WszWOjjUk9g6vb3wt8QNxg=""#,
            r#"sign_type="HMAC-SHA256",signature="lIbWpCdruz2b0FKa477a/WszWOjjUk9g6vb3wt8QNxg=""#,
        ] {
            assert!(verify(KEY, BODY, h), "{h}");
        }
    }

    /// Another key, one byte more, another sign_type, no quotes, no signature: refused.
    #[test]
    fn refusals() {
        assert!(!verify("other", BODY, VECTOR));
        assert!(!verify(KEY, &[BODY, b" "].concat(), VECTOR));
        assert!(!verify(
            KEY,
            BODY,
            &VECTOR.replace("HMAC-SHA256", "HMAC-SHA1")
        ));
        assert!(!verify(KEY, BODY, &VECTOR.replace('"', "")));
        assert!(!verify(KEY, BODY, r#"sign_type="HMAC-SHA256""#));
        assert!(!verify(KEY, BODY, ""));
    }
}
