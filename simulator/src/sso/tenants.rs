//! What the 联营 Kit syncs tell the auth centre about a tenant (docs/protocol/callbacks.md §9.1–§9.3,
//! §10): its name, its client per app, its users; and the tenant a kit run syncs.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A user as authSync sends it (docs/protocol/callbacks.md §9.3); unknown fields (`enable`,
/// `position`, …) are ignored: the auth centre knows the account, not the vendor's rights.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SsoUser {
    pub user_name: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub org_code: String,
    /// Not in authSync; when absent userinfo says `部门 {orgCode}`.
    #[serde(default)]
    pub organization_name: Option<String>,
    #[serde(default = "user_role")]
    pub role: String,
    #[serde(default)]
    pub mobile: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

fn user_role() -> String {
    "user".into()
}

/// A tenant as the syncs made it known (tenantSync's name, applicationSync's client, authSync's
/// users). Registering a tenant again adds the app's client and adds or replaces users by
/// `userName`. Not `Debug`: it holds the client secret.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SsoTenantRegistration {
    pub tenant_id: String,
    #[serde(default)]
    pub name: String,
    pub app_id: String,
    pub client_id: String,
    pub client_secret: String,
    #[serde(default)]
    pub users: Vec<SsoUser>,
}

impl SsoTenantRegistration {
    /// The tenant a kit run syncs: tenantSync's name, applicationSync's `client-{app_id}` with
    /// the plaintext `client_secret`, and the first `users` of `kit::users`.
    pub fn kit(tenant_id: &str, app_id: &str, client_secret: &str, users: usize) -> Self {
        Self::from_users(tenant_id, app_id, client_secret, &crate::kit::users(users))
    }

    /// As [`Self::kit`] with the authSync user objects given; one that does not parse (no
    /// `userName`) is left out.
    pub fn from_users(tenant_id: &str, app_id: &str, client_secret: &str, users: &[Value]) -> Self {
        Self {
            tenant_id: tenant_id.to_owned(),
            name: KIT_TENANT_NAME.to_owned(),
            app_id: app_id.to_owned(),
            client_id: format!("client-{app_id}"),
            client_secret: client_secret.to_owned(),
            users: users
                .iter()
                .filter_map(|u| serde_json::from_value(u.clone()).ok())
                .collect(),
        }
    }
}

/// The tenant name `kit::tenant_sync` sends.
pub const KIT_TENANT_NAME: &str = "华为软件技术有限公司";
