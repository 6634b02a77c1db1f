//! Item keys and attribute names of the SSO items (see the [module docs](super)).

use koogallery::{
    directory::TenantKey,
    sso::{GrantKind, Session},
};

use crate::dynamo::keys::escape_component as esc;

pub const SESSION_PK_PREFIX: &str = "SSOSESSION#";
pub const SESSION_SK: &str = "SESSION";
pub const TENANT_PK_PREFIX: &str = "SSO#";
pub const INDEX_SK_PREFIX: &str = "SESSION#";
pub const GRANT_PK_PREFIX: &str = "SSOGRANT#";
pub const GRANT_SK: &str = "GRANT";
pub const CLIENT_PK: &str = "OIDCCLIENT";
pub const CLIENT_SK_PREFIX: &str = "CLIENT#";
pub const SIGNING_KEY_PK: &str = "OIDCKEY";
pub const SIGNING_KEY_SK_PREFIX: &str = "KEY#";
/// The session item's attributes naming its index item (so a replace checks it did not move).
pub const INDEX_PK: &str = "index_pk";
pub const INDEX_SK: &str = "index_sk";
/// The partition keys the SSO stores live under (for an IAM `dynamodb:LeadingKeys` condition).
pub const LEADING_KEYS: &[&str] = &[
    "SSOSESSION#*",
    "SSO#*",
    "SSOGRANT#*",
    CLIENT_PK,
    SIGNING_KEY_PK,
];

/// `SSOSESSION#{key}`: the session's own partition.
pub fn session_pk(key: &str) -> String {
    format!("{SESSION_PK_PREFIX}{}", esc(key))
}

/// `SSO#{instanceId}#{tenantId}`, escaped: the tenant's session index.
pub fn tenant_pk(tenant: &TenantKey) -> String {
    format!(
        "{TENANT_PK_PREFIX}{}#{}",
        esc(&tenant.instance_id),
        esc(&tenant.tenant_id)
    )
}

/// `SESSION#{appId}#{userName}#`: the prefix of one user's sessions in the tenant's index.
pub fn user_prefix(app_id: &str, user_name: &str) -> String {
    format!("{INDEX_SK_PREFIX}{}#{}#", esc(app_id), esc(user_name))
}

/// The session's index item key: (`SSO#{instanceId}#{tenantId}`,
/// `SESSION#{appId}#{userName}#{key}`).
pub fn index_key(s: &Session) -> (String, String) {
    (
        tenant_pk(&s.tenant_key()),
        format!(
            "{}{}",
            user_prefix(&s.app_id, &s.identity.user_name),
            esc(&s.key)
        ),
    )
}

/// `SSOGRANT#{kind}#{key}`.
pub fn grant_pk(kind: GrantKind, key: &str) -> String {
    format!("{GRANT_PK_PREFIX}{}#{}", kind.as_str(), esc(key))
}

/// `CLIENT#{clientId}`.
pub fn client_sk(client_id: &str) -> String {
    format!("{CLIENT_SK_PREFIX}{}", esc(client_id))
}

/// `KEY#{kid}`.
pub fn signing_key_sk(kid: &str) -> String {
    format!("{SIGNING_KEY_SK_PREFIX}{}", esc(kid))
}
