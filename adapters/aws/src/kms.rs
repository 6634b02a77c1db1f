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
//! Both are KMS's JSON API (`TrentService.*`) through [`SignedClient`], not the KMS SDK crate
//! ([`crate::signed`] says why).

use std::{collections::HashMap, sync::Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use koogallery::failure::Detail;
use koogallery::security::at_rest::{
    CredentialSealer, SealError, aead_open, aead_seal, bound_to, decode_base64, encode_base64,
    unbound_v1,
};
use serde::{Deserialize, Serialize};

use crate::signed::{Call, DEFAULT_ATTEMPT_TIMEOUT, SignedClient, SignedError};

pub const KMS_PREFIX: &str = "kms2.";
/// Sealed before values were bound to their instance; opened without an encryption context.
pub const KMS_PREFIX_V1: &str = "kms1.";
/// The KMS encryption context key that binds a data key to its instance.
pub const CONTEXT_INSTANCE_ID: &str = "instanceId";
/// Unwrapped data keys kept per execution environment; past this the cache starts afresh.
const CACHE_LIMIT: usize = 10_000;

pub struct KmsSealer {
    client: SignedClient,
    key_id: String,
    cache: Mutex<HashMap<Vec<u8>, [u8; 32]>>,
}

impl KmsSealer {
    /// Seals under `key_id` (a key ID, ARN or alias: `KOOGALLERY_CREDENTIALS_KEY_ID`).
    pub fn new(client: SignedClient, key_id: impl Into<String>) -> Self {
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

/// A blob KMS answered, decoded: one that is not base64 is KMS's fault, not the stored value's.
fn answered(what: &str, text: &str) -> Result<Vec<u8>, SealError> {
    decode_base64(what, text).map_err(|_| {
        SealError::Unavailable(format!("KMS answered {what} that is not base64").into())
    })
}

fn data_key(bytes: &[u8]) -> Result<[u8; 32], SealError> {
    bytes
        .try_into()
        .map_err(|_| SealError::Corrupt(format!("data key of {} bytes", bytes.len()).into()))
}

/// The one request shape of both operations (KMS's JSON: fields in PascalCase, blobs in base64).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct KmsRequest<'a> {
    key_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_spec: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ciphertext_blob: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    encryption_context: Option<Context<'a>>,
}

/// The encryption context that binds a data key to its instance.
#[derive(Serialize)]
struct Context<'a> {
    #[serde(rename = "instanceId")]
    instance_id: &'a str,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GenerateDataKeyAnswer {
    ciphertext_blob: Option<String>,
    plaintext: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DecryptAnswer {
    plaintext: Option<String>,
}

/// Why a KMS call gave no usable answer.
#[derive(Debug, thiserror::Error)]
enum KmsCallError {
    #[error(transparent)]
    Call(#[from] SignedError),
    #[error("KMS answer is not the operation's JSON")]
    Answer(#[source] serde_json::Error),
}

impl KmsCallError {
    fn code(&self) -> Option<&str> {
        match self {
            KmsCallError::Call(e) => e.code(),
            KmsCallError::Answer(_) => None,
        }
    }
}

impl KmsSealer {
    /// One KMS operation (`TrentService.{operation}`).
    async fn kms<T: serde::de::DeserializeOwned>(
        &self,
        operation: &str,
        request: &KmsRequest<'_>,
    ) -> Result<T, KmsCallError> {
        let target = format!("TrentService.{operation}");
        let body = serde_json::to_vec(request).map_err(KmsCallError::Answer)?;
        let answer = self
            .client
            .call(&Call {
                path: "/",
                content_type: "application/x-amz-json-1.1",
                headers: &[("x-amz-target", &target)],
                body: Bytes::from(body),
                timeout: DEFAULT_ATTEMPT_TIMEOUT,
            })
            .await?;
        serde_json::from_slice(&answer.body).map_err(KmsCallError::Answer)
    }
}

#[async_trait]
impl CredentialSealer for KmsSealer {
    async fn seal(&self, instance_id: &str, plaintext: &str) -> Result<String, SealError> {
        let out: GenerateDataKeyAnswer = self
            .kms(
                "GenerateDataKey",
                &KmsRequest {
                    key_id: &self.key_id,
                    key_spec: Some("AES_256"),
                    ciphertext_blob: None,
                    encryption_context: Some(Context { instance_id }),
                },
            )
            .await
            .map_err(|e| {
                SealError::Unavailable(Detail::caused_by("KMS GenerateDataKey failed", e))
            })?;
        let (Some(plain_key), Some(wrapped)) = (out.plaintext, out.ciphertext_blob) else {
            return Err(SealError::Unavailable(
                "KMS GenerateDataKey answered without a key".into(),
            ));
        };
        let key = data_key(&answered("a data key", &plain_key)?)?;
        let wrapped = answered("a wrapped key", &wrapped)?;
        let sealed = aead_seal(&key, &bound_to(instance_id), plaintext.as_bytes());
        let sealed_key = encode_base64(&wrapped);
        self.remember(wrapped, key);
        Ok(format!(
            "{KMS_PREFIX}{}.{}",
            sealed_key,
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
                let wrapped_text = encode_base64(&wrapped);
                let out: DecryptAnswer = self
                    .kms(
                        "Decrypt",
                        &KmsRequest {
                            key_id: &self.key_id,
                            key_spec: None,
                            ciphertext_blob: Some(&wrapped_text),
                            encryption_context: bound.then_some(Context { instance_id }),
                        },
                    )
                    .await
                    .map_err(|e| {
                        // The wrong key, or a value whose context (instance) is not this one.
                        let wrong = matches!(
                            e.code(),
                            Some("InvalidCiphertextException" | "IncorrectKeyException")
                        );
                        let detail = Detail::caused_by("KMS Decrypt failed", e);
                        if wrong {
                            SealError::Corrupt(detail)
                        } else {
                            SealError::Unavailable(detail)
                        }
                    })?;
                let plain = out
                    .plaintext
                    .ok_or_else(|| SealError::Unavailable("KMS Decrypt answered no key".into()))?;
                let key = data_key(&answered("a data key", &plain)?)?;
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
