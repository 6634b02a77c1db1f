//! What the operator reads of a buyer's 联营 accounts and License codes, for one instance: its Kit
//! tenants (the tenant directory: apps, users of every app, departments), the SSO sessions of
//! each tenant, and the License codes of its order. Read-only ports of their own, beside the
//! stores that write these records, so the operator's service can read them and never change
//! them. Every adapter passes `testing::operator::instance_accounts_contract`.
//!
//! - [`KitTenants`]: the directory's tenants of one instance, each whole.
//! - [`SsoSessions`]: the sessions of one tenant; every [`SessionStore`] is one.
//! - [`OrderLicenses`]: the License codes whose record names an order (`License::order_id`).
//!
//! None of these is a path KooGallery's calls take: an adapter without an index for the lookup
//! may scan (its module docs say what that costs).

use async_trait::async_trait;

use crate::{
    directory::{App, Department, Tenant, TenantKey, User},
    license::License,
    sso::{Session, SessionStore},
    storage::StoreError,
};

/// One 联营 tenant of an instance, whole: what the operator needs to answer "I can't log in".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KitTenant {
    pub key: TenantKey,
    pub tenant: Tenant,
    /// By `app_id`.
    pub apps: Vec<App>,
    /// Of every app, revoked ones included, and of apps not synced (yet): an authSync may come
    /// before its applicationSync. By `app_id`, then `user_name`.
    pub users: Vec<User>,
    /// By `org_code`.
    pub departments: Vec<Department>,
}

impl KitTenant {
    /// Puts the lists in the order the port answers them: apps by `app_id`, users by `app_id` then
    /// `user_name`, departments by `org_code`.
    pub fn sorted(mut self) -> Self {
        self.apps.sort_by(|a, b| a.app_id.cmp(&b.app_id));
        self.users.sort_by(|a, b| {
            (a.app_id.as_str(), a.user_name.as_str())
                .cmp(&(b.app_id.as_str(), b.user_name.as_str()))
        });
        self.departments.sort_by(|a, b| a.org_code.cmp(&b.org_code));
        self
    }
}

/// The 联营 tenants of an instance, as the operator reads them.
#[async_trait]
pub trait KitTenants: Send + Sync {
    /// The tenants stored under `instance_id` (the tenantSync record exists: a deleted tenant is
    /// not listed), by tenant ID, each with its apps, users and departments.
    async fn kit_tenants(&self, instance_id: &str) -> Result<Vec<KitTenant>, StoreError>;
}

/// The SSO sessions of a tenant, as the operator reads them.
#[async_trait]
pub trait SsoSessions: Send + Sync {
    /// The tenant's sessions, every app, any order; ended ones may still be stored (the store
    /// purges them in its own time): the caller checks the time.
    async fn tenant_sessions(&self, tenant: &TenantKey) -> Result<Vec<Session>, StoreError>;
}

#[async_trait]
impl<T: SessionStore + ?Sized> SsoSessions for T {
    async fn tenant_sessions(&self, tenant: &TenantKey) -> Result<Vec<Session>, StoreError> {
        self.sessions_of_tenant(tenant).await
    }
}

/// The License codes of an order, as the operator reads them.
#[async_trait]
pub trait OrderLicenses: Send + Sync {
    /// The codes whose record names `order_id` (`License::order_id`: the purchase order, known
    /// once the code is activated or issued), by code.
    async fn licenses_of_order(&self, order_id: &str) -> Result<Vec<License>, StoreError>;
}
