//! What every KooGallery request family shares once its signature has been checked (spec callbacks
//! §6, §9): the lenient reading of `testFlag`, parsing a verified body into a request DTO that
//! names the offending field, and the identifier limits. Each family's DTOs (`v2_basic`, `kit`)
//! build on it.

use serde::{Deserialize, Deserializer, de::DeserializeOwned};
use serde_json::Value;

/// `testFlag`: `"1"` marks a debug call from the seller console or the daily probes
/// (docs/protocol/callbacks.md §1). V2 pages send a string, Kit bodies an integer, non-debug calls
/// omit it: accept all of them. The one reading of the flag: request parsing and the edge's log
/// line both use it.
pub fn test_flag_of(value: Option<&Value>) -> Result<bool, String> {
    Ok(match value {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => s.trim() == "1",
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(format!("testFlag must be \"0\" or \"1\", got {other}")),
    })
}

/// serde adapter of [`test_flag_of`].
pub(crate) fn test_flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    test_flag_of(Option::<Value>::deserialize(d)?.as_ref()).map_err(serde::de::Error::custom)
}

/// A request that can check its own mandatory fields beyond what serde enforces.
pub trait CallbackRequest: DeserializeOwned {
    /// Checks non-empty mandatory identifiers and sizes; the error text becomes `resultMsg`.
    fn validate(&self) -> Result<(), String>;
    fn is_test(&self) -> bool;
}

/// Parses and validates a verified request body; the error is a `resultMsg` for `000002`.
pub fn parse_request<R: CallbackRequest>(body: &Value) -> Result<R, String> {
    // The common case, a valid body, takes the plain (faster) path. Only a body that fails is read
    // again with serde_path_to_error, which names the offending field ("scene: unknown variant
    // ..."), as serde alone does not for values read from an already-parsed body.
    if let Ok(req) = R::deserialize(body) {
        req.validate()?;
        return Ok(req);
    }
    let req: R = serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            format!("invalid request: {inner}")
        } else {
            format!("invalid request: {path}: {inner}")
        }
    })?;
    req.validate()?;
    Ok(req)
}

pub(crate) fn require(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.trim().is_empty() {
        Err(format!("{field} must not be empty"))
    } else if value.chars().count() > max {
        Err(format!("{field} is longer than {max} characters"))
    } else {
        Ok(())
    }
}

/// Identifier limit: the spec gives 64 for every ID (docs/protocol/callbacks.md §6). Be liberal by
/// a factor of two so a slightly longer platform ID never fails an order, while still bounding what
/// gets stored.
pub const MAX_ID_LEN: usize = 128;

/// What kind of JSON value `v` is, for messages that must not quote it (`"a string"`, `"null"`).
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
