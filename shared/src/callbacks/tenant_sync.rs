//! `tenantSync` (docs/protocol/callbacks.md §9.1; docs/protocol/decisions.md §16): the buyer's
//! enterprise. Add and modify store the tenant (modify of an unknown tenant stores it); delete
//! removes the tenant with its apps, users and departments (an unknown one is a success); the
//! instance need not exist.

use async_trait::async_trait;

use super::{Callback, CallbackError, Resources, directory_sync::DirectorySync};
use crate::{
    config::ConfigError,
    directory::{DirectoryChange, Tenant, TenantKey},
    protocol::{Reply, kit::TenantSyncRequest},
    security::KeyUsed,
};

pub struct TenantSync(DirectorySync);

#[async_trait]
impl Callback for TenantSync {
    type Request = TenantSyncRequest;
    const DEBUG_BEFORE_PARSE: bool = true;

    fn from_resources(r: &Resources) -> Result<Self, ConfigError> {
        DirectorySync::from_resources(r).map(Self)
    }

    async fn handle(&self, req: TenantSyncRequest, _key: KeyUsed) -> Result<Reply, CallbackError> {
        let key = TenantKey::new(&req.instance_id, &req.tenant_id);
        let change = if req.flag.is_delete() {
            DirectoryChange::DeleteTenant
        } else {
            DirectoryChange::PutTenant(Tenant {
                order_id: req.order_id.into(),
                tenant_code: req.tenant_code.unwrap_or_default(),
                name: req.name.unwrap_or_default(),
                domain_name: req.domain_name.unwrap_or_default(),
                synced_at: self.0.clock.now(),
            })
        };
        self.0.apply(&key, change).await
    }

    async fn handle_debug(&self, _req: TenantSyncRequest, _key: KeyUsed) -> Reply {
        super::directory_sync::debug_reply()
    }
}
