//! [`OrderNoticeStore`] on the table: orderNotify's order lines, one item each, recorded once
//! and updated as their notice is handled.

use async_trait::async_trait;
use koogallery::{
    StoreError,
    order::{
        OrderId, OrderLineId,
        notice::{OrderNotice, OrderNoticeStore},
    },
};

use super::{
    DynamoStore,
    items::{decode_notice, notice_item},
    keys::{ORDER_NOTICE_SK, PK, order_notice_pk},
    sdk::unavailable,
};

#[async_trait]
impl OrderNoticeStore for DynamoStore {
    async fn record_notice(&self, notice: &OrderNotice) -> Result<bool, StoreError> {
        let put = self
            .table
            .put_item()
            .set_item(Some(notice_item(notice)?))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK);
        self.table
            .put_if(put, "PutItem (record order notice)")
            .await
    }

    async fn notice(
        &self,
        order_id: &OrderId,
        order_line_id: &OrderLineId,
    ) -> Result<Option<OrderNotice>, StoreError> {
        let Some(item) = self
            .table
            .get_item(&order_notice_pk(order_id, order_line_id), ORDER_NOTICE_SK)
            .await?
        else {
            return Ok(None);
        };
        decode_notice(&item).map(Some)
    }

    async fn update_notice(&self, notice: &OrderNotice) -> Result<(), StoreError> {
        self.table
            .put_item()
            .set_item(Some(notice_item(notice)?))
            .send()
            .await
            .map_err(|e| unavailable("PutItem (update order notice)", e))?;
        Ok(())
    }
}
