//! A marketplace client that never leaves the process: it synthesises a plausible order for any ID
//! and honours KooGallery's documented mock order IDs (docs/protocol/openapi.md §2). For local runs
//! and tests until the real Query Order client is configured. Every answer is logged and marked as
//! offline.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Months, Utc};

use super::{
    ChargingMode, MarketplaceClient, MarketplaceError, OrderDetails, OrderId, OrderLineId,
};
use crate::clock::Clock;

pub struct OfflineMarketplace {
    clock: Arc<dyn Clock>,
}

impl OfflineMarketplace {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock }
    }
}

/// (order type, charging mode, period type, period number) of each documented mock order.
fn mock_order(
    order_id: &str,
) -> Option<(
    &'static str,
    ChargingMode,
    Option<&'static str>,
    Option<u32>,
)> {
    Some(match order_id {
        "MOCKPERIODYEARNEW" => ("NEW", ChargingMode::Period, Some("year"), Some(1)),
        "MOCKONETIMENEW" => ("NEW", ChargingMode::OneTime, None, None),
        "MOCKONDEMAND" => ("NEW", ChargingMode::OnDemand, None, None),
        "MOCKONDEMANDPKG" => ("NEW", ChargingMode::OnDemandPkg, Some("month"), Some(1)),
        "MOCKPERIODDAYTRIAL" => ("TRIAL", ChargingMode::Period, Some("day"), Some(7)),
        "MOCKMONTYTRIALTOFORMAL" => (
            "TRIAL_TO_FORMAL",
            ChargingMode::Period,
            Some("month"),
            Some(1),
        ),
        "MOCKMONTYUNSUBSCRIBE" => ("UNSUBSCRIBE", ChargingMode::Period, Some("month"), Some(1)),
        "MOCKMONTYRENEW" => ("RENEW", ChargingMode::Period, Some("month"), Some(1)),
        "MOCKMONTYCHANGE" => ("CHANGE", ChargingMode::Period, Some("month"), Some(1)),
        _ => return None,
    })
}

fn expiry(now: DateTime<Utc>, period_type: Option<&str>, n: Option<u32>) -> Option<DateTime<Utc>> {
    let n = n.unwrap_or(1);
    match period_type? {
        "year" => now.checked_add_months(Months::new(12 * n)),
        "month" => now.checked_add_months(Months::new(n)),
        "day" => now.checked_add_signed(Duration::days(i64::from(n))),
        "hour" => now.checked_add_signed(Duration::hours(i64::from(n))),
        _ => None,
    }
}

#[async_trait]
impl MarketplaceClient for OfflineMarketplace {
    async fn query_order(
        &self,
        order_id: &OrderId,
        order_line_id: &OrderLineId,
    ) -> Result<OrderDetails, MarketplaceError> {
        let now = self.clock.now();
        // Anything that is not a mock order looks like an ordinary monthly subscription.
        let (order_type, mode, period_type, period_number) =
            mock_order(order_id).unwrap_or(("NEW", ChargingMode::Period, Some("month"), Some(1)));
        let details = OrderDetails {
            order_type: Some(order_type.to_owned()),
            charging_mode: Some(mode),
            period_type: period_type.map(str::to_owned),
            period_number,
            product_id: Some("OFFLINE-PRODUCT".to_owned()),
            sku_code: Some("offline-sku-basic".to_owned()),
            product_name: Some("Offline order (synthesised)".to_owned()),
            quantity: Some(1.0),
            expire_time: expiry(now, period_type, period_number),
            customer_id: Some(format!("offline-customer-{order_id}")),
            customer_name: Some("offline_buyer".to_owned()),
            extend_params: Vec::new(),
            offline: true,
            ..OrderDetails::default()
        };
        tracing::info!(
            order_id = order_id.as_str(),
            order_line_id = order_line_id.as_str(),
            charging_mode = ?mode,
            "marketplace client is OFFLINE: synthesised order details instead of calling Query Order"
        );
        Ok(details)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ManualClock;

    #[tokio::test]
    async fn mock_orders_get_their_documented_modes() {
        let clock = Arc::new(ManualClock::at(
            crate::protocol::time::parse_compact("20260101000000").unwrap(),
        ));
        let m = OfflineMarketplace::new(clock);
        let year = m
            .query_order(
                &"MOCKPERIODYEARNEW".into(),
                &"MOCKPERIODYEARNEW-000001".into(),
            )
            .await
            .unwrap();
        assert_eq!(year.charging_mode, Some(ChargingMode::Period));
        assert_eq!(
            year.expire_time,
            crate::protocol::time::parse_compact("20270101000000")
        );
        let od = m
            .query_order(&"MOCKONDEMAND".into(), &"MOCKONDEMAND-000001".into())
            .await
            .unwrap();
        assert_eq!(od.charging_mode, Some(ChargingMode::OnDemand));
        assert_eq!(od.expire_time, None);
        let trial = m
            .query_order(&"MOCKPERIODDAYTRIAL".into(), &"x".into())
            .await
            .unwrap();
        assert_eq!(trial.order_type.as_deref(), Some("TRIAL"));
        let plain = m
            .query_order(
                &"CS2211181819B4LVS".into(),
                &"CS2211181819B4LVS-000001".into(),
            )
            .await
            .unwrap();
        assert!(plain.offline);
        assert_eq!(
            plain.expire_time,
            crate::protocol::time::parse_compact("20260201000000")
        );
    }
}
