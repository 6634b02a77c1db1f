//! Every signing vector of docs/protocol/callbacks.md §14.3–§14.6, and properties of the verifiers.

use super::*;
use super::{v1_auth_token::v1_signed_string, v2_basic::*};
use hmac::Mac;
use proptest::prelude::*;
use serde_json::{Map, Value};
use std::cmp::Ordering;

const KEY: &str = "TestAccessKey-0123456789abcdef";
const NONCE: &str = "50D83FDECAED6CCD8EF597F2A577950527928BA287D04E6036E92B2806FD17DA";
const TS: &str = "1680508066618";

// §14.3
const BASIC_CANONICAL: &str = r#"{"activity":"newInstance","businessId":"87b94795-0603-4e24-8ae5-69420d60e3c8","orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","testFlag":"1"}"#;
const BASIC_INNER: &str = "10a571044bbfa4da77841395fb33e79725d25a1264c6d52540e4f17f1cc3a30d";
const BASIC_SIG: &str = "a64b1bfce1a372de15ef4377957528e7f7b0ce4944d4caea7b7363339df27c82";
/// The §14.3 body with keys in another order, whitespace and an extra top-level null.
const BASIC_BODY_SHUFFLED: &str = r#"{
        "testFlag": "1",
        "orderLineId": "CS2211181819B4LVS-000001",
        "extra": null,
        "businessId": "87b94795-0603-4e24-8ae5-69420d60e3c8",
        "activity": "newInstance",
        "orderId": "CS2211181819B4LVS"
    }"#;

// §14.4 a
const KIT_A_PAYLOAD: &str = r#"{"domainName":"https://example.tenantaccount.com","flag":1,"instanceId":"huaiweitest123456","name":"huaiweitest","orderId":"CS1906666666ABCDE","tenantCode":"huawei","tenantId":"68cbc86abc51458880d92f36422fa0e","testFlag":0,"timeStamp":"20220413093539534"}"#;
const KIT_A_SIG: &str = "9ac4d2cbacf885ec49daee83e89a85bfbbf92b7e8c72e0d08ed0e8a3f9a384bb";

// §14.4 b
const KIT_B_KEY: &str = "KitKey-fedcba9876543210";
const KIT_B_NONCE: &str = "0123456789ABCDEF0123456789ABCDEF";
const KIT_B_TS: &str = "1700000000000";
const KIT_B_PAYLOAD: &str = r#"{"appId":"app-001","currentSyncTime":"20240101120000000","flag":1,"instanceId":"inst-001","tenantId":"tenant-001","testFlag":1,"timeStamp":"20240101120000000","userList":[{"userName":"zhangsan01","name":"张三","orgCode":"10000","role":"admin","enable":"true"}]}"#;
const KIT_B_SIG: &str = "a4f6795925285533869865f5ffa2e11d59abbcafc2cf0212f61f3db89754ef07";

// §14.5
const V1_TS: &str = "20230327065233980";
const V1_INSTANCE: &str = "ebc28eb6-4606-4098-b4bd-c201c99a0654";
const V1_INSTANCES: &str =
    "ebc28eb6-4606-4098-b4bd-c201c99a0654,fe28e27e-1157-4105-8592-24cc9488db10";
const V1_TOKEN_1: &str = "ChNSgU0K57zxxRxxkTixcfdzXNapbmec6YgAWFuNhd0=";
const V1_TOKEN_2: &str = "C5GKceh57oq/LbfOasfF3v3hqZv+R3fQC2uw+EnwJgI=";

fn ring(current: &str) -> KeyRing {
    KeyRing::new(SecretKey::new(current), None)
}

fn ring2(current: &str, previous: &str) -> KeyRing {
    KeyRing::new(SecretKey::new(current), Some(SecretKey::new(previous)))
}

const CANONICAL: Matched = Matched {
    previous_key: false,
    payload: PayloadForm::Canonical,
};

#[test]
fn secret_key_is_redacted() {
    let keys = ring2(KEY, "OldKey-123");
    assert_eq!(format!("{:?}", keys.current), "<redacted>");
    assert_eq!(keys.current.to_string(), "<redacted>");
    let debug = format!("{keys:?}");
    assert!(!debug.contains(KEY) && !debug.contains("OldKey"), "{debug}");
    assert_eq!(keys.current.expose(), KEY);
    let all: Vec<&str> = keys.keys().map(SecretKey::expose).collect();
    assert_eq!(all, [KEY, "OldKey-123"]);
    assert_eq!(ring(KEY).keys().count(), 1);
}

// ---- §14.3 V2 basic -------------------------------------------------------------------

#[test]
fn basic_vector_canonical_payload() {
    assert_eq!(
        canonical_payload(BASIC_BODY_SHUFFLED.as_bytes()).unwrap(),
        BASIC_CANONICAL
    );
}

#[test]
fn basic_vector_inner_hmac() {
    let inner = hmac_sha256(KEY.as_bytes())
        .chain_update(BASIC_CANONICAL)
        .finalize()
        .into_bytes();
    assert_eq!(hex::encode(inner), BASIC_INNER);
}

#[test]
fn basic_vector_signature() {
    assert_eq!(
        basic_signature(KEY, NONCE, TS, BASIC_CANONICAL.as_bytes()),
        BASIC_SIG
    );
}

#[test]
fn basic_vector_verifies_lower_and_upper_case() {
    let keys = ring(KEY);
    for sig in [BASIC_SIG.to_owned(), BASIC_SIG.to_uppercase()] {
        assert_eq!(
            verify_basic(&keys, NONCE, TS, &sig, BASIC_CANONICAL.as_bytes()),
            Ok(CANONICAL)
        );
    }
}

#[test]
fn basic_vector_verifies_reordered_body_with_whitespace_and_null() {
    let keys = ring(KEY);
    assert_eq!(
        verify_basic(
            &keys,
            NONCE,
            TS,
            &BASIC_SIG.to_uppercase(),
            BASIC_BODY_SHUFFLED.as_bytes()
        ),
        Ok(CANONICAL)
    );
}

#[test]
fn basic_wrong_key_fails() {
    let keys = ring("SomeOtherKey");
    assert_eq!(
        verify_basic(&keys, NONCE, TS, BASIC_SIG, BASIC_CANONICAL.as_bytes()),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn basic_previous_key_succeeds_and_is_reported() {
    let keys = ring2("NewKey-after-rotation", KEY);
    assert_eq!(
        verify_basic(&keys, NONCE, TS, BASIC_SIG, BASIC_BODY_SHUFFLED.as_bytes()),
        Ok(Matched {
            previous_key: true,
            payload: PayloadForm::Canonical
        })
    );
    // The current key still reports previous_key = false.
    let keys = ring2(KEY, "OldKey");
    assert_eq!(
        verify_basic(&keys, NONCE, TS, BASIC_SIG, BASIC_CANONICAL.as_bytes()),
        Ok(CANONICAL)
    );
}

#[test]
fn basic_tampered_body_nonce_or_timestamp_fails() {
    let keys = ring(KEY);
    let tampered = BASIC_CANONICAL.replace("CS2211181819B4LVS\"", "CS2211181819B4LVX\"");
    assert_ne!(tampered, BASIC_CANONICAL);
    assert_eq!(
        verify_basic(&keys, NONCE, TS, BASIC_SIG, tampered.as_bytes()),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify_basic(
            &keys,
            NONCE,
            "1680508066619",
            BASIC_SIG,
            BASIC_CANONICAL.as_bytes()
        ),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify_basic(&keys, "other", TS, BASIC_SIG, BASIC_CANONICAL.as_bytes()),
        Err(SignatureError::Mismatch)
    );
    // An empty-string value is kept (only nulls are dropped), so it changes the payload.
    let with_empty = BASIC_CANONICAL.replace('}', r#","zz":""}"#);
    assert_eq!(
        verify_basic(&keys, NONCE, TS, BASIC_SIG, with_empty.as_bytes()),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn malformed_and_missing_signatures() {
    let keys = ring(KEY);
    let body = BASIC_CANONICAL.as_bytes();
    for verify in [verify_basic, verify_kit] {
        assert_eq!(
            verify(&keys, NONCE, TS, "", body),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(&keys, NONCE, TS, "   ", body),
            Err(SignatureError::Missing)
        );
        for bad in ["xyz", "a64b1", "zz4b1bfce1a372de", "a64b1bfc-e1a3", "é1"] {
            assert_eq!(
                verify(&keys, NONCE, TS, bad, body),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        // Valid hex of the wrong length is a mismatch, not a panic.
        assert_eq!(
            verify(&keys, NONCE, TS, "a64b", body),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&keys, NONCE, TS, &format!("{BASIC_SIG}00"), body),
            Err(SignatureError::Mismatch)
        );
    }
}

#[test]
fn raw_body_fallback_for_nested_body() {
    let keys = ring(KEY);
    let raw = br#"{"activity":"changeInstanceCheck", "productInfo": {"skuCode":"s1","amount":null,"linearValue":2},"instanceId":"i-1"}"#;
    let canonical = canonical_payload(raw).unwrap();
    assert_eq!(
        canonical,
        r#"{"activity":"changeInstanceCheck","instanceId":"i-1","productInfo":{"skuCode":"s1","amount":null,"linearValue":2}}"#
    );
    let raw_matched = Matched {
        previous_key: false,
        payload: PayloadForm::RawBody,
    };

    // The signer signed the raw bytes: the fallback matches.
    let sig = basic_signature(KEY, NONCE, TS, raw);
    assert_eq!(verify_basic(&keys, NONCE, TS, &sig, raw), Ok(raw_matched));
    let sig = kit_signature(KEY, NONCE, TS, raw);
    assert_eq!(verify_kit(&keys, NONCE, TS, &sig, raw), Ok(raw_matched));

    // The signer signed the canonical form: the canonical attempt matches first.
    let sig = basic_signature(KEY, NONCE, TS, canonical.as_bytes());
    assert_eq!(verify_basic(&keys, NONCE, TS, &sig, raw), Ok(CANONICAL));

    // A body that is not a JSON object can still be checked raw.
    let sig = basic_signature(KEY, NONCE, TS, b"not json");
    assert_eq!(
        verify_basic(&keys, NONCE, TS, &sig, b"not json"),
        Ok(raw_matched)
    );
    assert_eq!(
        verify_basic(&keys, NONCE, TS, &sig, b"not jsoN"),
        Err(SignatureError::Mismatch)
    );
}

// ---- canonical payload ---------------------------------------------------------------

#[test]
fn canonical_rules() {
    // Top-level nulls dropped, nested nulls and nested key order kept, numbers stay numbers,
    // '/' unescaped, non-ASCII raw, empty strings kept.
    let body = r#" { "b": {"z": null, "a": [3, {"y": 1, "x": "/é"}]}, "a": null, "c": "", "A": 1.5, "d": true } "#;
    assert_eq!(
        canonical_payload(body.as_bytes()).unwrap(),
        r#"{"A":1.5,"b":{"z":null,"a":[3,{"y":1,"x":"/é"}]},"c":"","d":true}"#
    );
    assert_eq!(canonical_payload(b"{}").unwrap(), "{}");
    assert_eq!(canonical_payload(b"{\"a\":null}").unwrap(), "{}");
    // Byte-order mark tolerated.
    assert_eq!(
        canonical_payload(b"\xEF\xBB\xBF{\"a\":\"1\"}").unwrap(),
        r#"{"a":"1"}"#
    );
    // Control characters are escaped, quotes and backslashes too.
    assert_eq!(
        canonical_payload(br#"{"k":"a\"b\\c\n\u0001"}"#).unwrap(),
        r#"{"k":"a\"b\\c\n\u0001"}"#
    );
}

#[test]
fn canonical_rejects_non_objects() {
    for body in [
        &b"[]"[..],
        b"\"x\"",
        b"1",
        b"null",
        b"",
        b"{",
        b"{\"a\":1}x",
        b"\xff",
    ] {
        assert!(canonical_payload(body).is_err(), "{body:?}");
    }
    assert!(matches!(
        canonical_payload(b"[1]"),
        Err(CanonicalError::NotAnObject)
    ));
    assert!(matches!(
        canonical_payload(b"{"),
        Err(CanonicalError::InvalidJson(_))
    ));
}

#[test]
fn canonical_uses_java_utf16_order() {
    // U+FF61 is one UTF-16 unit 0xFF61; U+1F600 is the surrogate pair 0xD83D 0xDE00.
    // Java (UTF-16) puts U+1F600 first; UTF-8 byte order (EF.. < F0..) would put U+FF61 first.
    let (halfwidth, emoji) = ("\u{FF61}", "\u{1F600}");
    assert!(halfwidth.as_bytes() < emoji.as_bytes());
    assert_eq!(java_cmp(emoji, halfwidth), Ordering::Less);
    let body = format!(r#"{{"{halfwidth}":"1","{emoji}":"2","Z":"3","a":"4"}}"#);
    assert_eq!(
        canonical_payload(body.as_bytes()).unwrap(),
        format!(r#"{{"Z":"3","a":"4","{emoji}":"2","{halfwidth}":"1"}}"#)
    );
    // Prefixes sort first, upper case before lower case.
    assert_eq!(java_cmp("ab", "abc"), Ordering::Less);
    assert_eq!(java_cmp("B", "a"), Ordering::Less);
}

#[test]
fn canonical_payload_of_matches_parse_path() {
    let Value::Object(map) = serde_json::from_str::<Value>(BASIC_BODY_SHUFFLED).unwrap() else {
        panic!("object expected");
    };
    assert_eq!(canonical_payload_of(&map), BASIC_CANONICAL);
}

// ---- §14.4 Kit ---------------------------------------------------------------------------

#[test]
fn kit_vector_a() {
    assert_eq!(
        kit_signature(KEY, NONCE, TS, KIT_A_PAYLOAD.as_bytes()),
        KIT_A_SIG
    );
    let body = r#"{"timeStamp":"20220413093539534","testFlag":0,"tenantId":"68cbc86abc51458880d92f36422fa0e",
            "tenantCode":"huawei","orderId":"CS1906666666ABCDE","name":"huaiweitest","instanceId":"huaiweitest123456",
            "flag":1,"domainName":"https://example.tenantaccount.com","nothing":null}"#;
    assert_eq!(canonical_payload(body.as_bytes()).unwrap(), KIT_A_PAYLOAD);
    let keys = ring(KEY);
    assert_eq!(
        verify_kit(&keys, NONCE, TS, &KIT_A_SIG.to_uppercase(), body.as_bytes()),
        Ok(CANONICAL)
    );
    // The Kit scheme is not the basic scheme.
    assert_eq!(
        verify_basic(&keys, NONCE, TS, KIT_A_SIG, body.as_bytes()),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn kit_vector_b_non_ascii_and_nested_array() {
    assert_eq!(
        kit_signature(KIT_B_KEY, KIT_B_NONCE, KIT_B_TS, KIT_B_PAYLOAD.as_bytes()),
        KIT_B_SIG
    );
    // Top level shuffled and spaced; the nested object keeps its (unsorted) received order.
    let body = r#"{
          "userList": [ { "userName": "zhangsan01", "name": "张三", "orgCode": "10000", "role": "admin", "enable": "true" } ],
          "testFlag": 1, "timeStamp": "20240101120000000", "tenantId": "tenant-001",
          "instanceId": "inst-001", "flag": 1, "currentSyncTime": "20240101120000000", "appId": "app-001"
        }"#;
    assert_eq!(canonical_payload(body.as_bytes()).unwrap(), KIT_B_PAYLOAD);
    let keys = ring2("KitKey-new", KIT_B_KEY);
    assert_eq!(
        verify_kit(&keys, KIT_B_NONCE, KIT_B_TS, KIT_B_SIG, body.as_bytes()),
        Ok(Matched {
            previous_key: true,
            payload: PayloadForm::Canonical
        })
    );
    // Reordering inside the nested object breaks the signature.
    let reordered = body.replace(
        r#""userName": "zhangsan01", "name": "张三""#,
        r#""name": "张三", "userName": "zhangsan01""#,
    );
    assert_ne!(reordered, body);
    assert_eq!(
        verify_kit(
            &keys,
            KIT_B_NONCE,
            KIT_B_TS,
            KIT_B_SIG,
            reordered.as_bytes()
        ),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify_kit(
            &ring(KEY),
            KIT_B_NONCE,
            KIT_B_TS,
            KIT_B_SIG,
            body.as_bytes()
        ),
        Err(SignatureError::Mismatch)
    );
}

// ---- §14.5 V1 authToken ------------------------------------------------------------------

#[test]
fn v1_vectors() {
    let params = [
        ("testFlag", "1"),
        ("timeStamp", V1_TS),
        ("instanceId", V1_INSTANCE),
        ("activity", "queryInstance"),
    ];
    assert_eq!(
        v1_signed_string(&params),
        format!("activity=queryInstance&instanceId={V1_INSTANCE}&testFlag=1&timeStamp={V1_TS}")
    );
    assert_eq!(v1_auth_token(KEY, V1_TS, &params), V1_TOKEN_1);

    let params = [
        ("authToken", V1_TOKEN_2),
        ("activity", "queryInstance"),
        ("timeStamp", V1_TS),
        ("instanceId", V1_INSTANCES),
        ("testFlag", "1"),
    ];
    assert_eq!(v1_auth_token(KEY, V1_TS, &params), V1_TOKEN_2);
    assert_eq!(
        verify_v1_auth_token(&ring(KEY), V1_TS, &params, V1_TOKEN_2),
        Ok(CANONICAL)
    );
}

#[test]
fn v1_verify_negative_and_rotation() {
    let params = [
        ("activity", "queryInstance"),
        ("instanceId", V1_INSTANCE),
        ("testFlag", "1"),
        ("timeStamp", V1_TS),
    ];
    assert_eq!(
        verify_v1_auth_token(&ring2("NewKey", KEY), V1_TS, &params, V1_TOKEN_1),
        Ok(Matched {
            previous_key: true,
            payload: PayloadForm::Canonical
        })
    );
    assert_eq!(
        verify_v1_auth_token(&ring("WrongKey"), V1_TS, &params, V1_TOKEN_1),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify_v1_auth_token(&ring(KEY), "20230327065233981", &params, V1_TOKEN_1),
        Err(SignatureError::Mismatch)
    );
    let tampered = [("testFlag", "0"), params[0], params[1], params[3]];
    assert_eq!(
        verify_v1_auth_token(&ring(KEY), V1_TS, &tampered, V1_TOKEN_1),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify_v1_auth_token(&ring(KEY), V1_TS, &params, ""),
        Err(SignatureError::Missing)
    );
    assert_eq!(
        verify_v1_auth_token(&ring(KEY), V1_TS, &params, "not*base64!"),
        Err(SignatureError::Malformed)
    );
    assert_eq!(
        verify_v1_auth_token(&ring(KEY), V1_TS, &params, "AAAA"),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn v1_token_with_plus_turned_into_space_still_verifies() {
    let params = [
        ("activity", "queryInstance"),
        ("instanceId", V1_INSTANCES),
        ("testFlag", "1"),
        ("timeStamp", V1_TS),
    ];
    let spaced = V1_TOKEN_2.replace('+', " ");
    assert_ne!(spaced, V1_TOKEN_2);
    assert_eq!(
        verify_v1_auth_token(&ring(KEY), V1_TS, &params, &spaced),
        Ok(CANONICAL)
    );
}

#[test]
fn v1_sort_is_java_treemap_order_and_first_duplicate_wins() {
    let params = [
        ("b", "1"),
        ("authToken", "ignored"),
        ("a", "first"),
        ("B", "2"),
        ("a", "second"),
        ("\u{FF61}", "3"),
        ("\u{1F600}", "4"),
    ];
    assert_eq!(
        v1_signed_string(&params),
        "B=2&a=first&b=1&\u{1F600}=4&\u{FF61}=3"
    );
    assert_eq!(v1_signed_string(&[]), "");
}

// ---- §14.6 Body-Sign -----------------------------------------------------------------------

const BODY: &[u8] = br#"{"resultCode":"000000","resultMsg":"success."}"#;
const BODY_SIGN: &str =
    r#"sign_type="HMAC-SHA256", signature="lIbWpCdruz2b0FKa477a/WszWOjjUk9g6vb3wt8QNxg=""#;

#[test]
fn body_sign_vector() {
    assert_eq!(body_sign_header(KEY, BODY), BODY_SIGN);
    assert!(verify_body_sign(KEY, BODY, BODY_SIGN));
    assert!(verify_body_sign(
        KEY,
        BODY,
        r#"sign_type="HMAC-SHA256", signature= "lIbWpCdruz2b0FKa477a/WszWOjjUk9g6vb3wt8QNxg=""#
    ));
    assert!(verify_body_sign(
        KEY,
        BODY,
        r#"sign_type="HMAC-SHA256",signature="lIbWpCdruz2b0FKa477a/WszWOjjUk9g6vb3wt8QNxg=""#
    ));
}

#[test]
fn body_sign_rejections() {
    assert!(!verify_body_sign("WrongKey", BODY, BODY_SIGN));
    assert!(!verify_body_sign(KEY, b"{}", BODY_SIGN));
    // Signed bytes are exact: trailing whitespace matters.
    let mut spaced = BODY.to_vec();
    spaced.push(b'\n');
    assert!(!verify_body_sign(KEY, &spaced, BODY_SIGN));
    for header in [
        "",
        "garbage",
        r#"signature="lIbWpCdruz2b0FKa477a/WszWOjjUk9g6vb3wt8QNxg=""#,
        r#"sign_type="HMAC-SHA1", signature="lIbWpCdruz2b0FKa477a/WszWOjjUk9g6vb3wt8QNxg=""#,
        r#"sign_type="HMAC-SHA256", signature=lIbWpCdruz2b0FKa477a/WszWOjjUk9g6vb3wt8QNxg="#,
        r#"sign_type="HMAC-SHA256", signature="!!!""#,
        r#"sign_type="HMAC-SHA256", signature="""#,
        r#"sign_type="HMAC-SHA256", signature="lIbWpCdruz2b0FKa477a/WszWOjjUk9g6vb3wt8QNxg=", signature="x""#,
        r#"sign_type="HMAC-SHA256", signature="", signature="lIbWpCdruz2b0FKa477a/WszWOjjUk9g6vb3wt8QNxg=""#,
        "sign_type=\"HMAC-SHA256\", signature=\"\u{e9}\"",
    ] {
        assert!(!verify_body_sign(KEY, BODY, header), "{header}");
    }
}

// ---- properties -----------------------------------------------------------------------------

proptest! {
    /// The signer canonicalises its map; the verifier sees it serialised in any key order.
    #[test]
    fn signed_canonical_verifies_in_any_key_order(
        (entries, shuffled) in prop::collection::btree_map(".{0,12}", ".{0,24}", 0..10)
            .prop_flat_map(|map| {
                let entries: Vec<(String, String)> = map.into_iter().collect();
                (Just(entries.clone()), Just(entries).prop_shuffle())
            }),
        pretty in any::<bool>(),
    ) {
        let map: Map<String, Value> =
            entries.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
        let body_map: Map<String, Value> =
            shuffled.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
        let body = if pretty {
            serde_json::to_string_pretty(&body_map).unwrap()
        } else {
            Value::Object(body_map).to_string()
        };
        let payload = canonical_payload_of(&map);
        prop_assert_eq!(&canonical_payload(body.as_bytes()).unwrap(), &payload);
        let keys = ring(KEY);
        let sig = basic_signature(KEY, NONCE, TS, payload.as_bytes());
        prop_assert_eq!(verify_basic(&keys, NONCE, TS, &sig, body.as_bytes()), Ok(CANONICAL));
        let sig = kit_signature(KEY, NONCE, TS, payload.as_bytes());
        prop_assert_eq!(
            verify_kit(&keys, NONCE, TS, &sig.to_uppercase(), body.as_bytes()),
            Ok(CANONICAL)
        );
    }

    /// Arbitrary bytes never panic any verifier.
    #[test]
    fn verifiers_never_panic(body in prop::collection::vec(any::<u8>(), 0..64), sig in ".{0,70}") {
        let keys = ring(KEY);
        let _ = verify_basic(&keys, NONCE, TS, &sig, &body);
        let _ = verify_kit(&keys, NONCE, TS, &sig, &body);
        let _ = verify_v1_auth_token(&keys, TS, &[("a", "b")], &sig);
        let _ = verify_body_sign(KEY, &body, &sig);
    }
}

/// docs/protocol/decisions.md §1: the official sample binds the body as `Map<String,String>`
/// (numbers and booleans become strings) and may sort nested keys; those forms are tried after the
/// canonical payload fails, before the raw bytes.
#[test]
fn decision_1_fallback_forms_match_after_the_canonical_payload() {
    let keys = ring(KEY);
    let raw = br#"{"orderAmount":12.5,"activity":"changeInstanceCheck","trial":true,"productInfo":{"skuCode":"s1","amount":3},"instanceId":"i-1","periodNumber":2}"#;
    let signed_over = |payload: &str| basic_signature(KEY, NONCE, TS, payload.as_bytes());
    let form = |sig: &str| verify_basic(&keys, NONCE, TS, sig, raw).map(|m| m.payload);

    let canonical = canonical_payload(raw).unwrap();
    assert_eq!(form(&signed_over(&canonical)), Ok(PayloadForm::Canonical));

    let strings = r#"{"activity":"changeInstanceCheck","instanceId":"i-1","orderAmount":"12.5","periodNumber":"2","productInfo":{"skuCode":"s1","amount":3},"trial":"true"}"#;
    assert_eq!(
        form(&signed_over(strings)),
        Ok(PayloadForm::CanonicalStringValues)
    );
    let nested = r#"{"activity":"changeInstanceCheck","instanceId":"i-1","orderAmount":12.5,"periodNumber":2,"productInfo":{"amount":3,"skuCode":"s1"},"trial":true}"#;
    assert_eq!(
        form(&signed_over(nested)),
        Ok(PayloadForm::CanonicalNestedSorted)
    );
    let both = r#"{"activity":"changeInstanceCheck","instanceId":"i-1","orderAmount":"12.5","periodNumber":"2","productInfo":{"amount":3,"skuCode":"s1"},"trial":"true"}"#;
    assert_eq!(
        form(&signed_over(both)),
        Ok(PayloadForm::CanonicalStringValuesNestedSorted)
    );
    // The previous key still works with every form, and says so.
    let rotated = KeyRing::new(SecretKey::new("new-key"), Some(SecretKey::new(KEY)));
    let m = verify_basic(&rotated, NONCE, TS, &signed_over(strings), raw).unwrap();
    assert_eq!(
        (m.previous_key, m.payload),
        (true, PayloadForm::CanonicalStringValues)
    );
    // Raw bytes last; anything else is still a mismatch.
    assert_eq!(
        form(&basic_signature(KEY, NONCE, TS, raw)),
        Ok(PayloadForm::RawBody)
    );
    assert_eq!(
        form(&signed_over(r#"{"activity":"changeInstanceCheck"}"#)),
        Err(SignatureError::Mismatch)
    );
    // Kit signatures keep to the canonical payload and the raw bytes.
    let kit = kit_signature(KEY, NONCE, TS, strings.as_bytes());
    assert_eq!(
        verify_kit(&keys, NONCE, TS, &kit, raw),
        Err(SignatureError::Mismatch)
    );
}

// ---- docs/protocol/openapi.md §10 V5, V6: the License callbacks' signatures ------------------

/// V5: a License (or orderNotify) callback signed per openapi §6.0(a), the platform's upper-case
/// hex, verified like the basic interfaces (docs/protocol/decisions.md §21).
#[test]
fn openapi_v5_inbound_license_callback_signature_verifies() {
    let body = br#"{"activity":"orderNotify","orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","testFlag":"1"}"#;
    let sig = "E6B164F062DC1FE6C17B649DE767441F521E99495246A5449A2CA67C93119C11";
    let keys = ring("isv-key-example");
    let m = verify_basic(
        &keys,
        "Of4lsV7H1qrzVDI52O5CFk2ofPcZRaA6",
        "1729566664115",
        sig,
        body,
    )
    .unwrap();
    assert!(!m.previous_key);
    assert!(
        verify_basic(
            &ring("another-key"),
            "Of4lsV7H1qrzVDI52O5CFk2ofPcZRaA6",
            "1729566664115",
            sig,
            body
        )
        .is_err()
    );
}

/// V6: the legacy License authToken (openapi §6.0(c)), the same scheme as V1's.
#[test]
fn openapi_v6_legacy_auth_token() {
    let params = [
        ("p1", "1"),
        ("p2", "2"),
        ("p3", "3"),
        ("timeStamp", "201706211855321"),
    ];
    let token = "Cj997kObwWg+DebJauXXa7AncLGm/Pi/fZtSznUWtEM=";
    assert_eq!(
        v1_auth_token("isv-key-example", "201706211855321", &params),
        token
    );
    let mut with_token = params.to_vec();
    with_token.push(("authToken", token));
    verify_v1_auth_token(
        &ring("isv-key-example"),
        "201706211855321",
        &with_token,
        token,
    )
    .unwrap();
}
