//! Opaque values the provider hands out (session cookies, codes, tokens, client secrets): 256
//! random bits, base64url, stored only as their SHA-256 so that a copy of the store opens nothing
//! (docs/protocol/decisions.md §19).

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

/// A fresh opaque value: 32 bytes from the OS-seeded generator, base64url without padding (43
/// characters). Its `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Opaque(String);

impl Opaque {
    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// What a browser or client sent back; anything that cannot be one of ours (wrong length or
    /// alphabet) is `None`, so garbage never reaches a store.
    pub fn parse(value: &str) -> Option<Self> {
        let ok = value.len() == 43
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Self(value.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The key it is stored under.
    pub fn key(&self) -> String {
        hash_opaque(&self.0)
    }
}

impl std::fmt::Debug for Opaque {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Opaque(<redacted>)")
    }
}

/// Lower-case hex SHA-256 of `value`: the stored key of an opaque value.
pub fn hash_opaque(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// Compares two hashes in constant time.
pub fn same_hash(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opaque_values_are_256_bit_and_parse_back_only_when_well_formed() {
        let a = Opaque::random();
        let b = Opaque::random();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 43);
        assert_eq!(Opaque::parse(a.expose()), Some(a.clone()));
        assert_eq!(Opaque::parse(&a.expose()[1..]), None);
        assert_eq!(Opaque::parse(&format!("{}=", &a.expose()[1..])), None);
        assert!(!format!("{a:?}").contains(a.expose()));
        assert_eq!(a.key().len(), 64);
        assert!(same_hash(&a.key(), &a.key()));
        assert!(!same_hash(&a.key(), &b.key()));
    }
}
