//! `changeInstanceCheck` request (docs/protocol/callbacks.md §6.7), read leniently
//! (docs/protocol/decisions.md §11).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::{CallbackRequest, MAX_ID_LEN, require, test_flag};

/// The target product of a renewal change (docs/protocol/callbacks.md §6.7). Its field list is
/// UNCONFIRMED: the likely fields are typed (each accepted as a string or a number: be liberal),
/// everything else is kept as received.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductInfo {
    #[serde(
        default,
        deserialize_with = "text",
        skip_serializing_if = "Option::is_none"
    )]
    pub product_id: Option<String>,
    #[serde(
        default,
        deserialize_with = "text",
        skip_serializing_if = "Option::is_none"
    )]
    pub sku_code: Option<String>,
    #[serde(
        default,
        deserialize_with = "number",
        skip_serializing_if = "Option::is_none"
    )]
    pub linear_value: Option<f64>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A string, or a number written as one.
fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => {
            return Err(serde::de::Error::custom(format!(
                "expected a string, got {other}"
            )));
        }
    })
}

/// A number, or a string holding one (`"5"`, `" 5.5 "`).
fn number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.trim().parse().map_err(|_| {
            serde::de::Error::custom(format!("linearValue must be a number, got {s:?}"))
        })?),
        Some(other) => {
            return Err(serde::de::Error::custom(format!(
                "linearValue must be a number, got {other}"
            )));
        }
    })
}

/// `productInfo` as KooGallery may send it (docs/protocol/decisions.md §11): an object, an array of
/// objects, a JSON string of either, or absent (then empty).
fn product_infos<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ProductInfo>, D::Error> {
    fn from_value<E: serde::de::Error>(v: Value) -> Result<Vec<ProductInfo>, E> {
        match v {
            Value::Null => Ok(Vec::new()),
            Value::String(s) if s.trim().is_empty() => Ok(Vec::new()),
            Value::String(s) => {
                let inner: Value = serde_json::from_str(&s)
                    .map_err(|e| E::custom(format!("productInfo is a string but not JSON: {e}")))?;
                if inner.is_string() {
                    return Err(E::custom(
                        "productInfo must be an object or an array of objects",
                    ));
                }
                from_value(inner)
            }
            v @ Value::Object(_) => Ok(vec![ProductInfo::deserialize(v).map_err(E::custom)?]),
            Value::Array(items) => items
                .into_iter()
                .map(|i| ProductInfo::deserialize(i).map_err(E::custom))
                .collect(),
            other => Err(E::custom(format!(
                "productInfo must be an object or an array of objects, got {other}"
            ))),
        }
    }
    from_value(Value::deserialize(d)?)
}

/// `changeInstanceCheck` (docs/protocol/callbacks.md §6.7): may the instance change to
/// `productInfo` at renewal?
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeInstanceCheckRequest {
    pub instance_id: String,
    /// The products asked for, as a list whatever form they came in (empty when absent).
    #[serde(default, deserialize_with = "product_infos")]
    pub product_info: Vec<ProductInfo>,
    #[serde(default, deserialize_with = "test_flag")]
    pub test_flag: bool,
}

impl CallbackRequest for ChangeInstanceCheckRequest {
    fn validate(&self) -> Result<(), String> {
        require("instanceId", &self.instance_id, MAX_ID_LEN)
    }
    fn is_test(&self) -> bool {
        self.test_flag
    }
}
