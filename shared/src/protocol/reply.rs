//! What every V2 basic callback answers (docs/protocol/callbacks.md §4): `resultCode`, `resultMsg`,
//! then the interface's own fields. Always HTTP 200 with JSON (docs/protocol/decisions.md §3).

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Map, Value};

use crate::ResultCode;

/// What a callback answers: `resultCode`, `resultMsg`, then the interface's own fields, sent as-is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reply {
    pub result_code: ResultCode,
    #[serde(default)]
    pub result_msg: String,
    #[serde(flatten)]
    pub fields: Map<String, Value>,
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
            fields: Map::new(),
        }
    }

    pub fn success() -> Self {
        Self::new(ResultCode::Success, ResultCode::Success.default_message())
    }

    pub fn code(code: ResultCode) -> Self {
        Self::new(code, code.default_message())
    }

    /// Adds a field; `None`-like values are the caller's business (skip them before calling).
    pub fn with(mut self, key: &str, value: impl Serialize) -> Self {
        // Serialising our own wire structs cannot fail; fall back to null rather than panic.
        self.fields.insert(
            key.to_owned(),
            serde_json::to_value(value).unwrap_or(Value::Null),
        );
        self
    }

    /// Compact JSON bytes, the exact bytes that are signed with `Body-Sign` and sent.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self)
            .unwrap_or_else(|_| br#"{"resultCode":"000005","resultMsg":"internal error"}"#.to_vec())
    }

    /// Reads an interface-specific field back (clients, tests).
    pub fn field<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.fields.get(key).and_then(|v| T::deserialize(v).ok())
    }
}
