//! KooGallery's encryption of a 联营 app's `clientSecret` for applicationSync
//! (docs/protocol/callbacks.md §3.5, docs/protocol/decisions.md §14).
//!
//! The platform encrypts with the RSA public key the seller uploaded, OAEP padding, Base64.
//! Java's `OAEPWithSHA-256AndMGF1Padding` (SunJCE) is SHA-256 with MGF1-SHA-1 and an empty label;
//! that is the variant played here. Randomised, so the unit tests decrypt rather than compare, and
//! hold the parameters to the Java 17 ciphertexts in `shared/tests/fixtures/kit/`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rsa::PublicKey;
use rsa::oaep::EncryptingKey;
use rsa::pkcs8::DecodePublicKey as _;
use rsa::traits::RandomizedEncryptor as _;
use sha1::Sha1;
use sha2::Sha256;

/// `plaintext` encrypted for the holder of `public_key_pem` (SubjectPublicKeyInfo PEM):
/// RSA-OAEP SHA-256 / MGF1-SHA-1, standard padded Base64.
///
/// # Errors
/// The key does not parse, or the plaintext is too long for it.
pub fn encrypt(public_key_pem: &str, plaintext: &str) -> Result<String, String> {
    let key = PublicKey::from_public_key_pem(public_key_pem.trim())
        .map_err(|e| format!("the public key does not parse: {e}"))?;
    let ciphertext = EncryptingKey::<Sha256, Sha1>::new(key)
        .encrypt_with_rng(&mut getrandom::SysRng, plaintext.as_bytes())
        .map_err(|e| format!("RSA-OAEP: {e}"))?;
    Ok(STANDARD.encode(ciphertext))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs8::DecodePrivateKey as _;
    use rsa::{Oaep, PrivateKey};

    const PRIVATE: &str = include_str!("../../../shared/tests/fixtures/kit/kit_rsa_3072.pem");
    const PUBLIC: &str = include_str!("../../../shared/tests/fixtures/kit/kit_rsa_3072.pub.pem");
    const JAVA: &str = include_str!("../../../shared/tests/fixtures/kit/kit_rsa_java_vectors.json");

    fn private() -> PrivateKey {
        PrivateKey::from_pkcs8_pem(PRIVATE).unwrap()
    }

    fn open(ciphertext: &str, oaep: impl rsa::traits::PaddingScheme) -> Option<String> {
        let bytes = STANDARD.decode(ciphertext).ok()?;
        String::from_utf8(private().decrypt(oaep, &bytes).ok()?).ok()
    }

    /// The OAEP parameters used here open Java's `OAEPWithSHA-256AndMGF1Padding` ciphertext of
    /// the fixture, and not its SHA-256/MGF1-SHA-256 one: they are Java's.
    #[test]
    fn parameters_are_javas_sha256_with_mgf1_sha1() {
        let v: serde_json::Value = serde_json::from_str(JAVA).unwrap();
        let java = v["sha256_mgf1sha1"].as_str().unwrap();
        let other = v["sha256_mgf1sha256"].as_str().unwrap();
        let plain = v["plaintext"].as_str().unwrap();
        let ours = || Oaep::<Sha256, Sha1>::new_with_mgf_hash();
        assert_eq!(open(java, ours()).as_deref(), Some(plain));
        assert_eq!(open(other, ours()), None);
    }

    /// What is sent opens with the seller's private key under those parameters only.
    #[test]
    fn encrypts_for_the_private_key_holder() {
        let sent = encrypt(PUBLIC, "app-secret-示例").unwrap();
        assert_eq!(
            open(&sent, Oaep::<Sha256, Sha1>::new_with_mgf_hash()).as_deref(),
            Some("app-secret-示例")
        );
        assert_eq!(open(&sent, Oaep::<Sha256>::new()), None);
        assert_ne!(
            sent,
            encrypt(PUBLIC, "app-secret-示例").unwrap(),
            "randomised"
        );
        assert!(encrypt("not a key", "x").is_err());
    }
}
