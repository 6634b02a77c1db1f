//! An `OrderNotice` job: an order line KooGallery said was paid (orderNotify), read through Query
//! Order and told to the vendor once.

use crate::{JobError, JobOutcome, Worker};
use koogallery::{
    instance::DomainError,
    metrics::Metric,
    order::{OrderDetails, OrderId, OrderLineId, notice::OrderNotice},
    provisioning::{OrderPaid, ProvisionError},
};

impl Worker {
    /// A paid order line: read the order once (kept on the notice), tell the vendor once. Retried
    /// like a lifecycle notice, until the notice deadline from when KooGallery told us.
    pub(crate) async fn order_notice(
        &self,
        order_id: &OrderId,
        order_line_id: &OrderLineId,
    ) -> Result<JobOutcome, JobError> {
        let Some(mut notice) = self
            .notices
            .notice(order_id, order_line_id)
            .await
            .map_err(DomainError::from)?
        else {
            return Err(JobError::NoOrderNotice {
                order_id: order_id.clone(),
                order_line_id: order_line_id.clone(),
            });
        };
        if notice.delivered_at.is_some() {
            return Ok(JobOutcome::AlreadyDone);
        }
        let order = self.order_of(&mut notice).await?;
        let paid = OrderPaid {
            order_id: order_id.clone(),
            order_line_id: order_line_id.clone(),
            order,
        };
        match self.provisioner.order_paid(&paid).await {
            Ok(()) => {}
            Err(ProvisionError::Rejected { code, message }) => {
                tracing::warn!(order_id = order_id.as_str(), order_line_id = order_line_id.as_str(), %code, message, "vendor refused an order notice; not retried");
            }
            Err(e) => {
                self.metrics.record(Metric::NoticeRetries);
                let waited = (self.now() - notice.received_at)
                    .to_std()
                    .unwrap_or_default();
                if waited >= self.config.notice_deadline {
                    self.metrics.record(Metric::NoticeDeadlinePassed);
                    return Err(JobError::OrderNoticeDeadline(e));
                }
                return Err(JobError::Provisioner(e));
            }
        }
        notice.delivered_at = Some(self.now());
        self.notices
            .update_notice(&notice)
            .await
            .map_err(DomainError::from)?;
        self.metrics.record(Metric::NoticeDelivered);
        Ok(JobOutcome::Notified(1))
    }

    /// The notice's order: read through Query Order the first time, then kept on the notice, so a
    /// retried delivery tells the vendor what was read then.
    async fn order_of(&self, notice: &mut OrderNotice) -> Result<OrderDetails, JobError> {
        if let Some(order) = &notice.order {
            return Ok(order.clone());
        }
        let order = self
            .marketplace
            .query_order(&notice.order_id, &notice.order_line_id)
            .await?;
        notice.order = Some(order.clone());
        self.notices
            .update_notice(notice)
            .await
            .map_err(DomainError::from)?;
        Ok(order)
    }
}
