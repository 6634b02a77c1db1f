//! `refreshInstance` request (docs/protocol/callbacks.md §6.3).

use serde::Deserialize;

use super::{CallbackRequest, MAX_ID_LEN, require, test_flag};
pub use crate::refresh_scene::RefreshScene;

/// `refreshInstance` (docs/protocol/callbacks.md §6.3): renewal, trial→formal, renewal
/// cancellation, change on renewal.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshInstanceRequest {
    pub instance_id: String,
    /// Set only by the edge's V1 translation (docs/protocol/callbacks.md §11).
    #[serde(default)]
    pub v1: Option<crate::protocol::v1::V1Context>,
    pub order_id: String,
    /// Mandatory in the table; accepted when absent (be liberal): it is kept with the event, and
    /// without it the worker reads a changed order's first line.
    #[serde(default)]
    pub order_line_id: Option<String>,
    pub scene: RefreshScene,
    #[serde(default)]
    pub product_id: Option<String>,
    /// New expiry, UTC, 14 or 17 digits (docs/protocol/decisions.md §10).
    pub expire_time: String,
    #[serde(default, deserialize_with = "test_flag")]
    pub test_flag: bool,
}

impl CallbackRequest for RefreshInstanceRequest {
    fn validate(&self) -> Result<(), String> {
        require("instanceId", &self.instance_id, MAX_ID_LEN)?;
        require("orderId", &self.order_id, MAX_ID_LEN)?;
        require("scene", self.scene.as_str(), MAX_ID_LEN)?;
        if crate::protocol::time::parse_compact(self.expire_time.trim()).is_none() {
            return Err(format!(
                "expireTime {:?} is not yyyyMMddHHmmss or yyyyMMddHHmmssSSS",
                self.expire_time
            ));
        }
        Ok(())
    }
    fn is_test(&self) -> bool {
        self.test_flag
    }
}
