//! [`SessionStore`] on the table (module docs): the session item and its index item, written,
//! replaced and deleted together in one `TransactWriteItems`.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::TransactWriteItem;
use koogallery::{
    StoreError,
    directory::TenantKey,
    sso::{Session, SessionStore, record},
};

use super::{DynamoSso, corrupt, decode, keys::*};
use crate::dynamo::{
    attr::{Item, key_of, n, s, string_attr},
    keys::{DATA, TTL, VERSION, ttl_secs},
    sdk::{Condition, backoff, cancelled, lost_to_a_writer, request_token},
};

/// Attempts at a delete while the session keeps being replaced under it.
const MAX_DELETE_ATTEMPTS: u32 = 5;

/// What a session transaction came to.
enum Sent {
    Committed,
    /// A condition failed or a concurrent transaction touched the items.
    Lost,
}

/// The attributes both items of a session carry.
fn with_record(mut item: Item, session: &Session) -> Item {
    let ms = session.refresh_expires_at.timestamp_millis();
    item.insert(DATA.to_owned(), s(record::encode_session(session)));
    item.insert(VERSION.to_owned(), n(session.version));
    item.insert(TTL.to_owned(), n(ttl_secs(ms)));
    item
}

fn session_item(session: &Session) -> Item {
    let (ipk, isk) = index_key(session);
    let mut item = with_record(key_of(session_pk(&session.key), SESSION_SK), session);
    item.insert(INDEX_PK.to_owned(), s(ipk));
    item.insert(INDEX_SK.to_owned(), s(isk));
    item
}

fn index_item(session: &Session) -> Item {
    let (ipk, isk) = index_key(session);
    with_record(key_of(ipk, isk), session)
}

/// `version` is still `v`.
fn on_version(v: u64) -> Condition {
    Condition::new("#v = :v")
        .name("#v", VERSION)
        .value(":v", n(v))
}

/// A stored session item: the session and the key of its index item.
fn read_item(item: &Item) -> Result<(Session, Item), StoreError> {
    let session = decode(item, record::decode_session)?;
    let ipk = string_attr(item, INDEX_PK).map_err(|m| corrupt(item, m))?;
    let isk = string_attr(item, INDEX_SK).map_err(|m| corrupt(item, m))?;
    Ok((session, key_of(ipk, isk)))
}

impl DynamoSso {
    async fn send(&self, items: Vec<TransactWriteItem>, what: &str) -> Result<Sent, StoreError> {
        match self
            .table
            .transact(items, Some(request_token()), what)
            .await?
        {
            None => Ok(Sent::Committed),
            Some(reasons) if lost_to_a_writer(&reasons) => Ok(Sent::Lost),
            Some(reasons) => Err(cancelled(what, &reasons)),
        }
    }

    async fn stored(&self, key: &str) -> Result<Option<(Session, Item)>, StoreError> {
        self.table
            .get_item(&session_pk(key), SESSION_SK)
            .await?
            .map(|item| read_item(&item))
            .transpose()
    }

    /// The sessions of an index prefix of the tenant's partition.
    async fn indexed(&self, tenant: &TenantKey, prefix: &str) -> Result<Vec<Session>, StoreError> {
        let pk = tenant_pk(tenant);
        let query = self.table.query_prefix(&pk, prefix);
        let items = self
            .table
            .query_all(query, None, &format!("Query {pk} ({prefix}…)"))
            .await?;
        items
            .iter()
            .map(|item| decode(item, record::decode_session))
            .collect()
    }

    /// The replace of a session whose tenant, app or user changed: its old index item deleted.
    async fn move_session(&self, session: &Session, read_version: u64) -> Result<(), StoreError> {
        let Some((current, old_index)) = self.stored(&session.key).await? else {
            return Err(StoreError::Conflict);
        };
        let (ipk, isk) = index_key(session);
        if current.version != read_version || old_index == key_of(ipk, isk) {
            // Changed meanwhile, or not moved (the first transaction lost to another writer).
            return Err(StoreError::Conflict);
        }
        let items = vec![
            self.table
                .tx_put(session_item(session), Some(on_version(read_version)))?,
            self.table.tx_delete(old_index)?,
            self.table.tx_put(index_item(session), None)?,
        ];
        match self
            .send(items, "TransactWriteItems (move SSO session)")
            .await?
        {
            Sent::Committed => Ok(()),
            Sent::Lost => Err(StoreError::Conflict),
        }
    }
}

#[async_trait]
impl SessionStore for DynamoSso {
    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        let items = vec![
            self.table
                .tx_put(session_item(session), Some(Condition::absent()))?,
            self.table.tx_put(index_item(session), None)?,
        ];
        match self
            .send(items, "TransactWriteItems (create SSO session)")
            .await?
        {
            Sent::Committed => Ok(()),
            Sent::Lost => Err(StoreError::Conflict),
        }
    }

    async fn session(&self, key: &str) -> Result<Option<Session>, StoreError> {
        Ok(self.stored(key).await?.map(|(session, _)| session))
    }

    async fn replace_session(
        &self,
        session: &Session,
        read_version: u64,
    ) -> Result<(), StoreError> {
        // One transaction when the index item stays where it is (always, but for a session
        // whose tenant, app or user changed): the version and the index key checked at once.
        let (ipk, isk) = index_key(session);
        let unmoved = on_version(read_version)
            .and("#ipk = :ipk")
            .name("#ipk", INDEX_PK)
            .value(":ipk", s(ipk))
            .and("#isk = :isk")
            .name("#isk", INDEX_SK)
            .value(":isk", s(isk));
        let items = vec![
            self.table.tx_put(session_item(session), Some(unmoved))?,
            self.table.tx_put(index_item(session), None)?,
        ];
        match self
            .send(items, "TransactWriteItems (replace SSO session)")
            .await?
        {
            Sent::Committed => Ok(()),
            // Changed, deleted, or moved: only the last is written, after a read.
            Sent::Lost => self.move_session(session, read_version).await,
        }
    }

    async fn delete_session(&self, key: &str) -> Result<Option<Session>, StoreError> {
        let mut attempt = 0;
        loop {
            let Some((session, index)) = self.stored(key).await? else {
                return Ok(None);
            };
            let items = vec![
                self.table.tx_delete_if(
                    key_of(session_pk(key), SESSION_SK),
                    on_version(session.version),
                )?,
                self.table.tx_delete(index)?,
            ];
            match self
                .send(items, "TransactWriteItems (delete SSO session)")
                .await?
            {
                Sent::Committed => return Ok(Some(session)),
                Sent::Lost => {}
            }
            // Replaced or deleted meanwhile: read again.
            attempt += 1;
            if attempt >= MAX_DELETE_ATTEMPTS {
                return Err(StoreError::Conflict);
            }
            tokio::time::sleep(backoff(attempt)).await;
        }
    }

    async fn sessions_of_user(
        &self,
        tenant: &TenantKey,
        app_id: &str,
        user_name: &str,
    ) -> Result<Vec<Session>, StoreError> {
        self.indexed(tenant, &user_prefix(app_id, user_name)).await
    }

    async fn sessions_of_tenant(&self, tenant: &TenantKey) -> Result<Vec<Session>, StoreError> {
        self.indexed(tenant, INDEX_SK_PREFIX).await
    }
}
