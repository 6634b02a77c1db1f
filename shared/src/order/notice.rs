//! Order notices (docs/protocol/callbacks.md §6.8, docs/protocol/openapi.md §7): KooGallery says an
//! order line was paid, for any product (one-time, License, … as well as SaaS). Each order line is
//! recorded once; the worker reads it with Query Order, keeps what it read, and tells the vendor
//! once (an `order` event).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{OrderDetails, OrderId, OrderLineId};
use crate::storage::StoreError;

#[derive(Debug, Clone, PartialEq)]
pub struct OrderNotice {
    pub order_id: OrderId,
    pub order_line_id: OrderLineId,
    pub received_at: DateTime<Utc>,
    /// What Query Order answered, once read.
    pub order: Option<OrderDetails>,
    /// When the vendor acknowledged the `order` event; nothing more is sent after.
    pub delivered_at: Option<DateTime<Utc>>,
}

impl OrderNotice {
    pub fn received(order_id: &OrderId, order_line_id: &OrderLineId, now: DateTime<Utc>) -> Self {
        Self {
            order_id: order_id.clone(),
            order_line_id: order_line_id.clone(),
            received_at: now,
            order: None,
            delivered_at: None,
        }
    }
}

/// Where order notices are kept, one per order line.
#[async_trait]
pub trait OrderNoticeStore: Send + Sync {
    /// Records `notice` unless its order line is recorded already (then nothing is written);
    /// true when this call recorded it. Exactly one of concurrent callers gets true.
    async fn record_notice(&self, notice: &OrderNotice) -> Result<bool, StoreError>;

    async fn notice(
        &self,
        order_id: &OrderId,
        order_line_id: &OrderLineId,
    ) -> Result<Option<OrderNotice>, StoreError>;

    /// Replaces a recorded notice (the worker's progress: the order read, the delivery).
    async fn update_notice(&self, notice: &OrderNotice) -> Result<(), StoreError>;
}

/// How a notice is kept on disk (the embedded store's file, the DynamoDB item's `data`): a
/// versioned contract, schema 1, with the order in the instance record's own order form.
pub mod record {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Serialize};

    use super::OrderNotice;
    use crate::{
        instance::record::OrderRecord,
        storage::{Detail, StoreError},
    };

    pub const SCHEMA: u32 = 1;

    #[derive(Serialize, Deserialize)]
    struct NoticeRecord {
        schema: u32,
        order_id: String,
        order_line_id: String,
        received_at: DateTime<Utc>,
        order: Option<OrderRecord>,
        delivered_at: Option<DateTime<Utc>>,
    }

    pub fn encode(notice: &OrderNotice) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(&NoticeRecord {
            schema: SCHEMA,
            order_id: notice.order_id.clone().into(),
            order_line_id: notice.order_line_id.clone().into(),
            received_at: notice.received_at,
            order: notice.order.as_ref().map(OrderRecord::from),
            delivered_at: notice.delivered_at,
        })
        .map_err(|e| StoreError::Corrupt(Detail::caused_by("cannot encode order notice", e)))
    }

    pub fn decode(bytes: &[u8]) -> Result<OrderNotice, StoreError> {
        let r: NoticeRecord = serde_json::from_slice(bytes).map_err(|e| {
            StoreError::Corrupt(Detail::caused_by("order notice cannot be decoded", e))
        })?;
        if r.schema > SCHEMA {
            return Err(StoreError::Corrupt(
                format!(
                    "order notice has schema {}, newer than this release reads ({SCHEMA})",
                    r.schema
                )
                .into(),
            ));
        }
        Ok(OrderNotice {
            order_id: r.order_id.into(),
            order_line_id: r.order_line_id.into(),
            received_at: r.received_at,
            order: r.order.map(Into::into),
            delivered_at: r.delivered_at,
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::order::OrderDetails;

        /// What is written is pinned: a rename in the domain must not change it silently.
        #[test]
        fn the_stored_notice_is_pinned_and_round_trips() {
            let at = crate::protocol::time::parse_compact("20261121000000").unwrap();
            let notice = OrderNotice {
                order_id: "CS1".into(),
                order_line_id: "CS1-000001".into(),
                received_at: at,
                order: Some(OrderDetails {
                    order_type: Some("NEW".into()),
                    quantity: Some(5.0),
                    ..Default::default()
                }),
                delivered_at: None,
            };
            let written: serde_json::Value =
                serde_json::from_slice(&encode(&notice).unwrap()).unwrap();
            assert_eq!(
                written,
                serde_json::json!({"schema":1,"order_id":"CS1","order_line_id":"CS1-000001",
                    "received_at":"2026-11-21T00:00:00Z","delivered_at":null,
                    "order":{"order_type":"NEW","charging_mode":null,"period_type":null,"period_number":null,
                        "product_id":null,"sku_code":null,"product_name":null,"quantity":5.0,"expire_time":null,
                        "customer_id":null,"customer_name":null,"extend_params":[],"offline":false}})
            );
            assert_eq!(decode(&encode(&notice).unwrap()).unwrap(), notice);
            let mut newer = written.clone();
            newer["schema"] = serde_json::json!(2);
            assert!(decode(&serde_json::to_vec(&newer).unwrap()).is_err());
        }
    }
}
