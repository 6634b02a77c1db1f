//! Sessions the Kit syncs end (docs/protocol/decisions.md §19): an authSync revoke, delete or
//! `enable=false`, an app delete or a tenant delete ends the affected sessions when the worker
//! delivers the directory event, and the vendor's app hears it by back-channel logout then, not on
//! the session's next use.

use async_trait::async_trait;

use crate::directory::{EventBody, TenantKey};
use crate::storage::StoreError;

/// Whose sessions a directory change ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndScope {
    /// Every session of the tenant (tenantSync delete).
    Tenant,
    /// Every session of one app (applicationSync delete).
    App(String),
    /// These users' sessions of one app (authSync revoke or delete, or `enable=false`).
    Users {
        app_id: String,
        user_names: Vec<String>,
    },
}

impl EndScope {
    /// The sessions `event` ends, if any.
    pub fn of(event: &EventBody) -> Option<Self> {
        match event {
            EventBody::TenantDeleted => Some(Self::Tenant),
            EventBody::AppDeleted { app_id } => Some(Self::App(app_id.clone())),
            EventBody::UsersRevoked { app_id, user_names }
            | EventBody::UsersDeleted { app_id, user_names } => Some(Self::Users {
                app_id: app_id.clone(),
                user_names: user_names.clone(),
            }),
            EventBody::UsersAuthorized { app_id, users } => {
                let disabled: Vec<String> = users
                    .iter()
                    .filter(|u| !u.enabled)
                    .map(|u| u.user_name.clone())
                    .collect();
                (!disabled.is_empty()).then(|| Self::Users {
                    app_id: app_id.clone(),
                    user_names: disabled,
                })
            }
            _ => None,
        }
    }
}

/// Ends sessions and tells their clients (the OIDC provider). Idempotent: ending sessions already
/// gone ends none.
#[async_trait]
pub trait SessionEnder: Send + Sync {
    /// How many sessions ended.
    async fn end_sessions(&self, tenant: &TenantKey, scope: &EndScope)
    -> Result<usize, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::EventUser;

    #[test]
    fn the_changes_that_end_sessions_are_deletes_revokes_and_disabled_users() {
        assert_eq!(
            EndScope::of(&EventBody::TenantDeleted),
            Some(EndScope::Tenant)
        );
        assert_eq!(
            EndScope::of(&EventBody::AppDeleted { app_id: "a".into() }),
            Some(EndScope::App("a".into()))
        );
        let revoked = EventBody::UsersRevoked {
            app_id: "a".into(),
            user_names: vec!["u".into()],
        };
        assert_eq!(
            EndScope::of(&revoked),
            Some(EndScope::Users {
                app_id: "a".into(),
                user_names: vec!["u".into()]
            })
        );
        let user = |name: &str, enabled: bool| EventUser {
            user_name: name.into(),
            name: "n".into(),
            org_code: "o".into(),
            role: "user".into(),
            enabled,
            position: None,
            employee_code: None,
            employee_type: None,
            mobile: None,
            email: None,
            work_place: None,
            entry_date: None,
        };
        let authorized = EventBody::UsersAuthorized {
            app_id: "a".into(),
            users: vec![user("on", true), user("off", false)],
        };
        assert_eq!(
            EndScope::of(&authorized),
            Some(EndScope::Users {
                app_id: "a".into(),
                user_names: vec!["off".into()]
            })
        );
        let all_on = EventBody::UsersAuthorized {
            app_id: "a".into(),
            users: vec![user("on", true)],
        };
        assert_eq!(EndScope::of(&all_on), None);
        assert_eq!(
            EndScope::of(&EventBody::OrgDeleted {
                org_code: "o".into()
            }),
            None
        );
    }
}
