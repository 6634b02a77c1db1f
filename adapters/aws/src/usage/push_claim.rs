//! The push claim (module docs, The push claim): one pusher at a time, by a conditional put.

use chrono::{DateTime, Utc};
use koogallery::StoreError;

use super::{DynamoUsageStore, keys::*};
use crate::dynamo::{
    attr::{n, s},
    keys::{PK, SK},
};

impl DynamoUsageStore {
    pub(super) async fn put_push_claim(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let put = self
            .table
            .put_item()
            .item(PK, s(PUSH_CLAIM_PK))
            .item(SK, s(PUSH_CLAIM_SK))
            .item(PUSH_HOLDER, s(holder))
            .item(PUSH_UNTIL, n(until.timestamp_millis()))
            .condition_expression(
                "attribute_not_exists(#pk) OR #until <= :now OR #holder = :holder",
            )
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#until", PUSH_UNTIL)
            .expression_attribute_names("#holder", PUSH_HOLDER)
            .expression_attribute_values(":now", n(now.timestamp_millis()))
            .expression_attribute_values(":holder", s(holder));
        // A failed condition: another holder's claim is live.
        self.table
            .put_if(put, "PutItem (claim the usage push)")
            .await
    }

    pub(super) async fn drop_push_claim(&self, holder: &str) -> Result<(), StoreError> {
        let put = self
            .table
            .put_item()
            .item(PK, s(PUSH_CLAIM_PK))
            .item(SK, s(PUSH_CLAIM_SK))
            .item(PUSH_HOLDER, s(""))
            .item(PUSH_UNTIL, n(0))
            .condition_expression("#holder = :holder")
            .expression_attribute_names("#holder", PUSH_HOLDER)
            .expression_attribute_values(":holder", s(holder));
        // A failed condition: another holder took the claim since; it stays.
        self.table
            .put_if(put, "PutItem (release the usage push)")
            .await?;
        Ok(())
    }
}
