//! `allOrgSync` (docs/protocol/callbacks.md §9.5; docs/protocol/decisions.md §16): the tenant's
//! whole department set replaces the stored one in one write. The list is stored as given: parents
//! may come after children, a missing parent or a cycle is kept, and nothing walks the tree.

use async_trait::async_trait;

use super::{Callback, CallbackError, Resources, directory_sync::DirectorySync};
use crate::{
    config::ConfigError,
    directory::{Department, DirectoryChange, TenantKey},
    protocol::{Reply, kit::AllOrgSyncRequest},
    security::KeyUsed,
};

pub struct AllOrgSync(DirectorySync);

#[async_trait]
impl Callback for AllOrgSync {
    type Request = AllOrgSyncRequest;
    const DEBUG_BEFORE_PARSE: bool = true;

    fn from_resources(r: &Resources) -> Result<Self, ConfigError> {
        DirectorySync::from_resources(r).map(Self)
    }

    async fn handle(&self, req: AllOrgSyncRequest, _key: KeyUsed) -> Result<Reply, CallbackError> {
        let key = TenantKey::new(&req.instance_id, &req.tenant_id);
        let all = req
            .org_info_list
            .into_iter()
            .map(|o| Department {
                org_code: o.org_code,
                org_name: o.org_name.unwrap_or_default(),
                parent_code: o.parent_code.filter(|p| !p.trim().is_empty()),
            })
            .collect();
        self.0
            .apply(&key, DirectoryChange::ReplaceDepartments(all))
            .await
    }

    async fn handle_debug(&self, _req: AllOrgSyncRequest, _key: KeyUsed) -> Reply {
        super::directory_sync::debug_reply()
    }
}
