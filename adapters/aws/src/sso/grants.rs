//! [`GrantStore`] on the table (module docs): a put, a `GetItem`, and the take as one
//! `DeleteItem` returning the old item.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use koogallery::{
    StoreError,
    sso::{GrantKind, GrantStore},
};

use super::{DynamoSso, corrupt, keys::*};
use crate::dynamo::{
    attr::{Item, key_of, n, number_attr, s, string_attr},
    keys::{DATA, EXPIRES_MS, TTL, ttl_secs},
};

/// The grant's record if it has not expired by `now`.
fn live(item: Option<Item>, now: DateTime<Utc>) -> Result<Option<String>, StoreError> {
    let Some(item) = item else { return Ok(None) };
    let expires_ms: i64 = number_attr(&item, EXPIRES_MS).map_err(|m| corrupt(&item, m))?;
    if now.timestamp_millis() >= expires_ms {
        return Ok(None);
    }
    let data = string_attr(&item, DATA).map_err(|m| corrupt(&item, m))?;
    Ok(Some(data.to_owned()))
}

#[async_trait]
impl GrantStore for DynamoSso {
    async fn put_grant(
        &self,
        kind: GrantKind,
        key: &str,
        record: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let expires_ms = expires_at.timestamp_millis();
        let mut item = key_of(grant_pk(kind, key), GRANT_SK);
        item.insert(DATA.to_owned(), s(record));
        item.insert(EXPIRES_MS.to_owned(), n(expires_ms));
        item.insert(TTL.to_owned(), n(ttl_secs(expires_ms)));
        let put = self.table.put_item().set_item(Some(item));
        // Unconditional: the key is the hash of a fresh random value.
        self.table
            .put_if(put, &format!("PutItem (SSO {} grant)", kind.as_str()))
            .await?;
        Ok(())
    }

    async fn take_grant(
        &self,
        kind: GrantKind,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        let what = format!("DeleteItem (take SSO {} grant)", kind.as_str());
        let old = self
            .delete_returning(&grant_pk(kind, key), GRANT_SK, &what)
            .await?;
        live(old, now)
    }

    async fn grant(
        &self,
        kind: GrantKind,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        let item = self.table.get_item(&grant_pk(kind, key), GRANT_SK).await?;
        live(item, now)
    }
}
