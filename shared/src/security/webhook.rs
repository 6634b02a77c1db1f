//! The signature on the events this product POSTs to the vendor's own webhook (README
//! "Provisioners"): `sha256=` + hex HMAC-SHA256(secret, timestamp + "." + body). Vendors verify it
//! the same way; the timestamp is epoch milliseconds, sent in its own header.

use hmac::Mac;

use super::hmac_sha256;

/// Header names of a webhook call.
pub const HEADER_SIGNATURE: &str = "x-koogallery-signature";
pub const HEADER_TIMESTAMP: &str = "x-koogallery-timestamp";
pub const HEADER_EVENT_ID: &str = "x-koogallery-event-id";

/// The `x-koogallery-signature` value for `body` sent at `timestamp_ms`.
#[must_use]
pub fn webhook_signature(secret: &str, timestamp_ms: &str, body: &[u8]) -> String {
    let mac = hmac_sha256(secret.as_bytes())
        .chain_update(timestamp_ms.as_bytes())
        .chain_update(b".")
        .chain_update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a webhook signature in constant time (vendors' side; used by the tests).
#[must_use]
pub fn verify_webhook_signature(
    secret: &str,
    timestamp_ms: &str,
    body: &[u8],
    header: &str,
) -> bool {
    let Some(tag) = header
        .trim()
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h).ok())
    else {
        return false;
    };
    hmac_sha256(secret.as_bytes())
        .chain_update(timestamp_ms.as_bytes())
        .chain_update(b".")
        .chain_update(body)
        .verify_slice(&tag)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_timestamp_dot_body_and_verifies_only_the_same_bytes() {
        // An independent computation: HMAC-SHA256("s", "1.{}") with Python's hmac module.
        let sig = webhook_signature("s", "1", b"{}");
        assert_eq!(
            sig,
            "sha256=b253639bcd705ed1cda3073f66104f16988bd40272584dea7d0d345ae93e61cc"
        );
        assert!(verify_webhook_signature("s", "1", b"{}", &sig));
        assert!(!verify_webhook_signature("s", "2", b"{}", &sig));
        assert!(!verify_webhook_signature("s", "1", b"{ }", &sig));
        assert!(!verify_webhook_signature("t", "1", b"{}", &sig));
        assert!(!verify_webhook_signature("s", "1", b"{}", "sha256=zz"));
    }
}
