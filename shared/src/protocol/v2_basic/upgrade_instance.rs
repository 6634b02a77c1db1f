//! `upgradeInstance` request (docs/protocol/callbacks.md §6.6).

use serde::Deserialize;

use super::{CallbackRequest, MAX_ID_LEN, require, test_flag};

/// `upgradeInstance` (docs/protocol/callbacks.md §6.6): a new (upgrade) order on an unchanged
/// instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeInstanceRequest {
    pub instance_id: String,
    /// Set only by the edge's V1 translation (docs/protocol/callbacks.md §11).
    #[serde(default)]
    pub v1: Option<crate::protocol::v1::V1Context>,
    pub order_id: String,
    pub order_line_id: String,
    #[serde(default, deserialize_with = "test_flag")]
    pub test_flag: bool,
}

impl CallbackRequest for UpgradeInstanceRequest {
    fn validate(&self) -> Result<(), String> {
        require("instanceId", &self.instance_id, MAX_ID_LEN)?;
        require("orderId", &self.order_id, MAX_ID_LEN)?;
        require("orderLineId", &self.order_line_id, MAX_ID_LEN)
    }
    fn is_test(&self) -> bool {
        self.test_flag
    }
}
