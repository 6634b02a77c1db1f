//! License products end to end over HTTP on the local host (docs/protocol/openapi.md §5, §6;
//! docs/protocol/decisions.md §21): the vendor's software activates and checks codes at
//! `/license/*` and verifies the tokens offline with nothing but the published keys; KooGallery's
//! License callbacks (and the legacy V1 GET ones) change what the next check answers; the vendor
//! hears each change on its webhook; `koogallery-sim license` walks a code through all of it; the
//! vendor's back end delivers strings and files (§4) through `POST /license/upload`. KooGallery's
//! License API is the simulator's.

use std::time::Duration;

use koogallery::{license::api::sign, security::SecretKey};
use koogallery_e2e::{Vendor, eventually, host, with_openapi};
use koogallery_license_token::{PublicKey, Status, keys_from_jwks, verify};
use koogallery_sim::license_walk::{LicenseWalk, new_test_code};
use serde_json::{Value, json};

const CLIENT_KEY: &str = "e2e-license-client-key";

struct Software {
    http: reqwest::Client,
    base: String,
    keys: Vec<(String, PublicKey)>,
}

impl Software {
    /// POSTs `{license, clientId}` signed with the per-product key; the status and the answer.
    async fn call(&self, route: &str, license: &str, client: &str) -> (u16, Value) {
        let body = json!({"license": license, "clientId": client}).to_string();
        let mut req = self
            .http
            .post(format!("{}/license/{route}", self.base))
            .header("content-type", "application/json");
        for (name, value) in sign(CLIENT_KEY, body.as_bytes(), chrono::Utc::now()) {
            req = req.header(name, value);
        }
        let resp = req.body(body).send().await.expect("answered");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("JSON"))
    }

    /// Checks a code and verifies its token offline: the status it carries.
    async fn status(&self, route: &str, license: &str) -> Status {
        let (status, answer) = self.call(route, license, "host-1").await;
        assert_eq!(status, 200, "{answer}");
        let now = chrono::Utc::now().timestamp() as u64;
        let token = answer["token"].as_str().expect("token");
        let claims = verify(token, &self.keys, now)
            .expect("verifies offline")
            .into_claims();
        assert_eq!(claims.code, license);
        assert_eq!(claims.status.as_str(), answer["status"]);
        claims.status
    }
}

/// The vendor's webhook, the simulator's open API, and a configuration that uses both.
async fn setup() -> (
    Vendor,
    koogallery_sim::openapi::OpenApiSim,
    koogallery::config::Config,
) {
    let vendor = Vendor::start().await;
    let (openapi, mut cfg) = with_openapi(vendor.config(), false, Duration::from_secs(5)).await;
    cfg.secrets.license_client = Some(SecretKey::new(CLIENT_KEY));
    (vendor, openapi, cfg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn license_codes_live_through_activation_checks_callbacks_and_release() {
    let (vendor, _openapi, cfg) = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path(), cfg, None).await;
    walk(h.addr, koogallery_e2e::simulator(&h), &vendor).await;
    h.shutdown().await;
}

/// The same on DynamoDB + SQS (`make run-aws-local`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn license_codes_on_the_aws_adapters() {
    let (vendor, _openapi, cfg) = setup().await;
    let (h, _data) = koogallery_e2e::aws_host(cfg, None, None).await;
    let sim = koogallery_sim::Simulator::new(&h.produce_url(), koogallery_e2e::KEY).unwrap();
    walk(h.addr, sim, &vendor).await;
    h.shutdown().await;
}

/// A code's life, and a legacy code's, through the routes and the callbacks of the host at `addr`.
async fn walk(addr: std::net::SocketAddr, sim: koogallery_sim::Simulator, vendor: &Vendor) {
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let jwks = http
        .get(format!("{base}/license/keys"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let sw = Software {
        http: http.clone(),
        base: base.clone(),
        keys: keys_from_jwks(&jwks).expect("a JWK set"),
    };

    // Unsigned, or signed with another key: refused.
    let unsigned = http
        .post(format!("{base}/license/check"))
        .body(r#"{"license":"PLTEST0001","clientId":"h"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);

    // First use activates on KooGallery; the token verifies offline.
    assert_eq!(sw.status("activate", "PLTEST0001").await, Status::Active);
    assert_eq!(sw.status("check", "PLTEST0001").await, Status::Active);

    // A code KooGallery does not know: refused, clearly.
    let (status, answer) = sw.call("check", "PLNOSUCH01", "h").await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (404, Some("license_not_found"))
    );

    // KooGallery's callbacks change what the next check answers.
    for (body, expect) in [
        (
            json!({"activity":"updateLicenseCodeStatus","license":"PLTEST0001","status":"FREEZE"}),
            Status::Frozen,
        ),
        (
            json!({"activity":"updateLicenseCodeStatus","license":"PLTEST0001","status":"UNFREEZE"}),
            Status::Active,
        ),
        (
            json!({"activity":"refreshLicenseCode","license":"PLTEST0001","scene":"RENEWAL",
                "orderId":"CSRENEW1","orderLineId":"CSRENEW1-000001","expireTime":"20991231000000"}),
            Status::Active,
        ),
        (
            json!({"activity":"releaseLicenseCode","license":"PLTEST0001","orderId":"CSUNSUB1"}),
            Status::Released,
        ),
    ] {
        let a = sim.call(&body).await.expect("answered");
        assert!(a.body_sign_valid);
        assert_eq!(a.reply.result_code.as_str(), "000000", "{body}");
        assert_eq!(sw.status("check", "PLTEST0001").await, expect, "{body}");
    }
    let (_, after_renewal) = sw.call("check", "PLTEST0001", "h").await;
    assert_eq!(after_renewal["expireTime"], "2099-12-31T00:00:00Z");

    // Bad callback values: 000002, nothing stored.
    let bad = sim
        .call(
            &json!({"activity":"updateLicenseCodeStatus","license":"PLTEST0002","status":"PAUSE"}),
        )
        .await
        .unwrap();
    assert_eq!(bad.reply.result_code.as_str(), "000002");

    // A legacy product: getLicense (V1 GET) issues the code; the software checks it like any other.
    let issued = sim
        .call_v1(&[
            ("activity", "getLicense"),
            ("orderId", "CSLEGACY1"),
            ("businessId", "biz-legacy-1"),
            ("productId", "00301-legacy"),
            ("customerId", "cust-1"),
        ])
        .await
        .expect("answered");
    assert_eq!(issued.reply.result_code.as_str(), "000000");
    let legacy = issued.reply.field::<String>("license").expect("license");
    assert_eq!(
        issued.reply.field::<String>("instanceId"),
        Some(legacy.clone())
    );
    assert_eq!(sw.status("check", &legacy).await, Status::Active);
    let expired = sim
        .call_v1(&[
            ("activity", "expireLicense"),
            ("instanceId", &legacy),
            ("orderId", "CSLEGACY1"),
        ])
        .await
        .unwrap();
    assert_eq!(expired.reply.result_code.as_str(), "000000");
    assert_eq!(sw.status("check", &legacy).await, Status::Frozen);

    // The vendor heard every change, in order, on its webhook.
    eventually(Duration::from_secs(10), "license events delivered", || {
        let events: Vec<String> = vendor
            .all()
            .into_iter()
            .filter(|r| r.body["license"] == "PLTEST0001")
            .map(|r| r.event)
            .collect();
        events.ends_with(&[
            "frozen".to_owned(),
            "unfrozen".to_owned(),
            "renewed".to_owned(),
            "released".to_owned(),
        ]) && events.first().map(String::as_str) == Some("activated")
    })
    .await;
}

/// `koogallery-sim license` against the host: the whole walk (keys, activation, checks, every
/// callback, an unknown code, an unsigned request), each step ok.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn license_walk_through_http() {
    let vendor = Vendor::start().await;
    let (openapi, mut cfg) = with_openapi(vendor.config(), false, Duration::from_secs(5)).await;
    cfg.secrets.license_client = Some(SecretKey::new(CLIENT_KEY));
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path(), cfg, None).await;
    let walk = LicenseWalk {
        url: h.produce_url(),
        key: koogallery_e2e::KEY.to_owned(),
        client_key: CLIENT_KEY.to_owned(),
        code: new_test_code(),
        openapi: Some(openapi.primary_url()),
    };
    let report = koogallery_sim::license_walk::walk(&walk)
        .await
        .expect("the walk runs");
    assert!(report.passed(), "{report}");
    assert_eq!(report.steps.len(), 10, "{report}");
    assert!(
        !report.to_string().contains(&walk.code),
        "never the whole code"
    );
    h.shutdown().await;
}

const USAGE_KEY: &str = "e2e-usage-key";

/// POSTs `body` to `/license/upload`, signed with the usage key when `signed`.
async fn upload(http: &reqwest::Client, base: &str, body: &Value, signed: bool) -> (u16, Value) {
    let body = body.to_string();
    let mut req = http
        .post(format!("{base}/license/upload"))
        .header("content-type", "application/json");
    if signed {
        for (name, value) in
            koogallery::metering::api::sign(USAGE_KEY, body.as_bytes(), chrono::Utc::now())
        {
            req = req.header(name, value);
        }
    }
    let resp = req.body(body).send().await.expect("answered");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The vendor's back end delivers a file and a string through `POST /license/upload`: both land
/// at KooGallery (the simulator) under their event, the file with its SHA-256; an unsigned
/// request and bad input are refused before anything is sent; KooGallery's refusal is a 502, its
/// outage a 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_reach_koogallery_with_their_hash() {
    use base64::Engine as _;
    use sha2::Digest as _;
    let (openapi, mut cfg) =
        with_openapi(koogallery_e2e::config(), false, Duration::from_secs(5)).await;
    cfg.secrets.usage = Some(SecretKey::new(USAGE_KEY));
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path(), cfg, None).await;
    let base = format!("http://{}", h.addr);
    let http = reqwest::Client::new();
    let b64 = base64::engine::general_purpose::STANDARD;

    let file: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let (status, answer) = upload(
        &http,
        &base,
        &json!({"eventId": "ev-file-1", "fileName": "license.lic",
            "contentBase64": b64.encode(&file)}),
        true,
    )
    .await;
    assert_eq!((status, answer.clone()), (200, json!({"uploaded": true})));
    let (status, _) = upload(
        &http,
        &base,
        &json!({"eventId": "ev-text-1", "characters": "LIC-KEY-0001"}),
        true,
    )
    .await;
    assert_eq!(status, 200);

    let received = openapi.uploads();
    assert_eq!(received.len(), 2, "{received:?}");
    let f = received
        .iter()
        .find(|u| u.event_id == "ev-file-1")
        .expect("the file");
    assert_eq!(f.kind, "FILE");
    assert_eq!(f.file_name.as_deref(), Some("license.lic"));
    assert_eq!(
        f.sha256.as_deref(),
        Some(hex_sha256(&sha2::Sha256::digest(&file)).as_str())
    );
    assert_eq!(f.file_base64.as_deref(), Some(b64.encode(&file).as_str()));
    let t = received
        .iter()
        .find(|u| u.event_id == "ev-text-1")
        .expect("the string");
    assert_eq!(
        (t.kind.as_str(), t.characters.as_deref()),
        ("CHARACTERS", Some("LIC-KEY-0001"))
    );

    // Unsigned, or bad input: refused here, nothing sent.
    let text = json!({"eventId": "ev-2", "characters": "x"});
    assert_eq!(upload(&http, &base, &text, false).await.0, 401);
    let both =
        json!({"eventId": "ev-2", "characters": "x", "fileName": "a", "contentBase64": "eA=="});
    assert_eq!(upload(&http, &base, &both, true).await.0, 400);
    assert_eq!(openapi.uploads().len(), 2);

    // KooGallery refuses: 502 with its words. KooGallery down: 503.
    openapi.inject_license_fault(koogallery_sim::openapi::LicenseFault::Code {
        code: "92020002".into(),
        status: 400,
        count: 1,
    });
    let (status, answer) = upload(&http, &base, &text, true).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (502, Some("refused")),
        "{answer}"
    );
    openapi.inject_license_fault(koogallery_sim::openapi::LicenseFault::Status {
        status: 503,
        count: 20,
    });
    let (status, answer) = upload(&http, &base, &text, true).await;
    assert_eq!(
        (status, answer["retryable"].as_bool()),
        (503, Some(true)),
        "{answer}"
    );
    h.shutdown().await;
}

fn hex_sha256(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
