//! The ports the SSO records live behind (docs/protocol/decisions.md §19): sessions, grants
//! (pending logins, authorization codes, access tokens), OIDC clients and signing keys. Every
//! adapter passes `testing::contract::sso_store_contract`; expiry is the store's TTL where it has
//! one, and the domain checks the time on every read regardless.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{GrantKind, OidcClient, Session, StoredSigningKey};
use crate::{
    directory::{Tenant, TenantKey},
    storage::StoreError,
};

#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session; [`StoreError::Conflict`] if its key is taken.
    async fn create_session(&self, session: &Session) -> Result<(), StoreError>;
    async fn session(&self, key: &str) -> Result<Option<Session>, StoreError>;
    /// Writes `session` (whose `version` is one more than `read_version`) only over the version
    /// read; [`StoreError::Conflict`] if it changed or was deleted meanwhile.
    async fn replace_session(&self, session: &Session, read_version: u64)
    -> Result<(), StoreError>;
    /// Deletes it, returning what was there.
    async fn delete_session(&self, key: &str) -> Result<Option<Session>, StoreError>;
    /// The sessions of one user of one app of a tenant (authSync revoke, delete, disable).
    async fn sessions_of_user(
        &self,
        tenant: &TenantKey,
        app_id: &str,
        user_name: &str,
    ) -> Result<Vec<Session>, StoreError>;
    /// The sessions of a tenant, every app (tenant delete; app delete filters by app).
    async fn sessions_of_tenant(&self, tenant: &TenantKey) -> Result<Vec<Session>, StoreError>;
}

#[async_trait]
pub trait GrantStore: Send + Sync {
    /// Stores an encoded grant under the hash of its opaque value until `expires_at`.
    async fn put_grant(
        &self,
        kind: GrantKind,
        key: &str,
        record: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Removes and returns it, once: a second take, or a take after `expires_at`, is `None`.
    /// Two concurrent takes never both get it.
    async fn take_grant(
        &self,
        kind: GrantKind,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError>;
    /// Reads it without taking it; `None` after `expires_at`.
    async fn grant(
        &self,
        kind: GrantKind,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError>;
}

#[async_trait]
pub trait ClientStore: Send + Sync {
    /// Creates or replaces the client.
    async fn put_client(&self, client: &OidcClient) -> Result<(), StoreError>;
    async fn client(&self, client_id: &str) -> Result<Option<OidcClient>, StoreError>;
    /// Every client, by `client_id`.
    async fn clients(&self) -> Result<Vec<OidcClient>, StoreError>;
    /// `true` if it was there.
    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError>;
}

#[async_trait]
pub trait SigningKeyStore: Send + Sync {
    /// Every key, oldest first.
    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError>;
    /// Adds a key; `false` (and nothing written) if its `kid` exists.
    async fn add_signing_key(&self, key: &StoredSigningKey) -> Result<bool, StoreError>;
    async fn remove_signing_key(&self, kid: &str) -> Result<(), StoreError>;
}

/// Everything SSO stores, as one backend offers it.
pub trait SsoStore: SessionStore + GrantStore + ClientStore + SigningKeyStore {}
impl<T: SessionStore + GrantStore + ClientStore + SigningKeyStore> SsoStore for T {}

/// The tenants of a `tenantId`, whatever their instance: the unified login names only the tenant
/// (docs/protocol/callbacks.md §10). A port of its own beside `directory::TenantDirectory`, which
/// is keyed by (instanceId, tenantId).
#[async_trait]
pub trait TenantLocator: Send + Sync {
    /// The tenants with this ID that exist (deleted ones are not listed), any order.
    async fn tenants_by_id(&self, tenant_id: &str) -> Result<Vec<(TenantKey, Tenant)>, StoreError>;
}
