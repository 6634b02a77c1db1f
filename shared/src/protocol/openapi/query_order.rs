//! Query Order (查询订单, docs/protocol/openapi.md §2): `GET
//! /api/mkp-openapi-public/global/v1/order/query ?orderId=…[&orderLineId=…]`, answered with
//! `resultCode`, `resultMsg` and `orderInfo`.
//!
//! Only `orderId`, `orderType`, `createTime`, `orderLine[].orderLineId` and `chargingMode` are
//! documented as mandatory; everything else is read when present, whatever its JSON type
//! (`periodNumber` and `linearValue` as numbers or strings, `null` anywhere).

use serde::{Deserialize, Deserializer};

pub const PATH: &str = "/api/mkp-openapi-public/global/v1/order/query";

/// The query string for one order line (keys in KooGallery's own case,
/// docs/protocol/decisions.md §9).
pub fn query(order_id: &str, order_line_id: Option<&str>) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("orderId", order_id);
    if let Some(line) = order_line_id {
        q.append_pair("orderLineId", line);
    }
    q.finish()
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct QueryOrderResponse {
    #[serde(deserialize_with = "text")]
    pub result_code: Option<String>,
    #[serde(deserialize_with = "text")]
    pub result_msg: Option<String>,
    pub order_info: Option<OrderInfo>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OrderInfo {
    #[serde(deserialize_with = "text")]
    pub order_id: Option<String>,
    /// `NEW`, `TRIAL`, `TRIAL_TO_FORMAL`, `UNSUBSCRIBE`, `RENEW`, `CHANGE`.
    #[serde(deserialize_with = "text")]
    pub order_type: Option<String>,
    /// `yyyyMMddHHmmss`, when the order was placed.
    #[serde(deserialize_with = "text")]
    pub create_time: Option<String>,
    #[serde(deserialize_with = "list")]
    pub order_line: Vec<OrderLine>,
    pub buyer_info: Option<BuyerInfo>,
    #[serde(deserialize_with = "list")]
    pub extend_params: Vec<ExtendParam>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OrderLine {
    #[serde(deserialize_with = "text")]
    pub order_line_id: Option<String>,
    /// `PERIOD`, `ONE_TIME`, `ON_DEMAND`, `ON_DEMAND_PKG`.
    #[serde(deserialize_with = "text")]
    pub charging_mode: Option<String>,
    #[serde(deserialize_with = "text")]
    pub period_type: Option<String>,
    #[serde(deserialize_with = "text")]
    pub period_number: Option<String>,
    /// `yyyyMMddHHmmss`, UTC.
    #[serde(deserialize_with = "text")]
    pub expire_time: Option<String>,
    #[serde(deserialize_with = "list")]
    pub product_info: Vec<ProductInfo>,
    #[serde(deserialize_with = "list")]
    pub extend_params: Vec<ExtendParam>,
    #[serde(deserialize_with = "text")]
    pub currency: Option<String>,
    #[serde(deserialize_with = "text")]
    pub currency_after_discount: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProductInfo {
    #[serde(deserialize_with = "text")]
    pub product_id: Option<String>,
    #[serde(deserialize_with = "text")]
    pub sku_code: Option<String>,
    #[serde(deserialize_with = "text")]
    pub linear_value: Option<String>,
    #[serde(deserialize_with = "text")]
    pub product_name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BuyerInfo {
    #[serde(deserialize_with = "text")]
    pub customer_id: Option<String>,
    #[serde(deserialize_with = "text")]
    pub customer_name: Option<String>,
    #[serde(deserialize_with = "text")]
    pub customer_real_name: Option<String>,
    #[serde(deserialize_with = "text")]
    pub customer_type: Option<String>,
    #[serde(deserialize_with = "text")]
    pub email: Option<String>,
    #[serde(deserialize_with = "text")]
    pub mobile_phone: Option<String>,
    #[serde(deserialize_with = "text")]
    pub user_id: Option<String>,
    #[serde(deserialize_with = "text")]
    pub user_name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ExtendParam {
    #[serde(deserialize_with = "text")]
    pub name: Option<String>,
    #[serde(deserialize_with = "text")]
    pub value: Option<String>,
}

/// A string, a number or a boolean as text; `null` and anything else as absent.
fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    })
}

/// A list whose unreadable or `null` form is empty, and whose unreadable items are skipped.
fn list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Array(items) => items
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect(),
        serde_json::Value::Object(_) => Vec::new(),
        _ => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of the live answer for `MOCKPERIODYEARNEW` (docs/protocol/openapi.md §2), with
    /// nulls and a field this release does not know.
    #[test]
    fn a_live_shaped_answer_is_read_with_nulls_and_unknown_fields() {
        let r: QueryOrderResponse = serde_json::from_str(
            r#"{"resultCode":"MKT.0000","resultMsg":"Success","orderInfo":{"orderId":"MOCKPERIODYEARNEW","orderType":"NEW",
            "createTime":"20241121090846","orderLine":[{"orderLineId":"MOCKPERIODYEARNEW-000001","chargingMode":"PERIOD",
            "periodType":"year","periodNumber":1,"expireTime":"20251121235959","productInfo":[{"productId":"OFFI1",
            "skuCode":"0a4d1578","linearValue":50,"productName":"Pro"}],"extendParams":[{"name":"ip","value":"127.0.0.1"}],
            "currency":"100","currencyAfterDiscount":null,"somethingNew":{"x":1}}],"buyerInfo":{"customerId":"459b",
            "customerName":"mock_user_01","customerType":0,"mobilePhone":"138","email":null,"userId":null,"userName":null},
            "extendParams":null}}"#,
        )
        .unwrap();
        assert_eq!(r.result_code.as_deref(), Some("MKT.0000"));
        let info = r.order_info.unwrap();
        let line = &info.order_line[0];
        assert_eq!(line.period_number.as_deref(), Some("1"));
        assert_eq!(line.product_info[0].linear_value.as_deref(), Some("50"));
        assert_eq!(line.currency_after_discount, None);
        assert_eq!(info.buyer_info.unwrap().customer_type.as_deref(), Some("0"));
        assert!(info.extend_params.is_empty());
        assert_eq!(
            query("MOCKPERIODYEARNEW", Some("MOCKPERIODYEARNEW-000001")),
            "orderId=MOCKPERIODYEARNEW&orderLineId=MOCKPERIODYEARNEW-000001"
        );
    }

    #[test]
    fn a_failure_answer_has_no_order() {
        let r: QueryOrderResponse =
            serde_json::from_str(r#"{"resultCode":"MKT.0101","resultMsg":"orderId invalid"}"#)
                .unwrap();
        assert!(r.order_info.is_none());
        let r: QueryOrderResponse = serde_json::from_str("{}").unwrap();
        assert!(r.result_code.is_none());
    }
}
