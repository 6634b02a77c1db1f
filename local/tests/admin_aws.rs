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

/// `koogallery-admin` with this test's credentials and region, and nothing from the settings,
/// files or instance of whoever runs the tests.
fn admin_command(args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_koogallery-admin"));
    command
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
        .env("AWS_EC2_METADATA_DISABLED", "true");
    command
}

fn admin(args: &[&str]) -> Output {
    admin_command(args).output().expect("koogallery-admin runs")
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

/// `koogallery-admin console --aws`: the proxy lets in only the browser that opened its one-time
/// link, only from its own origin and host, and forwards `/admin/…` signed, without its cookies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_proxy_signs_for_the_browser_that_opened_its_link_only() {
    use std::io::BufRead;
    let (upstream, seen) = stand_in().await;
    let mut child = admin_command(&["console", "--aws", "--url", &upstream])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("koogallery-admin console starts");
    let stdout = child.stdout.take().unwrap();
    let mut child = Stop(child);
    let start = tokio::task::spawn_blocking(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.trim().starts_with("http://").then(|| l.trim().to_owned()))
    })
    .await
    .unwrap()
    .expect("the start link is printed");
    let base = start.split("/.proxy/").next().unwrap().to_owned();
    koogallery_openapi::install_tls_provider();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let no_session = client
        .get(format!("{base}/admin/instances"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_session.status(), 401);
    let wrong = client
        .get(format!("{base}/.proxy/start?token=guessed"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    let started = client.get(&start).send().await.unwrap();
    assert_eq!(started.status(), 303);
    let cookie = started.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let cookie = cookie.split(';').next().unwrap().to_owned();
    assert_eq!(
        client.get(&start).send().await.unwrap().status(),
        403,
        "the link works once"
    );
    assert!(seen.lock().unwrap().is_empty(), "nothing forwarded yet");

    let page = client
        .get(format!("{base}/admin/instances?state=active"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    {
        let seen = seen.lock().unwrap();
        let (method, path, headers, body) = seen.last().unwrap();
        assert_eq!(
            (method.as_str(), path.as_str()),
            ("GET", "/admin/instances?state=active")
        );
        assert!(
            headers.get("cookie").is_none(),
            "the proxy's cookie stays home"
        );
        assert_eq!(
            headers["authorization"]
                .to_str()
                .unwrap()
                .split("Signature=")
                .nth(1)
                .unwrap(),
            expected_signature(&upstream, method, path, headers, body)
        );
    }

    let form = |origin: Option<&str>, host: Option<&str>| {
        let mut r = client
            .post(format!("{base}/admin/dead-letters/redrive"))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("csrf=&all=true");
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        if let Some(h) = host {
            r = r.header("host", h);
        }
        r.send()
    };
    let before = seen.lock().unwrap().len();
    assert_eq!(
        form(Some("http://evil.example"), None)
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        form(None, None).await.unwrap().status(),
        403,
        "no origin at all"
    );
    assert_eq!(
        form(Some(&base), Some("rebound.example"))
            .await
            .unwrap()
            .status(),
        403,
        "another host"
    );
    assert_eq!(seen.lock().unwrap().len(), before, "none forwarded");
    assert_eq!(form(Some(&base), None).await.unwrap().status(), 200);
    let (method, _, headers, body) = seen.lock().unwrap().last().unwrap().clone();
    assert_eq!(method, "POST");
    assert_eq!(&body[..], b"csrf=&all=true");
    assert!(
        headers["authorization"]
            .to_str()
            .unwrap()
            .starts_with("AWS4-HMAC-SHA256 ")
    );
    let outside = client
        .get(format!("{base}/produce"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(outside.status(), 404);

    child.0.kill().unwrap();
}

/// The proxy's process, stopped however the test ends.
struct Stop(std::process::Child);

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
