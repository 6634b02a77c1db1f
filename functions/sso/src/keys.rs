//! The ID-token signing keys (docs/protocol/decisions.md §19): ES256 on P-256, generated here,
//! the private half sealed at rest through the `CredentialSealer` (KMS on AWS, the data dir's key
//! locally), rotated every `rotation`; the newest key signs and the one before it stays in the
//! JWKS, so tokens signed just before a rotation still verify.

use std::sync::{Arc, Mutex, PoisonError};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header, jwk::Jwk};
use koogallery::security::at_rest::{CredentialSealer, SealError};
use koogallery::sso::{SigningKeyStore, StoredSigningKey, signing_key::signing_key_binding};
use koogallery::storage::StoreError;
use p256::elliptic_curve::Generate as _;
use p256::pkcs8::EncodePrivateKey as _;

/// How long the key set read from the store is used before it is read again.
const CACHE_FOR: Duration = Duration::seconds(60);

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error("signing key {kid}: {what}")]
    Key { kid: String, what: String },
}

struct Cached {
    read_at: DateTime<Utc>,
    keys: Vec<StoredSigningKey>,
    /// The newest key, opened.
    signer: Option<(String, Arc<EncodingKey>)>,
}

/// The provider's keys, read from the store and cached briefly.
pub struct KeyRing {
    store: Arc<dyn SigningKeyStore>,
    sealer: Arc<dyn CredentialSealer>,
    rotation: Duration,
    cache: Mutex<Option<Cached>>,
}

/// A fresh P-256 key: its `kid`, PKCS#8 DER and public JWK.
fn generate(kid: String) -> Result<(String, Vec<u8>, serde_json::Value), KeyError> {
    let bad = |what: String| KeyError::Key {
        kid: "new".into(),
        what,
    };
    let secret = p256::SecretKey::try_generate_from_rng(&mut getrandom::SysRng)
        .map_err(|e| bad(format!("no randomness: {e}")))?;
    let der = secret
        .to_pkcs8_der()
        .map_err(|e| bad(format!("PKCS#8: {e}")))?
        .as_bytes()
        .to_vec();
    let mut jwk = Jwk::from_encoding_key(&EncodingKey::from_ec_der(&der), Algorithm::ES256)
        .map_err(|e| bad(format!("JWK: {e}")))?;
    jwk.common.key_id = Some(kid.clone());
    jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
    let public = serde_json::to_value(&jwk).map_err(|e| bad(format!("JWK: {e}")))?;
    Ok((kid, der, public))
}

impl KeyRing {
    pub fn new(
        store: Arc<dyn SigningKeyStore>,
        sealer: Arc<dyn CredentialSealer>,
        rotation: Duration,
    ) -> Self {
        crate::jose::install();
        Self {
            store,
            sealer,
            rotation,
            cache: Mutex::new(None),
        }
    }

    /// The keys to publish and sign with, creating or rotating the signing key when due and
    /// removing keys older than the previous one. Two processes rotating at once both add a key;
    /// both are published and the newer one signs everywhere after the next read.
    async fn keys(&self, now: DateTime<Utc>) -> Result<Vec<StoredSigningKey>, KeyError> {
        {
            let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(c) = cache.as_ref()
                && now - c.read_at < CACHE_FOR
                && c.keys
                    .last()
                    .is_some_and(|k| now - k.created_at < self.rotation)
            {
                return Ok(c.keys.clone());
            }
        }
        let mut keys = self.store.signing_keys().await?;
        if keys
            .last()
            .is_none_or(|k| now - k.created_at >= self.rotation)
        {
            // One kid per rotation period: processes rotating at once add the same kid, the first
            // one wins (`add_signing_key` is conditional) and the others read it back.
            let period = now
                .timestamp()
                .div_euclid(self.rotation.num_seconds().max(1));
            let (kid, der, public_jwk) = generate(format!("es256-{period}"))?;
            let sealed = self
                .sealer
                .seal(&signing_key_binding(&kid), &STANDARD.encode(&der))
                .await?;
            let key = StoredSigningKey {
                kid,
                alg: "ES256".into(),
                sealed_private_key: sealed,
                public_jwk,
                created_at: now,
            };
            if self.store.add_signing_key(&key).await? {
                tracing::info!(kid = %key.kid, "OIDC signing key created");
            }
            keys = self.store.signing_keys().await?;
        }
        // Keep the newest two: the signer and the one before it (still in the JWKS).
        while keys.len() > 2 {
            let old = keys.remove(0);
            self.store.remove_signing_key(&old.kid).await?;
            tracing::info!(kid = %old.kid, "OIDC signing key retired");
        }
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let signer = cache
            .take()
            .and_then(|c| c.signer)
            .filter(|(kid, _)| keys.last().is_some_and(|k| &k.kid == kid));
        *cache = Some(Cached {
            read_at: now,
            keys: keys.clone(),
            signer,
        });
        Ok(keys)
    }

    /// The JWKS document: every published public key.
    ///
    /// # Errors
    /// The store or the sealer failed.
    pub async fn jwks(&self, now: DateTime<Utc>) -> Result<serde_json::Value, KeyError> {
        let keys = self.keys(now).await?;
        Ok(serde_json::json!({
            "keys": keys.iter().map(|k| k.public_jwk.clone()).collect::<Vec<_>>()
        }))
    }

    /// Signs `claims` with the newest key (`alg` ES256, `kid` set; `typ` as given).
    ///
    /// # Errors
    /// The store, the sealer, or a damaged key.
    pub async fn sign<T: serde::Serialize>(
        &self,
        claims: &T,
        typ: &str,
        now: DateTime<Utc>,
    ) -> Result<String, KeyError> {
        let keys = self.keys(now).await?;
        let newest = keys.last().ok_or_else(|| KeyError::Key {
            kid: "-".into(),
            what: "no signing key".into(),
        })?;
        let cached = {
            let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            cache
                .as_ref()
                .and_then(|c| c.signer.clone())
                .filter(|(kid, _)| kid == &newest.kid)
        };
        let (kid, key) = match cached {
            Some(s) => s,
            None => {
                let b64 = self
                    .sealer
                    .open(
                        &signing_key_binding(&newest.kid),
                        &newest.sealed_private_key,
                    )
                    .await?;
                let der = STANDARD.decode(b64.trim()).map_err(|e| KeyError::Key {
                    kid: newest.kid.clone(),
                    what: format!("not base64: {e}"),
                })?;
                let key = Arc::new(EncodingKey::from_ec_der(&der));
                let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(c) = cache.as_mut() {
                    c.signer = Some((newest.kid.clone(), key.clone()));
                }
                (newest.kid.clone(), key)
            }
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.clone());
        header.typ = Some(typ.to_owned());
        jsonwebtoken::encode(&header, claims, &key).map_err(|e| KeyError::Key {
            kid,
            what: format!("signing failed: {e}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation, jwk::JwkSet};
    use koogallery::security::at_rest::LocalKeySealer;
    use koogallery::testing::MemorySso;

    #[tokio::test]
    async fn tokens_verify_with_the_published_key_and_the_previous_key_stays_during_rotation() {
        let store = Arc::new(MemorySso::new());
        let ring = KeyRing::new(
            store.clone(),
            Arc::new(LocalKeySealer::random()),
            Duration::days(30),
        );
        let t0 = Utc::now();
        let claims = serde_json::json!({"sub": "s", "aud": "a", "exp": t0.timestamp() + 600});
        let verify = |token: &str, jwks: &serde_json::Value| {
            let set: JwkSet = serde_json::from_value(jwks.clone()).unwrap();
            let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
            let jwk = set
                .find(&kid)
                .ok_or(format!("{kid} is not published in {jwks}"))?;
            let mut v = Validation::new(Algorithm::ES256);
            v.set_audience(&["a"]);
            jsonwebtoken::decode::<serde_json::Value>(
                token,
                &DecodingKey::from_jwk(jwk).unwrap(),
                &v,
            )
            .map(|d| d.claims)
            .map_err(|e| e.to_string())
        };
        let first = ring.sign(&claims, "JWT", t0).await.unwrap();
        let jwks = ring.jwks(t0).await.unwrap();
        assert_eq!(verify(&first, &jwks).unwrap()["sub"], "s");
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
        let jwk = &jwks["keys"][0];
        assert_eq!(
            (
                jwk["kty"].as_str(),
                jwk["crv"].as_str(),
                jwk["alg"].as_str(),
                jwk["use"].as_str()
            ),
            (Some("EC"), Some("P-256"), Some("ES256"), Some("sig"))
        );
        assert!(jwk.get("d").is_none(), "no private part is published");

        let t1 = t0 + Duration::days(31);
        let second = ring.sign(&claims, "JWT", t1).await.unwrap();
        let jwks = ring.jwks(t1).await.unwrap();
        assert_eq!(
            jwks["keys"].as_array().unwrap().len(),
            2,
            "the previous key stays published"
        );
        assert!(verify(&first, &jwks).is_ok() && verify(&second, &jwks).is_ok());
        assert_ne!(
            jsonwebtoken::decode_header(&first).unwrap().kid,
            jsonwebtoken::decode_header(&second).unwrap().kid
        );
        let t2 = t1 + Duration::days(31);
        ring.sign(&claims, "JWT", t2).await.unwrap();
        let jwks = ring.jwks(t2).await.unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
        assert!(
            verify(&first, &jwks).is_err(),
            "a key two rotations old is gone"
        );
        let stored = store.signing_keys().await.unwrap();
        assert!(
            stored.iter().all(|k| !k.sealed_private_key.contains("MIG")),
            "sealed, not PKCS#8 in the clear"
        );
    }
}
