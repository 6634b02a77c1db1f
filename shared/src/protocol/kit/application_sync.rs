//! `applicationSync` request (docs/protocol/callbacks.md §9.2, §3.5): the buyer's app and its OAuth
//! client; the `clientSecret` arrives RSA-OAEP encrypted with the deployment's public key
//! (docs/protocol/decisions.md §14).

use serde::Deserialize;

use super::{SyncFlag, optional_id, require_id};
use crate::protocol::request::{CallbackRequest, test_flag};

/// Longest `clientSecret` ciphertext accepted: a 4096-bit key's block is 684 Base64 characters;
/// leave room for line breaks and larger keys.
pub const MAX_CLIENT_SECRET_LEN: usize = 4096;

/// `POST …/produceAPI/v2/applicationSync`. `flag` 0 deletes the app (and its users' access), 1 adds
/// it, 2 modifies it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSyncRequest {
    #[serde(default)]
    pub instance_id: String,
    pub tenant_id: String,
    pub app_id: String,
    #[serde(default)]
    pub client_id: Option<String>,
    /// Base64 RSA-OAEP ciphertext (docs/protocol/callbacks.md §3.5). Never logged.
    #[serde(default)]
    pub client_secret: Option<String>,
    pub flag: SyncFlag,
    #[serde(default, deserialize_with = "test_flag")]
    pub test_flag: bool,
    pub time_stamp: String,
}

impl CallbackRequest for ApplicationSyncRequest {
    fn validate(&self) -> Result<(), String> {
        optional_id("instanceId", &self.instance_id)?;
        require_id("tenantId", &self.tenant_id)?;
        require_id("appId", &self.app_id)?;
        if !self.flag.is_delete() {
            require_id("clientId", self.client_id.as_deref().unwrap_or(""))?;
            crate::protocol::request::require(
                "clientSecret",
                self.client_secret.as_deref().unwrap_or(""),
                MAX_CLIENT_SECRET_LEN,
            )?;
        }
        Ok(())
    }

    fn is_test(&self) -> bool {
        self.test_flag
    }
}
