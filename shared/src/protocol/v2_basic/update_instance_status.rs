//! `updateInstanceStatus` request (docs/protocol/callbacks.md §6.4).

use serde::{Deserialize, Serialize};

use super::{CallbackRequest, MAX_ID_LEN, require, test_flag};

/// `updateInstanceStatus` target (docs/protocol/callbacks.md §6.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StatusAction {
    Freeze,
    /// V1's `instanceStatus` used `NORMAL` for the same thing; accepted as an alias (be liberal).
    #[serde(alias = "NORMAL")]
    Unfreeze,
}

/// `updateInstanceStatus` (docs/protocol/callbacks.md §6.4): freeze or unfreeze, idempotent.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateInstanceStatusRequest {
    pub instance_id: String,
    pub status: StatusAction,
    #[serde(default, deserialize_with = "test_flag")]
    pub test_flag: bool,
}

impl CallbackRequest for UpdateInstanceStatusRequest {
    fn validate(&self) -> Result<(), String> {
        require("instanceId", &self.instance_id, MAX_ID_LEN)
    }
    fn is_test(&self) -> bool {
        self.test_flag
    }
}
