//! OIDC clients and signing keys over redb (docs/protocol/decisions.md §19): `sso_clients` by
//! clientId, `sso_signing_keys` by kid.

use async_trait::async_trait;
use koogallery::{
    StoreError,
    sso::{ClientStore, OidcClient, SigningKeyStore, StoredSigningKey, record},
};
use redb::ReadableTable;

use super::corrupt;
use crate::{EmbeddedStore, Fault, SSO_CLIENTS, SSO_SIGNING_KEYS};

fn decode_client(id: &str, bytes: &[u8]) -> Result<OidcClient, Fault> {
    std::str::from_utf8(bytes)
        .map_err(|e| StoreError::Corrupt(e.to_string().into()))
        .and_then(record::decode_client)
        .map_err(|e| corrupt(format!("OIDC client {id:?}"), e))
}

#[async_trait]
impl ClientStore for EmbeddedStore {
    async fn put_client(&self, client: &OidcClient) -> Result<(), StoreError> {
        let client = client.clone();
        Ok(self
            .blocking(move |db| {
                let txn = db.begin_write()?;
                txn.open_table(SSO_CLIENTS)?.insert(
                    client.client_id.as_str(),
                    record::encode_client(&client).as_bytes(),
                )?;
                txn.commit()?;
                Ok(())
            })
            .await?)
    }

    async fn client(&self, client_id: &str) -> Result<Option<OidcClient>, StoreError> {
        let id = client_id.to_owned();
        Ok(self
            .blocking(move |db| {
                let table = db.begin_read()?.open_table(SSO_CLIENTS)?;
                let found = table.get(id.as_str())?;
                found.map(|v| decode_client(&id, v.value())).transpose()
            })
            .await?)
    }

    async fn clients(&self) -> Result<Vec<OidcClient>, StoreError> {
        Ok(self
            .blocking(move |db| {
                let table = db.begin_read()?.open_table(SSO_CLIENTS)?;
                table
                    .iter()?
                    .map(|entry| {
                        let (k, v) = entry?;
                        decode_client(k.value(), v.value())
                    })
                    .collect()
            })
            .await?)
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        let id = client_id.to_owned();
        Ok(self
            .blocking(move |db| {
                let txn = db.begin_write()?;
                let existed = txn.open_table(SSO_CLIENTS)?.remove(id.as_str())?.is_some();
                txn.commit()?;
                Ok(existed)
            })
            .await?)
    }
}

#[async_trait]
impl SigningKeyStore for EmbeddedStore {
    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
        Ok(self
            .blocking(move |db| {
                let table = db.begin_read()?.open_table(SSO_SIGNING_KEYS)?;
                let mut keys = table
                    .iter()?
                    .map(|entry| {
                        let (k, v) = entry?;
                        std::str::from_utf8(v.value())
                            .map_err(|e| StoreError::Corrupt(e.to_string().into()))
                            .and_then(record::decode_signing_key)
                            .map_err(|e| corrupt(format!("signing key {:?}", k.value()), e))
                    })
                    .collect::<Result<Vec<_>, Fault>>()?;
                keys.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.kid.cmp(&b.kid)));
                Ok(keys)
            })
            .await?)
    }

    async fn add_signing_key(&self, key: &StoredSigningKey) -> Result<bool, StoreError> {
        let key = key.clone();
        Ok(self
            .blocking(move |db| {
                let txn = db.begin_write()?;
                {
                    let mut table = txn.open_table(SSO_SIGNING_KEYS)?;
                    if table.get(key.kid.as_str())?.is_some() {
                        return Ok(false);
                    }
                    table.insert(
                        key.kid.as_str(),
                        record::encode_signing_key(&key).as_bytes(),
                    )?;
                }
                txn.commit()?;
                Ok(true)
            })
            .await?)
    }

    async fn remove_signing_key(&self, kid: &str) -> Result<(), StoreError> {
        let kid = kid.to_owned();
        Ok(self
            .blocking(move |db| {
                let txn = db.begin_write()?;
                txn.open_table(SSO_SIGNING_KEYS)?.remove(kid.as_str())?;
                txn.commit()?;
                Ok(())
            })
            .await?)
    }
}
