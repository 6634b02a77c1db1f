//! `releaseInstance` request (docs/protocol/callbacks.md §6.5).

use serde::Deserialize;

use super::{CallbackRequest, MAX_ID_LEN, require, test_flag};

/// `releaseInstance` (docs/protocol/callbacks.md §6.5): a repeat is success.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseInstanceRequest {
    pub instance_id: String,
    #[serde(default)]
    pub order_id: Option<String>,
    #[serde(default)]
    pub order_line_id: Option<String>,
    #[serde(default, deserialize_with = "test_flag")]
    pub test_flag: bool,
}

impl CallbackRequest for ReleaseInstanceRequest {
    fn validate(&self) -> Result<(), String> {
        require("instanceId", &self.instance_id, MAX_ID_LEN)
    }
    fn is_test(&self) -> bool {
        self.test_flag
    }
}
