//! The License open-API client (docs/protocol/openapi.md §4, §5): against the simulator's
//! License API over real HTTP (`koogallery-sim serve-openapi`), and against a scripted KooGallery
//! that records each request's exact bytes and gives the answers the simulator does not (the
//! UNCONFIRMED shapes, objects where strings are documented, unknown fields).

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, Uri},
};
use chrono::{TimeZone, Utc};
use koogallery::{
    config::marketplace::base_url,
    license::{
        LicenseApiError, LicenseCode, LicenseMarketplace, RemoteStatus, SoftwareUsage, Upload,
    },
    security::{SecretKey, apig},
};
use koogallery_sim::openapi::{LicenseFault, OpenApiSim, license::parse_multipart};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::*;
use crate::license::*;

fn code(s: &str) -> LicenseCode {
    LicenseCode::parse(s).unwrap()
}

fn client_with(primary: &str, fallback: &str, sk: &str) -> OpenApiClient {
    OpenApiClient::new(
        OpenApiSettings {
            primary: base_url("KOOGALLERY_OPENAPI_URL", primary).unwrap(),
            fallback: Some(base_url("KOOGALLERY_OPENAPI_FALLBACK_URL", fallback).unwrap()),
            timeout: Duration::from_secs(2),
        },
        OpenApiKeys {
            ak: "sim-ak".into(),
            sk: SecretKey::new(sk),
        },
    )
    .unwrap()
}

async fn sim() -> (OpenApiSim, OpenApiClient) {
    let s = OpenApiSim::start(
        HashMap::from([("sim-ak".to_owned(), "sim-sk".to_owned())]),
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let c = client_with(&s.primary_url(), &s.fallback_url(), "sim-sk");
    (s, c)
}

// ---- against the simulator ---------------------------------------------------------------------

#[tokio::test]
async fn a_test_code_is_activated_queried_and_its_status_followed() {
    let (s, c) = sim().await;
    let pl = code("PLTEST-CLIENT-1");
    let effect = Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap();
    let info = c.activate(&pl, Some(effect)).await.unwrap();
    assert_eq!(info.status, RemoteStatus::Alive);
    assert_eq!(info.expire_time, Some(effect + chrono::Duration::days(30)));
    assert_eq!(info.product_id.as_deref(), Some("00301-TEST"));
    assert_eq!(info.order_id.as_deref(), Some("CSTEST-CLIENT-1"));
    assert_eq!(info.amount, Some(1));
    assert_eq!(c.activate(&pl, None).await.unwrap(), info, "activated once");
    let q = c.query(&pl).await.unwrap();
    assert_eq!(q.activate_time, Some(effect));
    assert_eq!(q.expire_time, info.expire_time);
    s.set_license_status(pl.as_str(), "RELEASED").unwrap();
    assert_eq!(c.query(&pl).await.unwrap().status, RemoteStatus::Released);
    // HTTP-200 failures.
    let e = c.activate(&code("PLNOSUCH"), None).await.unwrap_err();
    assert!(
        matches!(e, LicenseApiError::NotFound) && !e.is_retryable(),
        "{e}"
    );
    let e = c.query(&code("PLNOTYET-1")).await.unwrap_err();
    assert!(
        matches!(e, LicenseApiError::NotYetDelivered) && e.is_retryable(),
        "{e}"
    );
    assert!(s.seen().iter().all(|r| r.authorized));
}

#[tokio::test]
async fn batch_activation_and_usage_through_the_simulator() {
    let (s, c) = sim().await;
    let codes = [code("PLTEST-B1"), code("PLNOSUCH"), code("PLNOTYET-B")];
    let results = c.activate_batch(&codes, None).await.unwrap();
    assert_eq!(
        results.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>(),
        codes
    );
    assert_eq!(results[0].1.as_ref().unwrap().status, RemoteStatus::Alive);
    assert!(matches!(results[1].1, Err(LicenseApiError::NotFound)));
    assert!(matches!(
        results[2].1,
        Err(LicenseApiError::NotYetDelivered)
    ));

    let report = c
        .report_usage(&[
            SoftwareUsage::Clients {
                code: code("PLTEST-B1"),
                ids: vec!["host-1".into(), "host-2".into()],
            },
            SoftwareUsage::Count {
                code: code("PLNOSUCH"),
                active_num: 150,
            },
        ])
        .await
        .unwrap();
    assert_eq!(report.refused.len(), 1);
    assert_eq!(report.refused[0].0, code("PLNOSUCH"));
    assert!(report.refused[0].1.contains("not exist"), "{report:?}");
    let usage = s.license_usage();
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0].ids, ["host-1", "host-2"]);
}

#[tokio::test]
async fn uploads_reach_the_simulator_signed_and_hashed() {
    let (s, c) = sim().await;
    let bytes = b"license file\r\n--\x00\xff".to_vec();
    c.upload(
        "EV-1 /x",
        &Upload::File {
            name: "lic \"1\".dat".into(),
            bytes: bytes.clone(),
        },
    )
    .await
    .unwrap();
    c.upload("EV-2", &Upload::Characters("KEY-123".into()))
        .await
        .unwrap();
    let uploads = s.uploads();
    assert_eq!(uploads.len(), 2);
    assert_eq!(
        uploads[0].event_id, "EV-1 /x",
        "percent-encoded in the path"
    );
    assert_eq!(uploads[0].file_name.as_deref(), Some("lic \"1\".dat"));
    assert_eq!(
        uploads[0].sha256.as_deref(),
        Some(hex::encode(Sha256::digest(&bytes)).as_str())
    );
    assert_eq!(uploads[1].characters.as_deref(), Some("KEY-123"));
}

#[tokio::test]
async fn a_down_or_failing_primary_falls_back_re_signed_and_errors_are_classed() {
    let (s, c) = sim().await;
    let pl = code("PLTEST-FB");
    s.set_primary_down(true);
    c.activate(&pl, None).await.unwrap();
    let seen = s.seen();
    assert_eq!(
        seen.iter().map(|r| r.host).collect::<Vec<_>>(),
        ["primary", "fallback"]
    );
    assert_ne!(seen[0].host_header, seen[1].host_header);
    assert!(seen[1].authorized, "re-signed for the fallback's Host");
    s.set_primary_down(false);
    // A 503 from the License API itself: the fallback answers.
    s.inject_license_fault(LicenseFault::Status {
        status: 503,
        count: 1,
    });
    c.query(&pl).await.unwrap();
    assert_eq!(s.seen().last().map(|r| r.host), Some("fallback"));
    // Both hosts 503: retryable.
    s.inject_license_fault(LicenseFault::Status {
        status: 503,
        count: 2,
    });
    let e = c.query(&pl).await.unwrap_err();
    assert!(matches!(e, LicenseApiError::Unavailable(_)), "{e}");
    // 92020001 with HTTP 500: internal error, retried.
    s.inject_license_fault(LicenseFault::Code {
        code: "92020001".into(),
        status: 500,
        count: 1,
    });
    let e = c.query(&pl).await.unwrap_err();
    assert!(matches!(e, LicenseApiError::Unavailable(_)), "{e}");
    // A connection refused on the primary.
    let refused_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let refused = client_with(
        &format!("http://127.0.0.1:{refused_port}"),
        &s.fallback_url(),
        "sim-sk",
    );
    refused.query(&pl).await.unwrap();
    // A wrong SK: APIG.0303, our credentials.
    let wrong = client_with(&s.primary_url(), &s.fallback_url(), "not-the-sk");
    let e = wrong.query(&pl).await.unwrap_err();
    assert!(matches!(e, LicenseApiError::Unauthorized(_)), "{e}");
    assert!(e.to_string().contains("APIG.0303"), "{e}");
}

// ---- against a scripted KooGallery -------------------------------------------------------------

/// A request as the scripted server received it.
#[derive(Debug, Clone)]
struct Got {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// The APIG signature verifies over exactly what arrived.
    fn signed(&self) -> bool {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        apig::verify(
            &apig::Request {
                method: "POST",
                path: &self.path,
                query: "",
                headers: &headers,
                body: &self.body,
            },
            Utc::now(),
            |ak| (ak == "sim-ak").then(|| "sim-sk".to_owned()),
        )
        .is_ok()
    }
}

#[derive(Clone, Default)]
struct Script {
    answers: Arc<Mutex<VecDeque<(u16, String)>>>,
    got: Arc<Mutex<Vec<Got>>>,
}

impl Script {
    fn answer(&self, status: u16, body: Value) {
        self.answers
            .lock()
            .unwrap()
            .push_back((status, body.to_string()));
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }
}

async fn scripted_answer(
    State(script): State<Script>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    script.got.lock().unwrap().push(Got {
        path: uri.path().to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
            .collect(),
        body: body.to_vec(),
    });
    let (status, body) = script
        .answers
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or((500, String::new()));
    (StatusCode::from_u16(status).unwrap(), body)
}

/// A scripted KooGallery as the primary host; the fallback is a port nothing listens on.
async fn scripted() -> (Script, OpenApiClient) {
    let script = Script::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .fallback(scripted_answer)
        .with_state(script.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = client_with(
        &format!("http://{addr}"),
        &format!("http://127.0.0.1:{closed}"),
        "sim-sk",
    );
    (script, c)
}

fn ok(data: Value) -> Value {
    json!({"error_code": "92020000", "error_msg": "success", "data": data})
}

#[tokio::test]
async fn each_call_sends_exactly_the_documented_request() {
    let (script, c) = scripted().await;
    let pl = code("PL-EXACT-1");
    let effect = Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap();
    // v1: license_code_info a JSON string, with fields this release does not know.
    script.answer(
        200,
        ok(json!({"license_code_info": json!({
            "status": "ALIVE", "expire_time": "20270101000000", "product_id": "00301-1",
            "order_id": "CS1", "amount": "5", "new_field": {"x": 1},
        }).to_string(), "other": true})),
    );
    let info = c.activate(&pl, Some(effect)).await.unwrap();
    assert_eq!(info.amount, Some(5), "a numeric string");
    assert_eq!(
        info.expire_time,
        Some(Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap())
    );
    // The same as an object (liberal), with a number amount.
    script.answer(
        200,
        ok(json!({"license_code_info": {"status": "EXPIRED", "amount": 7}})),
    );
    let info = c.activate(&pl, None).await.unwrap();
    assert_eq!((info.status, info.amount), (RemoteStatus::Expired, Some(7)));
    // Query: a LicenseInfo object with fields beyond the documented ones.
    script.answer(
        200,
        ok(json!({"license_code": "PL-EXACT-1", "status": "SUSPENDED",
                  "activate_time": "20261201080000", "unknown": [1, 2]})),
    );
    let q = c.query(&pl).await.unwrap();
    assert_eq!(q.status, RemoteStatus::Other("SUSPENDED".into()));
    assert_eq!(q.activate_time, Some(effect));
    // Usage: per-code refusals under any `check_fail…` array.
    script.answer(
        200,
        ok(json!({"check_fail_licenses": [
            {"license_code": "PL-EXACT-1", "error_code": "92020005", "error_msg": "no such code"},
            {"error_msg": "names no code"},
        ]})),
    );
    let report = c
        .report_usage(&[SoftwareUsage::Count {
            code: pl.clone(),
            active_num: 101,
        }])
        .await
        .unwrap();
    assert_eq!(report.refused, [(pl.clone(), "no such code".to_owned())]);

    let got = script.got();
    assert_eq!(got.len(), 4);
    assert!(
        got.iter().all(Got::signed),
        "APIG-signed over the exact body"
    );
    assert!(got.iter().all(|g| {
        g.header("authorization")
            .starts_with("SDK-HMAC-SHA256 Access=sim-ak")
    }));
    assert_eq!(got[0].path, ACTIVATE_V1_PATH);
    assert_eq!(
        got[0].json(),
        json!({"license": "PL-EXACT-1", "real_effect_time": "20261201080000"})
    );
    assert_eq!(
        got[1].json(),
        json!({"license": "PL-EXACT-1"}),
        "no null sent"
    );
    assert_eq!(got[2].path, HEARTBEAT_V1_PATH);
    assert_eq!(got[2].json(), json!({"license": "PL-EXACT-1"}));
    assert_eq!(got[3].path, USAGE_V2_PATH);
    assert_eq!(
        got[3].json(),
        json!({"usage_info": [{"license": "PL-EXACT-1", "software_usage_Info": [{"active_num": 101}]}]})
    );
    assert_eq!(got[3].header("content-type"), "application/json");
}

#[tokio::test]
async fn batch_answers_are_read_as_a_list_or_keyed_by_code() {
    let (script, c) = scripted().await;
    let codes = [code("PL-A"), code("PL-B"), code("PL-C")];
    script.answer(
        200,
        ok(json!([
            {"license_code": "PL-B", "error_code": "92020004", "error_msg": "not yet"},
            {"license": "PL-A", "license_code_info": "{\"status\":\"ALIVE\",\"amount\":2}"},
        ])),
    );
    let r = c.activate_batch(&codes, None).await.unwrap();
    assert_eq!(r[0].1.as_ref().unwrap().amount, Some(2));
    assert!(matches!(r[1].1, Err(LicenseApiError::NotYetDelivered)));
    assert!(
        matches!(r[2].1, Err(LicenseApiError::Unavailable(_))),
        "not mentioned"
    );
    script.answer(
        200,
        ok(json!({
            "PL-A": {"status": "ALIVE", "product_id": "P"},
            "PL-B": "{\"status\":\"RELEASED\"}",
            "PL-C": {"error_code": "92020005", "error_msg": "no"},
        })),
    );
    let r = c.activate_batch(&codes, None).await.unwrap();
    assert_eq!(r[0].1.as_ref().unwrap().product_id.as_deref(), Some("P"));
    assert_eq!(r[1].1.as_ref().unwrap().status, RemoteStatus::Released);
    assert!(matches!(r[2].1, Err(LicenseApiError::NotFound)));
    // The whole call refused, its words echoing a code: masked (logs never show a whole code).
    script.answer(
        400,
        json!({"error_code": "92020002", "error_msg": "bad code PL-B"}),
    );
    let e = c.activate_batch(&codes, None).await.unwrap_err();
    assert!(matches!(e, LicenseApiError::Invalid(_)), "{e}");
    assert!(
        e.to_string().contains("bad code PL-B…(4)") && !e.to_string().contains("PL-B\""),
        "{e}"
    );
    let got = script.got();
    assert_eq!(got[0].path, ACTIVATE_V2_PATH);
    assert_eq!(
        got[0].json(),
        json!({"license_list": ["PL-A", "PL-B", "PL-C"]})
    );
}

#[tokio::test]
async fn too_much_is_refused_before_anything_is_sent() {
    let (script, c) = scripted().await;
    let many: Vec<LicenseCode> = (0..101).map(|i| code(&format!("PL-{i}"))).collect();
    let e = c.activate_batch(&many, None).await.unwrap_err();
    assert!(matches!(e, LicenseApiError::Invalid(_)), "{e}");
    let usage: Vec<SoftwareUsage> = many
        .iter()
        .map(|c| SoftwareUsage::Count {
            code: c.clone(),
            active_num: 1,
        })
        .collect();
    assert!(matches!(
        c.report_usage(&usage).await,
        Err(LicenseApiError::Invalid(_))
    ));
    for (event, upload) in [
        ("E".repeat(65), Upload::Characters("x".into())),
        (String::new(), Upload::Characters("x".into())),
        ("E".into(), Upload::Characters("c".repeat(1025))),
        (
            "E".into(),
            Upload::File {
                name: "n".repeat(1025),
                bytes: vec![1],
            },
        ),
    ] {
        assert!(matches!(
            c.upload(&event, &upload).await,
            Err(LicenseApiError::Invalid(_))
        ));
    }
    let huge = [SoftwareUsage::Count {
        code: code("PL-1"),
        active_num: 1_000_000_000,
    }];
    assert!(matches!(
        c.report_usage(&huge).await,
        Err(LicenseApiError::Invalid(_))
    ));
    assert!(c.activate_batch(&[], None).await.unwrap().is_empty());
    assert!(script.got().is_empty(), "nothing sent");
}

#[tokio::test]
async fn the_upload_is_multipart_signed_over_its_exact_bytes() {
    let (script, c) = scripted().await;
    script.answer(
        200,
        json!({"error_code": "MKT.0000", "error_msg": "success"}),
    );
    let bytes: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    c.upload(
        "EVENT/1",
        &Upload::File {
            name: "licence.bin".into(),
            bytes: bytes.clone(),
        },
    )
    .await
    .unwrap();
    let got = &script.got()[0];
    assert_eq!(
        got.path,
        "/api/mkp-openapi-public/global/v1/market-event/EVENT%2F1/file"
    );
    assert!(got.signed(), "signature over the multipart bytes");
    let content_type = got.header("content-type");
    let boundary = content_type
        .strip_prefix("multipart/form-data; boundary=")
        .unwrap();
    let parts = parse_multipart(boundary, &got.body).unwrap();
    assert_eq!(
        parts.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["isvUpdateFileReq", "file"]
    );
    assert_eq!(parts[0].content_type.as_deref(), Some("application/json"));
    let request: Value = serde_json::from_slice(&parts[0].data).unwrap();
    let sha = hex::encode(Sha256::digest(&bytes));
    assert_eq!(
        request,
        json!({"type": "FILE", "file_name": "licence.bin", "sha256": sha})
    );
    assert_eq!(parts[1].filename.as_deref(), Some("licence.bin"));
    assert_eq!(parts[1].data, bytes);
    // CHARACTERS: one part, no file.
    script.answer(
        200,
        json!({"error_code": "92020000", "error_msg": "success"}),
    );
    c.upload("E2", &Upload::Characters("abc".into()))
        .await
        .unwrap();
    let got = &script.got()[1];
    let boundary = boundary_in(got.header("content-type"));
    let parts = parse_multipart(&boundary, &got.body).unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(
        serde_json::from_slice::<Value>(&parts[0].data).unwrap(),
        json!({"type": "CHARACTERS", "characters": "abc"})
    );
}

fn boundary_in(content_type: &str) -> String {
    koogallery_sim::openapi::license::boundary_of(content_type).unwrap()
}

#[test]
fn every_documented_answer_is_classed() {
    use LicenseApiError as E;
    let kind = |e: &E| match e {
        E::NotFound => "not found",
        E::NotYetDelivered => "not yet",
        E::Invalid(_) => "invalid",
        E::Unauthorized(_) => "unauthorized",
        E::Unavailable(_) => "unavailable",
    };
    for (status, code, expected) in [
        (200, "92020000", "ok"),
        (200, "MKT.0000", "ok"),
        (200, "92020005", "not found"),
        (200, "92020004", "not yet"),
        (400, "92020002", "invalid"),
        (200, "92020002", "invalid"),
        (403, "92020001", "unauthorized"),
        (500, "92020001", "unavailable"),
        (401, "APIG.0301", "unauthorized"),
        (401, "APIG.0303", "unauthorized"),
        (429, "APIG.0308", "unavailable"),
        (406, "MKT.0250", "unavailable"),
        (500, "MKT.0999", "unavailable"),
        (401, "MKT.0151", "unauthorized"),
        (401, "MKT.0154", "unauthorized"),
        (400, "MKT.0101", "invalid"),
        (429, "", "unavailable"),
        (400, "", "invalid"),
        (403, "", "unauthorized"),
        (404, "X.1", "invalid"),
        (500, "", "unavailable"),
        (503, "X.1", "unavailable"),
        (200, "", "unavailable"),
        (200, "99999999", "unavailable"),
        (500, "92020000", "unavailable"),
    ] {
        let body = json!({"error_code": code, "error_msg": "m"}).to_string();
        let got = match license::classify(status, body.as_bytes()) {
            Ok(_) => "ok",
            Err(e) => kind(&e),
        };
        assert_eq!(got, expected, "HTTP {status} {code:?}");
    }
    // Not JSON at all (a proxy's page).
    assert!(matches!(
        license::classify(502, b"<html>"),
        Err(E::Unavailable(_))
    ));
    assert!(matches!(
        license::classify(400, b"<html>"),
        Err(E::Invalid(_))
    ));
    // The retry policy the domain relies on.
    assert!(!E::NotFound.is_retryable() && !E::Invalid("x".into()).is_retryable());
    assert!(E::Unauthorized("x".into()).is_retryable());
}

/// §10 V2 (the Ruby gem's License activate request) signed with the client's own path constant:
/// the path the client calls is the path the vector signs.
#[test]
fn vector_v2_is_reproduced_on_the_activate_path() {
    let headers = [
        ("x-stage", "RELEASE"),
        ("X-Sdk-Date", "20240317T144237Z"),
        ("Content-Type", "application/json"),
        ("Host", "mkt.myhuaweicloud.com"),
    ];
    let signature = apig::sign(
        "test",
        "123",
        &apig::Request {
            method: "POST",
            path: ACTIVATE_V1_PATH,
            query: "",
            headers: &headers,
            body: b"",
        },
    );
    assert_eq!(
        signature.signed_headers,
        "content-type;host;x-sdk-date;x-stage"
    );
    assert_eq!(
        signature.signature,
        "77595ad624b6e4e49990b8c4e84bf1c287457fca61069c4e60b9b6765b52053d"
    );
}

/// License calls are kept in the exchange log under their names, the codes they name masked in
/// the body sent and in the answer (a batch answer may be keyed by the codes themselves).
#[tokio::test]
async fn license_calls_are_kept_with_their_codes_masked() {
    let (_s, c) = sim().await;
    let (log, exchanges) = crate::tests::exchange_log();
    let c = c.with_exchange_log(exchanges.clone());
    let codes = [code("PLTEST-B1"), code("PLNOSUCH")];
    c.activate_batch(&codes, None).await.unwrap();
    c.query(&codes[0]).await.unwrap();
    exchanges.flush().await;
    let kept = log.all();
    let mut activities: Vec<_> = kept.iter().map(|x| x.activity.as_str()).collect();
    activities.sort_unstable();
    assert_eq!(activities, ["licenseActivateBatch", "licenseQuery"]);
    assert!(kept.iter().all(|x| x.family == "openapi"
        && x.attempt == Some(1)
        && x.http_status == Some(200)
        && !x.request.is_null()
        && !x.response.is_null()));
    let text = format!("{kept:?}");
    assert!(
        !text.contains("PLTEST-B1") && !text.contains("PLNOSUCH"),
        "{text}"
    );
}
