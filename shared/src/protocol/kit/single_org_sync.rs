//! `singleOrgSync` request (docs/protocol/callbacks.md §9.4): one department added, renamed, moved
//! or deleted.

use serde::Deserialize;

use super::{MAX_NAME_LEN, SyncFlag, optional_id, require_id, require_text};
use crate::protocol::request::{CallbackRequest, test_flag};

/// `POST …/produceAPI/v2/singleOrgSync`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SingleOrgSyncRequest {
    #[serde(default)]
    pub instance_id: String,
    pub tenant_id: String,
    pub org_code: String,
    #[serde(default)]
    pub org_name: Option<String>,
    /// Empty or absent for the top department.
    #[serde(default)]
    pub parent_code: Option<String>,
    pub flag: SyncFlag,
    #[serde(default, deserialize_with = "test_flag")]
    pub test_flag: bool,
    pub time_stamp: String,
}

impl CallbackRequest for SingleOrgSyncRequest {
    fn validate(&self) -> Result<(), String> {
        optional_id("instanceId", &self.instance_id)?;
        require_id("tenantId", &self.tenant_id)?;
        require_id("orgCode", &self.org_code)?;
        optional_id("parentCode", self.parent_code.as_deref().unwrap_or(""))?;
        if !self.flag.is_delete() {
            require_text("orgName", self.org_name.as_deref(), MAX_NAME_LEN)?;
        }
        Ok(())
    }

    fn is_test(&self) -> bool {
        self.test_flag
    }
}
