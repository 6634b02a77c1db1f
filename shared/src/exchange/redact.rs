//! What the exchange log keeps of a body: secrets and personal fields replaced by `<redacted>`,
//! wherever they sit in the JSON (docs/operations.md, "What KooGallery sent").
//!
//! A field is redacted by its name, compared without case: the secrets of every family
//! (`clientSecret`, `password`, tokens, signatures, license codes, keys) and the buyer's personal
//! data (names, phone numbers, e-mail addresses, places). The identifiers an operator searches by
//! (`instanceId`, `orderId`, `customerId`, `tenantId`) are kept, except where the protocol makes one
//! a secret (a V1 `getLicense`'s `instanceId` is the license code).
//!
//! A JSON body is kept byte for byte but for the values hidden, found in one walk of its text; a
//! body that walk cannot take apart (nested past serde_json's depth limit, a number past f64's
//! range) is described by its size only. Bodies that are not JSON are kept as
//! `application/x-www-form-urlencoded` pairs, redacted the same way, when they parse as such and
//! do not start as JSON does (JSON cut short would otherwise keep its secrets in a pair's name),
//! else described by their size only.

use std::{borrow::Cow, fmt};

use serde::de::{MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value, value::RawValue};

use crate::protocol::v1::V1Activity;

/// What a redacted value becomes.
pub const REDACTED: &str = "<redacted>";

/// The largest body kept whole; a larger one is kept as its size only.
pub const MAX_KEPT_BYTES: usize = 64 * 1024;

/// Field names whose values are never kept, lower case without `_` or `-` (a name is compared so:
/// `customerName`, `customer_name` and `CUSTOMER-NAME` are one).
const SENSITIVE: &[&str] = &[
    // Secrets.
    "clientsecret",
    "password",
    "passwordsealed",
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
    "xsign",
    "privatekey",
    // Personal data.
    "customername",
    "username",
    "usernames",
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

    /// Whether `key` is one of the names this redaction hides: compared without case and without
    /// `_` or `-`, and without allocating (it runs for every member of every body kept).
    fn hides(&self, key: &str) -> bool {
        let mut joined = [0u8; 24];
        let mut len = 0;
        for b in key.bytes().filter(|b| *b != b'_' && *b != b'-') {
            if len == joined.len() {
                return false; // longer than every sensitive name
            }
            joined[len] = b.to_ascii_lowercase();
            len += 1;
        }
        let joined = &joined[..len];
        SENSITIVE.iter().any(|s| s.as_bytes() == joined)
            || (self.instance_id_is_secret && joined == b"instanceid")
    }

    /// What the log keeps of `bytes`: redacted JSON, redacted form pairs, or a description.
    pub fn body(&self, bytes: &[u8]) -> Value {
        let mut out = Vec::new();
        self.write_body(bytes, &mut out);
        serde_json::from_slice(&out).expect("write_body writes one JSON value")
    }

    /// Writes what the log keeps of `bytes` to `out`, as one JSON value: a JSON body as it came
    /// (its whitespace and order kept) with the values of names to hide replaced; form pairs as a
    /// redacted object; anything else as a description of its size.
    ///
    /// Every JSON body is walked, whatever names it seems to hold: a name is compared as
    /// [`Self::hides`] compares it, so no spelling (`e-mail`, `pass_word`, an escape) can pass a
    /// cheaper test and be kept. The walk takes what serde_json takes as a JSON value, so what is
    /// written can always be read back (the record's reader parses it).
    pub fn write_body(&self, bytes: &[u8], out: &mut Vec<u8>) {
        if bytes.is_empty() {
            out.extend_from_slice(b"null");
            return;
        }
        if bytes.len() > MAX_KEPT_BYTES {
            return write_value(out, &describe(bytes.len(), "too large to keep"));
        }
        let Ok(text) = std::str::from_utf8(bytes) else {
            return write_value(out, &describe(bytes.len(), "not JSON"));
        };
        let mut hidden = Vec::new();
        if walk(self, text, &mut hidden).is_ok() {
            return splice(text, &hidden, out);
        }
        if serde_json::from_str::<&RawValue>(text).is_ok() {
            // Valid JSON the walk cannot take apart (nested past serde_json's depth limit, a
            // number past f64's range): nothing of it is kept.
            return write_value(out, &describe(bytes.len(), "not redactable"));
        }
        if looks_like_json(text) || !looks_like_form(text) {
            // JSON cut short or with a fault: read as form pairs, its secrets would be kept in
            // a pair's name.
            return write_value(out, &describe(bytes.len(), "not JSON"));
        }
        // A V1 License call's `instanceId` is its license code (docs/protocol/callbacks.md §11),
        // whatever the call is kept as (a call that did not verify has no callback's name).
        let pairs = form_urlencoded::parse(text.as_bytes());
        let license_call = pairs.clone().any(|(k, v)| {
            k == "activity"
                && V1Activity::ALL
                    .into_iter()
                    .any(|a| a.is_license() && v.eq_ignore_ascii_case(a.as_str()))
        });
        let redaction = Self {
            instance_id_is_secret: self.instance_id_is_secret || license_call,
        };
        let mut map = Map::new();
        for (k, v) in pairs {
            let kept = if redaction.hides_form_name(&k) {
                REDACTED.to_owned()
            } else if looks_like_json(&v) {
                // A pair whose value is JSON (`payload={...}`): that JSON, redacted.
                let mut json = Vec::new();
                redaction.write_body(v.as_bytes(), &mut json);
                String::from_utf8(json).expect("write_body writes UTF-8")
            } else {
                v.into_owned()
            };
            map.insert(k.into_owned(), Value::String(kept));
        }
        write_value(out, &Value::Object(map))
    }

    /// Whether a form pair's name hides its value: the name itself, or any part of a nested
    /// name (`user[password]`, `user.password`).
    fn hides_form_name(&self, name: &str) -> bool {
        self.hides(name)
            || name
                .split(['[', ']', '.'])
                .any(|part| !part.is_empty() && self.hides(part))
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

/// Text whose first character (after whitespace and a byte-order mark) opens a JSON object,
/// array or string.
fn looks_like_json(text: &str) -> bool {
    text.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}')
        .starts_with(['{', '[', '"'])
}

/// `k=v&k=v`, printable: a V1 query string or a form body.
fn looks_like_form(text: &str) -> bool {
    text.contains('=') && !text.chars().any(|c| c.is_control() || c == ' ')
}

/// `bytes` with every occurrence of each of `secrets` replaced by [`REDACTED`]: for a value the
/// redaction cannot know by its field's name (a license code inside an event ID, a batch answer
/// keyed by the codes themselves). Empty secrets are skipped.
pub fn without_values<'a>(bytes: &[u8], secrets: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for secret in secrets {
        if secret.is_empty() || out.len() < secret.len() {
            continue;
        }
        let mut kept = Vec::with_capacity(out.len());
        let mut i = 0;
        while i < out.len() {
            if out[i..].starts_with(secret) {
                kept.extend_from_slice(REDACTED.as_bytes());
                i += secret.len();
            } else {
                kept.push(out[i]);
                i += 1;
            }
        }
        out = kept;
    }
    out
}

fn write_value(out: &mut Vec<u8>, value: &(impl serde::Serialize + ?Sized)) {
    serde_json::to_writer(out, value).expect("writing JSON to memory cannot fail");
}

/// Walks `text`, one JSON value, once, and pushes to `hidden` the span (start, end) of every
/// value `redaction` hides that is not `null`, in the order they come. Fails where serde_json
/// cannot take `text` apart.
fn walk(
    redaction: &Redaction,
    text: &str,
    hidden: &mut Vec<(usize, usize)>,
) -> serde_json::Result<()> {
    let mut de = serde_json::Deserializer::from_str(text);
    serde::de::DeserializeSeed::deserialize(
        Walk {
            redaction,
            whole: text,
            hidden,
        },
        &mut de,
    )?;
    de.end()
}

/// Writes `text` trimmed of its outer whitespace, with each span of `hidden` (ascending, none
/// overlapping: a hidden value is not walked into) replaced by [`REDACTED`] as a JSON string.
fn splice(text: &str, hidden: &[(usize, usize)], out: &mut Vec<u8>) {
    let first = text.len() - text.trim_start_matches(JSON_WHITESPACE).len();
    let last = text.trim_end_matches(JSON_WHITESPACE).len();
    let mut at = first;
    for &(start, end) in hidden {
        out.extend_from_slice(&text.as_bytes()[at..start]);
        write_value(out, REDACTED);
        at = end;
    }
    out.extend_from_slice(&text.as_bytes()[at..last]);
}

const JSON_WHITESPACE: &[char] = &[' ', '\t', '\n', '\r'];

/// The walk through one value of the body `whole`: objects and arrays are walked into, each
/// member a name to hide has is kept as its span in `whole` without being walked.
struct Walk<'r, 'h, 'de> {
    redaction: &'r Redaction,
    whole: &'de str,
    hidden: &'h mut Vec<(usize, usize)>,
}

impl<'r, 'de> Walk<'r, '_, 'de> {
    /// The walk into a member or an item.
    fn deeper(&mut self) -> Walk<'r, '_, 'de> {
        Walk {
            redaction: self.redaction,
            whole: self.whole,
            hidden: self.hidden,
        }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Walk<'_, '_, 'de> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        while let Some(Name(name)) = map.next_key::<Name<'de>>()? {
            if !self.redaction.hides(&name) {
                map.next_value_seed(self.deeper())?;
                continue;
            }
            let raw: &'de RawValue = map.next_value()?;
            let value = raw.get();
            if value == "null" {
                continue;
            }
            // serde_json borrows a raw value from its input: `value` is a slice of `whole`.
            let start = (value.as_ptr() as usize).wrapping_sub(self.whole.as_ptr() as usize);
            if start
                .checked_add(value.len())
                .is_none_or(|end| end > self.whole.len())
            {
                return Err(serde::de::Error::custom("a raw value outside the body"));
            }
            self.hidden.push((start, start + value.len()));
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(self.deeper())?.is_some() {}
        Ok(())
    }

    // A string, a number, a boolean or `null`: only a member's name makes a value secret.
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// A member's name, unescaped: borrowed from the body when it holds no escape.
struct Name<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Name<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a member's name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
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
            "userNames": ["u1", "u2"],
            "appInfo": {"frontEndUrl": "https://app", "password": "p@ss", "userName": "admin"},
            "Password": "upper case too",
            "customer_name": "snake case too",
            "x-sign": "kebab case too",
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
                "userNames": REDACTED,
                "appInfo": {"frontEndUrl": "https://app", "password": REDACTED, "userName": REDACTED},
                "Password": REDACTED,
                "customer_name": REDACTED,
                "x-sign": REDACTED,
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
    fn a_body_is_written_as_it_came_except_the_values_hidden() {
        let r = Redaction::default();
        let mut out = Vec::new();
        let plain = b"{ \"instanceId\": \"i-1\",\n  \"list\": [1, 2.50, \"x\"] }";
        r.write_body(plain, &mut out);
        assert_eq!(out, plain, "nothing to hide: the bytes as they came");
        out.clear();
        r.write_body(
            br#"{"a": {"b": [ {"password": "p", "keep": 1.0} ]}, "z": "\u00e9"}"#,
            &mut out,
        );
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"a": {"b": [ {"password": "<redacted>", "keep": 1.0} ]}, "z": "\u00e9"}"#,
            "only the hidden value is rewritten; the rest is kept as written"
        );
    }

    /// A body the walk cannot take apart is not kept, even when it is valid JSON: its secrets
    /// cannot be found.
    #[test]
    fn a_body_too_deep_to_walk_keeps_nothing_of_it() {
        let r = Redaction::default();
        let deep = format!(
            r#"{}{{"password":"hunter2"}}{}"#,
            "[".repeat(300),
            "]".repeat(300)
        );
        let kept = r.body(deep.as_bytes()).to_string();
        assert!(!kept.contains("hunter2"), "{kept}");
        let huge = br#"{"password":"hunter2","n":1e400}"#;
        let kept = r.body(huge).to_string();
        assert!(!kept.contains("hunter2"), "{kept}");
        assert_eq!(r.body(huge)["bytes"], huge.len());
    }

    #[test]
    fn a_name_spelt_with_escapes_is_still_hidden() {
        let kept = Redaction::default()
            .body(br#"{"customer\u004eame": "Zhang San", "pass\u0077ord": "p"}"#);
        assert_eq!(
            kept,
            json!({"customerName": REDACTED, "password": REDACTED})
        );
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

    /// Names spelt with a separator anywhere are hidden, however the body reads otherwise.
    #[test]
    fn every_spelling_of_a_name_is_hidden() {
        let r = Redaction::default();
        for name in [
            "e-mail",
            "E_Mail",
            "p_wd",
            "passwo_rd",
            "Pass-Word",
            "x-sign",
            "CLIENT_SECRET",
        ] {
            let body = format!(r#"{{"{name}":"secret value","keep":1}}"#);
            assert_eq!(
                r.body(body.as_bytes()),
                json!({name: REDACTED, "keep": 1}),
                "{name}"
            );
        }
    }

    /// JSON with a fault is not read as form pairs, which would keep its secrets in a pair's name.
    #[test]
    fn json_with_a_fault_is_described_not_kept_as_pairs() {
        for body in [
            &br#"{"password":"hunter2"}x=1"#[..],
            br#"{"password":"hunter2","sign":"YWJj=",}"#,
            br#"{"clientSecret":"hunter2","sign":"YWJj=""#,
            b"\xef\xbb\xbf{\"password\":\"hunter2\",\"a\":\"b=c\"}",
            br#"  ["password=hunter2""#,
        ] {
            let kept = Redaction::default().body(body);
            assert_eq!(
                kept,
                json!({"bytes": body.len(), "kept": "not JSON"}),
                "{kept}"
            );
        }
    }

    /// A form pair hides its value by any part of a nested name, and a value that is JSON is
    /// kept redacted.
    #[test]
    fn form_pairs_hide_nested_names_and_json_values() {
        let r = Redaction::default();
        assert_eq!(
            r.body(b"user[password]=hunter2&user.name=li&id=1"),
            json!({"user[password]": REDACTED, "user.name": REDACTED, "id": "1"})
        );
        let kept = r.body(br#"payload={"password":"hunter2","orderId":"CS1"}"#);
        let inner: Value = serde_json::from_str(kept["payload"].as_str().unwrap()).unwrap();
        assert_eq!(inner, json!({"password": REDACTED, "orderId": "CS1"}));
    }

    /// What is written can always be read back: valid JSON serde_json will not read into a value
    /// (a number past f64's range, nesting past its limit) is described, not copied.
    #[test]
    fn json_that_cannot_be_read_back_is_described() {
        let r = Redaction::default();
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for body in [
            &b"1e400"[..],
            b"[1e400]",
            br#"{"a":-1e400}"#,
            deep.as_bytes(),
        ] {
            assert_eq!(
                r.body(body),
                json!({"bytes": body.len(), "kept": "not redactable"})
            );
        }
    }

    /// Every V1 License call's query hides its `instanceId` (the license code), whatever the
    /// call is kept as: a call that did not verify is kept without a callback's name.
    #[test]
    fn a_v1_license_query_hides_its_code_whatever_the_call_is_kept_as() {
        for activity in [
            "getLicense",
            "refreshLicense",
            "expireLicense",
            "releaseLicense",
        ] {
            let query = format!("activity={activity}&instanceId=LGSECRET0123&orderId=CS1");
            for r in [Redaction::default(), Redaction::for_call("v1", "-")] {
                let kept = r.body(query.as_bytes());
                assert_eq!(kept["instanceId"], REDACTED, "{activity}");
                assert_eq!(kept["orderId"], "CS1");
            }
        }
        let basic = Redaction::for_call("v1", "-").body(b"activity=refreshInstance&instanceId=i-1");
        assert_eq!(basic["instanceId"], "i-1", "an instance's ID is kept");
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

#[cfg(test)]
mod against_the_tree {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;

    /// Names a body may have: some to hide (in several spellings), some to keep.
    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "password",
                "userName",
                "customer_name",
                "X-Sign",
                "authToken",
                "email",
                "instanceId",
                "orderId",
                "activity",
                "appInfo",
                "info",
                "memo",
                "keep",
            ])
            .prop_map(str::to_owned),
            "[a-zA-Z_]{1,12}",
        ]
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-1e12f64..1e12).prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(5, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec((name(), inner), 0..6)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// The walk over the raw bytes hides exactly what redacting the parsed tree hides,
        /// however the body is laid out, for every call's redaction.
        #[test]
        fn the_walk_hides_what_the_tree_redaction_hides(
            body in json(),
            pretty in any::<bool>(),
            secret_instance in any::<bool>(),
        ) {
            let redaction = Redaction { instance_id_is_secret: secret_instance };
            let bytes = if pretty {
                serde_json::to_vec_pretty(&body).unwrap()
            } else {
                serde_json::to_vec(&body).unwrap()
            };
            // Parsed from the same bytes: a float read back may differ in its last digit.
            let mut expected: Value = serde_json::from_slice(&bytes).unwrap();
            redaction.value(&mut expected);
            prop_assert_eq!(redaction.body(&bytes), expected);
        }
    }
}
