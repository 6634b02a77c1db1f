//! Credentials at rest on AWS: envelope encryption under the KMS key the template creates
//! (`CredentialsKey`). Each sealed password has a data key of its own (GenerateDataKey, AES-256),
//! kept wrapped by KMS next to the ciphertext: `kms2.<base64 wrapped key>.<base64 nonce||ct>`.
//! A value is bound to its instance twice: the data key is generated under the KMS encryption
//! context `{"instanceId": …}` (Decrypt needs the same), and the instance ID is the AES-GCM
//! associated data, so even a data key still cached does not open a value copied to another
//! record. `kms1.` values (sealed before, unbound) keep opening.
//! Opening unwraps the data key with KMS Decrypt once per execution environment (a small cache
//! keyed by the wrapped key), so a polled queryInstance costs KMS one call per instance, not per
//! poll. The worker needs `kms:GenerateDataKey`, queryInstance `kms:Decrypt`, nothing else does.

use std::{collections::HashMap, sync::Mutex};

use async_trait::async_trait;
use aws_sdk_kms::{primitives::Blob, types::DataKeySpec};
use koogallery::failure::Detail;
use koogallery::security::at_rest::{
    CredentialSealer, SealError, aead_open, aead_seal, bound_to, decode_base64, encode_base64,
    unbound_v1,
};

pub const KMS_PREFIX: &str = "kms2.";
/// Sealed before values were bound to their instance; opened without an encryption context.
pub const KMS_PREFIX_V1: &str = "kms1.";
/// The KMS encryption context key that binds a data key to its instance.
pub const CONTEXT_INSTANCE_ID: &str = "instanceId";
/// Unwrapped data keys kept per execution environment; past this the cache starts afresh.
const CACHE_LIMIT: usize = 10_000;

pub struct KmsSealer {
    client: aws_sdk_kms::Client,
    key_id: String,
    cache: Mutex<HashMap<Vec<u8>, [u8; 32]>>,
}

impl KmsSealer {
    /// Seals under `key_id` (a key ID, ARN or alias: `KOOGALLERY_CREDENTIALS_KEY_ID`).
    pub fn new(client: aws_sdk_kms::Client, key_id: impl Into<String>) -> Self {
        Self {
            client,
            key_id: key_id.into(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, wrapped: &[u8]) -> Option<[u8; 32]> {
        self.cache.lock().ok()?.get(wrapped).copied()
    }

    fn remember(&self, wrapped: Vec<u8>, key: [u8; 32]) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(wrapped, key);
        }
    }
}

fn data_key(bytes: &[u8]) -> Result<[u8; 32], SealError> {
    bytes
        .try_into()
        .map_err(|_| SealError::Corrupt(format!("data key of {} bytes", bytes.len()).into()))
}

#[async_trait]
impl CredentialSealer for KmsSealer {
    async fn seal(&self, instance_id: &str, plaintext: &str) -> Result<String, SealError> {
        let out = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .encryption_context(CONTEXT_INSTANCE_ID, instance_id)
            .send()
            .await
            .map_err(|e| {
                SealError::Unavailable(Detail::caused_by("KMS GenerateDataKey failed", e))
            })?;
        let (Some(plain_key), Some(wrapped)) = (out.plaintext(), out.ciphertext_blob()) else {
            return Err(SealError::Unavailable(
                "KMS GenerateDataKey answered without a key".into(),
            ));
        };
        let key = data_key(plain_key.as_ref())?;
        let sealed = aead_seal(&key, &bound_to(instance_id), plaintext.as_bytes());
        self.remember(wrapped.as_ref().to_vec(), key);
        Ok(format!(
            "{KMS_PREFIX}{}.{}",
            encode_base64(wrapped.as_ref()),
            encode_base64(&sealed)
        ))
    }

    async fn open(&self, instance_id: &str, sealed: &str) -> Result<String, SealError> {
        let (bound, rest) = if let Some(rest) = sealed.strip_prefix(KMS_PREFIX) {
            (true, rest)
        } else if let Some(rest) = sealed.strip_prefix(KMS_PREFIX_V1) {
            (false, rest)
        } else {
            return Err(SealError::Corrupt("not sealed with KMS".into()));
        };
        let (wrapped, body) = rest
            .split_once('.')
            .ok_or_else(|| SealError::Corrupt("not sealed with KMS".into()))?;
        let wrapped = decode_base64("wrapped data key", wrapped)?;
        let body = decode_base64("sealed credential", body)?;
        let key = match self.cached(&wrapped) {
            Some(key) => key,
            None => {
                let mut decrypt = self
                    .client
                    .decrypt()
                    .key_id(&self.key_id)
                    .ciphertext_blob(Blob::new(wrapped.clone()));
                if bound {
                    decrypt = decrypt.encryption_context(CONTEXT_INSTANCE_ID, instance_id);
                }
                let out = decrypt.send().await.map_err(|e| {
                    let wrong = e.as_service_error().is_some_and(|s| {
                        s.is_invalid_ciphertext_exception() || s.is_incorrect_key_exception()
                    });
                    let detail = Detail::caused_by("KMS Decrypt failed", e);
                    if wrong {
                        SealError::Corrupt(detail)
                    } else {
                        SealError::Unavailable(detail)
                    }
                })?;
                let key = data_key(
                    out.plaintext()
                        .ok_or_else(|| {
                            SealError::Unavailable("KMS Decrypt answered no key".into())
                        })?
                        .as_ref(),
                )?;
                self.remember(wrapped, key);
                key
            }
        };
        let aad = if bound {
            bound_to(instance_id)
        } else {
            unbound_v1().to_vec()
        };
        String::from_utf8(aead_open(&key, &aad, &body)?)
            .map_err(|_| SealError::Corrupt("not UTF-8".into()))
    }
}
