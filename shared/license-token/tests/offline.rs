//! What the vendor's software does: verify the golden token with only the published public key,
//! through the verification API alone (this file builds without the `issue` feature).

use koogallery_license_token::{Claims, PublicKey, Status, VerifyError, keys_from_jwks, verify};

const TOKEN: &str = include_str!("fixtures/token_v1.txt");
const JWKS: &str = include_str!("fixtures/jwks_v1.json");
const KID: &str = "kgl-2026-01";
const PUBLIC_KEY: &str = "ebVWLo_mVPlAeLES6KmLp5AfhTrmlb7X4OORC60ElmQ";
const NOW: u64 = 1_767_312_000; // 2026-01-02T00:00:00Z, inside the token's offline window

fn golden_claims() -> Claims {
    Claims {
        v: 1,
        kid: KID.into(),
        code: "PL0000001".into(),
        product: Some("OFFER-0001".into()),
        status: Status::Active,
        client: "client-42".into(),
        iat: 1_767_225_600,
        exp: Some(1_798_761_600),
        offline_until: 1_767_830_400,
    }
}

#[test]
fn golden_token_verifies_with_the_public_key_alone() {
    let key = PublicKey::from_base64url(PUBLIC_KEY).unwrap();
    let verified = verify(TOKEN.trim_end(), &[(KID, &key)], NOW).unwrap();
    assert_eq!(verified.claims(), &golden_claims());
    assert!(verified.usable_at(NOW));
}

#[test]
fn golden_token_verifies_with_the_published_key_set() {
    let keys = keys_from_jwks(JWKS).unwrap();
    let verified = verify(TOKEN.trim_end(), &keys, NOW).unwrap();
    assert_eq!(verified.into_claims(), golden_claims());
}

#[test]
fn golden_token_after_its_offline_window() {
    let keys = keys_from_jwks(JWKS).unwrap();
    assert_eq!(
        verify(TOKEN.trim_end(), &keys, 1_767_830_401),
        Err(VerifyError::OfflineWindowOver)
    );
}

#[test]
fn key_set_skips_other_key_types_and_rejects_broken_ones() {
    let mixed = format!(
        r#"{{"keys":[{{"kid":"rsa","kty":"RSA","n":"AQAB","e":"AQAB"}},{{"kid":"x","kty":"OKP","crv":"X25519","x":"AA"}},{{"kid":"{KID}","kty":"OKP","crv":"Ed25519","x":"{PUBLIC_KEY}"}}]}}"#
    );
    let keys = keys_from_jwks(&mixed).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].0, KID);
    for broken in [
        "",
        "[]",
        r#"{"keys":{}}"#,
        r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"ebVWLo_mVPlAeLES6KmLp5AfhTrmlb7X4OORC60ElmQ"}]}"#,
        r#"{"keys":[{"kid":"k","kty":"OKP","crv":"Ed25519"}]}"#,
        r#"{"keys":[{"kid":"k","kty":"OKP","crv":"Ed25519","x":"ebVWLo_mVPlAeLES6KmLp5AfhTrmlb7X4OORC60Elm"}]}"#,
        r#"{"keys":[{"kid":"k","kty":"OKP","crv":"Ed25519","x":"ebVWLo_mVPlAeLES6KmLp5AfhTrmlb7X4OORC60ElmQ="}]}"#,
    ] {
        assert_eq!(
            keys_from_jwks(broken),
            Err(VerifyError::Malformed),
            "{broken}"
        );
    }
}

#[test]
fn malformed_tokens() {
    let keys = keys_from_jwks(JWKS).unwrap();
    let token = TOKEN.trim_end();
    let (signed, signature) = token.rsplit_once('.').unwrap();
    for bad in [
        String::new(),
        "KGL1.".into(),
        "KGL1..".into(),
        signed.into(),
        format!("{token}."),
        format!("{token}.extra"),
        format!("{signed}.{}", &signature[..signature.len() - 2]), // 63 bytes
        format!("{signed}.{signature}="),                          // padding
        format!("{signed}.{}", signature.replace('-', "+")),       // not the URL alphabet
        format!("{}X.{signature}", signed),                        // payload no longer base64url
    ] {
        assert_eq!(
            verify(&bad, &keys, NOW),
            Err(VerifyError::Malformed),
            "{bad}"
        );
    }
}

/// No input panics: every prefix of the token, every single-byte change, and pseudo-random strings
/// over the token's alphabet (a fixed xorshift sequence, so a failure is reproducible).
#[test]
fn no_input_panics() {
    let keys = keys_from_jwks(JWKS).unwrap();
    let token = TOKEN.trim_end();
    for end in 0..=token.len() {
        let _ = verify(&token[..end], &keys, NOW);
    }
    let replacements = ['A', '_', '-', '.', '=', '"', '\0', 'é', '{'];
    for (i, _) in token.char_indices() {
        for r in replacements {
            let mut mutated = String::from(&token[..i]);
            mutated.push(r);
            mutated.push_str(&token[i + 1..]);
            let _ = verify(&mutated, &keys, NOW);
        }
    }
    let alphabet: Vec<char> = "KGL1.ABCxyz019-_=+/{}\":,é\u{0}".chars().collect();
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..2_000 {
        let len = (next() % 200) as usize;
        let mut s: String = if next() % 2 == 0 {
            "KGL1.".into()
        } else {
            String::new()
        };
        s.extend((0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]));
        let _ = verify(&s, &keys, NOW);
        let _ = verify(&s, &keys, u64::MAX);
        let _ = keys_from_jwks(&s);
        let _ = PublicKey::from_base64url(&s);
    }
}
