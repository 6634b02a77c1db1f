//! [`ClientStore`] and [`SigningKeyStore`] on the table (module docs): one partition each, read
//! whole with a `Query`.

use async_trait::async_trait;
use koogallery::{
    StoreError,
    sso::{ClientStore, OidcClient, SigningKeyStore, StoredSigningKey, record},
};

use super::{DynamoSso, decode, keys::*};
use crate::dynamo::{
    attr::{Item, key_of, s},
    keys::DATA,
    sdk::Condition,
};

impl DynamoSso {
    /// Every item of the partition `pk` under `prefix`, page after page.
    async fn partition(&self, pk: &str, prefix: &str) -> Result<Vec<Item>, StoreError> {
        let query = self.table.query_prefix(pk, prefix);
        self.table
            .query_all(query, None, &format!("Query {pk}"))
            .await
    }
}

fn item(pk: &str, sk: String, data: String) -> Item {
    let mut item = key_of(pk, sk);
    item.insert(DATA.to_owned(), s(data));
    item
}

#[async_trait]
impl ClientStore for DynamoSso {
    async fn put_client(&self, client: &OidcClient) -> Result<(), StoreError> {
        let put = self.table.put_item().set_item(Some(item(
            CLIENT_PK,
            client_sk(&client.client_id),
            record::encode_client(client),
        )));
        self.table.put_if(put, "PutItem (OIDC client)").await?;
        Ok(())
    }

    async fn client(&self, client_id: &str) -> Result<Option<OidcClient>, StoreError> {
        self.table
            .get_item(CLIENT_PK, &client_sk(client_id))
            .await?
            .map(|item| decode(&item, record::decode_client))
            .transpose()
    }

    async fn clients(&self) -> Result<Vec<OidcClient>, StoreError> {
        let mut clients = self
            .partition(CLIENT_PK, CLIENT_SK_PREFIX)
            .await?
            .iter()
            .map(|item| decode(item, record::decode_client))
            .collect::<Result<Vec<_>, _>>()?;
        // The escaped keys need not sort as the IDs do.
        clients.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        Ok(clients)
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        let old = self
            .delete_returning(CLIENT_PK, &client_sk(client_id), "DeleteItem (OIDC client)")
            .await?;
        Ok(old.is_some())
    }
}

#[async_trait]
impl SigningKeyStore for DynamoSso {
    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
        let mut keys = self
            .partition(SIGNING_KEY_PK, SIGNING_KEY_SK_PREFIX)
            .await?
            .iter()
            .map(|item| decode(item, record::decode_signing_key))
            .collect::<Result<Vec<_>, _>>()?;
        keys.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.kid.cmp(&b.kid)));
        Ok(keys)
    }

    async fn add_signing_key(&self, key: &StoredSigningKey) -> Result<bool, StoreError> {
        let put = self.table.put_item().set_item(Some(item(
            SIGNING_KEY_PK,
            signing_key_sk(&key.kid),
            record::encode_signing_key(key),
        )));
        self.table
            .put_if(Condition::absent().put_item(put), "PutItem (signing key)")
            .await
    }

    async fn remove_signing_key(&self, kid: &str) -> Result<(), StoreError> {
        self.delete_returning(
            SIGNING_KEY_PK,
            &signing_key_sk(kid),
            "DeleteItem (signing key)",
        )
        .await?;
        Ok(())
    }
}
