//! The one JOSE algorithm the provider uses, ES256 (docs/protocol/decisions.md §19), as
//! `jsonwebtoken`'s crypto provider over `p256`: `jsonwebtoken` keeps the JWS and JWK formats,
//! `p256` the signatures. Its own RustCrypto backend would link RSA, P-384 and Ed25519 into every
//! function that signs a token, for nothing; any other algorithm is refused here.

use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey,
    crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils},
    errors::{ErrorKind, Result},
    jwk::{EllipticCurve, ThumbprintHash},
};
use p256::ecdsa::{
    Signature, SigningKey, VerifyingKey,
    signature::{self, Signer, Verifier},
};
use p256::pkcs8::DecodePrivateKey as _;
use sha2::Digest as _;

struct Es256Signer(SigningKey);

impl Signer<Vec<u8>> for Es256Signer {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        // JWS: the fixed 64-byte r || s (RFC 7518 §3.4).
        let sig: Signature = self.0.try_sign(msg)?;
        Ok(sig.to_vec())
    }
}

impl JwtSigner for Es256Signer {
    fn algorithm(&self) -> Algorithm {
        Algorithm::ES256
    }
}

struct Es256Verifier(VerifyingKey);

impl Verifier<Vec<u8>> for Es256Verifier {
    fn verify(&self, msg: &[u8], sig: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        let sig = Signature::from_slice(sig)?;
        self.0.verify(msg, &sig)
    }
}

impl JwtVerifier for Es256Verifier {
    fn algorithm(&self) -> Algorithm {
        Algorithm::ES256
    }
}

fn signer(alg: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    if *alg != Algorithm::ES256 {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    let key = SigningKey::from_pkcs8_der(key.as_bytes()).map_err(|_| ErrorKind::InvalidEcdsaKey)?;
    Ok(Box::new(Es256Signer(key)))
}

fn verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    if *alg != Algorithm::ES256 {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    let key = VerifyingKey::from_sec1_bytes(key.try_get_as_bytes()?)
        .map_err(|_| ErrorKind::InvalidEcdsaKey)?;
    Ok(Box::new(Es256Verifier(key)))
}

fn no_rsa(_: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    Err(ErrorKind::InvalidAlgorithm.into())
}

fn ec_components(der: &[u8], alg: Algorithm) -> Result<(EllipticCurve, Vec<u8>, Vec<u8>)> {
    if alg != Algorithm::ES256 {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    let key = SigningKey::from_pkcs8_der(der).map_err(|_| ErrorKind::InvalidEcdsaKey)?;
    let point = key.verifying_key().to_sec1_point(false);
    match (point.x(), point.y()) {
        (Some(x), Some(y)) => Ok((EllipticCurve::P256, x.to_vec(), y.to_vec())),
        _ => Err(ErrorKind::InvalidEcdsaKey.into()),
    }
}

fn no_ed(_: &[u8], _: &EllipticCurve) -> Result<Vec<u8>> {
    Err(ErrorKind::InvalidAlgorithm.into())
}

fn digest(data: &[u8], hash: ThumbprintHash) -> Result<Vec<u8>> {
    Ok(match hash {
        ThumbprintHash::SHA256 => sha2::Sha256::digest(data).to_vec(),
        ThumbprintHash::SHA384 => sha2::Sha384::digest(data).to_vec(),
        ThumbprintHash::SHA512 => sha2::Sha512::digest(data).to_vec(),
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    })
}

static ES256_ONLY: CryptoProvider = CryptoProvider {
    signer_factory: signer,
    verifier_factory: verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: no_rsa,
        rsa_pub_components_from_public_key: no_rsa,
        ec_pub_components_from_private_key: ec_components,
        ed_pub_components_from_private_key: no_ed,
        compute_digest: digest,
    },
};

/// Makes the ES256 provider `jsonwebtoken`'s for this process; the key ring calls it before any
/// token is signed or verified.
pub fn install() {
    // Err: installed already (an earlier call); it stays.
    let _ = ES256_ONLY.install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_es256_is_signed_or_verified() {
        install();
        let key = EncodingKey::from_secret(b"k").expect("an HMAC key");
        assert!(
            jsonwebtoken::encode(
                &jsonwebtoken::Header::new(Algorithm::HS256),
                &serde_json::json!({}),
                &key
            )
            .is_err()
        );
        assert!(
            jsonwebtoken::encode(
                &jsonwebtoken::Header::new(Algorithm::RS256),
                &serde_json::json!({}),
                &key
            )
            .is_err()
        );
    }
}
