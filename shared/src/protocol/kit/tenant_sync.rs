//! `tenantSync` request (docs/protocol/callbacks.md §9.1): the buyer's enterprise, the tenant.

use serde::Deserialize;

use super::{MAX_NAME_LEN, SyncFlag, optional_id, require_id, require_text};
use crate::protocol::request::{CallbackRequest, test_flag};

/// `POST …/produceAPI/v2/tenantSync`. `flag` 0 deletes the tenant (with its apps, users and
/// departments), 1 adds it, 2 modifies its `name` and `domainName`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantSyncRequest {
    /// Empty (or, leniently, absent) when the seller applies for its own app credential.
    #[serde(default)]
    pub instance_id: String,
    #[serde(default)]
    pub order_id: String,
    pub tenant_id: String,
    #[serde(default)]
    pub tenant_code: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// The base URL of the tenant's auth centre (docs/protocol/callbacks.md §10).
    #[serde(default)]
    pub domain_name: Option<String>,
    pub flag: SyncFlag,
    #[serde(default, deserialize_with = "test_flag")]
    pub test_flag: bool,
    pub time_stamp: String,
}

impl CallbackRequest for TenantSyncRequest {
    fn validate(&self) -> Result<(), String> {
        optional_id("instanceId", &self.instance_id)?;
        optional_id("orderId", &self.order_id)?;
        require_id("tenantId", &self.tenant_id)?;
        // A delete names only its key: refusing one for a missing name would keep a tenant the
        // buyer removed (docs/protocol/decisions.md §15 asks for the mandatory fields of what is
        // stored).
        if !self.flag.is_delete() {
            require_id("tenantCode", self.tenant_code.as_deref().unwrap_or(""))?;
            require_text("name", self.name.as_deref(), MAX_NAME_LEN)?;
            require_text("domainName", self.domain_name.as_deref(), MAX_NAME_LEN)?;
        }
        Ok(())
    }

    fn is_test(&self) -> bool {
        self.test_flag
    }
}
