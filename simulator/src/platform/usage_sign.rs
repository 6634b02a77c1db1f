//! KooGallery's check of the usage push's body signature, headers `signature`, `ts`, `nonce`
//! (docs/protocol/openapi.md §3; vector §10 V4).
//!
//! `signature = Base64( HMAC-SHA256(interconnection key, "ts={ts}&nonce={nonce}&body={body}") )`,
//! over the body bytes as received.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::Mac as _;

use super::mac;

fn signed_mac(key: &str, ts: &str, nonce: &str, body: &[u8]) -> super::HmacSha256 {
    let mut m = mac(key.as_bytes());
    for part in [
        b"ts=",
        ts.as_bytes(),
        b"&nonce=",
        nonce.as_bytes(),
        b"&body=",
        body,
    ] {
        m.update(part);
    }
    m
}

/// The `signature` header for `body` (the simulator's tests sign with it).
#[must_use]
pub fn signature(key: &str, ts: &str, nonce: &str, body: &[u8]) -> String {
    STANDARD.encode(signed_mac(key, ts, nonce, body).finalize().into_bytes())
}

/// Whether `signature` (standard Base64) signs `ts`, `nonce` and the exact `body` under `key`;
/// constant-time. An empty header never verifies.
#[must_use]
pub fn verify(key: &str, ts: &str, nonce: &str, body: &[u8], signature: &str) -> bool {
    if ts.is_empty() || nonce.is_empty() {
        return false;
    }
    STANDARD
        .decode(signature.trim())
        .is_ok_and(|tag| signed_mac(key, ts, nonce, body).verify_slice(&tag).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "isv-key-example";
    const TS: &str = "1709690865879";
    const NONCE: &str = "6c63c221-1f6b-4141-8ff4-22f5dfe82b65";
    const BODY: &str = r#"{"usage_records":[{"begin_time":"20220809T080000Z","end_time":"20220809T090000Z","instance_id":"7f141bf1-aec8-4859-8323-fb3a8ad50721","metering_sn":"a1b2c3d4-0001","record_time":"20220809T091000Z","usage_value":"99"}]}"#;
    const SIGNATURE: &str = "eKys0vYKmUcOek/uvur08EvwL7K0MBdNj3QfAdO9vbI=";

    /// openapi.md §10 V4, the body signature.
    #[test]
    fn vector_v4_body_signature() {
        assert_eq!(signature(KEY, TS, NONCE, BODY.as_bytes()), SIGNATURE);
        assert!(verify(KEY, TS, NONCE, BODY.as_bytes(), SIGNATURE));
    }

    /// Any other key, ts, nonce or body byte, or a missing header, is refused.
    #[test]
    fn refusals() {
        let b = BODY.as_bytes();
        assert!(!verify("other", TS, NONCE, b, SIGNATURE));
        assert!(!verify(KEY, "1709690865880", NONCE, b, SIGNATURE));
        assert!(!verify(KEY, TS, "x", b, SIGNATURE));
        assert!(!verify(
            KEY,
            TS,
            NONCE,
            &BODY.replace("99", "98").into_bytes(),
            SIGNATURE
        ));
        assert!(!verify(KEY, TS, NONCE, b, ""));
        assert!(!verify(KEY, "", NONCE, b, SIGNATURE));
    }
}
