//! `authSync` (docs/protocol/callbacks.md §9.3; docs/protocol/decisions.md §16): which users may
//! use an app. Add and modify upsert (and authorize a revoked user again), revoke (flag 3) keeps
//! the record and ends access, delete removes the record; unknown users are a success. Up to 500
//! users in one write.

use async_trait::async_trait;

use super::{Callback, CallbackError, Resources, directory_sync::DirectorySync};
use crate::{
    config::ConfigError,
    directory::{DirectoryChange, TenantKey, User},
    protocol::{
        Reply,
        kit::{AuthFlag, AuthSyncRequest},
    },
    security::KeyUsed,
};

pub struct AuthSync(DirectorySync);

#[async_trait]
impl Callback for AuthSync {
    type Request = AuthSyncRequest;
    const DEBUG_BEFORE_PARSE: bool = true;

    fn from_resources(r: &Resources) -> Result<Self, ConfigError> {
        DirectorySync::from_resources(r).map(Self)
    }

    async fn handle(&self, req: AuthSyncRequest, _key: KeyUsed) -> Result<Reply, CallbackError> {
        let key = TenantKey::new(&req.instance_id, &req.tenant_id);
        let now = self.0.clock.now();
        let app_id = req.app_id;
        let names = |users: Vec<crate::protocol::kit::KitUser>| {
            users.into_iter().map(|u| u.user_name).collect()
        };
        let change = match req.flag {
            AuthFlag::Add | AuthFlag::Modify => DirectoryChange::PutUsers {
                users: req
                    .user_list
                    .into_iter()
                    .map(|u| User {
                        app_id: app_id.clone(),
                        enabled: u.enabled(),
                        revoked: false,
                        user_name: u.user_name,
                        name: u.name.unwrap_or_default(),
                        org_code: u.org_code.unwrap_or_default(),
                        role: u.role.unwrap_or_default().trim().to_owned(),
                        position: u.position,
                        employee_code: u.employee_code,
                        employee_type: u.employee_type,
                        mobile: u.mobile,
                        email: u.email,
                        work_place: u.work_place,
                        entry_date: u.entry_date,
                        synced_at: now,
                    })
                    .collect(),
                app_id,
            },
            AuthFlag::Revoke => DirectoryChange::RevokeUsers {
                user_names: names(req.user_list),
                app_id,
            },
            AuthFlag::Delete => DirectoryChange::DeleteUsers {
                user_names: names(req.user_list),
                app_id,
            },
        };
        self.0.apply(&key, change).await
    }

    async fn handle_debug(&self, _req: AuthSyncRequest, _key: KeyUsed) -> Reply {
        super::directory_sync::debug_reply()
    }
}
