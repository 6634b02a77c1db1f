//! KooGallery's open API as the vendor calls it (docs/protocol/openapi.md §0–§2, §8): hosts and
//! paths, the answer envelope's result codes, and one module per API's DTOs. Lenient in what is
//! read (unknown fields ignored, `null` accepted, numbers or strings where the documentation is
//! loose), strict in what is sent.

pub mod query_order;
pub mod usage;

/// The China site's hosts (docs/protocol/openapi.md §0). The international site's primary is
/// `https://mkt-intl.myhuaweicloud.com`; both fall back to the China fallback host.
pub const DEFAULT_PRIMARY_URL: &str = "https://mkt.myhuaweicloud.com";
pub const DEFAULT_FALLBACK_URL: &str = "https://mkt.myhuaweicloud.cn";

/// The result code of success.
pub const MKT_SUCCESS: &str = "MKT.0000";

/// How a client should treat a non-success `resultCode` (docs/protocol/openapi.md §8): retry later
/// (`MKT.0999` internal error, `MKT.0250` throttled), or not without fixing the request (the rest,
/// `MKT.01xx` parameter and authorisation errors, `MKT.9xxx` unknown entities).
pub fn is_retryable_code(code: &str) -> bool {
    matches!(code.trim(), "MKT.0999" | "MKT.0250")
}

/// Whether a gateway error code (`APIG.*`, `APIGW.*`) may pass on retry: only the gateway's own
/// throttling and internal errors; signature and authorisation errors need a fix.
pub fn is_retryable_gateway_code(code: &str) -> bool {
    let code = code.trim();
    // APIG.0308: throttled; APIG.0201/0202: gateway backend errors and timeouts.
    matches!(code, "APIG.0308" | "APIG.0201" | "APIG.0202")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_internal_errors_and_throttling_are_retried() {
        assert!(is_retryable_code("MKT.0999"));
        assert!(is_retryable_code(" MKT.0250"));
        for code in [
            "MKT.0100", "MKT.0101", "MKT.0150", "MKT.0154", "MKT.9001", "X",
        ] {
            assert!(!is_retryable_code(code), "{code}");
        }
        assert!(is_retryable_gateway_code("APIG.0308"));
        assert!(!is_retryable_gateway_code("APIG.0303"));
    }
}
