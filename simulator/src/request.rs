//! Building a signed request exactly as KooGallery does (docs/protocol/callbacks.md §3.1), as a
//! pure function; the signature is KooGallery's own ([`crate::platform::basic_sign`]).
//! The tests check it with the service's verifier on purpose: two independent implementations
//! must agree.
//!
//! `POST <url>?signature=<HEX>&timestamp=<ms>&nonce=<32 alphanumerics>` with a JSON body and the
//! headers `Accept: application/json`, `Content-Type: application/json;charset=utf8`.

use koogallery::protocol::request::json_kind;
use rand::Rng as _;
use rand::distr::Alphanumeric;
use reqwest::Url;
use serde_json::Value;

use crate::SimError;
use crate::platform::basic_sign;

/// Length of a generated nonce (the newest doc examples use 32 alphanumerics, §14.7).
pub const NONCE_LEN: usize = 32;

/// The `Accept` header KooGallery sends.
pub const ACCEPT: &str = "application/json";

/// The `Content-Type` header KooGallery sends (sic: `utf8`, no hyphen).
pub const CONTENT_TYPE: &str = "application/json;charset=utf8";

/// One request ready to send: the URL with its signature query, the exact body bytes, and the
/// signature inputs (for negative tests and for display).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// The production URL with `signature`, `timestamp` and `nonce` appended, in that order.
    pub url: Url,
    /// The body bytes sent: compact JSON, keys in the order given (the signature covers the
    /// canonical payload, so the vendor must canonicalise as KooGallery does).
    pub body: Vec<u8>,
    /// The nonce as sent.
    pub nonce: String,
    /// The timestamp as sent (epoch milliseconds, decimal).
    pub timestamp: String,
    /// Upper-case hex V2 basic signature, as in the newest docs.
    pub signature: String,
}

/// A fresh nonce: [`NONCE_LEN`] random `[A-Za-z0-9]` characters.
#[must_use]
pub fn random_nonce() -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(NONCE_LEN)
        .map(char::from)
        .collect()
}

/// Signs `body` (a JSON object) with `key`, `nonce` and `timestamp_ms` and appends the signature
/// parameters to `base` (existing query parameters are kept).
///
/// # Errors
/// [`SimError::InvalidBody`] if `body` is not a JSON object.
pub fn sign_request(
    base: &Url,
    key: &str,
    body: &Value,
    nonce: &str,
    timestamp_ms: i64,
) -> Result<SignedRequest, SimError> {
    let Value::Object(map) = body else {
        return Err(SimError::InvalidBody(format!(
            "the body must be a JSON object, got {}",
            json_kind(body)
        )));
    };
    let payload = basic_sign::canonical_payload(map);
    let timestamp = timestamp_ms.to_string();
    let signature = basic_sign::signature(key, nonce, &timestamp, &payload);
    // `Display` of a `Value` is compact JSON in insertion order (`preserve_order`).
    let bytes = body.to_string().into_bytes();

    let mut url = base.clone();
    url.query_pairs_mut()
        .append_pair("signature", &signature)
        .append_pair("timestamp", &timestamp)
        .append_pair("nonce", nonce);

    Ok(SignedRequest {
        url,
        body: bytes,
        nonce: nonce.to_owned(),
        timestamp,
        signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use koogallery::security::{KeyRing, PayloadForm, SecretKey, SignatureError, verify_basic};
    use serde_json::json;

    const KEY: &str = "TestAccessKey-0123456789abcdef";

    fn url() -> Url {
        Url::parse("http://127.0.0.1:8080/produce").unwrap()
    }

    fn ring(key: &str) -> KeyRing {
        KeyRing::new(SecretKey::new(key), None)
    }

    /// The query parameters of a signed URL, in order.
    fn params(url: &Url) -> Vec<(String, String)> {
        url.query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    fn param(url: &Url, name: &str) -> String {
        params(url)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no {name} in {url}"))
    }

    #[test]
    fn spec_vector_14_3_signs_upper_case() {
        // Body in a non-canonical key order: the signature covers the canonical payload.
        let body = json!({"testFlag":"1","orderLineId":"CS2211181819B4LVS-000001",
            "orderId":"CS2211181819B4LVS","businessId":"87b94795-0603-4e24-8ae5-69420d60e3c8",
            "activity":"newInstance"});
        let nonce = "50D83FDECAED6CCD8EF597F2A577950527928BA287D04E6036E92B2806FD17DA";
        let req = sign_request(&url(), KEY, &body, nonce, 1_680_508_066_618).unwrap();
        assert_eq!(
            req.signature,
            "A64B1BFCE1A372DE15EF4377957528E7F7B0CE4944D4CAEA7B7363339DF27C82"
        );
        assert_eq!(req.timestamp, "1680508066618");
        assert_eq!(
            req.url.as_str(),
            format!(
                "http://127.0.0.1:8080/produce?signature={}&timestamp=1680508066618&nonce={nonce}",
                req.signature
            )
        );
        // The body goes out in the order given, compact.
        assert!(
            String::from_utf8(req.body.clone())
                .unwrap()
                .starts_with(r#"{"testFlag":"1","orderLineId":"#)
        );
    }

    #[test]
    fn query_signature_verifies_for_the_body_sent() {
        let bodies = [
            json!({"activity":"queryInstance","instanceId":"abc"}),
            json!({"activity":"changeInstanceCheck","instanceId":"i-1","testFlag":"1",
                   "productInfo":{"skuCode":"s/1","productId":"p","linearValue":10}}),
            json!({"instanceId":"ü 密 / \"q\"","activity":"refreshInstance","orderLineId":null,
                   "scene":"RENEWAL","expireTime":"20991231235959"}),
        ];
        for body in bodies {
            let nonce = random_nonce();
            let req = sign_request(&url(), KEY, &body, &nonce, 1_700_000_000_123).unwrap();
            let (n, ts, sig) = (
                param(&req.url, "nonce"),
                param(&req.url, "timestamp"),
                param(&req.url, "signature"),
            );
            assert_eq!((n.as_str(), ts.as_str()), (nonce.as_str(), "1700000000123"));
            let matched = verify_basic(&ring(KEY), &n, &ts, &sig, &req.body).unwrap();
            assert_eq!(matched.payload, PayloadForm::Canonical, "{body}");
            assert!(!matched.previous_key);
            // Another key, nonce or timestamp does not verify.
            assert_eq!(
                verify_basic(&ring("other"), &n, &ts, &sig, &req.body),
                Err(SignatureError::Mismatch)
            );
            assert_eq!(
                verify_basic(&ring(KEY), &random_nonce(), &ts, &sig, &req.body),
                Err(SignatureError::Mismatch)
            );
            assert_eq!(
                verify_basic(&ring(KEY), &n, "1700000000124", &sig, &req.body),
                Err(SignatureError::Mismatch)
            );
        }
    }

    #[test]
    fn signature_is_64_upper_case_hex() {
        for _ in 0..20 {
            let req =
                sign_request(&url(), KEY, &json!({"activity":"x"}), &random_nonce(), 1).unwrap();
            assert_eq!(req.signature.len(), 64);
            assert!(
                req.signature
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)),
                "{}",
                req.signature
            );
            assert_eq!(param(&req.url, "signature"), req.signature);
        }
    }

    #[test]
    fn nonce_is_32_random_alphanumerics() {
        let a = random_nonce();
        let b = random_nonce();
        assert_ne!(a, b);
        for n in [a, b] {
            assert_eq!(n.len(), NONCE_LEN);
            assert!(n.bytes().all(|c| c.is_ascii_alphanumeric()), "{n}");
        }
    }

    #[test]
    fn existing_query_is_kept_and_parameters_come_in_doc_order() {
        let base = Url::parse("https://vendor.example/saas/produce?stage=blue").unwrap();
        let req = sign_request(&base, KEY, &json!({"activity":"x"}), "N0NCE", 42).unwrap();
        let names: Vec<String> = params(&req.url).into_iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["stage", "signature", "timestamp", "nonce"]);
        assert_eq!(req.url.path(), "/saas/produce");
    }

    #[test]
    fn non_object_bodies_are_rejected() {
        for body in [json!([1]), json!("x"), json!(null), json!(3)] {
            let err = sign_request(&url(), KEY, &body, "n", 1).unwrap_err();
            assert!(matches!(err, SimError::InvalidBody(_)), "{err}");
            assert!(err.to_string().contains("JSON object"), "{err}");
        }
    }

    #[test]
    fn headers_are_the_documented_ones() {
        assert_eq!(ACCEPT, "application/json");
        assert_eq!(CONTENT_TYPE, "application/json;charset=utf8");
    }
}
