//! `newInstance` request (docs/protocol/callbacks.md §6.1).

use serde::Deserialize;

use super::{CallbackRequest, MAX_ID_LEN, require, test_flag};

/// `newInstance` (docs/protocol/callbacks.md §6.1). The V2 body carries no customer data: the order
/// comes from Query Order.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewInstanceRequest {
    pub order_id: String,
    /// Set only by the edge's V1 translation (docs/protocol/callbacks.md §11).
    #[serde(default)]
    pub v1: Option<crate::protocol::v1::V1Context>,
    pub order_line_id: String,
    pub business_id: String,
    #[serde(default, deserialize_with = "test_flag")]
    pub test_flag: bool,
}

impl CallbackRequest for NewInstanceRequest {
    fn validate(&self) -> Result<(), String> {
        require("orderId", &self.order_id, MAX_ID_LEN)?;
        require("orderLineId", &self.order_line_id, MAX_ID_LEN)?;
        require("businessId", &self.business_id, 64)
    }
    fn is_test(&self) -> bool {
        self.test_flag
    }
}
