//! `applicationSync` (docs/protocol/callbacks.md §9.2, §3.5; docs/protocol/decisions.md §14, §16):
//! the buyer's app and its OAuth client. The `clientSecret` arrives RSA-OAEP encrypted with the
//! deployment's public key: the edge has verified `x-sign` before anything is decrypted; a secret
//! that no OAEP variant opens is refused with `000101` and nothing stored. The plaintext is sealed
//! at rest at once, bound to its tenant and app, and never logged.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Callback, CallbackError, Resources, directory_sync::DirectorySync};
use crate::{
    config::ConfigError,
    directory::{App, DirectoryChange, TenantKey},
    protocol::{Reply, kit::ApplicationSyncRequest},
    security::{KeyUsed, at_rest::CredentialSealer, kit_client_secret::ClientSecretKey},
};

pub struct ApplicationSync {
    sync: DirectorySync,
    key: Arc<ClientSecretKey>,
    sealer: Arc<dyn CredentialSealer>,
}

#[async_trait]
impl Callback for ApplicationSync {
    type Request = ApplicationSyncRequest;
    const DEBUG_BEFORE_PARSE: bool = true;

    fn from_resources(r: &Resources) -> Result<Self, ConfigError> {
        Ok(Self {
            sync: DirectorySync::from_resources(r)?,
            key: r.client_secret_key()?,
            sealer: r.sealer()?,
        })
    }

    async fn handle(
        &self,
        req: ApplicationSyncRequest,
        _key: KeyUsed,
    ) -> Result<Reply, CallbackError> {
        let key = TenantKey::new(&req.instance_id, &req.tenant_id);
        if req.flag.is_delete() {
            let change = DirectoryChange::DeleteApp { app_id: req.app_id };
            return self.sync.apply(&key, change).await;
        }
        let ciphertext = req.client_secret.unwrap_or_default();
        let (secret, variant) = self
            .key
            .decrypt(&ciphertext)
            .map_err(CallbackError::ClientSecret)?;
        tracing::info!(
            tenant_id = key.tenant_id.as_str(),
            app_id = req.app_id,
            oaep = variant.as_str(),
            "clientSecret decrypted"
        );
        let sealed = self
            .sealer
            .seal(&key.app_binding(&req.app_id), secret.expose())
            .await?;
        let change = DirectoryChange::PutApp(App {
            app_id: req.app_id,
            client_id: req.client_id.unwrap_or_default(),
            sealed_client_secret: sealed,
            synced_at: self.sync.clock.now(),
        });
        self.sync.apply(&key, change).await
    }

    async fn handle_debug(&self, _req: ApplicationSyncRequest, _key: KeyUsed) -> Reply {
        super::directory_sync::debug_reply()
    }
}
