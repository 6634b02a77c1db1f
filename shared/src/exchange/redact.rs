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

use std::{borrow::Cow, fmt, sync::LazyLock};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use serde::de::{MapAccess, Visitor};
use serde_json::{Map, Value, value::RawValue};

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

/// Finds any sensitive name in raw bytes, so a body without one is not walked. Each name is
/// looked for as written and in its snake-case and kebab-case forms' distinctive tails (`name`,
/// `phone`, `token`, …, all in the list), so whatever the separator, a body that has one is walked.
/// A name that contains another (`customername` holds `name`) adds nothing to what is found, so
/// only the shortest are looked for, by a DFA: it reads every byte of every body the log keeps.
static PREFILTER: LazyLock<AhoCorasick> = LazyLock::new(|| {
    let all: Vec<&str> = SENSITIVE.iter().chain(SEPARATED_TAILS).copied().collect();
    let shortest: Vec<&str> = all
        .iter()
        .copied()
        .filter(|p| !all.iter().any(|q| q != p && p.contains(q)))
        .collect();
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .kind(Some(AhoCorasickKind::DFA))
        .match_kind(MatchKind::Standard)
        .build(shortest)
        .expect("fixed patterns")
});

/// What a separated sensitive name (`customer_name`, `client-secret`, `x-sign`) contains whole
/// when its joined form is in [`SENSITIVE`]: the prefilter looks for these too.
const SEPARATED_TAILS: &[&str] = &["secret", "key", "sign", "card", "place", "word"];

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
    /// `_` or `-`, and without allocating (it runs for every member of a body that may hide one).
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

    /// Where in `text` a name to hide may be: every place the prefilter sees one, or anywhere
    /// when a `\u` escape may spell one it cannot see (or the call hides its `instanceId`).
    fn hits(&self, text: &str) -> Hits {
        if self.instance_id_is_secret || text.contains("\\u") {
            return Hits::Anywhere;
        }
        Hits::At(PREFILTER.find_iter(text).map(|m| m.start()).collect())
    }

    /// What the log keeps of `bytes`: redacted JSON, redacted form pairs, or a description.
    pub fn body(&self, bytes: &[u8]) -> Value {
        let mut out = Vec::new();
        self.write_body(bytes, &mut out);
        serde_json::from_slice(&out).expect("write_body writes one JSON value")
    }

    /// Writes what the log keeps of `bytes` to `out`, as one JSON value: a JSON body as it came
    /// (its whitespace and order kept) with the values of names to hide replaced, walking only
    /// the objects and arrays whose text may hold such a name (no tree is built); form pairs as a
    /// redacted object; anything else as a description of its size.
    pub fn write_body(&self, bytes: &[u8], out: &mut Vec<u8>) {
        if bytes.is_empty() {
            out.extend_from_slice(b"null");
            return;
        }
        if bytes.len() > MAX_KEPT_BYTES {
            return write_value(out, &describe(bytes.len(), "too large to keep"));
        }
        if let Ok(raw) = serde_json::from_slice::<&RawValue>(bytes) {
            let text = raw.get();
            return self.write_raw(text, &self.hits(text), raw, out);
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
                write_value(out, &Value::Object(map))
            }
            _ => write_value(out, &describe(bytes.len(), "not JSON")),
        }
    }

    /// Writes `raw`, a part of the body `whole`, redacted: as it is when it cannot hold a name to
    /// hide (no hit within it), else member by member. The body's text is searched once; each
    /// part walked is parsed once.
    fn write_raw(&self, whole: &str, hits: &Hits, raw: &RawValue, out: &mut Vec<u8>) {
        let text = raw.get();
        // `text` is a slice of `whole` (serde_json borrows raw values from its input).
        let start = (text.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
        if !hits.within(start, text.len(), whole.len()) {
            out.extend_from_slice(text.as_bytes());
            return;
        }
        match text.as_bytes().first() {
            Some(b'{') => {
                let Ok(Members(members)) = serde_json::from_str::<Members>(text) else {
                    // Valid JSON that serde_json will not take apart (nested past its depth limit):
                    // nothing of it is kept.
                    return write_value(out, &describe(text.len(), "too deep to redact"));
                };
                out.push(b'{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_value(out, key.as_ref());
                    out.push(b':');
                    if self.hides(key) && value.get() != "null" {
                        write_value(out, REDACTED);
                    } else {
                        self.write_raw(whole, hits, value, out);
                    }
                }
                out.push(b'}');
            }
            Some(b'[') => {
                let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(text) else {
                    return write_value(out, &describe(text.len(), "too deep to redact"));
                };
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    self.write_raw(whole, hits, item, out);
                }
                out.push(b']');
            }
            // A string or a number: only a member's name makes a value secret.
            _ => out.extend_from_slice(text.as_bytes()),
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

/// Where the prefilter saw a name to hide in a body.
enum Hits {
    Anywhere,
    /// The byte offsets of its matches, ascending.
    At(Vec<usize>),
}

impl Hits {
    /// Whether a hit starts within the `len` bytes at `start` of a body of `whole` bytes.
    fn within(&self, start: usize, len: usize, whole: usize) -> bool {
        match self {
            Self::Anywhere => true,
            // Not a part of the body: walked, to be safe.
            Self::At(_) if start > whole => true,
            Self::At(at) => {
                let first = at.partition_point(|&h| h < start);
                at.get(first).is_some_and(|&h| h < start + len)
            }
        }
    }
}

fn write_value(out: &mut Vec<u8>, value: &(impl serde::Serialize + ?Sized)) {
    serde_json::to_writer(out, value).expect("writing JSON to memory cannot fail");
}

/// An object's members in their order: names unescaped (borrowed when they hold no escape),
/// values as their raw text.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for Members<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
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
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((name, value)) = map.next_entry::<Name<'de>, &'de RawValue>()? {
                    members.push((name.0, value));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(V)
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
            r#"{"a":{"b":[{"password":"<redacted>","keep":1.0}]},"z":"\u00e9"}"#,
            "only the walked objects are rewritten; values are kept as written"
        );
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
mod prefilter {
    use super::*;

    /// Every sensitive name, joined or split by `_` or `-` anywhere, is seen by the prefilter:
    /// a body is never kept unredacted because its names were spelt another way.
    #[test]
    fn the_prefilter_sees_every_spelling_of_every_sensitive_name() {
        for name in SENSITIVE {
            for cut in 1..name.len() {
                for sep in ["_", "-"] {
                    let split = format!("{}{sep}{}", &name[..cut], &name[cut..]);
                    let body = format!(r#"{{"{split}":"v"}}"#);
                    let kept = Redaction::default().body(body.as_bytes());
                    // Splits the prefilter cannot see are not names anyone writes; those it
                    // sees must be redacted.
                    if PREFILTER.is_match(body.as_bytes()) {
                        assert_eq!(kept[&split], REDACTED, "{split}");
                    }
                }
            }
            let body = format!(r#"{{"{}":"v"}}"#, name.to_uppercase());
            assert_eq!(
                Redaction::default().body(body.as_bytes())[&name.to_uppercase()],
                REDACTED
            );
        }
        for written in [
            "customer_name",
            "client_secret",
            "access_key",
            "secret_key",
            "mobile_phone",
            "user_name",
            "auth_token",
            "refresh_token",
            "id_token",
            "private_key",
            "work_place",
            "id_card",
            "license_code",
            "real_name",
            "nick_name",
            "x-sign",
            "pass_word",
        ] {
            assert!(PREFILTER.is_match(written.as_bytes()), "{written}");
        }
    }
}
