//! SSO sessions over redb (docs/protocol/decisions.md §19): the record in `sso_sessions`, its
//! entries in `sso_session_index` (by tenant, app, user) and `sso_session_expiry` written and
//! deleted in the same transaction.

use async_trait::async_trait;
use koogallery::{
    StoreError,
    directory::TenantKey,
    sso::{Session, SessionStore, record},
};
use redb::ReadableTable;

use super::{after, corrupt, short};
use crate::{
    EmbeddedStore, Fault, SSO_SESSION_EXPIRY, SSO_SESSION_INDEX, SSO_SESSIONS, Write, millis,
};

fn decode_session(key: &str, bytes: &[u8]) -> Result<Session, Fault> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| Fault::Corrupt(format!("SSO session {}: {e}", short(key))))?;
    record::decode_session(text).map_err(|e| corrupt(format!("SSO session {}", short(key)), e))
}

type IndexKey<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str);

fn index_key(s: &Session) -> IndexKey<'_> {
    (
        s.instance_id.as_str(),
        s.tenant_id.as_str(),
        s.app_id.as_str(),
        s.identity.user_name.as_str(),
        s.key.as_str(),
    )
}

/// Writes `session` and its index entries, replacing those of `old` (the record it overwrites).
fn write_session(txn: &Write<'_>, session: &Session, old: Option<&Session>) -> Result<(), Fault> {
    let mut index = txn.open_table(SSO_SESSION_INDEX)?;
    let mut expiry = txn.open_table(SSO_SESSION_EXPIRY)?;
    if let Some(old) = old {
        index.remove(index_key(old))?;
        expiry.remove((millis(old.refresh_expires_at), old.key.as_str()))?;
    }
    index.insert(index_key(session), ())?;
    expiry.insert(
        (millis(session.refresh_expires_at), session.key.as_str()),
        (),
    )?;
    txn.open_table(SSO_SESSIONS)?.insert(
        session.key.as_str(),
        record::encode_session(session).as_bytes(),
    )?;
    Ok(())
}

/// Deletes the session under `key` with its index entries; what was there.
pub(super) fn delete_session_in(txn: &Write<'_>, key: &str) -> Result<Option<Session>, Fault> {
    let old = {
        let sessions = txn.open_table(SSO_SESSIONS)?;
        let found = sessions.get(key)?;
        found.map(|v| decode_session(key, v.value())).transpose()?
    };
    if let Some(old) = &old {
        txn.open_table(SSO_SESSIONS)?.remove(key)?;
        txn.open_table(SSO_SESSION_INDEX)?.remove(index_key(old))?;
        txn.open_table(SSO_SESSION_EXPIRY)?
            .remove((millis(old.refresh_expires_at), key))?;
    }
    Ok(old)
}

/// The sessions an index range names, read in one snapshot.
fn sessions_in(
    db: &crate::Db,
    range: std::ops::Range<IndexKey<'_>>,
) -> Result<Vec<Session>, Fault> {
    let txn = db.begin_read()?;
    let index = txn.open_table(SSO_SESSION_INDEX)?;
    let sessions = txn.open_table(SSO_SESSIONS)?;
    let mut out = Vec::new();
    for entry in index.range(range)? {
        let (k, _) = entry?;
        let key = k.value().4;
        let bytes = sessions.get(key)?.ok_or_else(|| {
            Fault::Corrupt(format!(
                "the SSO session index names session {}, which is not stored",
                short(key)
            ))
        })?;
        out.push(decode_session(key, bytes.value())?);
    }
    Ok(out)
}

#[async_trait]
impl SessionStore for EmbeddedStore {
    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        let session = session.clone();
        Ok(self
            .blocking(move |db| {
                let txn = db.begin_write()?;
                if txn
                    .open_table(SSO_SESSIONS)?
                    .get(session.key.as_str())?
                    .is_some()
                {
                    return Err(Fault::Conflict);
                }
                write_session(&txn, &session, None)?;
                txn.commit()?;
                Ok(())
            })
            .await?)
    }

    async fn session(&self, key: &str) -> Result<Option<Session>, StoreError> {
        let key = key.to_owned();
        Ok(self
            .blocking(move |db| {
                let table = db.begin_read()?.open_table(SSO_SESSIONS)?;
                let found = table.get(key.as_str())?;
                found.map(|v| decode_session(&key, v.value())).transpose()
            })
            .await?)
    }

    async fn replace_session(
        &self,
        session: &Session,
        read_version: u64,
    ) -> Result<(), StoreError> {
        let session = session.clone();
        Ok(self
            .blocking(move |db| {
                let txn = db.begin_write()?;
                let current = {
                    let table = txn.open_table(SSO_SESSIONS)?;
                    let found = table.get(session.key.as_str())?;
                    found
                        .map(|v| decode_session(&session.key, v.value()))
                        .transpose()?
                };
                match current {
                    Some(current) if current.version == read_version => {
                        write_session(&txn, &session, Some(&current))?;
                    }
                    _ => return Err(Fault::Conflict),
                }
                txn.commit()?;
                Ok(())
            })
            .await?)
    }

    async fn delete_session(&self, key: &str) -> Result<Option<Session>, StoreError> {
        let key = key.to_owned();
        Ok(self
            .blocking(move |db| {
                let txn = db.begin_write()?;
                let old = delete_session_in(&txn, &key)?;
                if old.is_some() {
                    txn.commit()?;
                }
                Ok(old)
            })
            .await?)
    }

    async fn sessions_of_user(
        &self,
        tenant: &TenantKey,
        app_id: &str,
        user_name: &str,
    ) -> Result<Vec<Session>, StoreError> {
        let (i, t) = (tenant.instance_id.clone(), tenant.tenant_id.to_string());
        let (a, u) = (app_id.to_owned(), user_name.to_owned());
        Ok(self
            .blocking(move |db| {
                let end = after(&u);
                let (i, t, a) = (i.as_str(), t.as_str(), a.as_str());
                sessions_in(db, (i, t, a, u.as_str(), "")..(i, t, a, end.as_str(), ""))
            })
            .await?)
    }

    async fn sessions_of_tenant(&self, tenant: &TenantKey) -> Result<Vec<Session>, StoreError> {
        let (i, t) = (tenant.instance_id.clone(), tenant.tenant_id.to_string());
        Ok(self
            .blocking(move |db| {
                let end = after(&t);
                let i = i.as_str();
                sessions_in(
                    db,
                    (i, t.as_str(), "", "", "")..(i, end.as_str(), "", "", ""),
                )
            })
            .await?)
    }
}
