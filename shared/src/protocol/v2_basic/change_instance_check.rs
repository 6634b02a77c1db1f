//! `changeInstanceCheck` request (spec callbacks §6.7).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::{CallbackRequest, MAX_ID_LEN, require, test_flag};

/// The target product of a renewal change (callbacks §6.7). Its field list is UNCONFIRMED: the likely
/// fields are typed, everything else is kept as received.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linear_value: Option<f64>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `productInfo` arrives as an object, or (seen in third-party code) as a JSON string: accept both.
fn product_info<'de, D: Deserializer<'de>>(d: D) -> Result<ProductInfo, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => serde_json::from_str(&s).map_err(serde::de::Error::custom),
        v @ Value::Object(_) => ProductInfo::deserialize(v).map_err(serde::de::Error::custom),
        other => Err(serde::de::Error::custom(format!(
            "productInfo must be an object, got {other}"
        ))),
    }
}

/// `changeInstanceCheck` (callbacks §6.7): may the instance change to `productInfo` at renewal?
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeInstanceCheckRequest {
    pub instance_id: String,
    #[serde(deserialize_with = "product_info")]
    pub product_info: ProductInfo,
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
