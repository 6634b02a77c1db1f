//! The body signature of a usage push (docs/protocol/openapi.md §3, docs/protocol/decisions.md §8):
//! headers `ts` (epoch ms), `nonce` and `signature = base64(HMAC-SHA256(key,
//! "ts={ts}&nonce={nonce}&body={body}"))`, keyed with the seller's interconnection key (the basic
//! interfaces' access key). The body is compact JSON with its keys sorted at every level, and the
//! bytes signed are the bytes sent. The request carries the APIG signature (`apig`) as well.

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::Mac;

pub const HEADER_TS: &str = "ts";
pub const HEADER_NONCE: &str = "nonce";
pub const HEADER_SIGNATURE: &str = "signature";

fn mac(key: &str, ts: &str, nonce: &str, body: &[u8]) -> crate::security::HmacSha256 {
    let mut mac = crate::security::hmac_sha256(key.as_bytes());
    mac.update(format!("ts={ts}&nonce={nonce}&body=").as_bytes());
    mac.update(body);
    mac
}

/// The `signature` header for `body` sent at `ts` with `nonce`.
pub fn usage_signature(key: &str, ts: &str, nonce: &str, body: &[u8]) -> String {
    STANDARD.encode(mac(key, ts, nonce, body).finalize().into_bytes())
}

/// One attempt's `ts` (epoch ms at `now`), fresh `nonce` (a UUID) and `signature` of `body`: what
/// the usage push sends on every attempt, and the vendor's app on every `POST /usage`.
pub struct Signed {
    pub ts: String,
    pub nonce: String,
    pub signature: String,
}

pub fn sign_attempt(key: &str, body: &[u8], now: chrono::DateTime<chrono::Utc>) -> Signed {
    let ts = now.timestamp_millis().to_string();
    let nonce = uuid::Uuid::new_v4().to_string();
    let signature = usage_signature(key, &ts, &nonce, body);
    Signed {
        ts,
        nonce,
        signature,
    }
}

/// Checks a `signature` header in constant time (what KooGallery does; the simulator uses it).
pub fn verify_usage_signature(
    key: &str,
    ts: &str,
    nonce: &str,
    body: &[u8],
    signature: &str,
) -> bool {
    STANDARD
        .decode(signature.trim())
        .is_ok_and(|tag| mac(key, ts, nonce, body).verify_slice(&tag).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spec docs/protocol/openapi.md §10 V4.
    #[test]
    fn v4_usage_push_body_signature() {
        let body = br#"{"usage_records":[{"begin_time":"20220809T080000Z","end_time":"20220809T090000Z","instance_id":"7f141bf1-aec8-4859-8323-fb3a8ad50721","metering_sn":"a1b2c3d4-0001","record_time":"20220809T091000Z","usage_value":"99"}]}"#;
        let sig = usage_signature(
            "isv-key-example",
            "1709690865879",
            "6c63c221-1f6b-4141-8ff4-22f5dfe82b65",
            body,
        );
        assert_eq!(sig, "eKys0vYKmUcOek/uvur08EvwL7K0MBdNj3QfAdO9vbI=");
        assert!(verify_usage_signature(
            "isv-key-example",
            "1709690865879",
            "6c63c221-1f6b-4141-8ff4-22f5dfe82b65",
            body,
            &sig
        ));
        let mut altered = body.to_vec();
        altered[20] ^= 1;
        assert!(!verify_usage_signature(
            "isv-key-example",
            "1709690865879",
            "6c63c221-1f6b-4141-8ff4-22f5dfe82b65",
            &altered,
            &sig
        ));
        assert!(!verify_usage_signature("k", "1", "n", body, "not base64!"));
    }
}
