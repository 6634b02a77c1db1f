//! What the exchange log keeps of a body: secrets and personal fields replaced by `<redacted>`,
//! wherever they sit in the JSON (docs/operations.md, "What KooGallery sent").
//!
//! A field is redacted by its name, compared without case: the secrets of every family
//! (`clientSecret`, `password`, tokens, signatures, license codes, keys) and the buyer's personal
//! data (names, phone numbers, e-mail addresses, places). The identifiers an operator searches by
//! (`instanceId`, `orderId`, `customerId`, `tenantId`) are kept, except where the protocol makes one
//! a secret (a V1 `getLicense`'s `instanceId` is the license code).
//!
//! Bodies that are not JSON are kept as `application/x-www-form-urlencoded` pairs, redacted the
//! same way, when they parse as such, else described by their size only.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use serde_json::{Map, Value};
use std::sync::LazyLock;

/// What a redacted value becomes.
pub const REDACTED: &str = "<redacted>";

/// The largest body kept whole; a larger one is kept as its size only.
pub const MAX_KEPT_BYTES: usize = 64 * 1024;

/// Field names (lower case) whose values are never kept.
const SENSITIVE: &[&str] = &[
    // Secrets.
    "clientsecret",
    "password",
    "pwd",
    "authtoken",
    "accesskey",
    "secretkey",
    "sk",
    "token",
    "accesstoken",
    "refreshtoken",
    "idtoken",
    "code",
    "license",
    "licensecode",
    "signature",
    "sign",
    "x-sign",
    "privatekey",
    // Personal data.
    "customername",
    "username",
    "mobilephone",
    "mobile",
    "phone",
    "email",
    "name",
    "realname",
    "nickname",
    "workplace",
    "position",
    "address",
    "idcard",
];

/// Finds any sensitive name in raw bytes, so a body without one is not walked.
static PREFILTER: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostFirst)
        .build(SENSITIVE)
        .expect("fixed patterns")
});

/// The redaction of one call's bodies: the fixed names, and those its interface makes secret.
#[derive(Debug, Clone, Copy, Default)]
pub struct Redaction {
    /// A V1 `getLicense`: its `instanceId` is the license code.
    pub instance_id_is_secret: bool,
}

impl Redaction {
    /// The redaction for a call of `family` and `activity` (names as in [`super::Exchange`]).
    pub fn for_call(family: &str, activity: &str) -> Self {
        Self {
            instance_id_is_secret: family == "v1" && activity.eq_ignore_ascii_case("getLicense"),
        }
    }

    fn hides(&self, key: &str) -> bool {
        let lower = key.to_ascii_lowercase();
        SENSITIVE.contains(&lower.as_str()) || (self.instance_id_is_secret && lower == "instanceid")
    }

    /// What the log keeps of `bytes`: redacted JSON, redacted form pairs, or a description.
    pub fn body(&self, bytes: &[u8]) -> Value {
        if bytes.is_empty() {
            return Value::Null;
        }
        if bytes.len() > MAX_KEPT_BYTES {
            return describe(bytes.len(), "too large to keep");
        }
        if let Ok(mut value) = serde_json::from_slice::<Value>(bytes) {
            if self.instance_id_is_secret || PREFILTER.is_match(bytes) {
                self.value(&mut value);
            }
            return value;
        }
        match std::str::from_utf8(bytes) {
            Ok(text) if looks_like_form(text) => {
                let mut map = Map::new();
                for (k, v) in form_urlencoded::parse(text.as_bytes()) {
                    let kept = if self.hides(&k) {
                        REDACTED.to_owned()
                    } else {
                        v.into_owned()
                    };
                    map.insert(k.into_owned(), Value::String(kept));
                }
                Value::Object(map)
            }
            _ => describe(bytes.len(), "not JSON"),
        }
    }

    /// Redacts `value` in place, at any depth.
    pub fn value(&self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    if self.hides(k) {
                        if !v.is_null() {
                            *v = Value::String(REDACTED.to_owned());
                        }
                    } else {
                        self.value(v);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.value(v)),
            _ => {}
        }
    }
}

/// `k=v&k=v`, printable: a V1 query string or a form body.
fn looks_like_form(text: &str) -> bool {
    text.contains('=') && !text.chars().any(|c| c.is_control() || c == ' ')
}

fn describe(bytes: usize, why: &str) -> Value {
    serde_json::json!({ "bytes": bytes, "kept": why })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_and_personal_fields_are_redacted_at_any_depth() {
        let body = json!({
            "activity": "newInstance",
            "orderId": "CS1",
            "customerId": "c-1",
            "customerName": "Zhang San",
            "mobilePhone": "13800000000",
            "email": "z@example.com",
            "userList": [{"userName": "u1", "name": "Li Si", "role": "admin"}],
            "appInfo": {"frontEndUrl": "https://app", "password": "p@ss", "userName": "admin"},
            "Password": "upper case too",
            "authToken": null,
        });
        let kept = Redaction::default().body(body.to_string().as_bytes());
        assert_eq!(
            kept,
            json!({
                "activity": "newInstance",
                "orderId": "CS1",
                "customerId": "c-1",
                "customerName": REDACTED,
                "mobilePhone": REDACTED,
                "email": REDACTED,
                "userList": [{"userName": REDACTED, "name": REDACTED, "role": "admin"}],
                "appInfo": {"frontEndUrl": "https://app", "password": REDACTED, "userName": REDACTED},
                "Password": REDACTED,
                "authToken": null,
            })
        );
    }

    #[test]
    fn a_body_without_sensitive_names_is_kept_as_it_is() {
        let body = json!({"activity": "queryInstance", "instanceIds": ["i-1"], "testFlag": "0"});
        assert_eq!(Redaction::default().body(body.to_string().as_bytes()), body);
    }

    #[test]
    fn a_v1_get_license_hides_its_instance_id_which_is_the_license_code() {
        let query = b"activity=getLicense&instanceId=LIC-SECRET&orderId=CS1&authToken=abc";
        let kept = Redaction::for_call("v1", "getLicense").body(query);
        assert_eq!(
            kept,
            json!({"activity": "getLicense", "instanceId": REDACTED, "orderId": "CS1", "authToken": REDACTED})
        );
        let other = Redaction::for_call("v1", "newInstance").body(b"instanceId=i-1");
        assert_eq!(other, json!({"instanceId": "i-1"}));
    }

    #[test]
    fn other_bodies_are_described_not_kept() {
        let r = Redaction::default();
        assert_eq!(r.body(b""), Value::Null);
        assert_eq!(
            r.body(b"\x00\x01binary"),
            json!({"bytes": 8, "kept": "not JSON"})
        );
        let big = vec![b' '; MAX_KEPT_BYTES + 1];
        assert_eq!(r.body(&big)["kept"], "too large to keep");
    }
}
