//! The SSO stores on DynamoDB (docs/protocol/decisions.md §19): sessions, grants, OIDC clients and
//! signing keys in the single table of [`crate::dynamo`], with the semantics of
//! `koogallery::testing::MemorySso`. Values are the versioned records of
//! `koogallery::sso::record` in `data`; a grant is stored as the caller encoded it.
//!
//! # Items
//!
//! | item          | `pk`                          | `sk`                                   | other attributes |
//! |---------------|-------------------------------|----------------------------------------|------------------|
//! | session       | `SSOSESSION#{key}`            | `SESSION`                              | `data` (S, [`record::encode_session`]), `version` (N), `index_pk`, `index_sk` (S): its index item, `ttl` |
//! | session index | `SSO#{instanceId}#{tenantId}` | `SESSION#{appId}#{userName}#{key}`     | `data`, `version`, `ttl`, as the session's |
//! | grant         | `SSOGRANT#{kind}#{key}`       | `GRANT`                                | `data` (S, the encoded grant), `expires_ms` (N), `ttl` |
//! | OIDC client   | `OIDCCLIENT`                  | `CLIENT#{clientId}`                    | `data` (S, [`record::encode_client`]) |
//! | signing key   | `OIDCKEY`                     | `KEY#{kid}`                            | `data` (S, [`record::encode_signing_key`]) |
//!
//! - IDs in keys have `%` and `#` percent-escaped, as everywhere in the table; `key` is the SHA-256
//!   (hex) of the opaque value, `kind` one of `login`, `code`, `token`.
//! - A session is two items written, replaced and deleted together in one `TransactWriteItems`:
//!   the session item, found by its key with a `GetItem`, and its copy in the tenant's index,
//!   which a `Query` reads by user (`SESSION#{appId}#{userName}#`) or whole (`SESSION#`). Never a
//!   `Scan`. A replace is conditioned on `version` (and on the index item not having moved; if
//!   the tenant, app or user changed, the old index item is deleted in the same transaction).
//! - `ttl` is the table's time to live: `refresh_expires_at` for sessions (a session never
//!   outlives its refresh token), `expires_at` for grants, in Unix seconds rounded up. DynamoDB
//!   deletes within a day or two of it, each item on its own, so an index item may briefly outlive
//!   its session item (or the reverse): the domain checks the times on every read.
//! - A grant's take is one `DeleteItem` with `ReturnValues=ALL_OLD`: of two concurrent takes,
//!   only one gets the old item. An expired grant is absent whether or not TTL deleted it yet.
//! - The clients and the signing keys are one small partition each, read whole (`Query`).
//!
//! [`record::encode_session`]: koogallery::sso::record::encode_session
//! [`record::encode_client`]: koogallery::sso::record::encode_client
//! [`record::encode_signing_key`]: koogallery::sso::record::encode_signing_key

use aws_sdk_dynamodb::{Client, types::ReturnValue};
use koogallery::{StoreError, failure::Detail};

use crate::dynamo::{
    DynamoStore,
    attr::{Item, key_of, string_attr},
    keys::{DATA, PK, SK},
    sdk::{Table, unavailable},
};

mod grants;
pub mod keys;
mod oidc;
mod sessions;

/// The SSO stores in the single DynamoDB table; cheap to clone.
#[derive(Debug, Clone)]
pub struct DynamoSso {
    table: Table,
}

impl From<&DynamoStore> for DynamoSso {
    /// The SSO stores on the instance store's table.
    fn from(store: &DynamoStore) -> Self {
        Self::new(store.client().clone(), store.table())
    }
}

impl DynamoSso {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            table: Table::new(client, table),
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        self.table.name()
    }

    /// Deletes the item under (`pk`, `sk`), returning what was there (`ReturnValues=ALL_OLD`):
    /// of two concurrent deletes, one gets it.
    async fn delete_returning(
        &self,
        pk: &str,
        sk: &str,
        what: &str,
    ) -> Result<Option<Item>, StoreError> {
        let out = self
            .table
            .client()
            .delete_item()
            .table_name(self.table.name())
            .set_key(Some(key_of(pk, sk)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| unavailable(what, e))?;
        Ok(out.attributes.filter(|a| !a.is_empty()))
    }
}

/// A damaged item, named by its key, the cause kept.
fn corrupt(item: &Item, cause: impl Into<koogallery::failure::Cause>) -> StoreError {
    let pk = string_attr(item, PK).unwrap_or("?");
    let sk = string_attr(item, SK).unwrap_or("?");
    StoreError::Corrupt(Detail::caused_by(format!("SSO item {pk}/{sk}"), cause))
}

/// The item's `data`, decoded by `decode` (a damaged record is [`StoreError::Corrupt`]).
fn decode<T>(item: &Item, decode: fn(&str) -> Result<T, StoreError>) -> Result<T, StoreError> {
    let data = string_attr(item, DATA).map_err(|m| corrupt(item, m))?;
    decode(data).map_err(|e| corrupt(item, e))
}
