//! The simulator's License API and upload (docs/protocol/openapi.md §4, §5) over real HTTP,
//! signed with the service's own APIG signer (`koogallery::security::apig`), so the two sides
//! agree without sharing a line.

use std::collections::HashMap;

use chrono::Utc;
use koogallery::security::apig;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::license::{TEST_PRODUCT_ID, boundary_of, parse_multipart};
use super::*;

const V1: &str = "/api/mkp-openapi-public/global/v1/license/activate";
const V2: &str = "/api/mkp-openapi-public/global/v2/license/activate";
const QUERY: &str = "/api/mkp-openapi-public/global/v1/license/heartbeat";
const USAGE: &str = "/api/mkp-openapi-public/global/v2/license/software-usage-info";

async fn sim() -> OpenApiSim {
    OpenApiSim::start(
        HashMap::from([("ak".to_owned(), "sk".to_owned())]),
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap()
}

/// POSTs `body` to the primary, signed with `sk`; `tamper` changes the body after signing.
async fn send(
    s: &OpenApiSim,
    path: &str,
    content_type: &str,
    body: &[u8],
    sk: &str,
    tamper: bool,
) -> (u16, Value) {
    let host = s.primary.to_string();
    let date = apig::sdk_date(Utc::now());
    let headers = [
        ("content-type", content_type),
        ("host", host.as_str()),
        ("x-sdk-date", date.as_str()),
    ];
    let signature = apig::sign(
        "ak",
        sk,
        &apig::Request {
            method: "POST",
            path,
            query: "",
            headers: &headers,
            body,
        },
    );
    let mut sent = body.to_vec();
    if tamper {
        sent.push(b' ');
    }
    let r = reqwest::Client::new()
        .post(format!("http://{host}{path}"))
        .header("content-type", content_type)
        .header("x-sdk-date", &date)
        .header("authorization", signature.authorization)
        .body(sent)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

async fn post(s: &OpenApiSim, path: &str, body: Value) -> (u16, Value) {
    send(
        s,
        path,
        "application/json",
        body.to_string().as_bytes(),
        "sk",
        false,
    )
    .await
}

fn code_info(answer: &Value) -> Value {
    serde_json::from_str(answer["data"]["license_code_info"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn a_test_code_activates_once_and_its_status_can_be_changed() {
    let s = sim().await;
    let (status, answer) = post(&s, V1, json!({"license": "PLTEST0001"})).await;
    assert_eq!(
        (status, answer["error_code"].as_str()),
        (200, Some("92020000"))
    );
    let info = code_info(&answer);
    assert_eq!(info["status"], "ALIVE");
    assert_eq!(info["product_id"], TEST_PRODUCT_ID);
    assert_eq!(info["order_id"], "CSTEST0001");
    let kept = s.license("PLTEST0001").unwrap();
    let (start, end) = (kept.activate_time.unwrap(), kept.expire_time.unwrap());
    assert_eq!((end - start).num_days(), 30);
    assert_eq!(info["expire_time"], time_14(end));
    // A second activation: success, the same information.
    let (_, again) = post(&s, V1, json!({"license": "PLTEST0001"})).await;
    assert_eq!(code_info(&again), info);
    // Query: the LicenseInfo object itself.
    let (status, q) = post(&s, QUERY, json!({"license": "PLTEST0001"})).await;
    assert_eq!(status, 200);
    assert_eq!(q["data"]["license_code"], "PLTEST0001");
    assert_eq!(q["data"]["status"], "ALIVE");
    assert_eq!(q["data"]["activate_time"], time_14(start));
    // Statuses changed by the test hook and by the control route.
    s.set_license_status("PLTEST0001", "EXPIRED").unwrap();
    let (_, q) = post(&s, QUERY, json!({"license": "PLTEST0001"})).await;
    assert_eq!(q["data"]["status"], "EXPIRED");
    let r = reqwest::Client::new()
        .post(format!(
            "{}/_sim/license/PLTEST0001/status",
            s.primary_url()
        ))
        .json(&json!({"status": "RELEASED"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let (_, q) = post(&s, QUERY, json!({"license": "PLTEST0001"})).await;
    assert_eq!(q["data"]["status"], "RELEASED");
    assert!(s.set_license_status("PLOTHER", "EXPIRED").is_err());
    // `real_effect_time` starts the validity.
    let (_, a) = post(
        &s,
        V1,
        json!({"license": "PLTEST0002", "real_effect_time": "20261201000000"}),
    )
    .await;
    assert_eq!(code_info(&a)["expire_time"], "20261231000000");
}

#[tokio::test]
async fn unknown_and_undelivered_codes_fail_with_http_200_and_bad_requests_with_400() {
    let s = sim().await;
    for (body, status, code) in [
        (json!({"license": "PLNOSUCH"}), 200, "92020005"),
        (json!({"license": "PLNOTYET01"}), 200, "92020004"),
        (json!({}), 400, "92020002"),
        (json!({"license": "x".repeat(65)}), 400, "92020002"),
        (
            json!({"license": "PLTEST1", "real_effect_time": "2026-12-01"}),
            400,
            "92020002",
        ),
    ] {
        for path in [V1, QUERY] {
            if path == QUERY && body.get("real_effect_time").is_some() {
                continue;
            }
            let (got, answer) = post(&s, path, body.clone()).await;
            assert_eq!(
                (got, answer["error_code"].as_str()),
                (status, Some(code)),
                "{path} {body}"
            );
        }
    }
}

#[tokio::test]
async fn batch_activation_answers_per_code_in_order() {
    let s = sim().await;
    let (status, answer) = post(
        &s,
        V2,
        json!({"license_list": ["PLTESTB1", "PLNOSUCH", "PLNOTYET2"]}),
    )
    .await;
    assert_eq!(
        (status, answer["error_code"].as_str()),
        (200, Some("92020000"))
    );
    let data = answer["data"].as_array().unwrap();
    let codes: Vec<_> = data
        .iter()
        .map(|e| {
            (
                e["license"].as_str().unwrap(),
                e["error_code"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        codes,
        [
            ("PLTESTB1", "92020000"),
            ("PLNOSUCH", "92020005"),
            ("PLNOTYET2", "92020004")
        ]
    );
    let info: Value = serde_json::from_str(data[0]["license_code_info"].as_str().unwrap()).unwrap();
    assert_eq!(info["status"], "ALIVE");
    let list: Vec<String> = (0..101).map(|i| format!("PLTEST{i}")).collect();
    let (status, answer) = post(&s, V2, json!({"license_list": list})).await;
    assert_eq!(
        (status, answer["error_code"].as_str()),
        (400, Some("92020002"))
    );
}

#[tokio::test]
async fn usage_is_recorded_for_activated_codes_and_refused_per_code_otherwise() {
    let s = sim().await;
    post(&s, V1, json!({"license": "PLTESTU1"})).await;
    let (status, answer) = post(
        &s,
        USAGE,
        json!({"usage_info": [
            {"license": "PLTESTU1", "software_usage_Info": [{"id": "host-a"}, {"id": "host-b"}]},
            {"license": "PLTESTU2", "software_usage_Info": [{"active_num": 3}]},
            {"license": "PLNOSUCH", "software_usage_Info": [{"active_num": 3}]},
        ]}),
    )
    .await;
    assert_eq!(
        (status, answer["error_code"].as_str()),
        (200, Some("92020000"))
    );
    let failed: Vec<_> = answer["data"]["check_fail_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["license"].as_str().unwrap(),
                f["error_code"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(failed, [("PLTESTU2", "92020002"), ("PLNOSUCH", "92020005")]);
    assert_eq!(
        s.license_usage(),
        [LicenseUsage {
            license: "PLTESTU1".into(),
            ids: vec!["host-a".into(), "host-b".into()],
            active_num: None,
        }]
    );
    let listed: Value = reqwest::get(format!("{}/_sim/license/usage", s.primary_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["ids"][1], "host-b");
    // Both `id` and `active_num` in one entry, or the field without its capital I: invalid.
    for entry in [
        json!({"license": "PLTESTU1", "software_usage_Info": [{"id": "a", "active_num": 1}]}),
        json!({"license": "PLTESTU1", "software_usage_info": [{"id": "a"}]}),
    ] {
        let (status, answer) = post(&s, USAGE, json!({"usage_info": [entry]})).await;
        assert_eq!(
            (status, answer["error_code"].as_str()),
            (400, Some("92020002"))
        );
    }
}

/// An upload body as KooGallery's example lays it out (§4).
fn multipart(boundary: &str, request: &Value, file: Option<(&str, &[u8])>) -> Vec<u8> {
    let mut b = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"isvUpdateFileReq\"\r\n\
         Content-Type: application/json\r\n\r\n{request}\r\n"
    )
    .into_bytes();
    if let Some((name, bytes)) = file {
        b.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        b.extend_from_slice(bytes);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    b
}

#[tokio::test]
async fn uploads_are_checked_signed_over_their_bytes_and_recorded() {
    let s = sim().await;
    let boundary = "----sim-boundary-1";
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let file: &[u8] = b"license file\r\n--not-a-boundary\r\n\x00\xff";
    let sha = hex::encode(Sha256::digest(file));
    let good = multipart(
        boundary,
        &json!({"type": "FILE", "file_name": "lic.dat", "sha256": sha}),
        Some(("lic.dat", file)),
    );
    // An event ID with a space, percent-encoded in the path and signed so.
    let path = "/api/mkp-openapi-public/global/v1/market-event/EV%201/file";
    let (status, answer) = send(&s, path, &content_type, &good, "sk", false).await;
    assert_eq!(
        (status, answer["error_code"].as_str()),
        (200, Some("MKT.0000")),
        "{answer}"
    );
    let uploads = s.uploads();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].event_id, "EV 1");
    assert_eq!(uploads[0].file_name.as_deref(), Some("lic.dat"));
    assert_eq!(uploads[0].sha256.as_deref(), Some(sha.as_str()));
    // A wrong SK, and a body changed after signing: the gateway's APIG.0303.
    for (sk, tamper) in [("wrong", false), ("sk", true)] {
        let (status, answer) = send(&s, path, &content_type, &good, sk, tamper).await;
        assert_eq!(
            (status, answer["error_code"].as_str()),
            (401, Some("APIG.0303"))
        );
    }
    // A declared hash that is not the file's; a FILE without its part; CHARACTERS too long.
    let bad_hash = multipart(
        boundary,
        &json!({"type": "FILE", "file_name": "lic.dat", "sha256": hex::encode(Sha256::digest(b"x"))}),
        Some(("lic.dat", file)),
    );
    let no_file = multipart(
        boundary,
        &json!({"type": "FILE", "file_name": "lic.dat", "sha256": sha}),
        None,
    );
    let long = multipart(
        boundary,
        &json!({"type": "CHARACTERS", "characters": "c".repeat(1025)}),
        None,
    );
    for body in [bad_hash, no_file, long] {
        let (status, answer) = send(&s, path, &content_type, &body, "sk", false).await;
        assert_eq!(
            (status, answer["error_code"].as_str()),
            (400, Some("MKT.0101"))
        );
    }
    let chars = multipart(
        boundary,
        &json!({"type": "CHARACTERS", "characters": "KEY-123"}),
        None,
    );
    let (status, _) = send(&s, path, &content_type, &chars, "sk", false).await;
    assert_eq!(status, 200);
    let listed: Value = reqwest::get(format!("{}/_sim/uploads", s.primary_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed[1]["characters"], "KEY-123");
    assert_eq!(s.uploads().len(), 2, "refused uploads are not recorded");
}

#[tokio::test]
async fn license_faults_meet_the_next_calls_in_order() {
    let s = sim().await;
    s.inject_license_fault(LicenseFault::Status {
        status: 503,
        count: 2,
    });
    let r = reqwest::Client::new()
        .post(format!("{}/_sim/license/faults", s.primary_url()))
        .json(&json!({"kind": "code", "code": "92020001", "status": 500}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let mut seen = Vec::new();
    for _ in 0..4 {
        let (status, answer) = post(&s, V1, json!({"license": "PLTESTF"})).await;
        seen.push((
            status,
            answer["error_code"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    assert_eq!(
        seen,
        [
            (503, String::new()),
            (503, String::new()),
            (500, "92020001".into()),
            (200, "92020000".into())
        ]
    );
}

#[test]
fn multipart_bodies_are_parsed_strictly() {
    assert_eq!(
        boundary_of("multipart/form-data; boundary=\"abc\"").as_deref(),
        Some("abc")
    );
    assert_eq!(boundary_of("application/json; boundary=abc"), None);
    let body = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a;b.txt\"\r\n\r\nx\r\n--b\r\ny\r\n--b--\r\n";
    let e = parse_multipart("b", body).unwrap_err();
    assert!(e.contains("blank line") || e.contains("':'"), "{e}");
    let body = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a;b.txt\"\r\n\r\nx\r\n--b--\r\n";
    let parts = parse_multipart("b", body).unwrap();
    assert_eq!(parts[0].filename.as_deref(), Some("a;b.txt"));
    assert_eq!(parts[0].data, b"x");
    assert!(
        parse_multipart(
            "b",
            b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx"
        )
        .is_err()
    );
}
