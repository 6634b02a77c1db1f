//! What every V2 basic callback answers (docs/protocol/callbacks.md §4): `resultCode`, `resultMsg`,
//! then the interface's own fields. Always HTTP 200 with JSON (docs/protocol/decisions.md §3).

use serde::{
    Deserialize, Deserializer, Serialize, Serializer, de::DeserializeOwned, ser::SerializeMap,
};
use serde_json::{Map, Value, value::RawValue};

use crate::ResultCode;

/// What a callback answers: `resultCode`, `resultMsg`, then the interface's own fields, sent as-is.
#[derive(Debug, Clone)]
pub struct Reply {
    pub result_code: ResultCode,
    pub result_msg: String,
    /// The interface's own fields in the order they were added, each kept as the JSON it is
    /// sent as: an answer is written once, when it is signed, not built as a tree of values
    /// first (queryInstance answers every poll this way).
    fields: Vec<(String, Box<RawValue>)>,
}

/// `resultMsg` is at most 255 characters (docs/protocol/callbacks.md §4).
pub const MAX_RESULT_MSG: usize = 255;

impl Reply {
    pub fn new(code: ResultCode, msg: impl Into<String>) -> Self {
        let mut msg: String = msg.into();
        if msg.chars().count() > MAX_RESULT_MSG {
            msg = msg.chars().take(MAX_RESULT_MSG - 3).collect::<String>() + "...";
        }
        Self {
            result_code: code,
            result_msg: msg,
            fields: Vec::new(),
        }
    }

    pub fn success() -> Self {
        Self::new(ResultCode::Success, ResultCode::Success.default_message())
    }

    pub fn code(code: ResultCode) -> Self {
        Self::new(code, code.default_message())
    }

    /// Adds a field (or replaces the one of that name, where it stood); `None`-like values are
    /// the caller's business (skip them before calling). The value is written as serde_json
    /// writes it, with nothing in between: an `f32` in its shortest form, not widened to `f64`.
    pub fn with(mut self, key: &str, value: impl Serialize) -> Self {
        // Serialising our own wire structs cannot fail; fall back to null rather than panic.
        let raw = serde_json::value::to_raw_value(&value).unwrap_or_else(|_| null());
        match self.fields.iter_mut().find(|(k, _)| k == key) {
            Some((_, slot)) => *slot = raw,
            None => self.fields.push((key.to_owned(), raw)),
        }
        self
    }

    /// Compact JSON bytes, the exact bytes that are signed with `Body-Sign` and sent.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self)
            .unwrap_or_else(|_| br#"{"resultCode":"000005","resultMsg":"internal error"}"#.to_vec())
    }

    /// Reads an interface-specific field back (clients, tests): `None` when it is absent or
    /// is not a `T`.
    pub fn field<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.raw_field(key)
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
    }

    /// Whether the answer has a field named `key` (even `null`).
    pub fn has_field(&self, key: &str) -> bool {
        self.raw_field(key).is_some()
    }

    fn raw_field(&self, key: &str) -> Option<&RawValue> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, raw)| raw.as_ref())
    }
}

fn null() -> Box<RawValue> {
    RawValue::from_string("null".to_owned()).expect("null is JSON")
}

/// Equal when the code, the message and every field (its name, place and JSON) are.
impl PartialEq for Reply {
    fn eq(&self, other: &Self) -> bool {
        self.result_code == other.result_code
            && self.result_msg == other.result_msg
            && self.fields.len() == other.fields.len()
            && self
                .fields
                .iter()
                .zip(&other.fields)
                .all(|((k, v), (ok, ov))| k == ok && v.get() == ov.get())
    }
}

/// `resultCode`, `resultMsg`, then the fields in order: the wire form of every answer.
impl Serialize for Reply {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2 + self.fields.len()))?;
        map.serialize_entry("resultCode", &self.result_code)?;
        map.serialize_entry("resultMsg", &self.result_msg)?;
        for (key, value) in &self.fields {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// An answer as a client reads it: `resultMsg` may be missing (empty), every other member is a
/// field, kept compact.
impl<'de> Deserialize<'de> for Reply {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire {
            result_code: ResultCode,
            #[serde(default)]
            result_msg: String,
            #[serde(flatten)]
            fields: Map<String, Value>,
        }
        let wire = Wire::deserialize(deserializer)?;
        Ok(Self {
            result_code: wire.result_code,
            result_msg: wire.result_msg,
            fields: wire
                .fields
                .into_iter()
                .map(|(key, value)| {
                    let raw = serde_json::value::to_raw_value(&value).unwrap_or_else(|_| null());
                    (key, raw)
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes every answer is signed and sent as: the code, the message, then the fields in
    /// the order added, compact; a field added twice keeps its place and takes the new value.
    #[test]
    fn an_answer_is_sent_as_code_message_then_its_fields_in_order() {
        let reply = Reply::success()
            .with("instanceId", "i-1")
            .with("info", serde_json::json!([{"b": 1, "a": [true, null]}]))
            .with("encryptType", 1)
            .with("instanceId", "i-2");
        assert_eq!(
            String::from_utf8(reply.to_bytes()).unwrap(),
            r#"{"resultCode":"000000","resultMsg":"success.","instanceId":"i-2","info":[{"b":1,"a":[true,null]}],"encryptType":1}"#
        );
        assert_eq!(reply.field::<String>("instanceId").as_deref(), Some("i-2"));
        assert_eq!(reply.field::<u8>("encryptType"), Some(1));
        assert_eq!(reply.field::<String>("encryptType"), None, "not a string");
        assert!(reply.has_field("info") && !reply.has_field("appInfo"));
    }

    /// What a client reads back is what was sent, and equal to the reply that sent it.
    #[test]
    fn an_answer_read_back_equals_the_one_sent() {
        let sent = Reply::new(ResultCode::Processing, "being provisioned")
            .with(
                "appInfo",
                serde_json::json!({"frontEndUrl": "https://x", "memo": "é"}),
            )
            .with("nothing", Value::Null);
        let read: Reply = serde_json::from_slice(&sent.to_bytes()).unwrap();
        assert_eq!(read, sent);
        assert!(read.has_field("nothing"));
        assert_eq!(read.to_bytes(), sent.to_bytes());
        // A missing resultMsg reads as empty; spaces in what a client sent are not kept.
        let loose: Reply =
            serde_json::from_str(r#"{ "resultCode": "000000", "x": { "y" : [ 1, 2 ] } }"#).unwrap();
        assert_eq!(loose.result_msg, "");
        assert_eq!(
            String::from_utf8(loose.to_bytes()).unwrap(),
            r#"{"resultCode":"000000","resultMsg":"","x":{"y":[1,2]}}"#
        );
        assert_ne!(read, Reply::success());
    }
}
