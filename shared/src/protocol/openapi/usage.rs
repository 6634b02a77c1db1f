//! 按需使用量推送(新), the usage push (docs/protocol/openapi.md §3, docs/protocol/decisions.md §8): the
//! body the vendor sends and the codes of its answer (`error_code`, `error_msg`). The body is
//! compact JSON with its keys sorted at every level: the record's fields are declared in byte
//! order, so serde writes them sorted, and the bytes signed are the bytes sent.

use serde::{Deserialize, Serialize};

pub const PATH: &str = "/api/mkp-openapi-public/global/v1/isv/usage-data";

/// `begin_time`, `end_time` and `record_time`: UTC, `yyyyMMdd'T'HHmmss'Z'`.
pub const TIME_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// `UsagePushData`. Field order is the sorted key order: keep it so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsagePushData {
    pub begin_time: String,
    pub end_time: String,
    pub instance_id: String,
    pub metering_sn: String,
    pub record_time: String,
    /// Only for stop-when-used-up packages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relate_pkg_instance: Option<String>,
    /// A JSON string, as the documentation's examples send it (`"99"`): > 0, at most 4 decimals.
    pub usage_value: String,
}

#[derive(Serialize)]
struct Body<'a> {
    usage_records: &'a [UsagePushData],
}

/// The exact bytes to sign and send.
pub fn body(records: &[UsagePushData]) -> Vec<u8> {
    // Serialising strings and a slice of them cannot fail.
    serde_json::to_vec(&Body {
        usage_records: records,
    })
    .unwrap_or_default()
}

/// Codes that refuse the push's content (docs/protocol/openapi.md §3, §8): a record's (`MKT.9001`
/// unknown instance, …) or every record's alike (`MKT.0100` input validation, `MKT.0101`,
/// `MKT.0199` say nothing of which). The pusher tells them apart by splitting the push
/// (`metering::push`): only a record refused alone while KooGallery accepts others is rejected.
/// `MKT.9003` (too many records) cannot happen with at most 1000 per push, and splitting cures
/// it if it does.
pub fn is_content_refusal(code: &str) -> bool {
    matches!(
        code.trim(),
        "MKT.9001"
            | "MKT.9002"
            | "MKT.9003"
            | "MKT.9004"
            | "MKT.9005"
            | "MKT.0150"
            | "MKT.0100"
            | "MKT.0101"
            | "MKT.0199"
    )
}

/// Codes that refuse our credentials or body signature: an operator must fix the keys.
pub fn is_credentials_refusal(code: &str) -> bool {
    matches!(code.trim(), "MKT.0102" | "MKT.0151" | "MKT.0154")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spec docs/protocol/openapi.md §10 V4: the body whose signature the vector pins is what
    /// `body` writes.
    #[test]
    fn the_body_is_compact_with_sorted_keys_as_in_vector_v4() {
        let record = UsagePushData {
            begin_time: "20220809T080000Z".into(),
            end_time: "20220809T090000Z".into(),
            instance_id: "7f141bf1-aec8-4859-8323-fb3a8ad50721".into(),
            metering_sn: "a1b2c3d4-0001".into(),
            record_time: "20220809T091000Z".into(),
            relate_pkg_instance: None,
            usage_value: "99".into(),
        };
        let bytes = body(std::slice::from_ref(&record));
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"usage_records":[{"begin_time":"20220809T080000Z","end_time":"20220809T090000Z","instance_id":"7f141bf1-aec8-4859-8323-fb3a8ad50721","metering_sn":"a1b2c3d4-0001","record_time":"20220809T091000Z","usage_value":"99"}]}"#
        );
        let with_pkg = UsagePushData {
            relate_pkg_instance: Some("pkg-1".into()),
            ..record
        };
        let text = String::from_utf8(body(&[with_pkg])).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let keys: Vec<&String> = v["usage_records"][0].as_object().unwrap().keys().collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted, "keys sorted at every level");
    }
}
