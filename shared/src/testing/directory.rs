//! The tenant directory in memory ([`MemoryDirectory`]): the reference the adapters' contract is
//! written against, and the test bed's directory; and the sample records every directory test
//! builds (`sample_*`).

use std::{
    collections::BTreeMap,
    sync::{Mutex, PoisonError},
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{
    directory::{
        App, Applied, Department, DirectoryChange, DirectoryEvent, Tenant, TenantDirectory,
        TenantKey, User,
    },
    storage::StoreError,
};

#[derive(Default)]
struct TenantData {
    tenant: Option<Tenant>,
    apps: BTreeMap<String, App>,
    users: BTreeMap<(String, String), User>,
    departments: BTreeMap<String, Department>,
    /// The last `seq` numbered; survives a tenant's deletion, so numbering never restarts.
    last_seq: u64,
    pending: BTreeMap<u64, DirectoryEvent>,
}

/// A tenant synced at `at`.
pub fn sample_tenant(name: &str, at: DateTime<Utc>) -> Tenant {
    Tenant {
        order_id: "CS1".into(),
        tenant_code: "code".into(),
        name: name.into(),
        domain_name: "https://idaas.example.com".into(),
        synced_at: at,
    }
}

/// An app whose client is `client-{app_id}` and whose sealed secret is `sealed-{app_id}`.
pub fn sample_app(app_id: &str, at: DateTime<Utc>) -> App {
    App {
        app_id: app_id.into(),
        client_id: format!("client-{app_id}"),
        sealed_client_secret: format!("sealed-{app_id}"),
        synced_at: at,
    }
}

/// An enabled user of `app_id`, role `user`.
pub fn sample_user(app_id: &str, user_name: &str, at: DateTime<Utc>) -> User {
    User {
        app_id: app_id.into(),
        user_name: user_name.into(),
        name: "张三".into(),
        org_code: "10000".into(),
        role: "user".into(),
        enabled: true,
        revoked: false,
        position: None,
        employee_code: None,
        employee_type: None,
        mobile: Some("13800000000".into()),
        email: None,
        work_place: None,
        entry_date: None,
        synced_at: at,
    }
}

/// Department `org_code`, named `部门{org_code}`.
pub fn sample_department(org_code: &str, parent_code: Option<&str>) -> Department {
    Department {
        org_code: org_code.into(),
        org_name: format!("部门{org_code}"),
        parent_code: parent_code.map(Into::into),
    }
}

/// Every tenant in one mutex.
#[derive(Default)]
pub struct MemoryDirectory {
    tenants: Mutex<BTreeMap<TenantKey, TenantData>>,
}

impl MemoryDirectory {
    pub fn new() -> Self {
        Self::default()
    }
}

/// Applies a change to one tenant's data: the rules every adapter follows
/// (docs/protocol/decisions.md §16).
fn apply_to(data: &mut TenantData, change: &DirectoryChange) {
    match change {
        DirectoryChange::PutTenant(t) => data.tenant = Some(t.clone()),
        DirectoryChange::DeleteTenant => {
            data.tenant = None;
            data.apps.clear();
            data.users.clear();
            data.departments.clear();
        }
        DirectoryChange::PutApp(a) => {
            data.apps.insert(a.app_id.clone(), a.clone());
        }
        DirectoryChange::DeleteApp { app_id } => {
            data.apps.remove(app_id);
            data.users.retain(|(app, _), _| app != app_id);
        }
        DirectoryChange::PutUsers { app_id, users } => {
            for u in users {
                data.users
                    .insert((app_id.clone(), u.user_name.clone()), u.clone());
            }
        }
        DirectoryChange::RevokeUsers { app_id, user_names } => {
            for name in user_names {
                if let Some(u) = data.users.get_mut(&(app_id.clone(), name.clone())) {
                    u.revoked = true;
                }
            }
        }
        DirectoryChange::DeleteUsers { app_id, user_names } => {
            for name in user_names {
                data.users.remove(&(app_id.clone(), name.clone()));
            }
        }
        DirectoryChange::PutDepartment(d) => {
            data.departments.insert(d.org_code.clone(), d.clone());
        }
        DirectoryChange::DeleteDepartment { org_code } => {
            data.departments.remove(org_code);
        }
        // Only events.
        DirectoryChange::SessionsEnded(_) => {}
        DirectoryChange::ReplaceDepartments(all) => {
            data.departments = all
                .iter()
                .map(|d| (d.org_code.clone(), d.clone()))
                .collect();
        }
    }
}

#[async_trait]
impl TenantDirectory for MemoryDirectory {
    async fn apply(
        &self,
        key: &TenantKey,
        change: &DirectoryChange,
        now: DateTime<Utc>,
    ) -> Result<Applied, StoreError> {
        let events = change.events();
        let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        let data = tenants.entry(key.clone()).or_default();
        apply_to(data, change);
        let first_seq = data.last_seq + 1;
        for body in events {
            data.last_seq += 1;
            let seq = data.last_seq;
            data.pending.insert(
                seq,
                DirectoryEvent {
                    seq,
                    at: now,
                    body: body.clone(),
                },
            );
        }
        Ok(Applied {
            first_seq,
            last_seq: data.last_seq,
        })
    }

    async fn tenant(&self, key: &TenantKey) -> Result<Option<Tenant>, StoreError> {
        let tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(tenants.get(key).and_then(|d| d.tenant.clone()))
    }

    async fn apps(&self, key: &TenantKey) -> Result<Vec<App>, StoreError> {
        let tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(tenants
            .get(key)
            .map(|d| d.apps.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn user(
        &self,
        key: &TenantKey,
        app_id: &str,
        user_name: &str,
    ) -> Result<Option<User>, StoreError> {
        let tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(tenants.get(key).and_then(|d| {
            d.users
                .get(&(app_id.to_owned(), user_name.to_owned()))
                .cloned()
        }))
    }

    async fn users(&self, key: &TenantKey, app_id: &str) -> Result<Vec<User>, StoreError> {
        let tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(tenants
            .get(key)
            .map(|d| {
                d.users
                    .iter()
                    .filter(|((app, _), _)| app == app_id)
                    .map(|(_, u)| u.clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn departments(&self, key: &TenantKey) -> Result<Vec<Department>, StoreError> {
        let tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(tenants
            .get(key)
            .map(|d| d.departments.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn pending_events(
        &self,
        key: &TenantKey,
        limit: usize,
    ) -> Result<Vec<DirectoryEvent>, StoreError> {
        let tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(tenants
            .get(key)
            .map(|d| d.pending.values().take(limit).cloned().collect())
            .unwrap_or_default())
    }

    async fn events_delivered(&self, key: &TenantKey, seq: u64) -> Result<(), StoreError> {
        let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(d) = tenants.get_mut(key) {
            d.pending.retain(|&s, _| s > seq);
        }
        Ok(())
    }
}

#[async_trait]
impl crate::sso::TenantLocator for MemoryDirectory {
    async fn tenants_by_id(&self, tenant_id: &str) -> Result<Vec<(TenantKey, Tenant)>, StoreError> {
        let tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(tenants
            .iter()
            .filter(|(k, _)| k.tenant_id.as_str() == tenant_id)
            .filter_map(|(k, d)| d.tenant.clone().map(|t| (k.clone(), t)))
            .collect())
    }
}

#[async_trait]
impl crate::operator::KitTenants for MemoryDirectory {
    async fn kit_tenants(
        &self,
        instance_id: &str,
    ) -> Result<Vec<crate::operator::KitTenant>, StoreError> {
        let tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(tenants
            .iter()
            .filter(|(k, _)| k.instance_id == instance_id)
            .filter_map(|(k, d)| {
                let tenant = d.tenant.clone()?;
                Some(
                    crate::operator::KitTenant {
                        key: k.clone(),
                        tenant,
                        apps: d.apps.values().cloned().collect(),
                        users: d.users.values().cloned().collect(),
                        departments: d.departments.values().cloned().collect(),
                    }
                    .sorted(),
                )
            })
            .collect())
    }
}
