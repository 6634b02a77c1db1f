//! SSO grants over redb (docs/protocol/decisions.md §19): `sso_grants` keyed (kind, key), with
//! `sso_grant_expiry` for the purge every take runs (see the parent module).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use koogallery::{
    StoreError,
    sso::{GrantKind, GrantStore},
};
use redb::ReadableTable;

use super::{PURGE_BATCH, sessions::delete_session_in};
use crate::{
    EmbeddedStore, Fault, SSO_GRANT_EXPIRY, SSO_GRANTS, SSO_SESSION_EXPIRY, Write, millis,
};

/// Deletes up to [`PURGE_BATCH`] grants and as many sessions whose time ended at or before `now`.
/// A damaged session is left where it is (a read reports it), only its expiry entry goes.
fn purge_in(txn: &Write<'_>, now_ms: i64) -> Result<(), Fault> {
    let bound = now_ms.saturating_add(1);
    {
        let mut expiry = txn.open_table(SSO_GRANT_EXPIRY)?;
        let mut grants = txn.open_table(SSO_GRANTS)?;
        let ended: Vec<(i64, String, String)> = expiry
            .range(..(bound, "", ""))?
            .take(PURGE_BATCH)
            .map(|r| {
                r.map(|(k, _)| {
                    let (at, kind, key) = k.value();
                    (at, kind.to_owned(), key.to_owned())
                })
            })
            .collect::<Result<_, _>>()?;
        for (at, kind, key) in &ended {
            expiry.remove((*at, kind.as_str(), key.as_str()))?;
            grants.remove((kind.as_str(), key.as_str()))?;
        }
    }
    let ended: Vec<(i64, String)> = txn
        .open_table(SSO_SESSION_EXPIRY)?
        .range(..(bound, ""))?
        .take(PURGE_BATCH)
        .map(|r| r.map(|(k, _)| (k.value().0, k.value().1.to_owned())))
        .collect::<Result<_, _>>()?;
    for (at, key) in &ended {
        match delete_session_in(txn, key) {
            Ok(_) => {}
            Err(Fault::Corrupt(m)) => {
                tracing::warn!(error = %m, "ended SSO session cannot be decoded; left in place");
            }
            Err(e) => return Err(e),
        }
        txn.open_table(SSO_SESSION_EXPIRY)?
            .remove((*at, key.as_str()))?;
    }
    Ok(())
}

/// A grant's stored value: (record, expires_at ms).
fn live(found: Option<(String, i64)>, now: DateTime<Utc>) -> Option<String> {
    found
        .filter(|(_, exp)| millis(now) < *exp)
        .map(|(record, _)| record)
}

#[async_trait]
impl GrantStore for EmbeddedStore {
    async fn put_grant(
        &self,
        kind: GrantKind,
        key: &str,
        record: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (key, record, exp) = (key.to_owned(), record.to_owned(), millis(expires_at));
        Ok(self
            .blocking(move |db| {
                let txn = db.begin_write()?;
                {
                    let mut grants = txn.open_table(SSO_GRANTS)?;
                    let mut expiry = txn.open_table(SSO_GRANT_EXPIRY)?;
                    let k = (kind.as_str(), key.as_str());
                    let old = grants
                        .insert(k, (record.as_str(), exp))?
                        .map(|v| v.value().1);
                    if let Some(old) = old {
                        expiry.remove((old, k.0, k.1))?;
                    }
                    expiry.insert((exp, k.0, k.1), ())?;
                }
                txn.commit()?;
                Ok(())
            })
            .await?)
    }

    async fn take_grant(
        &self,
        kind: GrantKind,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        let key = key.to_owned();
        Ok(self
            .blocking(move |db| {
                let txn = db.begin_write()?;
                let taken = {
                    let mut grants = txn.open_table(SSO_GRANTS)?;
                    let removed = grants
                        .remove((kind.as_str(), key.as_str()))?
                        .map(|v| (v.value().0.to_owned(), v.value().1));
                    if let Some((_, exp)) = &removed {
                        txn.open_table(SSO_GRANT_EXPIRY)?.remove((
                            *exp,
                            kind.as_str(),
                            key.as_str(),
                        ))?;
                    }
                    removed
                };
                purge_in(&txn, millis(now))?;
                txn.commit()?;
                Ok(live(taken, now))
            })
            .await?)
    }

    async fn grant(
        &self,
        kind: GrantKind,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        let key = key.to_owned();
        Ok(self
            .blocking(move |db| {
                let table = db.begin_read()?.open_table(SSO_GRANTS)?;
                let found = table
                    .get((kind.as_str(), key.as_str()))?
                    .map(|v| (v.value().0.to_owned(), v.value().1));
                Ok(live(found, now))
            })
            .await?)
    }
}
