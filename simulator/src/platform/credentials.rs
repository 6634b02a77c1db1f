//! KooGallery's reading of the credentials a vendor encrypts in its answers (`userName`,
//! `password` with `encryptType`; docs/protocol/callbacks.md §3.4; vectors §14.1, §14.2).
//!
//! AES-CBC/PKCS#5 under a key derived from the access key by Java's `SHA1PRNG`; the value sent is
//! the 16-character IV followed by standard Base64 of the ciphertext.

use aes::{Aes128, Aes256};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt as _, BlockModeEncrypt as _, KeyIvInit as _};
use sha1::{Digest as _, Sha1};

/// Length of the IV prefix, in characters (= bytes, they are ASCII alphanumerics).
const IV_LEN: usize = 16;

/// The AES key size an `encryptType` names (§3.4: `"1"` AES-256, `"2"` AES-128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySize {
    Aes256,
    Aes128,
}

impl KeySize {
    /// The key size of an `encryptType` value; `None` for anything but `"1"` and `"2"`.
    #[must_use]
    pub fn from_wire(encrypt_type: &str) -> Option<Self> {
        match encrypt_type.trim() {
            "1" => Some(Self::Aes256),
            "2" => Some(Self::Aes128),
            _ => None,
        }
    }

    fn bytes(self) -> usize {
        match self {
            Self::Aes256 => 32,
            Self::Aes128 => 16,
        }
    }
}

/// The first `len` bytes of Java's `SecureRandom.getInstance("SHA1PRNG")` seeded with `seed`
/// (§3.4 step 2): `state = SHA1(seed)`; each block is `SHA1(state)`, after which
/// `state += block + 1` (mod 2^160, little end first, Java's signed bytes).
#[must_use]
pub fn sha1prng(seed: &[u8], len: usize) -> Vec<u8> {
    let mut state: [u8; 20] = Sha1::digest(seed).into();
    let mut out = Vec::with_capacity(len + 20);
    while out.len() < len {
        let block: [u8; 20] = Sha1::digest(state).into();
        out.extend_from_slice(&block);
        let (mut carry, mut changed) = (1i32, false);
        for (s, b) in state.iter_mut().zip(block) {
            // Java adds the bytes as signed values and carries with an arithmetic shift.
            let v = i32::from(*s as i8) + i32::from(b as i8) + carry;
            let t = v as u8;
            changed |= *s != t;
            *s = t;
            carry = v >> 8;
        }
        if !changed {
            state[0] = state[0].wrapping_add(1);
        }
    }
    out.truncate(len);
    out
}

/// Why a value did not decrypt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("shorter than its 16-character IV")]
    TooShort,
    #[error("the part after the IV is not Base64")]
    Base64,
    #[error("does not decrypt (wrong key or key size)")]
    Decrypt,
    #[error("the plaintext is not UTF-8")]
    Utf8,
}

/// Decrypts one encrypted value (§3.4 step 5) with the key derived from `access_key`.
///
/// # Errors
/// [`CredentialError`] naming the step that failed.
pub fn decrypt(access_key: &str, value: &str, size: KeySize) -> Result<String, CredentialError> {
    let (iv, encoded) = value
        .split_at_checked(IV_LEN)
        .ok_or(CredentialError::TooShort)?;
    let ciphertext = STANDARD
        .decode(encoded)
        .map_err(|_| CredentialError::Base64)?;
    let key = sha1prng(access_key.as_bytes(), size.bytes());
    let plain = match size {
        KeySize::Aes256 => cbc::Decryptor::<Aes256>::new_from_slices(&key, iv.as_bytes())
            .map_err(|_| CredentialError::Decrypt)?
            .decrypt_padded_vec::<Pkcs7>(&ciphertext),
        KeySize::Aes128 => cbc::Decryptor::<Aes128>::new_from_slices(&key, iv.as_bytes())
            .map_err(|_| CredentialError::Decrypt)?
            .decrypt_padded_vec::<Pkcs7>(&ciphertext),
    }
    .map_err(|_| CredentialError::Decrypt)?;
    String::from_utf8(plain).map_err(|_| CredentialError::Utf8)
}

/// Encrypts `plaintext` with the given 16-character IV (§3.4 steps 1–4), as a vendor would: the
/// simulator's stand-in vendors use it in tests.
///
/// # Panics
/// If `iv` is not 16 bytes long.
#[must_use]
pub fn encrypt_with_iv(access_key: &str, plaintext: &str, size: KeySize, iv: &str) -> String {
    assert_eq!(iv.len(), IV_LEN, "the IV is 16 characters");
    let key = sha1prng(access_key.as_bytes(), size.bytes());
    let ciphertext = match size {
        KeySize::Aes256 => cbc::Encryptor::<Aes256>::new_from_slices(&key, iv.as_bytes())
            .expect("32-byte key, 16-byte IV")
            .encrypt_padded_vec::<Pkcs7>(plaintext.as_bytes()),
        KeySize::Aes128 => cbc::Encryptor::<Aes128>::new_from_slices(&key, iv.as_bytes())
            .expect("16-byte key, 16-byte IV")
            .encrypt_padded_vec::<Pkcs7>(plaintext.as_bytes()),
    };
    format!("{iv}{}", STANDARD.encode(ciphertext))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "TestAccessKey-0123456789abcdef";

    /// callbacks.md §14.1: both seeds, both key lengths (AES-256 spans two SHA-1 blocks).
    #[test]
    fn vector_14_1_sha1prng() {
        for (seed, k256) in [
            (
                KEY,
                "83fc146d5a76a7b889dcde61e2a98a95fda82f39aa51c943fff883881e22b66b",
            ),
            (
                "dc8c2cfb-f67c-4912-96ca-a9a9ce705ff4",
                "d625a56004083061b610aa711059cd3c99ae6862a81c31a6a253b6873a1b4f9b",
            ),
        ] {
            assert_eq!(hex::encode(sha1prng(seed.as_bytes(), 32)), k256, "{seed}");
            assert_eq!(
                hex::encode(sha1prng(seed.as_bytes(), 16)),
                k256[..32],
                "{seed}"
            );
        }
    }

    /// callbacks.md §14.2: the two published outputs, both ways.
    #[test]
    fn vector_14_2_encryption() {
        for (plain, wire, size, iv, out) in [
            (
                "admin@example.com",
                "1",
                KeySize::Aes256,
                "AbCdEf0123456789",
                "AbCdEf0123456789q0/5Es8Ufbyh+URIrjb3fsiUPdzjozBAAPCuif78XZc=",
            ),
            (
                "P@ssw0rd!",
                "2",
                KeySize::Aes128,
                "0123456789abcdef",
                "0123456789abcdef4uO+NUG0JJmp0c4nm8i+/g==",
            ),
        ] {
            assert_eq!(KeySize::from_wire(wire), Some(size));
            assert_eq!(encrypt_with_iv(KEY, plain, size, iv), out);
            assert_eq!(decrypt(KEY, out, size).as_deref(), Ok(plain));
        }
    }

    /// A wrong key, the wrong key size, a truncated value or bad Base64 does not decrypt.
    #[test]
    fn refusals() {
        let out = "AbCdEf0123456789q0/5Es8Ufbyh+URIrjb3fsiUPdzjozBAAPCuif78XZc=";
        assert!(decrypt("other-key", out, KeySize::Aes256).is_err());
        assert!(decrypt(KEY, out, KeySize::Aes128).is_err());
        assert_eq!(
            decrypt(KEY, "short", KeySize::Aes256),
            Err(CredentialError::TooShort)
        );
        assert_eq!(
            decrypt(KEY, "AbCdEf0123456789!!", KeySize::Aes256),
            Err(CredentialError::Base64)
        );
        assert_eq!(KeySize::from_wire("3"), None);
    }
}
