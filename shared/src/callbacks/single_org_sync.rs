//! `singleOrgSync` (docs/protocol/callbacks.md §9.4; docs/protocol/decisions.md §16): one
//! department added, modified (renamed or moved) or deleted; an unknown one is upserted on modify
//! and a success on delete.

use async_trait::async_trait;

use super::{Callback, CallbackError, Resources, directory_sync::DirectorySync};
use crate::{
    config::ConfigError,
    directory::{Department, DirectoryChange, TenantKey},
    protocol::{Reply, kit::SingleOrgSyncRequest},
    security::KeyUsed,
};

pub struct SingleOrgSync(DirectorySync);

#[async_trait]
impl Callback for SingleOrgSync {
    type Request = SingleOrgSyncRequest;
    const DEBUG_BEFORE_PARSE: bool = true;

    fn from_resources(r: &Resources) -> Result<Self, ConfigError> {
        DirectorySync::from_resources(r).map(Self)
    }

    async fn handle(
        &self,
        req: SingleOrgSyncRequest,
        _key: KeyUsed,
    ) -> Result<Reply, CallbackError> {
        let key = TenantKey::new(&req.instance_id, &req.tenant_id);
        let change = if req.flag.is_delete() {
            DirectoryChange::DeleteDepartment {
                org_code: req.org_code,
            }
        } else {
            DirectoryChange::PutDepartment(Department {
                org_code: req.org_code,
                org_name: req.org_name.unwrap_or_default(),
                parent_code: req.parent_code.filter(|p| !p.trim().is_empty()),
            })
        };
        self.0.apply(&key, change).await
    }

    async fn handle_debug(&self, _req: SingleOrgSyncRequest, _key: KeyUsed) -> Reply {
        super::directory_sync::debug_reply()
    }
}
