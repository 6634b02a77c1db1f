//! The tenant, app and user records: the writes that do not ride in the numbering transaction
//! (module docs, step 1), and the reads, sorted by ID as the memory directory sorts them.

use std::collections::{HashMap, HashSet, hash_map::Entry};

use koogallery::{
    StoreError,
    directory::{App, DirectoryChange, Tenant, TenantKey, User, record},
};

use super::{
    DynamoDirectory,
    items::{
        decode_app_item, decode_locator_item, decode_tenant_item, decode_user_item, put_request,
        record_item,
    },
    keys::*,
    requests::SkRange,
};
use crate::dynamo::{attr::key_of, sdk::delete_request};

impl DynamoDirectory {
    /// Step 1 (module docs): the records that do not ride in the numbering transaction.
    /// (The department changes write their chunks apart: [`Self::new_set`].)
    pub(super) async fn write_records(
        &self,
        pk: &str,
        change: &DirectoryChange,
    ) -> Result<(), StoreError> {
        match change {
            DirectoryChange::PutTenant(_)
            | DirectoryChange::PutApp(_)
            | DirectoryChange::PutDepartment(_)
            | DirectoryChange::DeleteDepartment { .. }
            | DirectoryChange::ReplaceDepartments(_)
            // Only events.
            | DirectoryChange::SessionsEnded(_) => Ok(()),
            // `TENANT` goes in the transaction; `SEQ` and `EVENT#` stay (numbering never
            // restarts; the tenantDeleted event must stay pending).
            DirectoryChange::DeleteTenant => {
                self.sweep(
                    pk,
                    &[APP_SK_PREFIX, USER_SK_PREFIX, ORG_SWEEP_PREFIX],
                    "delete tenant",
                )
                .await
            }
            // `APP#` goes in the transaction.
            DirectoryChange::DeleteApp { app_id } => {
                self.sweep(pk, &[&users_prefix(app_id)], "delete app's users")
                    .await
            }
            DirectoryChange::PutUsers { app_id, users } => self.put_users(pk, app_id, users).await,
            DirectoryChange::RevokeUsers { app_id, user_names } => {
                self.revoke_users(pk, app_id, user_names).await
            }
            DirectoryChange::DeleteUsers { app_id, user_names } => {
                let deletes = unique(user_names)
                    .map(|name| delete_request(key_of(pk, user_sk(app_id, name))))
                    .collect::<Result<Vec<_>, _>>()?;
                self.batch_write(deletes, "delete users").await
            }
        }
    }

    /// An authSync's users, put.
    async fn put_users(&self, pk: &str, app_id: &str, users: &[User]) -> Result<(), StoreError> {
        // One BatchWriteItem refuses two requests for one key: the last copy wins, as
        // it does in the memory directory.
        let puts = last_wins(users, |u| &u.user_name)
            .into_iter()
            .map(|u| {
                put_request(record_item(
                    pk,
                    user_sk(app_id, &u.user_name),
                    record::encode_user(u),
                )?)
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_write(puts, "put users").await
    }

    /// The users an authSync revokes, marked so.
    async fn revoke_users(
        &self,
        pk: &str,
        app_id: &str,
        user_names: &[String],
    ) -> Result<(), StoreError> {
        // authSync flag 3 keeps the record, marked revoked; a user not stored is not
        // created (docs/protocol/decisions.md §16).
        let keys = unique(user_names)
            .map(|name| key_of(pk, user_sk(app_id, name)))
            .collect();
        let mut puts = Vec::new();
        for item in self.batch_get(keys).await? {
            let mut user = decode_user_item(&item, app_id)?;
            if !user.revoked {
                user.revoked = true;
                puts.push(put_request(record_item(
                    pk,
                    user_sk(app_id, &user.user_name),
                    record::encode_user(&user),
                )?)?);
            }
        }
        self.batch_write(puts, "revoke users").await
    }

    pub(super) async fn read_tenant(&self, key: &TenantKey) -> Result<Option<Tenant>, StoreError> {
        self.table
            .get_item(&tenant_pk(key), TENANT_SK)
            .await?
            .map(|item| decode_tenant_item(&item))
            .transpose()
    }

    /// `TenantLocator::tenants_by_id`: one `Query` of the locator partition.
    pub(super) async fn read_tenants_by_id(
        &self,
        tenant_id: &str,
    ) -> Result<Vec<(TenantKey, Tenant)>, StoreError> {
        let items = self
            .query(
                &locator_pk(tenant_id),
                SkRange::Prefix(LOCATOR_SK_PREFIX),
                false,
                None,
            )
            .await?;
        items
            .iter()
            .map(|item| decode_locator_item(tenant_id, item))
            .collect()
    }

    pub(super) async fn read_apps(&self, key: &TenantKey) -> Result<Vec<App>, StoreError> {
        let items = self
            .query(&tenant_pk(key), SkRange::Prefix(APP_SK_PREFIX), false, None)
            .await?;
        let mut apps = items
            .iter()
            .map(decode_app_item)
            .collect::<Result<Vec<_>, _>>()?;
        apps.sort_by(|a, b| a.app_id.cmp(&b.app_id));
        Ok(apps)
    }

    pub(super) async fn read_user(
        &self,
        key: &TenantKey,
        app_id: &str,
        user_name: &str,
    ) -> Result<Option<User>, StoreError> {
        self.table
            .get_item(&tenant_pk(key), &user_sk(app_id, user_name))
            .await?
            .map(|item| decode_user_item(&item, app_id))
            .transpose()
    }

    pub(super) async fn read_users(
        &self,
        key: &TenantKey,
        app_id: &str,
    ) -> Result<Vec<User>, StoreError> {
        let prefix = users_prefix(app_id);
        let items = self
            .query(&tenant_pk(key), SkRange::Prefix(&prefix), false, None)
            .await?;
        let mut users = items
            .iter()
            .map(|item| decode_user_item(item, app_id))
            .collect::<Result<Vec<_>, _>>()?;
        users.sort_by(|a, b| a.user_name.cmp(&b.user_name));
        Ok(users)
    }
}

/// The last of the items sharing a key, in the order of their first appearance.
pub(super) fn last_wins<'a, T>(all: &'a [T], key: impl Fn(&'a T) -> &'a str) -> Vec<&'a T> {
    let mut at: HashMap<&str, usize> = HashMap::with_capacity(all.len());
    let mut out: Vec<&T> = Vec::with_capacity(all.len());
    for t in all {
        match at.entry(key(t)) {
            Entry::Occupied(e) => out[*e.get()] = t,
            Entry::Vacant(e) => {
                e.insert(out.len());
                out.push(t);
            }
        }
    }
    out
}

pub(super) fn unique(names: &[String]) -> impl Iterator<Item = &str> {
    let mut seen = HashSet::with_capacity(names.len());
    names
        .iter()
        .map(String::as_str)
        .filter(move |n| seen.insert(*n))
}
