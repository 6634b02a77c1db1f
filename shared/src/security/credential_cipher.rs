//! Sensitive-field encryption (spec `callbacks.md` §3.4, README "Decisions" §4).
//!
//! Credentials (`userName` / `password` in responses) and V1 request fields (`mobilePhone`,
//! `email`) are `iv + Base64(AES-CBC-PKCS7(key, iv, utf8))`, where `iv` is 16 ASCII characters
//! and the AES key is the output of Java's `SHA1PRNG` seeded with the accessKey.

use aes::{Aes128, Aes256};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use rand::Rng as _;
use rand::distr::Alphanumeric;
use sha1::{Digest, Sha1};

/// Length of the IV prefix, in ASCII characters (= bytes) (§3.4 step 1).
pub const IV_LEN: usize = 16;

/// Maximum length of an encrypted `userName` / `password`, IV included (§3.4 step 6).
pub const MAX_ENCRYPTED_LEN: usize = 128;

/// The length of `plaintext` once encrypted: the IV, then Base64 of the PKCS#7-padded AES-CBC
/// blocks (the same for AES-128 and AES-256).
#[must_use]
pub fn encrypted_len(plaintext: &str) -> usize {
    let padded = 16 * (plaintext.len() / 16 + 1);
    IV_LEN + 4 * padded.div_ceil(3)
}

/// Java `SecureRandom.getInstance("SHA1PRNG")` (SUN provider) output after `setSeed(seed)` on a
/// fresh instance: the first `len` bytes (§3.4 step 2).
#[must_use]
pub fn sha1prng(seed: &[u8], len: usize) -> Vec<u8> {
    let mut state: [u8; 20] = Sha1::digest(seed).into();
    let mut out = Vec::with_capacity(len.next_multiple_of(20));
    while out.len() < len {
        let block: [u8; 20] = Sha1::digest(state).into();
        sha1prng_update_state(&mut state, &block);
        out.extend_from_slice(&block);
    }
    out.truncate(len);
    out
}

/// `state = state + output + 1` over Java signed bytes with arithmetic-shift carry; if no byte
/// changed, `state[0]++` (`sun.security.provider.SecureRandom.updateState`).
fn sha1prng_update_state(state: &mut [u8; 20], output: &[u8; 20]) {
    let mut carry: i32 = 1;
    let mut changed = false;
    for (s, &o) in state.iter_mut().zip(output) {
        let v = i32::from(s.cast_signed()) + i32::from(o.cast_signed()) + carry;
        let [t, ..] = v.to_le_bytes(); // Java `(byte) v`: the low 8 bits
        changed |= *s != t;
        *s = t;
        carry = v >> 8;
    }
    if !changed {
        state[0] = state[0].wrapping_add(1);
    }
}

/// `encryptType` (§3.4): `"1"` AES-256-CBC (the default when absent), `"2"` AES-128-CBC.
/// Serialised as its wire value.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum EncryptType {
    /// `"1"`: AES-256-CBC, PKCS#5/7 padding (default).
    #[default]
    #[serde(rename = "1")]
    Aes256,
    /// `"2"`: AES-128-CBC, PKCS#5/7 padding.
    #[serde(rename = "2")]
    Aes128,
}

impl EncryptType {
    /// The `encryptType` wire value.
    #[must_use]
    pub fn wire(self) -> &'static str {
        match self {
            Self::Aes256 => "1",
            Self::Aes128 => "2",
        }
    }

    /// Parses an `encryptType` wire value.
    #[must_use]
    pub fn from_wire(s: &str) -> Option<Self> {
        match s {
            "1" => Some(Self::Aes256),
            "2" => Some(Self::Aes128),
            _ => None,
        }
    }

    /// AES key length in bytes.
    #[must_use]
    pub fn key_bytes(self) -> usize {
        match self {
            Self::Aes256 => 32,
            Self::Aes128 => 16,
        }
    }
}

/// Why a field could not be encrypted or decrypted. Messages never contain key or plaintext.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// The encrypted value would exceed the 128-character field limit (§3.4 step 6).
    #[error("encrypted value is {len} characters, over the {MAX_ENCRYPTED_LEN}-character limit")]
    TooLong {
        /// Length the encrypted value would have had.
        len: usize,
    },
    /// The part after the IV is not standard Base64.
    #[error("ciphertext is not valid Base64")]
    BadBase64,
    /// The IV is not 16 ASCII characters (or the value is shorter than 16 characters).
    #[error("IV must be {IV_LEN} ASCII characters")]
    BadIv,
    /// The ciphertext is not whole blocks or its padding is wrong: wrong key, wrong kind or corrupt.
    #[error("decryption failed (wrong key, wrong encryptType or corrupted data)")]
    Decrypt,
    /// The plaintext is not UTF-8.
    #[error("decrypted value is not UTF-8")]
    NotUtf8,
}

/// Encrypts a credential with a fresh random IV of 16 `[A-Za-z0-9]` characters (§3.4).
///
/// # Errors
/// [`CryptoError::TooLong`] if the result exceeds 128 characters (plaintext over 79 bytes).
pub fn encrypt_credential(
    access_key: &str,
    plaintext: &str,
    kind: EncryptType,
) -> Result<String, CryptoError> {
    let iv: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(IV_LEN)
        .map(char::from)
        .collect();
    encrypt_credential_with_iv(access_key, plaintext, kind, &iv)
}

/// [`encrypt_credential`] with a given IV (16 ASCII characters): `iv + Base64(ciphertext)`.
///
/// # Errors
/// [`CryptoError::BadIv`] for a bad IV, [`CryptoError::TooLong`] if the result exceeds
/// 128 characters.
pub fn encrypt_credential_with_iv(
    access_key: &str,
    plaintext: &str,
    kind: EncryptType,
    iv: &str,
) -> Result<String, CryptoError> {
    if iv.len() != IV_LEN || !iv.is_ascii() {
        return Err(CryptoError::BadIv);
    }
    let key = sha1prng(access_key.as_bytes(), kind.key_bytes());
    let (key, iv_bytes, msg) = (key.as_slice(), iv.as_bytes(), plaintext.as_bytes());
    let ciphertext = match kind {
        EncryptType::Aes256 => cbc::Encryptor::<Aes256>::new_from_slices(key, iv_bytes)
            .map_err(|_| CryptoError::BadIv)?
            .encrypt_padded_vec::<Pkcs7>(msg),
        EncryptType::Aes128 => cbc::Encryptor::<Aes128>::new_from_slices(key, iv_bytes)
            .map_err(|_| CryptoError::BadIv)?
            .encrypt_padded_vec::<Pkcs7>(msg),
    };
    let out = format!("{iv}{}", BASE64.encode(ciphertext));
    if out.len() > MAX_ENCRYPTED_LEN {
        return Err(CryptoError::TooLong { len: out.len() });
    }
    Ok(out)
}

/// Decrypts an `iv + Base64(ciphertext)` field (§3.4 step 5). The platform encrypts V1 request
/// fields with AES-256 ([`EncryptType::Aes256`]).
///
/// Surrounding whitespace is ignored and a space inside the Base64 part is read as `+` (a `+`
/// that went through form decoding unescaped). No length limit applies here.
///
/// # Errors
/// [`CryptoError::BadIv`], [`CryptoError::BadBase64`], [`CryptoError::Decrypt`] (bad padding,
/// wrong key or kind) or [`CryptoError::NotUtf8`].
pub fn decrypt_field(
    access_key: &str,
    value: &str,
    kind: EncryptType,
) -> Result<String, CryptoError> {
    let (iv, encoded) = value
        .trim()
        .split_at_checked(IV_LEN)
        .ok_or(CryptoError::BadIv)?;
    if !iv.is_ascii() {
        return Err(CryptoError::BadIv);
    }
    let ciphertext = BASE64
        .decode(encoded.replace(' ', "+"))
        .map_err(|_| CryptoError::BadBase64)?;
    let key = sha1prng(access_key.as_bytes(), kind.key_bytes());
    let (key, iv) = (key.as_slice(), iv.as_bytes());
    let plaintext = match kind {
        EncryptType::Aes256 => cbc::Decryptor::<Aes256>::new_from_slices(key, iv)
            .map_err(|_| CryptoError::BadIv)?
            .decrypt_padded_vec::<Pkcs7>(&ciphertext),
        EncryptType::Aes128 => cbc::Decryptor::<Aes128>::new_from_slices(key, iv)
            .map_err(|_| CryptoError::BadIv)?
            .decrypt_padded_vec::<Pkcs7>(&ciphertext),
    }
    .map_err(|_| CryptoError::Decrypt)?;
    String::from_utf8(plaintext).map_err(|_| CryptoError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: &str = "TestAccessKey-0123456789abcdef";
    const PUBLISHED_KEY: &str = "dc8c2cfb-f67c-4912-96ca-a9a9ce705ff4";

    // §14.2
    const ENC_256: &str = "AbCdEf0123456789q0/5Es8Ufbyh+URIrjb3fsiUPdzjozBAAPCuif78XZc=";
    const ENC_128: &str = "0123456789abcdef4uO+NUG0JJmp0c4nm8i+/g==";

    // ---- §14.1 SHA1PRNG ------------------------------------------------------------------------

    #[test]
    fn sha1prng_vectors() {
        let cases = [
            (
                KEY,
                "83fc146d5a76a7b889dcde61e2a98a95fda82f39aa51c943fff883881e22b66b",
            ),
            (
                PUBLISHED_KEY,
                "d625a56004083061b610aa711059cd3c99ae6862a81c31a6a253b6873a1b4f9b",
            ),
        ];
        for (seed, key256) in cases {
            assert_eq!(hex::encode(sha1prng(seed.as_bytes(), 32)), key256);
            assert_eq!(hex::encode(sha1prng(seed.as_bytes(), 16)), key256[..32]);
        }
    }

    #[test]
    fn sha1prng_lengths_and_prefix_property() {
        let long = sha1prng(b"seed", 100);
        assert_eq!(long.len(), 100);
        for len in [0, 1, 19, 20, 21, 40, 41] {
            assert_eq!(sha1prng(b"seed", len), long[..len]);
        }
        // First block is SHA1(SHA1(seed)).
        let first: [u8; 20] = Sha1::digest(Sha1::digest(b"seed")).into();
        assert_eq!(long[..20], first);
    }

    #[test]
    fn sha1prng_state_update_uses_signed_bytes_and_bumps_unchanged_state() {
        let mut state = [0u8; 20];
        state[0] = 0x7f;
        state[1] = 0xff;
        let mut output = [0u8; 20];
        output[0] = 0x01;
        output[1] = 0xff;
        sha1prng_update_state(&mut state, &output);
        // 127 + 1 + 1 = 129: byte 0x81, carry 0.
        assert_eq!(state[0], 0x81);
        // -1 + -1 + 0 = -2: byte 0xfe, carry -1 (unsigned bytes would give carry +1) ...
        assert_eq!(state[1], 0xfe);
        // ... which turns every following zero byte into 0xff.
        assert!(state[2..].iter().all(|&b| b == 0xff));

        // output + carry = 0 everywhere leaves the state unchanged, so state[0] is bumped.
        let mut state = [5u8; 20];
        let mut output = [0u8; 20];
        output[0] = 0xff;
        sha1prng_update_state(&mut state, &output);
        assert_eq!(state[0], 6);
        assert!(state[1..].iter().all(|&b| b == 5));
    }

    // ---- §14.2 credential encryption -----------------------------------------------------------

    #[test]
    fn encryption_vectors() {
        assert_eq!(
            encrypt_credential_with_iv(
                KEY,
                "admin@example.com",
                EncryptType::Aes256,
                "AbCdEf0123456789"
            )
            .unwrap(),
            ENC_256
        );
        assert_eq!(
            encrypt_credential_with_iv(KEY, "P@ssw0rd!", EncryptType::Aes128, "0123456789abcdef")
                .unwrap(),
            ENC_128
        );
    }

    #[test]
    fn encryption_vectors_round_trip() {
        assert_eq!(
            decrypt_field(KEY, ENC_256, EncryptType::Aes256).unwrap(),
            "admin@example.com"
        );
        assert_eq!(
            decrypt_field(KEY, ENC_128, EncryptType::Aes128).unwrap(),
            "P@ssw0rd!"
        );
        // '+' turned into ' ' by form decoding, and surrounding whitespace, are tolerated.
        let spaced = format!(" {} \n", ENC_256.replace('+', " "));
        assert_eq!(
            decrypt_field(KEY, &spaced, EncryptType::Aes256).unwrap(),
            "admin@example.com"
        );
    }

    #[test]
    fn random_iv_encryption_round_trips() {
        for kind in [EncryptType::Aes256, EncryptType::Aes128] {
            let a = encrypt_credential(KEY, "secret-Pa55", kind).unwrap();
            let b = encrypt_credential(KEY, "secret-Pa55", kind).unwrap();
            assert_ne!(a, b, "IVs must differ");
            for enc in [&a, &b] {
                assert!(enc[..IV_LEN].bytes().all(|c| c.is_ascii_alphanumeric()));
                assert_eq!(decrypt_field(KEY, enc, kind).unwrap(), "secret-Pa55");
            }
        }
    }

    #[test]
    fn encrypt_over_128_characters_errors_cleanly() {
        for kind in [EncryptType::Aes256, EncryptType::Aes128] {
            let ok = encrypt_credential(KEY, &"x".repeat(79), kind).unwrap();
            assert_eq!(ok.len(), 124);
            assert_eq!(
                encrypt_credential(KEY, &"x".repeat(80), kind),
                Err(CryptoError::TooLong { len: 144 })
            );
            // Multi-byte characters count by UTF-8 bytes: 27 × 3 = 81 bytes.
            assert!(matches!(
                encrypt_credential(KEY, &"密".repeat(27), kind),
                Err(CryptoError::TooLong { .. })
            ));
            assert!(encrypt_credential(KEY, "", kind).is_ok());
        }
    }

    #[test]
    fn decrypt_has_no_length_limit() {
        // Request fields decrypted here are not bound by the 128-character response limit.
        let key = sha1prng(KEY.as_bytes(), 32);
        let plaintext = "y".repeat(200);
        let ct = cbc::Encryptor::<Aes256>::new_from_slices(&key, b"AbCdEf0123456789")
            .unwrap()
            .encrypt_padded_vec::<Pkcs7>(plaintext.as_bytes());
        let value = format!("AbCdEf0123456789{}", BASE64.encode(ct));
        assert!(value.len() > MAX_ENCRYPTED_LEN);
        assert_eq!(
            decrypt_field(KEY, &value, EncryptType::Aes256).unwrap(),
            plaintext
        );
    }

    #[test]
    fn bad_iv_is_rejected() {
        for iv in ["", "short", "0123456789abcdef0", "0123456789abcdeé"] {
            assert_eq!(
                encrypt_credential_with_iv(KEY, "x", EncryptType::Aes256, iv),
                Err(CryptoError::BadIv),
                "{iv}"
            );
        }
    }

    #[test]
    fn decrypt_garbage_errors_without_panicking() {
        let e256 = EncryptType::Aes256;
        assert_eq!(decrypt_field(KEY, "", e256), Err(CryptoError::BadIv));
        assert_eq!(decrypt_field(KEY, "short", e256), Err(CryptoError::BadIv));
        // Multi-byte character straddling the IV boundary.
        assert_eq!(
            decrypt_field(KEY, "0123456789abcde密AAAA", e256),
            Err(CryptoError::BadIv)
        );
        assert_eq!(
            decrypt_field(KEY, "0123456789abcdeé=AAA", e256),
            Err(CryptoError::BadIv)
        );
        assert_eq!(
            decrypt_field(KEY, "0123456789abcdef!!!!", e256),
            Err(CryptoError::BadBase64)
        );
        assert_eq!(
            decrypt_field(KEY, "0123456789abcdefq0/5Es8Ufbyh", e256),
            Err(CryptoError::Decrypt) // 21 bytes: not whole blocks
        );
        // Empty ciphertext.
        assert_eq!(
            decrypt_field(KEY, "0123456789abcdef", e256),
            Err(CryptoError::Decrypt)
        );
        // Wrong kind or wrong key: padding (or, rarely, UTF-8) failure, never a panic.
        assert!(decrypt_field(KEY, ENC_256, EncryptType::Aes128).is_err());
        assert!(decrypt_field(KEY, ENC_128, EncryptType::Aes256).is_err());
        assert!(decrypt_field("WrongKey", ENC_256, e256).is_err());
        // Valid padding over non-UTF-8 plaintext.
        let key = sha1prng(KEY.as_bytes(), 32);
        let ct = cbc::Encryptor::<Aes256>::new_from_slices(&key, b"0123456789abcdef")
            .unwrap()
            .encrypt_padded_vec::<Pkcs7>(&[0xff, 0xfe]);
        let value = format!("0123456789abcdef{}", BASE64.encode(ct));
        assert_eq!(decrypt_field(KEY, &value, e256), Err(CryptoError::NotUtf8));
    }

    #[test]
    fn encrypt_type_wire_values() {
        assert_eq!(EncryptType::default(), EncryptType::Aes256);
        for (kind, wire, bytes) in [
            (EncryptType::Aes256, "1", 32),
            (EncryptType::Aes128, "2", 16),
        ] {
            assert_eq!(kind.wire(), wire);
            assert_eq!(EncryptType::from_wire(wire), Some(kind));
            assert_eq!(kind.key_bytes(), bytes);
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{wire}\""));
            assert_eq!(serde_json::from_str::<EncryptType>(&json).unwrap(), kind);
        }
        for bad in ["", "0", "3", "01", " 1", "Aes256"] {
            assert_eq!(EncryptType::from_wire(bad), None);
        }
        assert!(serde_json::from_str::<EncryptType>("1").is_err());
    }

    proptest! {
        #[test]
        fn encrypt_decrypt_round_trip(plaintext in "[ -~]{0,79}", aes128 in any::<bool>()) {
            let kind = if aes128 { EncryptType::Aes128 } else { EncryptType::Aes256 };
            let enc = encrypt_credential(KEY, &plaintext, kind).unwrap();
            prop_assert!(enc.len() <= MAX_ENCRYPTED_LEN);
            prop_assert_eq!(decrypt_field(KEY, &enc, kind).unwrap(), plaintext);
        }

        #[test]
        fn decrypt_never_panics(value in ".{0,80}", aes128 in any::<bool>()) {
            let kind = if aes128 { EncryptType::Aes128 } else { EncryptType::Aes256 };
            let _ = decrypt_field(KEY, &value, kind);
        }
    }

    #[test]
    fn encrypted_len_is_what_encryption_produces() {
        for n in [0, 1, 15, 16, 17, 31, 32, 63, 79, 80, 100] {
            let plain = "x".repeat(n);
            for kind in [EncryptType::Aes128, EncryptType::Aes256] {
                let sent = encrypt_credential_with_iv(KEY, &plain, kind, "AbCdEf0123456789");
                let expected = encrypted_len(&plain);
                match sent {
                    Ok(v) => assert_eq!(v.len(), expected, "{n} bytes"),
                    Err(_) => assert!(expected > MAX_ENCRYPTED_LEN, "{n} bytes"),
                }
            }
        }
        assert!(encrypted_len(&"x".repeat(79)) <= MAX_ENCRYPTED_LEN);
        assert!(encrypted_len(&"x".repeat(80)) > MAX_ENCRYPTED_LEN);
    }
}
