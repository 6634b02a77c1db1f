//! Query Order on the simulator's open API (docs/protocol/openapi.md §2): the orders KooGallery
//! keeps, its documented `MOCK…` orders, and the handler that answers for one order line.

use std::collections::HashMap;

use axum::{
    Json,
    body::Bytes,
    extract::{RawQuery, State},
    http::{HeaderMap, Method, StatusCode, Uri},
    response::Response,
};
use chrono::{DateTime, Months, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{HostState, answer, gateway::gateway};

/// An order as KooGallery keeps it; what Query Order answers for its one line.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimOrder {
    pub order_id: String,
    pub order_line_id: String,
    #[serde(default = "new_type")]
    pub order_type: String,
    #[serde(default = "period")]
    pub charging_mode: String,
    #[serde(default)]
    pub period_type: Option<String>,
    #[serde(default)]
    pub period_number: Option<u32>,
    #[serde(default)]
    pub expire_time: Option<DateTime<Utc>>,
    #[serde(default = "sku")]
    pub sku_code: String,
    #[serde(default = "product")]
    pub product_id: String,
    #[serde(default = "product_name")]
    pub product_name: String,
    #[serde(default)]
    pub linear_value: Option<u32>,
    #[serde(default = "customer")]
    pub customer_id: String,
    #[serde(default = "customer_name")]
    pub customer_name: String,
}

fn new_type() -> String {
    "NEW".into()
}
fn period() -> String {
    "PERIOD".into()
}
fn sku() -> String {
    "sim-sku-standard".into()
}
fn product() -> String {
    "OFFI000000000000000001".into()
}
fn product_name() -> String {
    "Simulated product, standard edition".into()
}
fn customer() -> String {
    "sim0000000000000000000000000001".into()
}
fn customer_name() -> String {
    "sim_buyer_01".into()
}

impl SimOrder {
    /// A new yearly purchase of `seats` (the linear attribute), expiring a year from `now`.
    pub fn yearly(order_id: &str, seats: u32, now: DateTime<Utc>) -> Self {
        Self {
            order_id: order_id.to_owned(),
            order_line_id: format!("{order_id}-000001"),
            order_type: new_type(),
            charging_mode: period(),
            period_type: Some("year".into()),
            period_number: Some(1),
            expire_time: now.checked_add_months(Months::new(12)),
            sku_code: "sim-sku-pro".into(),
            product_id: product(),
            product_name: "Simulated product, pro edition, yearly".into(),
            linear_value: Some(seats),
            customer_id: customer(),
            customer_name: customer_name(),
        }
    }

    /// KooGallery's documented mock orders (docs/protocol/openapi.md §2), line `<id>-000001`.
    pub fn mocks(now: DateTime<Utc>) -> Vec<Self> {
        let mk = |id: &str, kind: &str, mode: &str, period: Option<(&str, u32)>| Self {
            order_type: kind.into(),
            charging_mode: mode.into(),
            period_type: period.map(|p| p.0.to_owned()),
            period_number: period.map(|p| p.1),
            expire_time: period.and_then(|(unit, n)| match unit {
                "year" => now.checked_add_months(Months::new(12 * n)),
                "month" => now.checked_add_months(Months::new(n)),
                _ => now.checked_add_signed(chrono::Duration::days(i64::from(n))),
            }),
            linear_value: Some(50),
            ..Self::yearly(id, 50, now)
        };
        vec![
            mk("MOCKPERIODYEARNEW", "NEW", "PERIOD", Some(("year", 1))),
            mk("MOCKONETIMENEW", "NEW", "ONE_TIME", None),
            mk("MOCKONDEMAND", "NEW", "ON_DEMAND", None),
            mk(
                "MOCKONDEMANDPKG",
                "NEW",
                "ON_DEMAND_PKG",
                Some(("month", 1)),
            ),
            mk("MOCKPERIODDAYTRIAL", "TRIAL", "PERIOD", Some(("day", 7))),
            mk(
                "MOCKMONTYTRIALTOFORMAL",
                "TRIAL_TO_FORMAL",
                "PERIOD",
                Some(("month", 1)),
            ),
            mk(
                "MOCKMONTYUNSUBSCRIBE",
                "UNSUBSCRIBE",
                "PERIOD",
                Some(("month", 1)),
            ),
            mk("MOCKMONTYRENEW", "RENEW", "PERIOD", Some(("month", 1))),
            mk("MOCKMONTYCHANGE", "CHANGE", "PERIOD", Some(("month", 1))),
        ]
    }

    /// Query Order's `orderInfo` for this order.
    pub fn order_info(&self) -> Value {
        json!({
            "orderId": self.order_id,
            "orderType": self.order_type,
            "createTime": time_14(Utc::now()),
            "orderLine": [{
                "orderLineId": self.order_line_id,
                "chargingMode": self.charging_mode,
                "periodType": self.period_type,
                "periodNumber": self.period_number,
                "expireTime": self.expire_time.map(time_14),
                "productInfo": [{
                    "productId": self.product_id,
                    "skuCode": self.sku_code,
                    "linearValue": self.linear_value,
                    "productName": self.product_name,
                }],
                "extendParams": [{"name": "emailDomainName", "value": "buyer.example.com"}],
                "currency": "100",
                "currencyAfterDiscount": "100",
            }],
            "buyerInfo": {
                "customerId": self.customer_id,
                "customerName": self.customer_name,
                "customerType": 0,
                "email": null,
                "userId": null,
                "userName": null,
            },
            "extendParams": [],
        })
    }
}

/// Query Order (docs/protocol/openapi.md §2). KooGallery's own constants, not the service's, so a
/// wrong path on either side shows.
pub const QUERY_ORDER_PATH: &str = "/api/mkp-openapi-public/global/v1/order/query";

/// KooGallery's `yyyyMMddHHmmss` times, UTC (docs/protocol/openapi.md §2 `createTime`,
/// docs/protocol/callbacks.md §6.3 `expireTime`).
pub(crate) fn time_14(t: DateTime<Utc>) -> String {
    t.format("%Y%m%d%H%M%S").to_string()
}

pub(super) async fn query_order(
    State(state): State<HostState>,
    method: Method,
    uri: Uri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = query.unwrap_or_default();
    if let Err(refused) = gateway(
        &state,
        &method,
        &uri,
        &query,
        &headers,
        &body,
        ("resultCode", "resultMsg"),
    )
    .await
    {
        return refused;
    }
    let params: HashMap<String, String> = form_urlencoded_pairs(&query);
    let Some(order_id) = params.get("orderId") else {
        return answer(
            400,
            json!({"resultCode":"MKT.0101","resultMsg":"orderId is mandatory"}),
        );
    };
    let order = state
        .inner
        .orders
        .lock()
        .ok()
        .and_then(|o| o.get(order_id).cloned());
    match order {
        Some(order)
            if params
                .get("orderLineId")
                .is_none_or(|line| *line == order.order_line_id) =>
        {
            answer(
                200,
                json!({"resultCode":"MKT.0000","resultMsg":"Success","orderInfo": order.order_info()}),
            )
        }
        _ => answer(
            400,
            json!({"resultCode":"MKT.0101","resultMsg": format!("order {order_id} does not exist")}),
        ),
    }
}

fn form_urlencoded_pairs(query: &str) -> HashMap<String, String> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub(super) async fn place_order(
    State(state): State<HostState>,
    Json(order): Json<SimOrder>,
) -> StatusCode {
    state.inner.place(order);
    StatusCode::NO_CONTENT
}
