//! Credentials at rest: the passwords vendors hand out are sealed (AES-256-GCM) before they are
//! stored, and opened only to answer queryInstance, which still returns them to KooGallery as
//! before (encrypted on the wire per docs/protocol/decisions.md §4 when configured). The table, its
//! backups and the local store file never hold them in plain text.
//!
//! The [`CredentialSealer`] port has two implementations: [`LocalKeySealer`] (a key from
//! configuration, or a generated key file readable by its owner only) here, and the AWS adapter's
//! envelope encryption under a KMS key the template creates (a data key per sealed value, wrapped
//! by KMS). A sealed value names its scheme in a prefix, so either side refuses the other's.
//!
//! Since scheme version 2 (`local2.`, `kms2.`) a sealed value is bound to its instance: the
//! instance ID is authenticated with it (AES-GCM associated data; on AWS also the KMS encryption
//! context), so a sealed password copied into another instance's record does not open. Values
//! sealed before (`local1.`, `kms1.`) keep opening, unbound, as they always did.

use crate::failure::Detail;
use std::{io::Write, path::Path};

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use async_trait::async_trait;
use base64::{Engine, engine::general_purpose::STANDARD};
use rand::RngCore;

/// Bound into every version-1 sealed value: a ciphertext cannot be moved to another purpose.
const AAD_V1: &[u8] = b"koogallery:credential:v1";
const NONCE_LEN: usize = 12;
/// A value sealed by [`LocalKeySealer`]: `local2.<base64(nonce || ciphertext)>`, bound to its
/// instance ([`bound_to`]).
pub const LOCAL_PREFIX: &str = "local2.";
/// A value sealed before values were bound to their instance; still opened.
pub const LOCAL_PREFIX_V1: &str = "local1.";

/// What a version-2 sealed value authenticates besides its text: its purpose and its instance.
#[must_use]
pub fn bound_to(instance_id: &str) -> Vec<u8> {
    let mut aad = b"koogallery:credential:v2:".to_vec();
    aad.extend_from_slice(instance_id.as_bytes());
    aad
}

/// The associated data of a version-1 sealed value (not bound to an instance).
#[must_use]
pub fn unbound_v1() -> &'static [u8] {
    AAD_V1
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The key service could not be reached: worth retrying.
    #[error("credential key unavailable: {0}")]
    Unavailable(#[source] Detail),
    /// The sealed value is damaged, or sealed under another key or scheme: retrying cannot help.
    #[error("sealed credential cannot be opened: {0}")]
    Corrupt(#[source] Detail),
    /// The key is missing or malformed (a setting, a key file).
    #[error("credential key: {0}")]
    Key(#[source] Detail),
}

impl SealError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// Seals credentials for storage and opens them to present them, each bound to its instance.
#[async_trait]
pub trait CredentialSealer: Send + Sync {
    async fn seal(&self, instance_id: &str, plaintext: &str) -> Result<String, SealError>;
    /// Opens what was sealed for `instance_id` (or, unbound, before version 2); a value sealed
    /// for another instance is [`SealError::Corrupt`].
    async fn open(&self, instance_id: &str, sealed: &str) -> Result<String, SealError>;
}

/// AES-256-GCM with a fresh random nonce, authenticating `aad`: `nonce || ciphertext || tag`.
pub fn aead_seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new(key.into());
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let sealed = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        // Encryption fails only for inputs beyond GCM's 64 GiB limit; a credential is ≤ 128 chars.
        .unwrap_or_default();
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    out
}

/// Opens what [`aead_seal`] produced under the same key and associated data.
pub fn aead_open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    if sealed.len() < NONCE_LEN + 16 {
        return Err(SealError::Corrupt("too short".into()));
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce
        .try_into()
        .map_err(|_| SealError::Corrupt("bad nonce".into()))?;
    Aes256Gcm::new(key.into())
        .decrypt(&Nonce::from(nonce), Payload { msg: body, aad })
        .map_err(|_| {
            SealError::Corrupt(
                "authentication failed (wrong key, altered, or another instance's)".into(),
            )
        })
}

/// Decodes base64 or reports which value was bad.
pub fn decode_base64(what: &str, text: &str) -> Result<Vec<u8>, SealError> {
    STANDARD
        .decode(text.trim())
        .map_err(|e| SealError::Corrupt(Detail::caused_by(format!("{what} is not base64"), e)))
}

pub fn encode_base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

fn utf8(bytes: Vec<u8>) -> Result<String, SealError> {
    String::from_utf8(bytes).map_err(|_| SealError::Corrupt("not UTF-8".into()))
}

/// Seals with one 256-bit key held by the process: the local host's, from
/// `KOOGALLERY_CREDENTIALS_KEY` (base64 of 32 bytes) or a key file it generates.
pub struct LocalKeySealer {
    key: [u8; 32],
}

impl std::fmt::Debug for LocalKeySealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalKeySealer(<key>)")
    }
}

impl LocalKeySealer {
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    /// A sealer with a random key (tests, and stores that live only as long as the process).
    pub fn random() -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self { key }
    }

    /// The key given as base64 of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, SealError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|e| SealError::Key(Detail::caused_by("not base64", e)))?;
        let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            SealError::Key(format!("expected 32 bytes, got {}", b.len()).into())
        })?;
        Ok(Self { key })
    }

    /// The key kept in `path` (base64), generated there on first use and created readable and
    /// writable by its owner only (0600). Losing this file loses the stored passwords.
    ///
    /// The file appears whole or not at all: the key is written to a temporary file in the same
    /// directory (0600), synced, then linked into place only if no key is there yet, and the
    /// directory is synced. Two processes starting at once end with one key (the second reads the
    /// first's), and a crash never leaves an empty file or replaces a key that sealed passwords.
    pub fn from_key_file(path: &Path) -> Result<Self, SealError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_base64(&text)
                .map_err(|e| SealError::Key(format!("{}: {e}", path.display()).into())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let sealer = Self::random();
                match write_new_file_atomically(path, STANDARD.encode(sealer.key).as_bytes()) {
                    Ok(()) => Ok(sealer),
                    // Another process put its key there first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Self::from_key_file(path)
                    }
                    Err(e) => Err(SealError::Key(
                        format!("cannot create {}: {e}", path.display()).into(),
                    )),
                }
            }
            Err(e) => Err(SealError::Key(
                format!("cannot read {}: {e}", path.display()).into(),
            )),
        }
    }
}

/// Creates `path` holding `contents`, owner-only, never visible half-written: a synced temporary
/// file in the same directory is hard-linked into place (`AlreadyExists` if `path` exists, which
/// is then left untouched), and the directory is synced so the new name survives a crash.
pub fn write_new_file_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // tempfile creates the file 0600 on unix, with a random name, in the target's directory.
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(contents)?;
    tmp.as_file().sync_all()?;
    tmp.persist_noclobber(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

#[async_trait]
impl CredentialSealer for LocalKeySealer {
    async fn seal(&self, instance_id: &str, plaintext: &str) -> Result<String, SealError> {
        Ok(format!(
            "{LOCAL_PREFIX}{}",
            STANDARD.encode(aead_seal(
                &self.key,
                &bound_to(instance_id),
                plaintext.as_bytes()
            ))
        ))
    }

    async fn open(&self, instance_id: &str, sealed: &str) -> Result<String, SealError> {
        let (aad, body) = if let Some(body) = sealed.strip_prefix(LOCAL_PREFIX) {
            (bound_to(instance_id), body)
        } else if let Some(body) = sealed.strip_prefix(LOCAL_PREFIX_V1) {
            (AAD_V1.to_vec(), body)
        } else {
            return Err(SealError::Corrupt("not sealed with the local key".into()));
        };
        utf8(aead_open(
            &self.key,
            &aad,
            &decode_base64("sealed credential", body)?,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sealed_credentials_open_only_with_their_key_and_unaltered() {
        let sealer = LocalKeySealer::random();
        let sealed = sealer.seal("i-1", "S3cret!pass").await.unwrap();
        assert!(sealed.starts_with(LOCAL_PREFIX));
        assert!(!sealed.contains("S3cret"));
        assert_ne!(
            sealed,
            sealer.seal("i-1", "S3cret!pass").await.unwrap(),
            "fresh nonce"
        );
        assert_eq!(sealer.open("i-1", &sealed).await.unwrap(), "S3cret!pass");
        let other = LocalKeySealer::random();
        assert!(matches!(
            other.open("i-1", &sealed).await,
            Err(SealError::Corrupt(_))
        ));
        let mut bytes = decode_base64("x", &sealed[LOCAL_PREFIX.len()..]).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let altered = format!("{LOCAL_PREFIX}{}", encode_base64(&bytes));
        assert!(matches!(
            sealer.open("i-1", &altered).await,
            Err(SealError::Corrupt(_))
        ));
        for junk in [
            "",
            "local2.",
            "local2.!!",
            "kms2.abc.def",
            "local2.AAAA",
            "local1.AAAA",
        ] {
            assert!(sealer.open("i-1", junk).await.is_err(), "{junk}");
        }
    }

    #[tokio::test]
    async fn the_key_file_is_generated_owner_only_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.key");
        let first = LocalKeySealer::from_key_file(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let sealed = first.seal("i-1", "pw").await.unwrap();
        let again = LocalKeySealer::from_key_file(&path).unwrap();
        assert_eq!(again.open("i-1", &sealed).await.unwrap(), "pw");
        std::fs::write(&path, "c2hvcnQ=").unwrap();
        let e = LocalKeySealer::from_key_file(&path)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("32 bytes") && e.contains("credentials.key"),
            "{e}"
        );
        assert!(LocalKeySealer::from_base64("not base64!").is_err());
    }

    /// Many processes starting at once on a fresh data directory: before the file was written
    /// atomically, a reader could see it created but still empty ("expected 32 bytes, got 0").
    #[test]
    fn concurrent_first_starts_end_with_one_key_and_no_leftovers() {
        for round in 0..50 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("credentials.key");
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
            let keys: Vec<[u8; 32]> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..8)
                    .map(|_| {
                        let (barrier, path) = (barrier.clone(), path.clone());
                        s.spawn(move || {
                            barrier.wait();
                            LocalKeySealer::from_key_file(&path)
                                .unwrap_or_else(|e| panic!("round {round}: {e}"))
                                .key
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            assert!(keys.iter().all(|k| *k == keys[0]), "round {round}: one key");
            let names: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(
                names,
                vec!["credentials.key"],
                "round {round}: no temp files"
            );
        }
    }

    #[test]
    fn an_existing_file_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        write_new_file_atomically(&path, b"first").unwrap();
        let e = write_new_file_atomically(&path, b"second").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }
}
