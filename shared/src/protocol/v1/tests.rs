//! Tests of the V1 parameters and their translation, with the spec vectors (docs/protocol/callbacks.md §14.5, §14.7).

use serde_json::json;

use super::*;
use crate::security::{
    KeyRing, SecretKey, credential_cipher::encrypt_credential_with_iv, v1_auth_token,
    verify_v1_auth_token,
};

const KEY: &str = "TestAccessKey-0123456789abcdef";

fn ring() -> KeyRing {
    KeyRing::new(SecretKey::new(KEY.to_owned()), None)
}

/// docs/protocol/callbacks.md §14.5, both rows, from the query string as it arrives (the commas of
/// the second URL-encoded).
#[test]
fn the_auth_token_vectors_verify_from_the_query_as_received() {
    for (query, token) in [
        (
            "activity=queryInstance&instanceId=ebc28eb6-4606-4098-b4bd-c201c99a0654&testFlag=1&timeStamp=20230327065233980",
            "ChNSgU0K57zxxRxxkTixcfdzXNapbmec6YgAWFuNhd0=",
        ),
        (
            "activity=queryInstance&instanceId=ebc28eb6-4606-4098-b4bd-c201c99a0654%2Cfe28e27e-1157-4105-8592-24cc9488db10&testFlag=1&timeStamp=20230327065233980",
            "C5GKceh57oq/LbfOasfF3v3hqZv+R3fQC2uw+EnwJgI=",
        ),
    ] {
        let params = V1Params::from_query(query);
        let ts = params.get("timeStamp").unwrap();
        assert_eq!(v1_auth_token(KEY, ts, &params.pairs()), token);
        // As sent: URL-encoded; and with its `+` left unescaped (a space once decoded).
        let escaped = token
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D");
        for sent in [escaped, token.to_owned()] {
            let params = V1Params::from_query(&format!("{query}&authToken={sent}"));
            let received = params.get("authToken").unwrap().to_owned();
            verify_v1_auth_token(&ring(), ts, &params.pairs(), &received).unwrap();
        }
    }
}

/// docs/protocol/callbacks.md §14.7.
#[test]
fn saas_extend_params_decode_as_documented() {
    let raw = "W3sibmFtZSI6ImlkTnVtIiwidmFsdWUiOiIzNTIyNTU1NTU1NTU2NTYifSx7Im5hbWUiOiJ1c2VyTmFtZSIsInZhbHVlIjoiaHVhd2VpMTIzIn0seyJuYW1lIjoiY3VzdEVtYWlsIiwidmFsdWUiOiIxMjNAaHVhd2VpLmNvbSJ9XQ==";
    let expect = vec![
        ("idNum".to_owned(), "352255555555656".to_owned()),
        ("userName".to_owned(), "huawei123".to_owned()),
        ("custEmail".to_owned(), "123@huawei.com".to_owned()),
    ];
    assert_eq!(decode_extend_params(raw).unwrap(), expect);
    // Through the URL, its `=` escaped.
    let params = V1Params::from_query(&format!("saasExtendParams={}", raw.replace('=', "%3D")));
    assert_eq!(
        decode_extend_params(params.get("saasExtendParams").unwrap()).unwrap(),
        expect
    );
    assert!(decode_extend_params("not base64!").is_err());
    assert!(decode_extend_params("e30=").is_err(), "{{}} is no array");
}

#[test]
fn buyer_fields_decrypt_with_the_configured_size_then_the_other() {
    let phone =
        encrypt_credential_with_iv(KEY, "13800000000", EncryptType::Aes256, "AbCdEf0123456789")
            .unwrap();
    let mail = encrypt_credential_with_iv(
        KEY,
        "a@example.com",
        EncryptType::Aes128,
        "0123456789abcdef",
    )
    .unwrap();
    for configured in [EncryptType::Aes256, EncryptType::Aes128] {
        assert_eq!(
            decrypt_buyer_field("mobilePhone", &phone, KEY, configured).unwrap(),
            "13800000000"
        );
        assert_eq!(
            decrypt_buyer_field("email", &mail, KEY, configured).unwrap(),
            "a@example.com"
        );
    }
    let e = decrypt_buyer_field("email", &mail, "another key", EncryptType::Aes256).unwrap_err();
    assert!(e.contains("email"), "{e}");
    assert!(!e.contains(&mail), "the ciphertext is not echoed");
}

fn translated(query: &str) -> Value {
    translate(&V1Params::from_query(query), KEY, KEY, EncryptType::Aes256)
        .unwrap()
        .1
}

#[test]
fn new_instance_carries_the_order_and_is_keyed_per_order_or_per_order_and_product_on_demand() {
    let phone =
        encrypt_credential_with_iv(KEY, "13800000000", EncryptType::Aes256, "AbCdEf0123456789")
            .unwrap();
    let q = format!(
        "activity=newInstance&orderId=CS1&businessId=b-1&customerId=c-1&customerName=Buyer&productId=p-1&skuCode=s-1&chargingMode=1&periodType=month&periodNumber=1&amount=5&trialFlag=1&mobilePhone={}&saasExtendParams=W3sibmFtZSI6ImsiLCJ2YWx1ZSI6InYifV0%3D&timeStamp=20230327065233980",
        phone
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D")
    );
    let body = translated(&q);
    assert_eq!(body["activity"], "newInstance");
    assert_eq!(body["orderLineId"], "CS1");
    assert_eq!(body["businessId"], "b-1");
    let ctx: V1Context = serde_json::from_value(body[V1_CONTEXT].clone()).unwrap();
    let order = ctx.order.unwrap();
    assert_eq!(order.mobile_phone.as_deref(), Some("13800000000"));
    assert_eq!(order.quantity.as_deref(), Some("5"));
    assert!(order.trial);
    assert_eq!(order.extend_params, [("k".to_owned(), "v".to_owned())]);

    let on_demand =
        translated("activity=newInstance&orderId=CS1&businessId=b-2&productId=p-2&chargingMode=0");
    assert_eq!(on_demand["orderLineId"], "CS1/p-2");
}

#[test]
fn each_activity_goes_to_the_callback_of_its_concept() {
    assert_eq!(
        translated("activity=expireInstance&instanceId=i-1&orderId=CS1&testFlag=1"),
        json!({"activity":"updateInstanceStatus","testFlag":"1","instanceId":"i-1","status":"FREEZE"})
    );
    assert_eq!(
        translated("activity=instanceStatus&instanceId=i-1&instanceStatus=NORMAL"),
        json!({"activity":"updateInstanceStatus","instanceId":"i-1","status":"NORMAL"})
    );
    let scene = |q: &str| translated(q)["scene"].clone();
    assert_eq!(
        scene("activity=refreshInstance&instanceId=i&orderId=R&expireTime=20270101000000"),
        "RENEWAL"
    );
    assert_eq!(
        scene("activity=refreshInstance&instanceId=i&orderId=R&trialToFormal=1"),
        "TRIAL_TO_FORMAL"
    );
    assert_eq!(
        scene("activity=refreshInstance&instanceId=i&orderId=R&orderAmount=-10.5"),
        "UNSUBSCRIBE_RENEWAL_PERIOD"
    );
    assert_eq!(
        translated("activity=upgrade&instanceId=i&orderId=U1&skuCode=s2")["activity"],
        "upgradeInstance"
    );
    assert_eq!(
        translated("activity=releaseInstance&instanceId=i&orderId=CS1")["activity"],
        "releaseInstance"
    );
    assert_eq!(
        translated("activity=queryInstance&instanceId=a%2Cb")["instanceId"],
        "a,b"
    );
    assert_eq!(
        translated("activity=refreshLicense&instanceId=LG1&orderId=R1&expireTime=20270101000000"),
        json!({"activity":"refreshLicenseCode","license":"LG1","orderId":"R1","expireTime":"20270101000000","scene":"RENEWAL"})
    );
    assert_eq!(
        translated("activity=expireLicense&instanceId=LG1")["status"],
        "FREEZE"
    );

    let err =
        |q: &str| translate(&V1Params::from_query(q), KEY, KEY, EncryptType::Aes256).unwrap_err();
    assert!(err("activity=bogus").contains("unknown activity"));
    assert!(err("instanceId=i").contains("activity is missing"));
    assert!(err("activity=newInstance&businessId=b").contains("orderId"));
    assert!(err("activity=refreshInstance&instanceId=i&orderAmount=x").contains("orderAmount"));
}

#[test]
fn kit_bodies_sign_their_top_level_fields_as_text() {
    let body =
        json!({"instanceId":"i","flag":1,"userList":"[{\"userName\":\"u\"}]","nothing":null});
    let params = V1Params::from_body(body.as_object().unwrap());
    assert_eq!(
        params.pairs(),
        [
            ("instanceId", "i"),
            ("flag", "1"),
            ("userList", "[{\"userName\":\"u\"}]")
        ]
    );
}

/// The legacy code is keyed: the same order gives the same code under one key, another under
/// another key, and the order alone does not give it.
#[test]
fn legacy_license_codes_are_keyed_per_order() {
    let a = legacy_license_code(KEY, "CS1");
    assert_eq!(a, legacy_license_code(KEY, " CS1 "));
    assert_eq!(a.len(), 34);
    assert!(a.starts_with("LG"));
    assert_ne!(a, legacy_license_code(KEY, "CS2"));
    assert_ne!(a, legacy_license_code("another key", "CS1"));
    let body = translated("activity=getLicense&orderId=CS1&businessId=b&productId=p&customerId=c");
    assert_eq!(body["license"], a.as_str());
}
