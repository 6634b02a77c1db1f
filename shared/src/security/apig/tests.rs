//! The signer against docs/protocol/openapi.md §10 (V1 and V2 published, V3 and V4 derived), and
//! the verifier against the signer.

use proptest::prelude::*;

use super::*;

const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// V1: Huawei's published vector.
#[test]
fn v1_published_huawei_vector() {
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
    let (canonical, _) = canonical_request(&req);
    assert_eq!(
        canonical,
        format!(
            "GET\n/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs/\nlimit=2&marker=13551d6b-755d-4757-b956-536f674975c0\ncontent-type:application/json\nhost:service.region.example.com\nx-sdk-date:20191115T033655Z\n\ncontent-type;host;x-sdk-date\n{EMPTY_SHA256}"
        )
    );
    assert_eq!(
        hex::encode(Sha256::digest(canonical.as_bytes())),
        "b25362e603ee30f4f25e7858e8a7160fd36e803bb2dfe206278659d71a9bcd7a"
    );
    let signed = sign(
        "QTWAOYTTINDUT2QVKYUC",
        "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc",
        &req,
    );
    assert_eq!(
        signed.authorization,
        "SDK-HMAC-SHA256 Access=QTWAOYTTINDUT2QVKYUC, SignedHeaders=content-type;host;x-sdk-date, Signature=7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe"
    );
}

/// V2: a KooGallery endpoint with an extra signed header, from the Ruby gem's spec.
#[test]
fn v2_koogallery_license_activate() {
    let headers = [
        ("x-stage", "RELEASE"),
        ("X-Sdk-Date", "20240317T144237Z"),
        ("Content-Type", "application/json"),
        ("Host", "mkt.myhuaweicloud.com"),
    ];
    let req = Request {
        method: "POST",
        path: "/api/mkp-openapi-public/global/v1/license/activate",
        query: "",
        headers: &headers,
        body: b"",
    };
    let (canonical, signed_headers) = canonical_request(&req);
    assert_eq!(signed_headers, "content-type;host;x-sdk-date;x-stage");
    assert!(canonical.starts_with("POST\n/api/mkp-openapi-public/global/v1/license/activate/\n\n"));
    let string_to_sign_hash = hex::encode(Sha256::digest(canonical.as_bytes()));
    assert_eq!(
        string_to_sign_hash,
        "9a33b07351104f6c775075faa7dc0db58ec18bc532feaa8fd0b8fcf7990b1a9e"
    );
    assert_eq!(
        sign("any", "123", &req).signature,
        "77595ad624b6e4e49990b8c4e84bf1c287457fca61069c4e60b9b6765b52053d"
    );
}

fn v3_headers() -> [(&'static str, &'static str); 3] {
    [
        ("Content-Type", "application/json"),
        ("X-Sdk-Date", "20240317T144237Z"),
        ("Host", "mkt.myhuaweicloud.com"),
    ]
}

/// V3: Query Order, query keys with their case kept (docs/protocol/decisions.md §9).
#[test]
fn v3_query_order_keeps_the_case_of_query_keys() {
    let headers = v3_headers();
    let req = Request {
        method: "GET",
        path: "/api/mkp-openapi-public/global/v1/order/query",
        query: "orderLineId=MOCKPERIODYEARNEW-000001&orderId=MOCKPERIODYEARNEW",
        headers: &headers,
        body: b"",
    };
    assert_eq!(
        canonical_query(req.query),
        "orderId=MOCKPERIODYEARNEW&orderLineId=MOCKPERIODYEARNEW-000001"
    );
    let (canonical, _) = canonical_request(&req);
    assert_eq!(
        hex::encode(Sha256::digest(canonical.as_bytes())),
        "d282ce755ed8d7764e1fc7da9c334c7565a00eb22fcbb5c9a7a10c427267e4af"
    );
    assert_eq!(
        sign("test", "123", &req).authorization,
        "SDK-HMAC-SHA256 Access=test, SignedHeaders=content-type;host;x-sdk-date, Signature=df37ba3315950b108c9be5a4933a5fc864d004b012050c179dc3d22a78c99301"
    );
}

/// V4: the APIG signature over a usage push that carries its own body-signature headers.
#[test]
fn v4_usage_push_signs_every_header_sent() {
    let body = br#"{"usage_records":[{"begin_time":"20220809T080000Z","end_time":"20220809T090000Z","instance_id":"7f141bf1-aec8-4859-8323-fb3a8ad50721","metering_sn":"a1b2c3d4-0001","record_time":"20220809T091000Z","usage_value":"99"}]}"#;
    assert_eq!(
        hex::encode(Sha256::digest(body)),
        "56a9752340b600e9078a1940f8489f487e61b491fd9d451e9e5917e9d556eb07"
    );
    let headers = [
        ("Content-Type", "application/json"),
        ("X-Sdk-Date", "20240317T144237Z"),
        ("Host", "mkt.myhuaweicloud.com"),
        ("ts", "1709690865879"),
        ("nonce", "6c63c221-1f6b-4141-8ff4-22f5dfe82b65"),
        ("signature", "eKys0vYKmUcOek/uvur08EvwL7K0MBdNj3QfAdO9vbI="),
    ];
    let req = Request {
        method: "POST",
        path: "/api/mkp-openapi-public/global/v1/isv/usage-data",
        query: "",
        headers: &headers,
        body,
    };
    let signed = sign("test", "123", &req);
    assert_eq!(
        signed.signed_headers,
        "content-type;host;nonce;signature;ts;x-sdk-date"
    );
    assert_eq!(
        signed.signature,
        "1f6d760ec59ad0dfa3b1214f3a034a0e7ccc221ef59f012fbb0f1b79a0a592ff"
    );
    assert!(
        with_auth(&req, &signed.authorization)
            .verify(at("20240317T144237Z"))
            .is_ok()
    );
}

#[test]
fn paths_are_decoded_then_encoded_with_only_unreserved_characters_kept() {
    assert_eq!(canonical_uri("/a b/c%2Fd/"), "/a%20b/c%2Fd/");
    assert_eq!(canonical_uri("/v1/x~y_z.-"), "/v1/x~y_z.-/");
    assert_eq!(canonical_uri("/v1/%e4%b8%ad"), "/v1/%E4%B8%AD/");
    assert_eq!(canonical_query("b=2&a=3&a=1"), "a=1&a=3&b=2");
    assert_eq!(canonical_query(""), "");
}

fn at(sdk: &str) -> DateTime<Utc> {
    NaiveDateTime::parse_from_str(sdk, SDK_DATE_FORMAT)
        .unwrap()
        .and_utc()
}

fn with_auth(req: &Request<'_>, authorization: &str) -> OwnedRequest {
    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    headers.push(("Authorization".into(), authorization.to_owned()));
    OwnedRequest {
        method: req.method.to_owned(),
        path: req.path.to_owned(),
        query: req.query.to_owned(),
        headers,
        body: req.body.to_vec(),
    }
}

/// A request that owns its parts, for tampering with.
#[derive(Debug, Clone)]
struct OwnedRequest {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl OwnedRequest {
    fn verify(&self, now: DateTime<Utc>) -> Result<(), Refused> {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        verify(
            &Request {
                method: &self.method,
                path: &self.path,
                query: &self.query,
                headers: &headers,
                body: &self.body,
            },
            now,
            |ak| (ak == "test").then(|| "123".to_owned()),
        )
    }
}

#[test]
fn the_gateway_refuses_an_unknown_key_a_stale_date_and_a_missing_signature() {
    let headers = v3_headers();
    let req = Request {
        method: "GET",
        path: "/api/mkp-openapi-public/global/v1/order/query",
        query: "orderId=MOCKPERIODYEARNEW",
        headers: &headers,
        body: b"",
    };
    let good = sign("test", "123", &req);
    let now = at("20240317T144237Z");
    assert!(with_auth(&req, &good.authorization).verify(now).is_ok());
    let other = sign("nobody", "123", &req);
    let e = with_auth(&req, &other.authorization)
        .verify(now)
        .unwrap_err();
    assert!(
        e.message.contains("app not found") && e.code == "APIG.0303",
        "{e}"
    );
    let e = with_auth(&req, &good.authorization)
        .verify(now + chrono::Duration::minutes(16))
        .unwrap_err();
    assert!(e.message.contains("expired"), "{e}");
    let e = with_auth(&req, "").verify(now).unwrap_err();
    assert!(e.message.contains("algorithm"), "{e}");
    let wrong_sk = sign("test", "124", &req);
    let e = with_auth(&req, &wrong_sk.authorization)
        .verify(now)
        .unwrap_err();
    assert!(e.message.contains("canonicalRequest:GET|/api/"), "{e}");
}

proptest! {
    /// What the client signs, the gateway accepts; change any one byte of what was signed (the
    /// method, path, query, a signed header's value, the body) and it refuses.
    #[test]
    fn the_verifier_accepts_what_is_signed_and_refuses_any_one_byte_change(
        id in "[A-Z0-9]{6,20}",
        body in proptest::collection::vec(any::<u8>(), 0..64),
        pick in 0usize..5,
        position in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let query = format!("orderId={id}&orderLineId={id}-000001");
        let headers = v3_headers();
        let req = Request {
            method: "POST",
            path: "/api/mkp-openapi-public/global/v1/order/query",
            query: &query,
            headers: &headers,
            body: &body,
        };
        let signed = sign("test", "123", &req);
        let now = at("20240317T144237Z");
        let good = with_auth(&req, &signed.authorization);
        prop_assert!(good.verify(now).is_ok());
        let mut bad = good.clone();
        let change = |s: &mut String, i: &prop::sample::Index| {
            let mut bytes = s.clone().into_bytes();
            let at = i.index(bytes.len());
            // Stay within printable ASCII so the request remains well formed.
            bytes[at] = if bytes[at] == b'Z' { b'Y' } else { b'Z' };
            *s = String::from_utf8(bytes).unwrap();
        };
        match pick {
            0 => bad.method = "PUT".into(),
            1 => change(&mut bad.path, &position),
            2 => change(&mut bad.query, &position),
            3 => change(&mut bad.headers[2].1, &position),
            _ => {
                if bad.body.is_empty() {
                    bad.body.push(flip);
                } else {
                    let at = position.index(bad.body.len());
                    bad.body[at] ^= flip;
                }
            }
        }
        prop_assume!(canonical_request(&Request {
            method: &bad.method, path: &bad.path, query: &bad.query,
            headers: &[("host", &bad.headers[2].1)], body: &bad.body
        }) != canonical_request(&Request {
            method: &good.method, path: &good.path, query: &good.query,
            headers: &[("host", &good.headers[2].1)], body: &good.body
        }));
        prop_assert!(bad.verify(now).is_err());
    }
}
