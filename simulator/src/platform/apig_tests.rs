//! docs/protocol/openapi.md §10 V1–V4 held by the simulator's gateway, and its refusals.

use super::*;

const EMPTY_HASH: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const DATE: &str = "20240317T144237Z";
const HOST: &str = "mkt.myhuaweicloud.com";

fn sts_hash(sdk_date: &str, canonical: &str) -> String {
    string_to_sign(sdk_date, canonical)
        .rsplit('\n')
        .next()
        .unwrap()
        .to_owned()
}

/// V1, Huawei's published vector: canonical request, StringToSign and signature.
#[test]
fn vector_v1_published_huawei() {
    let headers = [
        ("Content-Type", "application/json"),
        ("X-Sdk-Date", "20191115T033655Z"),
        ("Host", "service.region.example.com"),
    ];
    let req = Request {
        method: "GET",
        path: "/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs",
        query: "limit=2&marker=13551d6b-755d-4757-b956-536f674975c0",
        headers: &headers,
        body: b"",
    };
    let canonical = canonical_request(&req, &["content-type", "host", "x-sdk-date"]).unwrap();
    assert_eq!(
        canonical,
        format!(
            "GET\n/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs/\nlimit=2&marker=13551d6b-755d-4757-b956-536f674975c0\n\
             content-type:application/json\nhost:service.region.example.com\nx-sdk-date:20191115T033655Z\n\n\
             content-type;host;x-sdk-date\n{EMPTY_HASH}"
        )
    );
    assert_eq!(
        string_to_sign("20191115T033655Z", &canonical),
        "SDK-HMAC-SHA256\n20191115T033655Z\nb25362e603ee30f4f25e7858e8a7160fd36e803bb2dfe206278659d71a9bcd7a"
    );
    assert_eq!(
        signature(
            "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc",
            "20191115T033655Z",
            &canonical
        ),
        "7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe"
    );
}

/// V2, the KooGallery gem's License activate: an empty query line and a signed `x-stage`.
#[test]
fn vector_v2_koogallery_license_activate() {
    let headers = [
        ("x-stage", "RELEASE"),
        ("X-Sdk-Date", DATE),
        ("Content-Type", "application/json"),
        ("Host", HOST),
    ];
    let req = Request {
        method: "POST",
        path: "/api/mkp-openapi-public/global/v1/license/activate",
        query: "",
        headers: &headers,
        body: b"",
    };
    let signed = ["content-type", "host", "x-sdk-date", "x-stage"];
    let canonical = canonical_request(&req, &signed).unwrap();
    assert_eq!(
        canonical,
        format!(
            "POST\n/api/mkp-openapi-public/global/v1/license/activate/\n\n\
             content-type:application/json\nhost:{HOST}\nx-sdk-date:{DATE}\nx-stage:RELEASE\n\n\
             content-type;host;x-sdk-date;x-stage\n{EMPTY_HASH}"
        )
    );
    assert_eq!(
        sts_hash(DATE, &canonical),
        "9a33b07351104f6c775075faa7dc0db58ec18bc532feaa8fd0b8fcf7990b1a9e"
    );
    assert_eq!(
        signature("123", DATE, &canonical),
        "77595ad624b6e4e49990b8c4e84bf1c287457fca61069c4e60b9b6765b52053d"
    );
}

const V3_SIGNATURE: &str = "df37ba3315950b108c9be5a4933a5fc864d004b012050c179dc3d22a78c99301";
const V3_PATH: &str = "/api/mkp-openapi-public/global/v1/order/query";

fn v3_headers(signed: &str, signature: &str) -> Vec<(&'static str, String)> {
    vec![
        ("content-type", "application/json".to_owned()),
        ("host", HOST.to_owned()),
        ("x-sdk-date", DATE.to_owned()),
        (
            "authorization",
            format!("SDK-HMAC-SHA256 Access=test, SignedHeaders={signed}, Signature={signature}"),
        ),
    ]
}

fn borrow<'a>(h: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    h.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn v3(query: &'static str, headers: &'static [(&'static str, &'static str)]) -> Request<'static> {
    Request {
        method: "GET",
        path: V3_PATH,
        query,
        headers,
        body: b"",
    }
}

/// V3, Query Order: query given in the other order sorts, key case kept.
#[test]
fn vector_v3_query_order_keeps_the_case_of_query_keys() {
    let query = "orderLineId=MOCKPERIODYEARNEW-000001&orderId=MOCKPERIODYEARNEW";
    assert_eq!(
        canonical_query(query),
        "orderId=MOCKPERIODYEARNEW&orderLineId=MOCKPERIODYEARNEW-000001"
    );
    let h = v3_headers("content-type;host;x-sdk-date", V3_SIGNATURE);
    let headers = borrow(&h);
    let req = Request {
        headers: &headers,
        ..v3(query, &[])
    };
    let canonical = canonical_request(&req, &["content-type", "host", "x-sdk-date"]).unwrap();
    assert_eq!(
        sts_hash(DATE, &canonical),
        "d282ce755ed8d7764e1fc7da9c334c7565a00eb22fcbb5c9a7a10c427267e4af"
    );
    assert_eq!(signature("123", DATE, &canonical), V3_SIGNATURE);
}

/// V4, the usage push: the body hash, and every header sent signed (`nonce`, `signature`, `ts`).
#[test]
fn vector_v4_usage_push_signs_every_header_sent() {
    let body = br#"{"usage_records":[{"begin_time":"20220809T080000Z","end_time":"20220809T090000Z","instance_id":"7f141bf1-aec8-4859-8323-fb3a8ad50721","metering_sn":"a1b2c3d4-0001","record_time":"20220809T091000Z","usage_value":"99"}]}"#;
    assert_eq!(
        hex::encode(Sha256::digest(body)),
        "56a9752340b600e9078a1940f8489f487e61b491fd9d451e9e5917e9d556eb07"
    );
    let headers = [
        ("Content-Type", "application/json"),
        ("Host", HOST),
        ("nonce", "6c63c221-1f6b-4141-8ff4-22f5dfe82b65"),
        ("signature", "eKys0vYKmUcOek/uvur08EvwL7K0MBdNj3QfAdO9vbI="),
        ("ts", "1709690865879"),
        ("X-Sdk-Date", DATE),
    ];
    let req = Request {
        method: "POST",
        path: "/api/mkp-openapi-public/global/v1/isv/usage-data",
        query: "",
        headers: &headers,
        body,
    };
    let signed = [
        "content-type",
        "host",
        "nonce",
        "signature",
        "ts",
        "x-sdk-date",
    ];
    let canonical = canonical_request(&req, &signed).unwrap();
    assert_eq!(
        signature("123", DATE, &canonical),
        "1f6d760ec59ad0dfa3b1214f3a034a0e7ccc221ef59f012fbb0f1b79a0a592ff"
    );
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn keys(ak: &str) -> Option<String> {
    (ak == "test").then(|| "123".to_owned())
}

/// The gateway accepts V3 as signed, and refuses a changed query, a wrong SK, an unknown AK, a
/// date 15 minutes and a second away, an unsigned `host` and a garbled `Authorization`.
#[test]
fn the_gateway_accepts_what_is_signed_and_refuses_the_rest() {
    let query = "orderId=MOCKPERIODYEARNEW&orderLineId=MOCKPERIODYEARNEW-000001";
    let now = at("2024-03-17T14:42:37Z");
    let signed = "content-type;host;x-sdk-date";
    let h = v3_headers(signed, V3_SIGNATURE);
    let headers = borrow(&h);
    let good = Request {
        headers: &headers,
        ..v3(query, &[])
    };
    assert_eq!(verify(&good, now, keys), Ok("test".to_owned()));
    assert!(verify(&good, now + chrono::Duration::seconds(MAX_SKEW_SECS), keys).is_ok());

    let message = |req: &Request<'_>, now, sk: &str| {
        let sk = sk.to_owned();
        let e = verify(req, now, move |ak: &str| (ak == "test").then(|| sk.clone())).unwrap_err();
        assert_eq!(e.code, "APIG.0303");
        e.message
    };
    let other_query = Request {
        query: "orderId=MOCKPERIODYEARNEX",
        ..good
    };
    assert!(
        message(&other_query, now, "123").contains("verify signature fail, canonicalRequest:GET|")
    );
    assert!(message(&good, now, "124").contains("verify signature fail"));
    assert!(message(&good, now, "").contains("verify signature fail"));
    let late = now + chrono::Duration::seconds(MAX_SKEW_SECS + 1);
    assert!(message(&good, late, "123").contains("signature expired"));
    let unknown = verify(&good, now, |_: &str| None).unwrap_err();
    assert!(unknown.message.contains("app not found"), "{unknown:?}");

    let h = v3_headers("content-type;x-sdk-date", V3_SIGNATURE);
    let headers = borrow(&h);
    let unsigned_host = Request {
        headers: &headers,
        ..good
    };
    assert!(message(&unsigned_host, now, "123").contains("host is not signed"));

    let garbled = [
        ("authorization", "HMAC Access=test"),
        ("host", HOST),
        ("x-sdk-date", DATE),
    ];
    assert!(
        message(
            &Request {
                headers: &garbled,
                ..good
            },
            now,
            "123"
        )
        .contains("format error")
    );
}
