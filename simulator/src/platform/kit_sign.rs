//! KooGallery's V2 Kit request signature, the `x-sign` header (docs/protocol/callbacks.md §3.2;
//! vectors §14.4 and docs/protocol/openapi.md §10 V5).
//!
//! ```text
//! x-sign = hex( HMAC-SHA256(kitKey, kitKey + nonce + timestamp + payload) )
//! ```
//!
//! The payload is the canonical JSON of §3.1 ([`super::basic_sign::canonical_payload`]); unlike
//! the basic interfaces there is no inner HMAC.

use super::hmac_of;

/// The `x-sign` header over a canonical `payload`, upper-case hex as the examples show it.
#[must_use]
pub fn x_sign(kit_key: &str, nonce: &str, timestamp: &str, payload: &str) -> String {
    let key = kit_key.as_bytes();
    hex::encode_upper(hmac_of(
        key,
        &[
            key,
            nonce.as_bytes(),
            timestamp.as_bytes(),
            payload.as_bytes(),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::super::basic_sign::canonical_payload;
    use super::*;
    use serde_json::{Map, Value};

    fn payload_of(wire: &str) -> String {
        let body: Map<String, Value> = serde_json::from_str(wire).unwrap();
        canonical_payload(&body)
    }

    /// callbacks.md §14.4 a (nonce and timestamp of §14.3): numbers stay numbers.
    #[test]
    fn vector_14_4_a() {
        let payload = payload_of(
            r#"{"timeStamp":"20220413093539534","testFlag":0,"tenantId":"68cbc86abc51458880d92f36422fa0e",
               "tenantCode":"huawei","orderId":"CS1906666666ABCDE","name":"huaiweitest",
               "instanceId":"huaiweitest123456","flag":1,"domainName":"https://example.tenantaccount.com"}"#,
        );
        assert_eq!(
            payload,
            r#"{"domainName":"https://example.tenantaccount.com","flag":1,"instanceId":"huaiweitest123456","name":"huaiweitest","orderId":"CS1906666666ABCDE","tenantCode":"huawei","tenantId":"68cbc86abc51458880d92f36422fa0e","testFlag":0,"timeStamp":"20220413093539534"}"#
        );
        assert_eq!(
            x_sign(
                "TestAccessKey-0123456789abcdef",
                "50D83FDECAED6CCD8EF597F2A577950527928BA287D04E6036E92B2806FD17DA",
                "1680508066618",
                &payload
            ),
            "9AC4D2CBACF885EC49DAEE83E89A85BFBBF92B7E8C72E0D08ED0E8A3F9A384BB"
        );
    }

    /// callbacks.md §14.4 b: a nested array kept in received order, non-ASCII raw; the nested
    /// object reordered no longer gives the vector.
    #[test]
    fn vector_14_4_b_nested_array_and_non_ascii() {
        let user = r#"{"userName":"zhangsan01","name":"张三","orgCode":"10000","role":"admin","enable":"true"}"#;
        let wire = |user: &str| {
            format!(
                r#"{{"userList":[{user}],"timeStamp":"20240101120000000","testFlag":1,"tenantId":"tenant-001",
                   "instanceId":"inst-001","flag":1,"currentSyncTime":"20240101120000000","appId":"app-001"}}"#
            )
        };
        let sign = |p: &str| {
            x_sign(
                "KitKey-fedcba9876543210",
                "0123456789ABCDEF0123456789ABCDEF",
                "1700000000000",
                p,
            )
        };
        assert_eq!(
            sign(&payload_of(&wire(user))),
            "A4F6795925285533869865F5FFA2E11D59ABBCAFC2CF0212F61F3DB89754EF07"
        );
        let reordered = r#"{"name":"张三","userName":"zhangsan01","orgCode":"10000","role":"admin","enable":"true"}"#;
        assert_ne!(
            sign(&payload_of(&wire(reordered))),
            "A4F6795925285533869865F5FFA2E11D59ABBCAFC2CF0212F61F3DB89754EF07"
        );
    }

    /// openapi.md §10 V5, Kit variant: the V5 inputs under the `x-sign` formula.
    #[test]
    fn vector_openapi_v5_kit_variant() {
        let payload = payload_of(
            r#"{"testFlag":"1","orderLineId":"CS2211181819B4LVS-000001","orderId":"CS2211181819B4LVS","activity":"orderNotify"}"#,
        );
        assert_eq!(
            x_sign(
                "isv-key-example",
                "Of4lsV7H1qrzVDI52O5CFk2ofPcZRaA6",
                "1729566664115",
                &payload
            ),
            "595C18D3B283E717CD060156C43BA0F458D3BED30B3C3B9D6FCFE2DE1B50FE8E"
        );
    }
}
