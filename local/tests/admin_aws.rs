//! `koogallery-admin … --aws` as a real process against a stand-in for the admin function's URL
//! on loopback: each call carries a Signature Version 4 for the service `lambda` made with the
//! credentials of the process's environment, which the stand-in recomputes with `aws-sigv4`.

use std::{
    process::Output,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use aws_credential_types::Credentials;
use aws_sigv4::{
    http_request::{PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign},
    sign::v4,
};
use axum::{Router, body::Bytes, http::HeaderMap, response::IntoResponse};

const ACCESS_KEY: &str = "AKIDEXAMPLETEST";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const REGION: &str = "eu-west-1";

/// What the stand-in received: method, path and query, headers, body.
type Seen = Arc<Mutex<Vec<(String, String, HeaderMap, Bytes)>>>;

async fn stand_in() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let kept = seen.clone();
    let app = Router::new().fallback(
        move |method: axum::http::Method, uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
            let kept = kept.clone();
            async move {
                let path = uri
                    .path_and_query()
                    .map(|p| p.to_string())
                    .unwrap_or_default();
                kept.lock()
                    .unwrap()
                    .push((method.to_string(), path.clone(), headers, body));
                let answer = if path.starts_with("/admin/api/instances") {
                    serde_json::json!({"v": 1, "instances": []})
                } else {
                    serde_json::json!({"v": 1, "redriven": ["7"], "gone": []})
                };
                ([("content-type", "application/json")], answer.to_string()).into_response()
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

fn admin(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_koogallery-admin"))
        .args(args)
        .env_remove("KOOGALLERY_ADMIN_TOKEN")
        .env_remove("KOOGALLERY_ADMIN_API_URL")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", REGION)
        // Nothing from the files or the instance of whoever runs the tests.
        .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("koogallery-admin runs")
}

/// The signature the request should carry, recomputed from what was received: its signed
/// headers, its body, and the time of its `x-amz-date`.
fn expected_signature(
    url: &str,
    method: &str,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> String {
    let authorization = headers["authorization"].to_str().unwrap();
    let signed: Vec<&str> = authorization
        .split("SignedHeaders=")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .split(';')
        .collect();
    let date = headers["x-amz-date"].to_str().unwrap();
    let time = chrono::NaiveDateTime::parse_from_str(date, "%Y%m%dT%H%M%SZ")
        .unwrap()
        .and_utc();
    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(time.timestamp() as u64);
    let identity = Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test").into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("lambda")
        .time(time)
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let pairs: Vec<(String, String)> = signed
        .iter()
        .map(|name| {
            (
                (*name).to_owned(),
                headers[*name].to_str().unwrap().to_owned(),
            )
        })
        .collect();
    let uri = format!("{url}{path}");
    let signable = SignableRequest::new(
        method,
        &uri,
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .unwrap();
    sign(signable, &params).unwrap().signature().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operator_call_is_signed_with_the_callers_credentials() {
    let (url, seen) = stand_in().await;
    let out = admin(&[
        "instances",
        "--aws",
        "--url",
        &url,
        "--json",
        "--customer",
        "cust 1",
    ]);
    assert!(out.status.success(), "{out:?}");
    let out = admin(&["redrive", "--all", "--aws", "--url", &url, "--json"]);
    assert!(out.status.success(), "{out:?}");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for (method, path, headers, body) in &seen {
        let authorization = headers["authorization"].to_str().unwrap();
        let today = chrono::Utc::now().format("%Y%m%d").to_string();
        let prefix = format!(
            "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{today}/{REGION}/lambda/aws4_request, SignedHeaders="
        );
        assert!(authorization.starts_with(&prefix), "{authorization}");
        assert!(!authorization.contains("Bearer"));
        let signed_headers = authorization.split("SignedHeaders=").nth(1).unwrap();
        assert!(
            signed_headers.starts_with("host;") || signed_headers.contains(";host;"),
            "{signed_headers}"
        );
        assert!(signed_headers.contains("x-amz-date"), "{signed_headers}");
        let signature = authorization.split("Signature=").nth(1).unwrap();
        assert_eq!(signature.len(), 64);
        assert!(signature.chars().all(|c| c.is_ascii_hexdigit()));
        let date = headers["x-amz-date"].to_str().unwrap();
        assert_eq!(date.len(), 16, "{date}");
        assert!(date.starts_with(&today) && date.ends_with('Z'), "{date}");
        assert_eq!(
            signature,
            expected_signature(&url, method, path, headers, body),
            "{method} {path}"
        );
    }
    assert_eq!(seen[0].0, "GET");
    assert!(seen[0].1.contains("customer=cust"), "{}", seen[0].1);
    assert_eq!(seen[1].0, "POST");
    assert_eq!(&seen[1].3[..], br#"{"all":true}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signature_covers_the_time() {
    let (url, seen) = stand_in().await;
    let out = admin(&["dead-letters", "--aws", "--url", &url, "--json"]);
    assert!(out.status.success(), "{out:?}");
    let seen = seen.lock().unwrap().clone();
    let (method, path, headers, body) = &seen[0];
    let mut tampered = headers.clone();
    tampered.insert("x-amz-date", "20200101T000000Z".parse().unwrap());
    assert_ne!(
        expected_signature(&url, method, path, &tampered, body),
        headers["authorization"]
            .to_str()
            .unwrap()
            .split("Signature=")
            .nth(1)
            .unwrap()
    );
}
