//! [`NonceStore`] on the table: the edge's replay guard, one conditional put per nonce (module
//! docs, Writes).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use koogallery::{StoreError, security::replay::NonceStore};

use super::{
    DynamoStore,
    attr::n,
    items::nonce_item,
    keys::{EXPIRES_MS, PK},
};

#[async_trait]
impl NonceStore for DynamoStore {
    async fn remember(
        &self,
        nonce: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let put = self
            .table
            .put_item()
            .set_item(Some(nonce_item(nonce, expires_at.timestamp_millis())))
            .condition_expression("attribute_not_exists(#pk) OR #exp <= :now")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#exp", EXPIRES_MS)
            .expression_attribute_values(":now", n(now.timestamp_millis()));
        // The nonce itself is not secret, but keep it out of error text anyway.
        self.table.put_if(put, "PutItem (remember nonce)").await
    }
}
