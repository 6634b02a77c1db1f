//! Issue → verify: the round trip, each rejection, and the golden token that pins the wire format.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use koogallery_license_token::{Claims, Issuer, PublicKey, Status, VerifyError, verify};

const GOLDEN_TOKEN: &str = include_str!("fixtures/token_v1.txt");
const GOLDEN_JWKS: &str = include_str!("fixtures/jwks_v1.json");
const KID: &str = "kgl-2026-01";
const IAT: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z
const NOW: u64 = IAT + 86_400;

/// The golden key: secret bytes 0x01..=0x20.
fn golden_issuer() -> Issuer {
    let secret: [u8; 32] = core::array::from_fn(|i| i as u8 + 1);
    Issuer::from_secret(KID, secret)
}

fn golden_claims() -> Claims {
    Claims {
        v: 1,
        kid: KID.into(),
        code: "PL0000001".into(),
        product: Some("OFFER-0001".into()),
        status: Status::Active,
        client: "client-42".into(),
        iat: IAT,
        exp: Some(1_798_761_600),        // 2027-01-01T00:00:00Z
        offline_until: IAT + 7 * 86_400, // a week
    }
}

fn check(token: &str, issuer: &Issuer, now: u64) -> Result<Claims, VerifyError> {
    let key = issuer.public_key();
    verify(token, &[(issuer.kid(), &key)], now).map(|v| v.into_claims())
}

/// The token's payload replaced by `json`, the signature kept.
fn with_payload(token: &str, json: &str) -> String {
    let signature = token.rsplit('.').next().unwrap();
    format!("KGL1.{}.{signature}", URL_SAFE_NO_PAD.encode(json))
}

#[test]
fn golden_token_is_byte_for_byte_what_the_issuer_produces() {
    let token = golden_issuer().issue(&golden_claims());
    assert_eq!(token, GOLDEN_TOKEN.trim_end());
    let payload = URL_SAFE_NO_PAD
        .decode(token.split('.').nth(1).unwrap())
        .unwrap();
    assert_eq!(
        String::from_utf8(payload).unwrap(),
        r#"{"v":1,"kid":"kgl-2026-01","code":"PL0000001","product":"OFFER-0001","status":"ACTIVE","client":"client-42","iat":1767225600,"exp":1798761600,"offlineUntil":1767830400}"#
    );
}

#[test]
fn golden_key_set_publishes_the_issuers_public_key() {
    let keys = koogallery_license_token::keys_from_jwks(GOLDEN_JWKS).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].0, KID);
    assert_eq!(keys[0].1, golden_issuer().public_key());
}

#[test]
fn round_trip() {
    let issuer = golden_issuer();
    let mut claims = golden_claims();
    claims.product = None;
    claims.exp = None;
    let token = issuer.issue(&claims);
    let verified = check(&token, &issuer, NOW).unwrap();
    assert_eq!(verified, claims);
    assert!(verified.usable_at(u64::MAX));
}

#[test]
fn issue_writes_the_issuers_kid() {
    let issuer = golden_issuer();
    let mut claims = golden_claims();
    claims.kid = "something-else".into();
    let verified = check(&issuer.issue(&claims), &issuer, NOW).unwrap();
    assert_eq!(verified.kid, KID);
}

#[test]
fn usable_only_when_active_and_not_expired() {
    let claims = golden_claims();
    let exp = claims.exp.unwrap();
    assert!(claims.usable_at(exp - 1));
    assert!(!claims.usable_at(exp));
    for status in [
        Status::Frozen,
        Status::Expired,
        Status::Released,
        Status::Other("SUSPENDED".into()),
    ] {
        let claims = Claims {
            status,
            ..golden_claims()
        };
        assert!(!claims.usable_at(NOW));
    }
}

#[test]
fn unknown_status_verifies_and_is_kept() {
    let issuer = golden_issuer();
    let claims = Claims {
        status: Status::Other("SUSPENDED".into()),
        ..golden_claims()
    };
    let verified = check(&issuer.issue(&claims), &issuer, NOW).unwrap();
    assert_eq!(verified.status, Status::Other("SUSPENDED".into()));
    assert!(!verified.usable_at(NOW));
}

#[test]
fn unknown_extra_claims_are_ignored() {
    // Signed by hand: the issuer only writes known claims.
    let secret: [u8; 32] = core::array::from_fn(|i| i as u8 + 1);
    let key = ed25519_dalek_key(&secret);
    let json = r#"{"v":1,"kid":"kgl-2026-01","code":"PL0000001","status":"ACTIVE","client":"c","iat":1,"offlineUntil":1767830400,"seats":5}"#;
    let token = sign_by_hand(&key, json);
    let claims = check(&token, &golden_issuer(), NOW).unwrap();
    assert_eq!(claims.code, "PL0000001");
    assert_eq!(claims.product, None);
}

#[test]
fn tampered_payload_fails() {
    let issuer = golden_issuer();
    let token = issuer.issue(&golden_claims());
    let frozen = r#"{"v":1,"kid":"kgl-2026-01","code":"PL0000001","product":"OFFER-0001","status":"FROZEN","client":"client-42","iat":1767225600,"exp":1798761600,"offlineUntil":1767830400}"#;
    let forged = with_payload(
        &token,
        &frozen
            .replace("FROZEN", "ACTIVE")
            .replace("1798761600", "4102444800"),
    );
    assert_eq!(check(&forged, &issuer, NOW), Err(VerifyError::BadSignature));
}

#[test]
fn tampered_signature_fails() {
    let issuer = golden_issuer();
    let token = issuer.issue(&golden_claims());
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
    bytes[10] ^= 1;
    let forged = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(&bytes));
    assert_eq!(check(&forged, &issuer, NOW), Err(VerifyError::BadSignature));
}

#[test]
fn another_key_under_the_same_kid_fails() {
    let token = golden_issuer().issue(&golden_claims());
    let other = Issuer::from_secret(KID, [7; 32]);
    assert_eq!(check(&token, &other, NOW), Err(VerifyError::BadSignature));
}

#[test]
fn unknown_kid_fails() {
    let token = golden_issuer().issue(&golden_claims());
    let other = Issuer::from_secret("kgl-2027-01", [1; 32]);
    assert_eq!(check(&token, &other, NOW), Err(VerifyError::UnknownKey));
}

#[test]
fn the_right_key_is_picked_among_several() {
    let issuer = golden_issuer();
    let token = issuer.issue(&golden_claims());
    let other = Issuer::from_secret("kgl-2027-01", [7; 32]);
    let keys = [
        (other.kid().to_owned(), other.public_key()),
        (issuer.kid().to_owned(), issuer.public_key()),
    ];
    assert!(verify(&token, &keys, NOW).is_ok());
}

#[test]
fn wrong_prefix_fails() {
    let issuer = golden_issuer();
    let token = issuer.issue(&golden_claims());
    for forged in [
        token.replacen("KGL1.", "KGL2.", 1),
        token.replacen("KGL1.", "kgl1.", 1),
        token.replacen("KGL1.", "", 1),
        format!(" {token}"),
    ] {
        assert_eq!(check(&forged, &issuer, NOW), Err(VerifyError::Malformed));
    }
}

#[test]
fn offline_window_over_fails() {
    let issuer = golden_issuer();
    let claims = golden_claims();
    let token = issuer.issue(&claims);
    assert!(check(&token, &issuer, claims.offline_until).is_ok());
    assert_eq!(
        check(&token, &issuer, claims.offline_until + 1),
        Err(VerifyError::OfflineWindowOver)
    );
}

#[test]
fn version_2_fails() {
    let issuer = golden_issuer();
    let claims = Claims {
        v: 2,
        ..golden_claims()
    };
    assert_eq!(
        check(&issuer.issue(&claims), &issuer, NOW),
        Err(VerifyError::UnsupportedVersion)
    );
    // A later version whose claims no longer read as version 1's is still "unsupported".
    let secret: [u8; 32] = core::array::from_fn(|i| i as u8 + 1);
    let token = sign_by_hand(
        &ed25519_dalek_key(&secret),
        r#"{"v":2,"kid":"kgl-2026-01","grants":[]}"#,
    );
    assert_eq!(
        check(&token, &issuer, NOW),
        Err(VerifyError::UnsupportedVersion)
    );
}

#[test]
fn signed_but_malformed_claims_fail() {
    let secret: [u8; 32] = core::array::from_fn(|i| i as u8 + 1);
    let key = ed25519_dalek_key(&secret);
    let token = sign_by_hand(&key, r#"{"v":1,"kid":"kgl-2026-01","code":"PL0000001"}"#);
    assert_eq!(
        check(&token, &golden_issuer(), NOW),
        Err(VerifyError::Malformed)
    );
}

#[test]
fn public_key_round_trips_through_base64url() {
    let key = golden_issuer().public_key();
    assert_eq!(PublicKey::from_base64url(&key.to_base64url()), Ok(key));
    assert_eq!(PublicKey::from_bytes(&key.to_bytes()), Ok(key));
}

#[test]
fn issuer_debug_hides_the_secret() {
    assert_eq!(
        format!("{:?}", golden_issuer()),
        r#"Issuer { kid: "kgl-2026-01", .. }"#
    );
}

// The same key as an Issuer built from `secret`, to sign JSON the Issuer would never write.
fn ed25519_dalek_key(secret: &[u8; 32]) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(secret)
}

fn sign_by_hand(key: &ed25519_dalek::SigningKey, json: &str) -> String {
    use ed25519_dalek::Signer as _;
    let signed = format!("KGL1.{}", URL_SAFE_NO_PAD.encode(json));
    let signature = key.sign(signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}
