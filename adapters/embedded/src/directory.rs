//! [`TenantDirectory`] over redb (docs/protocol/decisions.md §16; docs/protocol/callbacks.md §9),
//! mirroring `koogallery::testing::MemoryDirectory`: records in `dir_tenants`, `dir_apps`,
//! `dir_users` and `dir_departments`, the tenant's event numbering in `dir_last_seq`, undelivered
//! events in `dir_events` (key layout: the crate docs). Values are the versioned records of
//! `koogallery::directory::record`.
//!
//! A sync is one write transaction, one durable commit, with the events it produces: a 500-user
//! authSync or a 5 000-department allOrgSync is stored whole or not at all. redb runs one writer
//! at a time, so two syncs of a tenant never number the same seq.
//!
//! A tenant's records are a key range: its (instanceId, tenantId) tuple is compared element by
//! element, never as a string prefix (see [`Scope`]). So are an instance's tenants: the operator's
//! [`KitTenants`] reads them, each with its apps, users and departments, in one read transaction
//! (one snapshot), by key ranges, without a scan.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use koogallery::{
    StoreError,
    directory::{
        App, Applied, Department, DirectoryChange, DirectoryEvent, EventBody, Tenant,
        TenantDirectory, TenantId, TenantKey, User, record,
    },
    operator::{KitTenant, KitTenants},
};
use redb::{AccessGuard, ReadableTable, StorageError};

use crate::{
    DIR_APPS, DIR_DEPARTMENTS, DIR_EVENTS, DIR_LAST_SEQ, DIR_TENANTS, DIR_USERS, EmbeddedStore,
    Fault, Write,
};

/// The smallest string above `s`: nothing sorts strictly between `s` and `s` + NUL, so a key
/// range from (…, `s`, "") up to (…, [`after`]`(s)`, "") holds exactly the keys whose element is
/// `s`, whatever the ids hold.
fn after(s: &str) -> String {
    format!("{s}\0")
}

/// One tenant's key parts, owned so they move into the blocking task.
struct Scope {
    instance_id: String,
    tenant_id: TenantId,
    /// [`after`] the tenant id: the exclusive end of the tenant's ranges.
    tenant_end: String,
}

impl Scope {
    fn of(key: &TenantKey) -> Self {
        Self {
            instance_id: key.instance_id.clone(),
            tenant_id: key.tenant_id.clone(),
            tenant_end: after(&key.tenant_id),
        }
    }

    fn key(&self) -> (&str, &str) {
        (self.instance_id.as_str(), self.tenant_id.as_str())
    }

    /// The tenant's apps or departments.
    fn range3(&self) -> std::ops::Range<(&str, &str, &str)> {
        let (i, t, end) = (
            self.instance_id.as_str(),
            self.tenant_id.as_str(),
            self.tenant_end.as_str(),
        );
        (i, t, "")..(i, end, "")
    }

    /// The tenant's users, of every app.
    fn range4(&self) -> std::ops::Range<(&str, &str, &str, &str)> {
        let (i, t, end) = (
            self.instance_id.as_str(),
            self.tenant_id.as_str(),
            self.tenant_end.as_str(),
        );
        (i, t, "", "")..(i, end, "", "")
    }

    /// The tenant's events up to `seq`.
    fn events_to(&self, seq: u64) -> std::ops::RangeInclusive<(&str, &str, u64)> {
        (self.instance_id.as_str(), self.tenant_id.as_str(), 0)
            ..=(self.instance_id.as_str(), self.tenant_id.as_str(), seq)
    }

    /// A record that cannot be decoded, named with its tenant (never a panic: a damaged file is
    /// reported, and retrying will not help).
    fn corrupt(&self, e: StoreError) -> Fault {
        let m = match e {
            StoreError::Corrupt(m) => m.to_string(),
            other => other.to_string(),
        };
        Fault::Corrupt(format!(
            "{m} (instance {:?}, tenant {:?})",
            self.instance_id, self.tenant_id
        ))
    }
}

type Entry<'a, K> = Result<(AccessGuard<'a, K>, AccessGuard<'a, &'static [u8]>), StorageError>;

/// Decodes the values of a range scan, in key order.
fn decode_all<'a, K: redb::Key + 'static, T>(
    scope: &Scope,
    entries: impl Iterator<Item = Entry<'a, K>>,
    decode: fn(&[u8]) -> Result<T, StoreError>,
) -> Result<Vec<T>, Fault> {
    entries
        .map(|entry| {
            let (_, v) = entry?;
            decode(v.value()).map_err(|e| scope.corrupt(e))
        })
        .collect()
}

/// Applies `change` to the tenant's records: `MemoryDirectory`'s `apply_to`, the rules every
/// adapter follows (docs/protocol/decisions.md §16). Unknown records are upserted or, deleted, a
/// success.
fn change_in(txn: &Write<'_>, s: &Scope, change: &DirectoryChange) -> Result<(), Fault> {
    let (i, t) = s.key();
    match change {
        DirectoryChange::PutTenant(tenant) => {
            txn.open_table(DIR_TENANTS)?
                .insert(s.key(), record::encode_tenant(tenant).as_slice())?;
        }
        DirectoryChange::DeleteTenant => delete_tenant_in(txn, s)?,
        DirectoryChange::PutApp(app) => {
            txn.open_table(DIR_APPS)?.insert(
                (i, t, app.app_id.as_str()),
                record::encode_app(app).as_slice(),
            )?;
        }
        DirectoryChange::DeleteApp { app_id } => {
            txn.open_table(DIR_APPS)?.remove((i, t, app_id.as_str()))?;
            let end = after(app_id);
            txn.open_table(DIR_USERS)?.retain_in(
                (i, t, app_id.as_str(), "")..(i, t, end.as_str(), ""),
                |_, _| false,
            )?;
        }
        DirectoryChange::PutUsers { app_id, users } => put_users_in(txn, s, app_id, users)?,
        DirectoryChange::RevokeUsers { app_id, user_names } => {
            revoke_users_in(txn, s, app_id, user_names)?;
        }
        DirectoryChange::DeleteUsers { app_id, user_names } => {
            let mut table = txn.open_table(DIR_USERS)?;
            for name in user_names {
                table.remove((i, t, app_id.as_str(), name.as_str()))?;
            }
        }
        DirectoryChange::PutDepartment(d) => {
            txn.open_table(DIR_DEPARTMENTS)?.insert(
                (i, t, d.org_code.as_str()),
                record::encode_department(d).as_slice(),
            )?;
        }
        DirectoryChange::DeleteDepartment { org_code } => {
            txn.open_table(DIR_DEPARTMENTS)?
                .remove((i, t, org_code.as_str()))?;
        }
        DirectoryChange::ReplaceDepartments(all) => replace_departments_in(txn, s, all)?,
        // Only events.
        DirectoryChange::SessionsEnded(_) => {}
    }
    Ok(())
}

/// Range deletes of this (instanceId, tenantId) only; its event numbering and undelivered events
/// stay (the `tenantDeleted` event is among them).
fn delete_tenant_in(txn: &Write<'_>, s: &Scope) -> Result<(), Fault> {
    txn.open_table(DIR_TENANTS)?.remove(s.key())?;
    txn.open_table(DIR_APPS)?
        .retain_in(s.range3(), |_, _| false)?;
    txn.open_table(DIR_USERS)?
        .retain_in(s.range4(), |_, _| false)?;
    txn.open_table(DIR_DEPARTMENTS)?
        .retain_in(s.range3(), |_, _| false)?;
    Ok(())
}

fn put_users_in(txn: &Write<'_>, s: &Scope, app_id: &str, users: &[User]) -> Result<(), Fault> {
    let (i, t) = s.key();
    let mut table = txn.open_table(DIR_USERS)?;
    for u in users {
        table.insert(
            (i, t, app_id, u.user_name.as_str()),
            record::encode_user(u).as_slice(),
        )?;
    }
    Ok(())
}

/// The record is kept, marked revoked; an unknown user gets none (docs/protocol/decisions.md §16).
fn revoke_users_in(
    txn: &Write<'_>,
    s: &Scope,
    app_id: &str,
    user_names: &[String],
) -> Result<(), Fault> {
    let (i, t) = s.key();
    let mut table = txn.open_table(DIR_USERS)?;
    for name in user_names {
        let k = (i, t, app_id, name.as_str());
        let stored = table
            .get(k)?
            .map(|v| record::decode_user(v.value()))
            .transpose()
            .map_err(|e| s.corrupt(e))?;
        if let Some(mut u) = stored {
            u.revoked = true;
            table.insert(k, record::encode_user(&u).as_slice())?;
        }
    }
    Ok(())
}

/// allOrgSync (docs/protocol/callbacks.md §9.5): the whole set, replaced in this one transaction.
fn replace_departments_in(txn: &Write<'_>, s: &Scope, all: &[Department]) -> Result<(), Fault> {
    let (i, t) = s.key();
    let mut table = txn.open_table(DIR_DEPARTMENTS)?;
    table.retain_in(s.range3(), |_, _| false)?;
    for d in all {
        table.insert(
            (i, t, d.org_code.as_str()),
            record::encode_department(d).as_slice(),
        )?;
    }
    Ok(())
}

/// The change and its events, numbered after the tenant's last seq, in one durable commit.
fn apply_in(
    txn: Write<'_>,
    s: &Scope,
    change: &DirectoryChange,
    events: &[EventBody],
    now: DateTime<Utc>,
) -> Result<Applied, Fault> {
    let (i, t) = s.key();
    change_in(&txn, s, change)?;
    let applied = {
        let mut seqs = txn.open_table(DIR_LAST_SEQ)?;
        let last = seqs.get(s.key())?.map(|v| v.value()).unwrap_or(0);
        let mut table = txn.open_table(DIR_EVENTS)?;
        let mut seq = last;
        for body in events {
            seq += 1;
            let event = DirectoryEvent {
                seq,
                at: now,
                body: body.clone(),
            };
            if table
                .insert((i, t, seq), record::encode_event(&event).as_slice())?
                .is_some()
            {
                // Seqs only grow, so one already stored means `dir_last_seq` lost its place:
                // refuse (the transaction is dropped) rather than overwrite an undelivered event.
                return Err(Fault::Corrupt(format!(
                    "directory event {seq} of instance {i:?}, tenant {t:?} is already stored \
                     above the last seq {last}"
                )));
            }
        }
        if seq != last {
            seqs.insert(s.key(), seq)?;
        }
        Applied {
            first_seq: last + 1,
            last_seq: seq,
        }
    };
    txn.commit()?;
    Ok(applied)
}

#[async_trait]
impl TenantDirectory for EmbeddedStore {
    async fn apply(
        &self,
        key: &TenantKey,
        change: &DirectoryChange,
        now: DateTime<Utc>,
    ) -> Result<Applied, StoreError> {
        let (s, change, events) = (Scope::of(key), change.clone(), change.events());
        Ok(self
            .blocking(move |db| apply_in(db.begin_write()?, &s, &change, &events, now))
            .await?)
    }

    async fn tenant(&self, key: &TenantKey) -> Result<Option<Tenant>, StoreError> {
        let s = Scope::of(key);
        Ok(self
            .blocking(move |db| {
                let table = db.begin_read()?.open_table(DIR_TENANTS)?;
                table
                    .get(s.key())?
                    .map(|v| record::decode_tenant(v.value()))
                    .transpose()
                    .map_err(|e| s.corrupt(e))
            })
            .await?)
    }

    async fn apps(&self, key: &TenantKey) -> Result<Vec<App>, StoreError> {
        let s = Scope::of(key);
        Ok(self
            .blocking(move |db| {
                let table = db.begin_read()?.open_table(DIR_APPS)?;
                decode_all(&s, table.range(s.range3())?, record::decode_app)
            })
            .await?)
    }

    async fn user(
        &self,
        key: &TenantKey,
        app_id: &str,
        user_name: &str,
    ) -> Result<Option<User>, StoreError> {
        let (s, app_id, user_name) = (Scope::of(key), app_id.to_owned(), user_name.to_owned());
        Ok(self
            .blocking(move |db| {
                let table = db.begin_read()?.open_table(DIR_USERS)?;
                let (i, t) = s.key();
                table
                    .get((i, t, app_id.as_str(), user_name.as_str()))?
                    .map(|v| record::decode_user(v.value()))
                    .transpose()
                    .map_err(|e| s.corrupt(e))
            })
            .await?)
    }

    async fn users(&self, key: &TenantKey, app_id: &str) -> Result<Vec<User>, StoreError> {
        let (s, app_id) = (Scope::of(key), app_id.to_owned());
        Ok(self
            .blocking(move |db| {
                let table = db.begin_read()?.open_table(DIR_USERS)?;
                let (i, t) = s.key();
                let end = after(&app_id);
                let range = (i, t, app_id.as_str(), "")..(i, t, end.as_str(), "");
                decode_all(&s, table.range(range)?, record::decode_user)
            })
            .await?)
    }

    async fn departments(&self, key: &TenantKey) -> Result<Vec<Department>, StoreError> {
        let s = Scope::of(key);
        Ok(self
            .blocking(move |db| {
                let table = db.begin_read()?.open_table(DIR_DEPARTMENTS)?;
                decode_all(&s, table.range(s.range3())?, record::decode_department)
            })
            .await?)
    }

    async fn pending_events(
        &self,
        key: &TenantKey,
        limit: usize,
    ) -> Result<Vec<DirectoryEvent>, StoreError> {
        let s = Scope::of(key);
        Ok(self
            .blocking(move |db| {
                let table = db.begin_read()?.open_table(DIR_EVENTS)?;
                let pending = table.range(s.events_to(u64::MAX))?.take(limit);
                decode_all(&s, pending, record::decode_event)
            })
            .await?)
    }

    async fn events_delivered(&self, key: &TenantKey, seq: u64) -> Result<(), StoreError> {
        let s = Scope::of(key);
        Ok(self
            .blocking(move |db| {
                let txn = db.begin_write()?;
                txn.open_table(DIR_EVENTS)?
                    .retain_in(s.events_to(seq), |_, _| false)?;
                txn.commit()?;
                Ok(())
            })
            .await?)
    }
}

#[async_trait]
impl KitTenants for EmbeddedStore {
    async fn kit_tenants(&self, instance_id: &str) -> Result<Vec<KitTenant>, StoreError> {
        let instance_id = instance_id.to_owned();
        Ok(self
            .blocking(move |db| {
                let txn = db.begin_read()?;
                let tenants = txn.open_table(DIR_TENANTS)?;
                let apps = txn.open_table(DIR_APPS)?;
                let users = txn.open_table(DIR_USERS)?;
                let departments = txn.open_table(DIR_DEPARTMENTS)?;
                let end = after(&instance_id);
                let mut found = Vec::new();
                for entry in tenants.range((instance_id.as_str(), "")..(end.as_str(), ""))? {
                    let (k, v) = entry?;
                    let (i, t) = k.value();
                    let s = Scope::of(&TenantKey::new(i, t));
                    let tenant = record::decode_tenant(v.value()).map_err(|e| s.corrupt(e))?;
                    found.push(
                        KitTenant {
                            tenant,
                            apps: decode_all(&s, apps.range(s.range3())?, record::decode_app)?,
                            users: decode_all(&s, users.range(s.range4())?, record::decode_user)?,
                            departments: decode_all(
                                &s,
                                departments.range(s.range3())?,
                                record::decode_department,
                            )?,
                            key: TenantKey::new(s.instance_id, s.tenant_id),
                        }
                        .sorted(),
                    );
                }
                Ok(found)
            })
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::testing::LimitedDisk;

    fn user(name: &str) -> User {
        koogallery::testing::directory::sample_user("a1", name, Utc::now())
    }

    fn put_users(n: usize) -> DirectoryChange {
        DirectoryChange::PutUsers {
            app_id: "a1".into(),
            users: (0..n).map(|i| user(&format!("user{i:03}"))).collect(),
        }
    }

    async fn apply(
        store: &EmbeddedStore,
        key: &TenantKey,
        change: &DirectoryChange,
    ) -> Result<Applied, StoreError> {
        store.apply(key, change, Utc::now()).await
    }

    /// A 500-user sync whose commit runs out of space leaves none of its users and none of its
    /// events, and does not move the numbering: the sync is retried whole
    /// (docs/protocol/callbacks.md §9: the Kit's retry, after a retryable error).
    #[tokio::test]
    async fn a_sync_cut_short_by_a_full_disk_leaves_nothing_of_itself() {
        let dir = tempfile::tempdir().unwrap();
        let disk = LimitedDisk::new();
        let store = EmbeddedStore::open_on(dir.path().join("s.redb"), &disk).unwrap();
        let key = TenantKey::new("inst-1", "tenant-1");
        apply(&store, &key, &put_users(1)).await.unwrap();

        // Room for part of the commit only.
        disk.fill_after(8 * 1024);
        let cut = apply(&store, &key, &put_users(500)).await;
        assert!(
            matches!(&cut, Err(e @ StoreError::Unavailable(_)) if e.is_retryable()),
            "{cut:?}"
        );
        assert!(disk.refused_writes() > 0, "the disk was full");
        disk.free();

        // The store reopens its file after the I/O failure (at most every 200 ms).
        let mut users = None;
        for _ in 0..500 {
            if let Ok(u) = store.users(&key, "a1").await {
                users = Some(u);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let users = users.expect("the store recovers once space is freed");
        assert_eq!(users.len(), 1, "none of the 500 stored");
        let pending = store.pending_events(&key, 100).await.unwrap();
        assert_eq!(pending.len(), 1, "none of its events either");

        let retried = apply(&store, &key, &put_users(500)).await.unwrap();
        assert_eq!(
            (retried.first_seq, retried.last_seq),
            (2, 6),
            "numbered after the last stored event"
        );
        assert_eq!(store.users(&key, "a1").await.unwrap().len(), 500);
    }

    /// A damaged value is reported as corrupt (not retryable), never a panic; a sync that meets
    /// one writes nothing.
    #[tokio::test]
    async fn a_corrupt_record_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path().join("s.redb")).unwrap();
        let key = TenantKey::new("", "tenant-1");
        apply(&store, &key, &put_users(2)).await.unwrap();
        {
            let txn = store.database_ref().begin_write().unwrap();
            txn.open_table(DIR_USERS)
                .unwrap()
                .insert(
                    ("", "tenant-1", "a1", "user001"),
                    b"\xff not json".as_slice(),
                )
                .unwrap();
            txn.open_table(DIR_TENANTS)
                .unwrap()
                .insert(("", "tenant-1"), br#"{"v":9}"#.as_slice())
                .unwrap();
            txn.commit().unwrap();
        }
        let corrupt = |r: Result<(), StoreError>| {
            assert!(matches!(&r, Err(StoreError::Corrupt(_))), "{r:?}");
            assert!(!r.unwrap_err().is_retryable());
        };
        corrupt(store.users(&key, "a1").await.map(drop));
        corrupt(store.user(&key, "a1", "user001").await.map(drop));
        corrupt(store.tenant(&key).await.map(drop));
        assert!(
            store.user(&key, "a1", "user000").await.unwrap().is_some(),
            "the others still read"
        );

        let revoke = DirectoryChange::RevokeUsers {
            app_id: "a1".into(),
            user_names: vec!["user000".into(), "user001".into()],
        };
        corrupt(apply(&store, &key, &revoke).await.map(drop));
        assert!(
            !store
                .user(&key, "a1", "user000")
                .await
                .unwrap()
                .unwrap()
                .revoked,
            "nothing of the refused sync was written"
        );
        assert_eq!(store.pending_events(&key, 10).await.unwrap().len(), 1);
    }
}
