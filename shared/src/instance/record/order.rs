//! The order as stored, in instance records and in order notices (`order::notice`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::order::{BuyerContact, ChargingMode, OrderDetails};

/// The order as stored, in instance records and in order notices (`order::notice`).
#[derive(Serialize, Deserialize)]
pub(crate) struct OrderRecord {
    order_type: Option<String>,
    charging_mode: Option<ChargingModeRecord>,
    period_type: Option<String>,
    period_number: Option<u32>,
    product_id: Option<String>,
    sku_code: Option<String>,
    product_name: Option<String>,
    quantity: Option<f64>,
    expire_time: Option<DateTime<Utc>>,
    customer_id: Option<String>,
    customer_name: Option<String>,
    #[serde(default)]
    extend_params: Vec<(String, String)>,
    #[serde(default)]
    offline: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    buyer: Option<BuyerRecord>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    v1: bool,
}

/// The buyer's contact fields, absent when none was given (every V2 order).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BuyerRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mobile_phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email: Option<String>,
}

#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum ChargingModeRecord {
    Period,
    OneTime,
    OnDemand,
    OnDemandPkg,
}

impl From<ChargingMode> for ChargingModeRecord {
    fn from(m: ChargingMode) -> Self {
        match m {
            ChargingMode::Period => Self::Period,
            ChargingMode::OneTime => Self::OneTime,
            ChargingMode::OnDemand => Self::OnDemand,
            ChargingMode::OnDemandPkg => Self::OnDemandPkg,
        }
    }
}

impl From<ChargingModeRecord> for ChargingMode {
    fn from(m: ChargingModeRecord) -> Self {
        match m {
            ChargingModeRecord::Period => Self::Period,
            ChargingModeRecord::OneTime => Self::OneTime,
            ChargingModeRecord::OnDemand => Self::OnDemand,
            ChargingModeRecord::OnDemandPkg => Self::OnDemandPkg,
        }
    }
}

impl From<&OrderDetails> for OrderRecord {
    fn from(o: &OrderDetails) -> Self {
        Self {
            order_type: o.order_type.clone(),
            charging_mode: o.charging_mode.map(Into::into),
            period_type: o.period_type.clone(),
            period_number: o.period_number,
            product_id: o.product_id.clone(),
            sku_code: o.sku_code.clone(),
            product_name: o.product_name.clone(),
            quantity: o.quantity,
            expire_time: o.expire_time,
            customer_id: o.customer_id.clone(),
            customer_name: o.customer_name.clone(),
            extend_params: o.extend_params.clone(),
            offline: o.offline,
            buyer: (o.buyer != BuyerContact::default()).then(|| BuyerRecord {
                user_id: o.buyer.user_id.clone(),
                user_name: o.buyer.user_name.clone(),
                mobile_phone: o.buyer.mobile_phone.clone(),
                email: o.buyer.email.clone(),
            }),
            v1: o.v1,
        }
    }
}

impl From<OrderRecord> for OrderDetails {
    fn from(o: OrderRecord) -> Self {
        Self {
            order_type: o.order_type,
            charging_mode: o.charging_mode.map(Into::into),
            period_type: o.period_type,
            period_number: o.period_number,
            product_id: o.product_id,
            sku_code: o.sku_code,
            product_name: o.product_name,
            quantity: o.quantity,
            expire_time: o.expire_time,
            customer_id: o.customer_id,
            customer_name: o.customer_name,
            extend_params: o.extend_params,
            offline: o.offline,
            buyer: o
                .buyer
                .map(|b| BuyerContact {
                    user_id: b.user_id,
                    user_name: b.user_name,
                    mobile_phone: b.mobile_phone,
                    email: b.email,
                })
                .unwrap_or_default(),
            v1: o.v1,
        }
    }
}
