//! What the vendor hears of directory changes (docs/protocol/callbacks.md §9): one event per
//! change, or per batch of users or departments, numbered per tenant. Events are stored in the same
//! write as the change and sit in the store until delivered, so their serde form is a versioned
//! contract: the golden file `tests/fixtures/directory_events_v1.json` pins it (and the vendor's
//! webhook event embeds it).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Department, User};
use crate::order::OrderId;

/// A numbered event of one tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectoryEvent {
    /// Position in the tenant's event sequence, from 1: deliver in this order; a vendor applies an
    /// event only if its `seq` is above the last one it applied (delivery is at least once).
    pub seq: u64,
    /// When the sync that produced it was applied.
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub body: EventBody,
}

/// Version 1 of the event bodies: `event` names it (camelCase, like the instance events), the other
/// fields are camelCase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "event",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum EventBody {
    /// tenantSync add or modify.
    TenantSynced {
        order_id: OrderId,
        tenant_code: String,
        name: String,
        domain_name: String,
    },
    /// tenantSync delete: its apps, users and departments are gone too.
    TenantDeleted,
    /// applicationSync add or modify (the client secret is never in an event).
    AppSynced { app_id: String, client_id: String },
    /// applicationSync delete: its users are gone too.
    AppDeleted { app_id: String },
    /// authSync add or modify: these users may use the app (if `enabled`).
    UsersAuthorized {
        app_id: String,
        users: Vec<EventUser>,
    },
    /// authSync revoke: these users may no longer use the app; their records are kept.
    UsersRevoked {
        app_id: String,
        user_names: Vec<String>,
    },
    /// authSync delete.
    UsersDeleted {
        app_id: String,
        user_names: Vec<String>,
    },
    /// singleOrgSync add or modify.
    OrgSynced { department: Department },
    /// singleOrgSync delete.
    OrgDeleted { org_code: String },
    /// allOrgSync: part `part` of `parts` of the tenant's whole department set (`total`
    /// departments); once the last part is in, departments not in any part are gone.
    OrgsReplaced {
        part: u32,
        parts: u32,
        total: u32,
        departments: Vec<Department>,
    },
    /// 联营 single sign-on: these sessions ended (docs/protocol/decisions.md §19), for vendors that
    /// follow sessions through their webhook as well as by back-channel logout.
    SessionsEnded { sessions: Vec<EndedSession> },
}

/// One SSO session that ended: its OIDC `sid` and `sub` (as in the ID tokens the vendor's apps
/// received), the app and user, and why (`logged_out`, `expired`, `refresh_failed`,
/// `user_revoked`, `tenant_or_app_deleted`, `replaced`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndedSession {
    pub sid: String,
    pub sub: String,
    pub app_id: String,
    pub user_name: String,
    pub reason: String,
}

impl EventBody {
    /// The `event` name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::TenantSynced { .. } => "tenantSynced",
            Self::TenantDeleted => "tenantDeleted",
            Self::AppSynced { .. } => "appSynced",
            Self::AppDeleted { .. } => "appDeleted",
            Self::UsersAuthorized { .. } => "usersAuthorized",
            Self::UsersRevoked { .. } => "usersRevoked",
            Self::UsersDeleted { .. } => "usersDeleted",
            Self::OrgSynced { .. } => "orgSynced",
            Self::OrgDeleted { .. } => "orgDeleted",
            Self::OrgsReplaced { .. } => "orgsReplaced",
            Self::SessionsEnded { .. } => "sessionsEnded",
        }
    }
}

/// A user as an event reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventUser {
    pub user_name: String,
    pub name: String,
    pub org_code: String,
    pub role: String,
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employee_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employee_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_place: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_date: Option<String>,
}

impl From<&User> for EventUser {
    fn from(u: &User) -> Self {
        Self {
            user_name: u.user_name.clone(),
            name: u.name.clone(),
            org_code: u.org_code.clone(),
            role: u.role.clone(),
            enabled: u.enabled,
            position: u.position.clone(),
            employee_code: u.employee_code.clone(),
            employee_type: u.employee_type.clone(),
            mobile: u.mobile.clone(),
            email: u.email.clone(),
            work_place: u.work_place.clone(),
            entry_date: u.entry_date.clone(),
        }
    }
}
