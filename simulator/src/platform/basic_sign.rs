//! KooGallery's V2 basic-interface request signature, as the platform computes it
//! (docs/protocol/callbacks.md §3.1; vectors §14.3 and docs/protocol/openapi.md §10 V5).
//!
//! ```text
//! payload   = canonical JSON of the body
//! inner     = lower-case hex( HMAC-SHA256(accessKey, payload) )
//! signature = hex( HMAC-SHA256(accessKey, accessKey + nonce + timestamp + inner) )
//! ```

use serde_json::{Map, Value};

use super::hmac_of;

/// The canonical payload of a body (§3.1, as the official sample builds it): top-level keys in
/// ascending Java `String.compareTo` order, top-level `null` entries left out (empty strings
/// kept), compact, non-ASCII raw and `/` unescaped; nested values compact in the order received.
#[must_use]
pub fn canonical_payload(body: &Map<String, Value>) -> String {
    let mut entries: Vec<(&String, &Value)> = body.iter().filter(|(_, v)| !v.is_null()).collect();
    // Java compares strings by UTF-16 code units, which orders characters beyond U+FFFF (as
    // surrogates) before U+E000..U+FFFF; Rust's `str` order is by code point.
    entries.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
    let mut out = String::from("{");
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // `Value`'s `Display` is compact JSON, keeps the received order of nested objects
        // (serde_json's `preserve_order`) and escapes neither non-ASCII nor `/`.
        out.push_str(&Value::String(k.clone()).to_string());
        out.push(':');
        out.push_str(&v.to_string());
    }
    out.push('}');
    out
}

/// `inner`: lower-case hex HMAC-SHA256 of the payload under the access key.
#[must_use]
pub fn inner(access_key: &str, payload: &str) -> String {
    hex::encode(hmac_of(access_key.as_bytes(), &[payload.as_bytes()]))
}

/// The `signature` query parameter, upper-case hex as the newest pages show it (the vendor
/// compares case-insensitively, §3.1).
#[must_use]
pub fn signature(access_key: &str, nonce: &str, timestamp: &str, payload: &str) -> String {
    let inner = inner(access_key, payload);
    let key = access_key.as_bytes();
    hex::encode_upper(hmac_of(
        key,
        &[
            key,
            nonce.as_bytes(),
            timestamp.as_bytes(),
            inner.as_bytes(),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &str = "TestAccessKey-0123456789abcdef";
    const NONCE: &str = "50D83FDECAED6CCD8EF597F2A577950527928BA287D04E6036E92B2806FD17DA";
    const PAYLOAD_14_3: &str = r#"{"activity":"newInstance","businessId":"87b94795-0603-4e24-8ae5-69420d60e3c8","orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","testFlag":"1"}"#;

    fn object(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    /// callbacks.md §14.3: any key order on the wire, whitespace, an extra null → the payload.
    #[test]
    fn vector_14_3_canonical_payload() {
        let wire = r#"{ "testFlag" : "1", "orderLineId": "CS2211181819B4LVS-000001",
            "extra": null, "orderId": "CS2211181819B4LVS",
            "businessId": "87b94795-0603-4e24-8ae5-69420d60e3c8", "activity": "newInstance" }"#;
        let body = object(serde_json::from_str(wire).unwrap());
        assert_eq!(canonical_payload(&body), PAYLOAD_14_3);
    }

    /// callbacks.md §14.3: inner HMAC and signature.
    #[test]
    fn vector_14_3_inner_and_signature() {
        assert_eq!(
            inner(KEY, PAYLOAD_14_3),
            "10a571044bbfa4da77841395fb33e79725d25a1264c6d52540e4f17f1cc3a30d"
        );
        assert_eq!(
            signature(KEY, NONCE, "1680508066618", PAYLOAD_14_3),
            "A64B1BFCE1A372DE15EF4377957528E7F7B0CE4944D4CAEA7B7363339DF27C82"
        );
    }

    /// openapi.md §10 V5: an orderNotify body under another key, nonce and timestamp.
    #[test]
    fn vector_openapi_v5() {
        let body = object(
            json!({"testFlag":"1","orderLineId":"CS2211181819B4LVS-000001",
            "orderId":"CS2211181819B4LVS","activity":"orderNotify"}),
        );
        let payload = canonical_payload(&body);
        assert_eq!(
            payload,
            r#"{"activity":"orderNotify","orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","testFlag":"1"}"#
        );
        assert_eq!(
            inner("isv-key-example", &payload),
            "46c06c93214603fad5eaa6f372730e973ac000058dbcbba0ce2083b3d37bb3d0"
        );
        assert_eq!(
            signature(
                "isv-key-example",
                "Of4lsV7H1qrzVDI52O5CFk2ofPcZRaA6",
                "1729566664115",
                &payload
            ),
            "E6B164F062DC1FE6C17B649DE767441F521E99495246A5449A2CA67C93119C11"
        );
    }

    /// §3.1: Java's UTF-16 order (a character beyond U+FFFF sorts before U+FF5E), empty strings
    /// kept, nested values compact in received order, `/` and non-ASCII raw.
    #[test]
    fn canonical_form_details() {
        let body = object(json!({"\u{FF5E}":1,"\u{1F600}":2,"b":"","a":{"z":null,"y":"s/ü"}}));
        assert_eq!(
            canonical_payload(&body),
            "{\"a\":{\"z\":null,\"y\":\"s/ü\"},\"b\":\"\",\"\u{1F600}\":2,\"\u{FF5E}\":1}"
        );
    }
}
