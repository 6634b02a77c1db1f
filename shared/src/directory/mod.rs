//! The tenant directory of a 联营 product (docs/protocol/callbacks.md §9;
//! docs/protocol/decisions.md §15–17): what the five Kit syncs keep for the buyer's enterprise —
//! the tenant and its auth centre, the apps and their OAuth client (the secret sealed at rest), the
//! users authorized for each app, and the departments — and the [`TenantDirectory`] port that keeps
//! it (memory, embedded redb, DynamoDB).
//!
//! Keys (docs/protocol/decisions.md §16): a tenant is (instanceId, tenantId); an app adds appId; a
//! user adds appId and userName; a department adds orgCode. The instance need not exist (an empty
//! instanceId is the seller's own credential), and syncs may arrive in any order: add is an upsert,
//! modify of an unknown record an upsert, delete of an unknown record a success.
//!
//! Every sync is one durable write, together with the [`DirectoryEvent`]s it produces for the
//! vendor; events are numbered per tenant (`seq`) and delivered in that order, at least once.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{order::OrderId, storage::StoreError};

pub mod event;
mod id;
pub mod record;

pub use event::{DirectoryEvent, EndedSession, EventBody, EventUser};
pub use id::TenantId;

/// One tenant of one instance (docs/protocol/decisions.md §16). `instance_id` is empty for the
/// seller's own credential (docs/protocol/callbacks.md §9).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantKey {
    pub instance_id: String,
    pub tenant_id: TenantId,
}

impl TenantKey {
    pub fn new(instance_id: impl Into<String>, tenant_id: impl Into<TenantId>) -> Self {
        Self {
            instance_id: instance_id.into(),
            tenant_id: tenant_id.into(),
        }
    }

    /// What an app's sealed client secret is bound to (`security::at_rest`; on AWS also the KMS
    /// encryption context): another tenant's or app's record cannot open it. Each part has `%` and
    /// `/` percent-encoded, so `/` separates them unambiguously, and the prefix keeps the binding
    /// apart from any instance ID's.
    pub fn app_binding(&self, app_id: &str) -> String {
        let part = |s: &str| s.replace('%', "%25").replace('/', "%2F");
        format!(
            "kit-app/{}/{}/{}",
            part(&self.instance_id),
            part(&self.tenant_id),
            part(app_id)
        )
    }
}

/// The buyer's enterprise (tenantSync, docs/protocol/callbacks.md §9.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub order_id: OrderId,
    pub tenant_code: String,
    pub name: String,
    /// The base URL of the tenant's auth centre (docs/protocol/callbacks.md §10).
    pub domain_name: String,
    pub synced_at: DateTime<Utc>,
}

/// An app of the tenant and its OAuth client (applicationSync, docs/protocol/callbacks.md §9.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub app_id: String,
    pub client_id: String,
    /// The client secret sealed at rest, bound to [`TenantKey::app_binding`]; never logged.
    pub sealed_client_secret: String,
    pub synced_at: DateTime<Utc>,
}

/// A user authorized (or once authorized) for an app (authSync, docs/protocol/callbacks.md §9.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub app_id: String,
    pub user_name: String,
    pub name: String,
    pub org_code: String,
    /// `user` or `admin`, as sent.
    pub role: String,
    pub enabled: bool,
    /// authSync flag 3: access to the app revoked, the record kept
    /// (docs/protocol/decisions.md §16).
    pub revoked: bool,
    pub position: Option<String>,
    pub employee_code: Option<String>,
    pub employee_type: Option<String>,
    pub mobile: Option<String>,
    pub email: Option<String>,
    pub work_place: Option<String>,
    pub entry_date: Option<String>,
    pub synced_at: DateTime<Utc>,
}

impl User {
    /// May sign in to the app: enabled and not revoked.
    pub fn may_use_app(&self) -> bool {
        self.enabled && !self.revoked
    }

    pub fn is_admin(&self) -> bool {
        self.role.trim().eq_ignore_ascii_case("admin")
    }
}

/// A department (singleOrgSync, allOrgSync, docs/protocol/callbacks.md §9.4–§9.5). Stored as given:
/// a missing parent or a cycle is kept, never walked (docs/protocol/decisions.md §16).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Department {
    pub org_code: String,
    pub org_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_code: Option<String>,
}

/// What one Kit sync does to a tenant (one call, one durable write).
#[derive(Debug, Clone, PartialEq)]
pub enum DirectoryChange {
    /// tenantSync add or modify.
    PutTenant(Tenant),
    /// tenantSync delete: the tenant, its apps, users and departments.
    DeleteTenant,
    /// applicationSync add or modify.
    PutApp(App),
    /// applicationSync delete: the app and its users.
    DeleteApp { app_id: String },
    /// authSync add or modify: upserts, and a revoked user is authorized again.
    PutUsers { app_id: String, users: Vec<User> },
    /// authSync revoke: the known ones among these keep their record, marked revoked.
    RevokeUsers {
        app_id: String,
        user_names: Vec<String>,
    },
    /// authSync delete.
    DeleteUsers {
        app_id: String,
        user_names: Vec<String>,
    },
    /// singleOrgSync add or modify.
    PutDepartment(Department),
    /// singleOrgSync delete.
    DeleteDepartment { org_code: String },
    /// allOrgSync: the tenant's whole department set, replaced atomically.
    ReplaceDepartments(Vec<Department>),
    /// SSO sessions of the tenant ended: no record changes, only the events the vendor hears.
    SessionsEnded(Vec<EndedSession>),
}

/// Users per `usersAuthorized`/`usersRevoked`/`usersDeleted` event, and departments per
/// `orgsSynced` event: a 500-user authSync or a 5 000-department allOrgSync becomes several
/// events, each well under any store's item limit (DynamoDB: 400 KB).
pub const USERS_PER_EVENT: usize = 100;
pub const DEPARTMENTS_PER_EVENT: usize = 500;
/// The most JSON the departments of one `orgsReplaced` event may take: names may be long (the
/// requests accept 512 characters), so parts are cut by size too, well under 400 KB.
pub const MAX_EVENT_DEPARTMENT_BYTES: usize = 256 * 1024;

/// The parts of a department set, each at most [`DEPARTMENTS_PER_EVENT`] departments and
/// [`MAX_EVENT_DEPARTMENT_BYTES`] of JSON; an empty set is one empty part.
fn department_parts(all: &[Department]) -> Vec<&[Department]> {
    let mut parts = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, d) in all.iter().enumerate() {
        let size = serde_json::to_vec(d).map_or(0, |v| v.len()) + 1;
        if i > start
            && (i - start == DEPARTMENTS_PER_EVENT || bytes + size > MAX_EVENT_DEPARTMENT_BYTES)
        {
            parts.push(&all[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < all.len() || parts.is_empty() {
        parts.push(&all[start..]);
    }
    parts
}

impl DirectoryChange {
    /// The events the vendor hears of this change, in order (without their `seq`: the store
    /// numbers them in the write that applies the change).
    pub fn events(&self) -> Vec<EventBody> {
        match self {
            Self::PutTenant(t) => vec![EventBody::TenantSynced {
                order_id: t.order_id.clone(),
                tenant_code: t.tenant_code.clone(),
                name: t.name.clone(),
                domain_name: t.domain_name.clone(),
            }],
            Self::DeleteTenant => vec![EventBody::TenantDeleted],
            Self::PutApp(a) => vec![EventBody::AppSynced {
                app_id: a.app_id.clone(),
                client_id: a.client_id.clone(),
            }],
            Self::DeleteApp { app_id } => vec![EventBody::AppDeleted {
                app_id: app_id.clone(),
            }],
            Self::PutUsers { app_id, users } => users
                .chunks(USERS_PER_EVENT)
                .map(|chunk| EventBody::UsersAuthorized {
                    app_id: app_id.clone(),
                    users: chunk.iter().map(EventUser::from).collect(),
                })
                .collect(),
            Self::RevokeUsers { app_id, user_names } => user_names
                .chunks(USERS_PER_EVENT)
                .map(|chunk| EventBody::UsersRevoked {
                    app_id: app_id.clone(),
                    user_names: chunk.to_vec(),
                })
                .collect(),
            Self::DeleteUsers { app_id, user_names } => user_names
                .chunks(USERS_PER_EVENT)
                .map(|chunk| EventBody::UsersDeleted {
                    app_id: app_id.clone(),
                    user_names: chunk.to_vec(),
                })
                .collect(),
            Self::PutDepartment(d) => vec![EventBody::OrgSynced {
                department: d.clone(),
            }],
            Self::DeleteDepartment { org_code } => vec![EventBody::OrgDeleted {
                org_code: org_code.clone(),
            }],
            Self::SessionsEnded(sessions) => sessions
                .chunks(USERS_PER_EVENT)
                .map(|chunk| EventBody::SessionsEnded {
                    sessions: chunk.to_vec(),
                })
                .collect(),
            Self::ReplaceDepartments(all) => {
                let chunks = department_parts(all);
                let parts = chunks.len() as u32;
                chunks
                    .into_iter()
                    .enumerate()
                    .map(|(i, chunk)| EventBody::OrgsReplaced {
                        part: i as u32 + 1,
                        parts,
                        total: all.len() as u32,
                        departments: chunk.to_vec(),
                    })
                    .collect()
            }
        }
    }

    /// The change's name in logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::PutTenant(_) => "put tenant",
            Self::DeleteTenant => "delete tenant",
            Self::PutApp(_) => "put app",
            Self::DeleteApp { .. } => "delete app",
            Self::PutUsers { .. } => "put users",
            Self::RevokeUsers { .. } => "revoke users",
            Self::DeleteUsers { .. } => "delete users",
            Self::PutDepartment(_) => "put department",
            Self::DeleteDepartment { .. } => "delete department",
            Self::ReplaceDepartments(_) => "replace departments",
            Self::SessionsEnded(_) => "sessions ended",
        }
    }
}

/// What [`TenantDirectory::apply`] numbered: the events `first_seq..=last_seq` are pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub first_seq: u64,
    pub last_seq: u64,
}

/// Where the tenant directory lives. Each adapter passes `testing::directory_contract`.
#[async_trait]
pub trait TenantDirectory: Send + Sync {
    /// Applies one sync and records its events ([`DirectoryChange::events`], numbered after the
    /// tenant's last one, from 1) in one durable write: either both are stored or neither.
    /// Idempotent in effect: a repeat stores the same records (and numbers its events anew; the
    /// vendor's copies are ordered by `seq`).
    async fn apply(
        &self,
        key: &TenantKey,
        change: &DirectoryChange,
        now: DateTime<Utc>,
    ) -> Result<Applied, StoreError>;

    async fn tenant(&self, key: &TenantKey) -> Result<Option<Tenant>, StoreError>;
    /// The tenant's apps, by `app_id`.
    async fn apps(&self, key: &TenantKey) -> Result<Vec<App>, StoreError>;
    async fn user(
        &self,
        key: &TenantKey,
        app_id: &str,
        user_name: &str,
    ) -> Result<Option<User>, StoreError>;
    /// The app's users (revoked ones included), by `user_name`.
    async fn users(&self, key: &TenantKey, app_id: &str) -> Result<Vec<User>, StoreError>;
    /// The tenant's departments, by `org_code`.
    async fn departments(&self, key: &TenantKey) -> Result<Vec<Department>, StoreError>;

    /// The oldest undelivered events of the tenant, in `seq` order, at most `limit`.
    async fn pending_events(
        &self,
        key: &TenantKey,
        limit: usize,
    ) -> Result<Vec<DirectoryEvent>, StoreError>;
    /// Marks every event up to `seq` delivered (they are no longer pending).
    async fn events_delivered(&self, key: &TenantKey, seq: u64) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    #[test]
    fn department_events_are_cut_by_count_and_by_size() {
        use super::{
            DEPARTMENTS_PER_EVENT, Department, DirectoryChange, EventBody,
            MAX_EVENT_DEPARTMENT_BYTES,
        };
        let dept = |i: usize, name_len: usize| Department {
            org_code: format!("D{i:05}"),
            org_name: "部".repeat(name_len),
            parent_code: None,
        };
        let parts = |all: Vec<Department>| {
            DirectoryChange::ReplaceDepartments(all)
                .events()
                .into_iter()
                .map(|e| match e {
                    EventBody::OrgsReplaced {
                        departments,
                        part,
                        parts,
                        ..
                    } => (departments, part, parts),
                    other => panic!("{other:?}"),
                })
                .collect::<Vec<_>>()
        };
        let short = parts((0..5000).map(|i| dept(i, 4)).collect());
        assert_eq!(short.len(), 10);
        assert!(
            short
                .iter()
                .all(|(d, _, n)| d.len() == DEPARTMENTS_PER_EVENT && *n == 10)
        );
        // 512 three-byte characters each: 500 of them would be 770 KB.
        let long = parts((0..1000).map(|i| dept(i, 512)).collect());
        assert!(long.len() > 2, "{}", long.len());
        for (d, _, _) in &long {
            assert!(serde_json::to_vec(d).unwrap().len() <= MAX_EVENT_DEPARTMENT_BYTES);
        }
        assert_eq!(long.iter().map(|(d, _, _)| d.len()).sum::<usize>(), 1000);
        assert_eq!(
            long.last().map(|(_, p, n)| (*p, *n)),
            Some((long.len() as u32, long.len() as u32))
        );
        assert_eq!(
            parts(vec![]).len(),
            1,
            "an empty set is still reported, as one empty part"
        );
    }

    #[test]
    fn app_bindings_never_collide() {
        use super::TenantKey;
        let a = TenantKey::new("a/b", "c").app_binding("d");
        let b = TenantKey::new("a", "b/c").app_binding("d");
        let c = TenantKey::new("a%2Fb", "c").app_binding("d");
        assert!(a != b && a != c && b != c, "{a} {b} {c}");
        assert_eq!(TenantKey::new("", "t").app_binding("x"), "kit-app//t/x");
    }

    #[tokio::test]
    async fn the_memory_directory_passes_the_contract() {
        crate::testing::contract::directory_contract(Arc::new(
            crate::testing::MemoryDirectory::new(),
        ))
        .await;
    }
}
