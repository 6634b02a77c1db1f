//! The SSO stores over redb (docs/protocol/decisions.md §19), mirroring
//! `koogallery::testing::MemorySso`: sessions in `sso_sessions`, indexed by tenant, app and user in
//! `sso_session_index` and by end of life in `sso_session_expiry`; grants in `sso_grants` with
//! `sso_grant_expiry`; OIDC clients in `sso_clients`; signing keys in `sso_signing_keys` (key
//! layout: the crate docs). Values are the versioned records of `koogallery::sso::record`; a grant
//! is stored as the caller encoded it.
//!
//! A session and its index entries are one write transaction: the indexes never point at a
//! session that is not there. redb runs one writer at a time, so `take_grant` (read and delete in
//! one write transaction) hands a grant out once, and `replace_session` compares the version it
//! finds inside the transaction that writes.
//!
//! Expiry: a grant is absent from `expires_at` on, whatever is on disk. Nothing wakes up to purge;
//! instead each `take_grant` — a write every login makes, carrying the caller's clock — deletes up
//! to [`PURGE_BATCH`] grants past their `expires_at` and as many sessions past their
//! `refresh_expires_at` (a session never outlives it). The caller's `now` is used, never the wall
//! clock, so an injected clock in tests and the purge agree.
//!
//! [`TenantLocator`] scans `dir_tenants` keys (one row per tenant, values decoded only for the
//! matching ones): the embedded store serves one host with few tenants, where an index would cost
//! more (a migration for files written before it) than it saves.

use async_trait::async_trait;
use koogallery::{
    StoreError,
    directory::{Tenant, TenantKey, record as dir_record},
    sso::TenantLocator,
};
use redb::ReadableTable;

use crate::{DIR_TENANTS, EmbeddedStore, Fault};

mod grants;
mod oidc;
mod sessions;

/// How many expired grants, and how many ended sessions, one `take_grant` deletes at most.
pub const PURGE_BATCH: usize = 32;

/// The smallest string above `s` (see `directory::after`): a range up to it holds exactly `s`.
fn after(s: &str) -> String {
    format!("{s}\0")
}

/// A session key as a log-safe name: the key is a hash already, a prefix is enough to find it.
fn short(key: &str) -> &str {
    key.get(..12).unwrap_or(key)
}

fn corrupt(what: String, e: StoreError) -> Fault {
    let m = match e {
        StoreError::Corrupt(m) => m.to_string(),
        other => other.to_string(),
    };
    Fault::Corrupt(format!("{what}: {m}"))
}

#[async_trait]
impl TenantLocator for EmbeddedStore {
    async fn tenants_by_id(&self, tenant_id: &str) -> Result<Vec<(TenantKey, Tenant)>, StoreError> {
        let wanted = tenant_id.to_owned();
        Ok(self
            .blocking(move |db| {
                let table = db.begin_read()?.open_table(DIR_TENANTS)?;
                let mut out = Vec::new();
                for entry in table.iter()? {
                    let (k, v) = entry?;
                    let (instance_id, tenant_id) = k.value();
                    if tenant_id != wanted {
                        continue;
                    }
                    let tenant = dir_record::decode_tenant(v.value()).map_err(|e| {
                        corrupt(
                            format!("tenant {tenant_id:?} of instance {instance_id:?}"),
                            e,
                        )
                    })?;
                    out.push((TenantKey::new(instance_id, tenant_id), tenant));
                }
                Ok(out)
            })
            .await?)
    }
}
