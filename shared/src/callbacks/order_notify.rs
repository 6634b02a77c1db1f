//! `orderNotify` (docs/protocol/callbacks.md §6.8, docs/protocol/openapi.md §7): an order line was
//! paid, for any product type. Record the order line once, queue the worker (which reads the order
//! with Query Order, keeps it, and tells the vendor with an `order` event), and answer `000000` at
//! once. KooGallery retries a failed call for 3 hours: a store or queue failure answers a retryable
//! `000005`, and the repeat queues the work that is still owed. A repeat after the vendor has heard
//! does nothing.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Callback, CallbackError, Resources};
use crate::{
    clock::Clock,
    config::ConfigError,
    instance::DomainError,
    jobs::{Job, JobQueue},
    order::{
        OrderId, OrderLineId,
        notice::{OrderNotice, OrderNoticeStore},
    },
    protocol::{Reply, v2_basic::OrderNotifyRequest},
    security::KeyUsed,
};

pub struct OrderNotify {
    notices: Arc<dyn OrderNoticeStore>,
    queue: Arc<dyn JobQueue>,
    clock: Arc<dyn Clock>,
}

#[async_trait]
impl Callback for OrderNotify {
    type Request = OrderNotifyRequest;

    fn from_resources(r: &Resources) -> Result<Self, ConfigError> {
        Ok(Self {
            notices: r.order_notices()?,
            queue: r.queue()?,
            clock: r.clock.clone(),
        })
    }

    async fn handle(&self, req: OrderNotifyRequest, _key: KeyUsed) -> Result<Reply, CallbackError> {
        let (order_id, order_line_id) = (
            OrderId::new(req.order_id),
            OrderLineId::new(req.order_line_id),
        );
        let received = OrderNotice::received(&order_id, &order_line_id, self.clock.now());
        let created = self
            .notices
            .record_notice(&received)
            .await
            .map_err(DomainError::from)?;
        let delivered = if created {
            false
        } else {
            self.notices
                .notice(&order_id, &order_line_id)
                .await
                .map_err(DomainError::from)?
                .is_some_and(|n| n.delivered_at.is_some())
        };
        if !delivered {
            self.queue
                .enqueue(&Job::OrderNotice {
                    order_id,
                    order_line_id,
                })
                .await?;
        }
        Ok(Reply::success())
    }

    /// docs/protocol/decisions.md §7: `000000`, and nothing recorded, queued or sent.
    async fn handle_debug(&self, _req: OrderNotifyRequest, _key: KeyUsed) -> Reply {
        Reply::success()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::{
        ResultCode, clock::Clock, jobs::Job, order::notice::OrderNoticeStore, testing::TestBed,
    };

    fn body(test: bool) -> serde_json::Value {
        json!({"activity":"orderNotify","orderId":"CSN1","orderLineId":"CSN1-000001",
            "testFlag": if test { "1" } else { "0" }})
    }

    #[tokio::test]
    async fn a_paid_order_line_is_recorded_once_and_queued_until_the_vendor_has_heard() {
        let bed = TestBed::default_keys();
        assert_eq!(
            bed.call("orderNotify", &body(false)).await.result_code,
            ResultCode::Success
        );
        let job = Job::OrderNotice {
            order_id: "CSN1".into(),
            order_line_id: "CSN1-000001".into(),
        };
        assert_eq!(bed.queue.take_all(), std::slice::from_ref(&job));
        // KooGallery's repeat, before the vendor heard: queued again, recorded once.
        bed.call("orderNotify", &body(false)).await;
        assert_eq!(bed.queue.take_all(), [job]);
        let mut notice = bed
            .store
            .notice(&"CSN1".into(), &"CSN1-000001".into())
            .await
            .unwrap()
            .unwrap();
        notice.delivered_at = Some(bed.clock.now());
        bed.store.update_notice(&notice).await.unwrap();
        // After: nothing more.
        assert_eq!(
            bed.call("orderNotify", &body(false)).await.result_code,
            ResultCode::Success
        );
        assert!(bed.queue.is_empty());
    }

    #[tokio::test]
    async fn a_queue_outage_is_a_retryable_000005_and_the_repeat_queues() {
        let bed = TestBed::default_keys();
        bed.queue.fail_next_enqueue();
        assert_eq!(
            bed.call("orderNotify", &body(false)).await.result_code,
            ResultCode::InternalError
        );
        assert!(bed.queue.is_empty());
        bed.call("orderNotify", &body(false)).await;
        assert_eq!(bed.queue.len(), 1);
    }

    #[tokio::test]
    async fn debug_calls_record_and_queue_nothing_and_bad_input_is_000002() {
        let bed = TestBed::default_keys();
        assert_eq!(
            bed.call("orderNotify", &body(true)).await.result_code,
            ResultCode::Success
        );
        assert!(bed.queue.is_empty());
        assert!(
            bed.store
                .notice(&"CSN1".into(), &"CSN1-000001".into())
                .await
                .unwrap()
                .is_none()
        );
        let r = bed
            .call(
                "orderNotify",
                &json!({"activity":"orderNotify","orderId":"CSN1"}),
            )
            .await;
        assert_eq!(r.result_code, ResultCode::InvalidParameter);
        assert!(r.result_msg.contains("orderLineId"), "{}", r.result_msg);
    }
}
