//! Single sign-on for 联营 products over HTTP (docs/protocol/callbacks.md §10;
//! docs/protocol/decisions.md §19): the Kit syncs give the tenant, its app client and its users;
//! the simulator plays the unified login and the tenant's auth centre; a client of the OIDC
//! provider (here: plain HTTP calls, the browser test drives a real browser and library) signs a
//! user in with PKCE, gets an ES256 ID token and userinfo, is refused for a user authSync did not
//! authorize, hears a revoked user's session end on its back-channel, and logs out through the
//! auth centre.

use std::sync::{Arc, Mutex};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use koogallery_e2e::{KEY, config};
use koogallery_local::{LocalSettings, SsoHostSettings, start_with};
use koogallery_sim::{
    Simulator,
    kit::{self, KitSimulator},
    openapi::OpenApiSim,
};
use reqwest::{StatusCode, header};
use sha2::{Digest as _, Sha256};
use sso::clients::{ClientOptions, add_client};

const KIT_KEY: &str = "e2e-kit-key";
const APP: &str = "app-sso-1";
const SECRET: &str = "tenant-client-secret";

/// A free loopback port (the issuer must be known before the host starts).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(header::LOCATION)
        .unwrap_or_else(|| panic!("no Location in {resp:?}"))
        .to_str()
        .unwrap()
        .to_owned()
}

fn param(url: &str, name: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The relying party's back-channel endpoint: the logout tokens it received.
async fn relying_party() -> (String, Arc<Mutex<Vec<String>>>) {
    use axum::{Router, extract::State, routing::post};
    let got = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new()
        .route(
            "/backchannel",
            post(
                |State(got): State<Arc<Mutex<Vec<String>>>>, body: String| async move {
                    got.lock().unwrap().push(body);
                    ""
                },
            ),
        )
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

struct Rp {
    client_id: String,
    secret: String,
    base: String,
}

impl Rp {
    fn redirect(&self) -> String {
        format!("{}/cb", self.base)
    }
}

fn verifier_and_challenge() -> (String, String) {
    let verifier = format!("v-{}", koogallery::sso::Opaque::random().expose());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// Through the unified login as `user`: the host's answer to KooGallery's callback, and the
/// session cookie it set, if any.
async fn sign_in(
    http: &reqwest::Client,
    issuer: &str,
    rp: &Rp,
    user: &str,
    tenant: &str,
    challenge: &str,
) -> (reqwest::Response, Option<String>) {
    let authorize = http
        .get(format!("{issuer}/oidc/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", rp.client_id.as_str()),
            ("redirect_uri", rp.redirect().as_str()),
            ("scope", "openid profile email"),
            ("state", "rp-state"),
            ("nonce", "rp-nonce"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(authorize.status(), StatusCode::FOUND);
    let login_page = location(&authorize);
    assert!(
        login_page.contains("/unified-login/portal-login?ind=UNOP&appId=app-sso-1"),
        "{login_page}"
    );
    let login_cookie = cookie(&authorize, "kg_login").expect("the pending login's cookie");
    let page = http.get(&login_page).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let login_url = login_page
        .split("/unified-login/")
        .next()
        .unwrap()
        .to_owned()
        + "/unified-login/login";
    let back = http
        .post(login_url)
        .form(&[("appId", APP), ("tenant", tenant), ("userName", user)])
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), StatusCode::FOUND, "{:?}", back.text().await);
    let callback = location(&back);
    assert!(
        callback.starts_with(&format!("{issuer}/sso/callback?code=")),
        "{callback}"
    );
    assert_eq!(param(&callback, "tenant").as_deref(), Some(tenant));
    let answer = http
        .get(&callback)
        .header(header::COOKIE, &login_cookie)
        .send()
        .await
        .unwrap();
    let session = cookie(&answer, "kg_sso").filter(|c| c.len() > "kg_sso=".len());
    (answer, session)
}

fn claims(jwt: &str) -> serde_json::Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_signs_in_through_koogallery_and_the_vendors_app_gets_an_oidc_identity() {
    let sim = OpenApiSim::start(
        Default::default(),
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    sim.register_sso_app(APP, &format!("{issuer}/sso/callback"))
        .unwrap();
    let (rp_base, backchannel) = relying_party().await;
    let dir = tempfile::tempdir().unwrap();
    let clients_file = dir.path().join("oidc-clients.json");
    let new = add_client(
        &clients_file,
        ClientOptions {
            name: "Vendor app".into(),
            redirect_uris: vec![format!("{rp_base}/cb")],
            post_logout_redirect_uris: vec![format!("{rp_base}/bye")],
            backchannel_logout_uri: Some(format!("{rp_base}/backchannel")),
            initiate_login_uri: None,
        },
    )
    .unwrap();
    let rp = Rp {
        client_id: new.client_id,
        secret: new.client_secret,
        base: rp_base.clone(),
    };
    let settings = LocalSettings {
        listen: format!("127.0.0.1:{port}").parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        sso: Some(SsoHostSettings {
            provider: sso::ProviderSettings::new(
                &issuer,
                &format!(
                    "{}/unified-login/portal-login?ind=UNOP&appId={{appId}}",
                    sim.primary_url()
                ),
                APP,
            )
            .unwrap(),
            clients: clients_file.display().to_string(),
        }),
    };
    let host = start_with(config(), settings, None)
        .await
        .expect("the host starts");

    // The Kit syncs: the tenant (its auth centre is the simulator), the app's client, two users.
    let tenant = format!("tenant-{}", koogallery_e2e::unique());
    let instance = format!("inst-{}", koogallery_e2e::unique());
    let kit = KitSimulator::new(&host.produce_url(), KIT_KEY).unwrap();
    let pem = kit.public_key().await.unwrap();
    let users = kit::users(3);
    for (name, body) in [
        (
            "tenantSync",
            kit::tenant_sync(&instance, "CSSSO1", &tenant, &sim.primary_url(), 1),
        ),
        (
            "applicationSync",
            kit::application_sync(&instance, &tenant, APP, SECRET, &pem, 1).unwrap(),
        ),
        (
            "authSync",
            kit::auth_sync(&instance, &tenant, APP, &users[..2], 1),
        ),
    ] {
        let a = kit.call(name, &body).await.unwrap();
        assert_eq!(
            a.reply.result_code.as_str(),
            "000000",
            "{name}: {}",
            a.reply.result_msg
        );
    }
    // The auth centre knows all three users; authSync authorized only the first two.
    sim.register_sso_tenant(koogallery_sim::sso::SsoTenantRegistration::kit(
        &tenant, APP, SECRET, 3,
    ))
    .unwrap();
    let _ = Simulator::new(&host.produce_url(), KEY).unwrap();

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let discovery: serde_json::Value = http
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], issuer.as_str());
    assert_eq!(
        discovery["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );
    assert_eq!(
        discovery["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );

    // Sign in as user00001 (authorized).
    let (verifier, challenge) = verifier_and_challenge();
    let (answer, session) =
        sign_in(&http, &issuer, &rp, "user00001@tenant", &tenant, &challenge).await;
    assert_eq!(answer.status(), StatusCode::FOUND);
    let to_rp = location(&answer);
    assert!(to_rp.starts_with(&rp.redirect()), "{to_rp}");
    assert_eq!(param(&to_rp, "state").as_deref(), Some("rp-state"));
    assert_eq!(param(&to_rp, "iss").as_deref(), Some(issuer.as_str()));
    let session = session.expect("the session cookie");
    let set = answer
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    assert!(
        set.iter().any(|c| c.starts_with("kg_sso=")
            && c.contains("HttpOnly")
            && c.contains("SameSite=Lax")),
        "{set:?}"
    );
    let code = param(&to_rp, "code").unwrap();

    let token = |code: String, verifier: String| {
        let http = http.clone();
        let (id, secret, redirect) = (rp.client_id.clone(), rp.secret.clone(), rp.redirect());
        let issuer = issuer.clone();
        async move {
            http.post(format!("{issuer}/oidc/token"))
                .basic_auth(id, Some(secret))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", redirect.as_str()),
                    ("code_verifier", verifier.as_str()),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let wrong = token(code.clone(), format!("{verifier}x")).await;
    assert_eq!(
        wrong.status(),
        StatusCode::BAD_REQUEST,
        "a wrong PKCE verifier"
    );
    // The code was spent by the failed attempt: sign in again (the session is reused, no login).
    let again = http
        .get(format!("{issuer}/oidc/authorize"))
        .header(header::COOKIE, &session)
        .query(&[
            ("response_type", "code"),
            ("client_id", rp.client_id.as_str()),
            ("redirect_uri", rp.redirect().as_str()),
            ("scope", "openid profile email"),
            ("nonce", "n2"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::FOUND);
    let code = param(&location(&again), "code").expect("a code at once: the session is live");
    let ok = token(code.clone(), verifier.clone()).await;
    assert_eq!(ok.status(), StatusCode::OK);
    let tokens: serde_json::Value = ok.json().await.unwrap();
    let id = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["iss"], issuer.as_str());
    assert_eq!(id["aud"], rp.client_id.as_str());
    assert_eq!(id["nonce"], "n2");
    assert_eq!(id["tenant_id"], tenant.as_str());
    assert_eq!(id["tenant_name"], "华为软件技术有限公司");
    assert_eq!(id["instance_id"], instance.as_str());
    assert_eq!(id["app_id"], APP);
    assert_eq!(id["preferred_username"], "user00001@tenant");
    assert_eq!(id["name"], users[1]["name"]);
    assert_eq!(id["email"], "user00001@example.com");
    assert_eq!(id["role"], "user");
    assert!(
        token(code, verifier.clone()).await.status() == StatusCode::BAD_REQUEST,
        "a code works once"
    );
    let userinfo = http
        .get(format!("{issuer}/oidc/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(userinfo.status(), StatusCode::OK);
    let info: serde_json::Value = userinfo.json().await.unwrap();
    assert_eq!(info["sub"], id["sub"]);

    // user00002 is known to the auth centre but not authorized by authSync: 403, no session.
    let (_, challenge3) = verifier_and_challenge();
    let (refused, none) = sign_in(
        &http,
        &issuer,
        &rp,
        "user00002@tenant",
        &tenant,
        &challenge3,
    )
    .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(none.is_none(), "no session cookie on a refusal");
    assert!(refused.text().await.unwrap().contains("not authorized"));

    // authSync revokes user00001 mid-session: the next use ends the session, the app is told.
    let revoke = kit::auth_sync(&instance, &tenant, APP, &users[1..2], 3);
    assert_eq!(
        kit.call("authSync", &revoke)
            .await
            .unwrap()
            .reply
            .result_code
            .as_str(),
        "000000"
    );
    let after = http
        .get(format!("{issuer}/oidc/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    let told = backchannel.lock().unwrap().clone();
    assert_eq!(told.len(), 1, "{told:?}");
    let logout_token = told[0].strip_prefix("logout_token=").unwrap();
    let lt = claims(logout_token);
    assert_eq!(lt["sub"], id["sub"]);
    assert_eq!(lt["sid"], id["sid"]);
    assert!(lt["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());

    // user00000 signs in and logs out: local session, back-channel, then the auth centre's logout.
    let (v0, c0) = verifier_and_challenge();
    let (answer, session0) = sign_in(&http, &issuer, &rp, "user00000@tenant", &tenant, &c0).await;
    assert_eq!(answer.status(), StatusCode::FOUND);
    let code0 = param(&location(&answer), "code").unwrap();
    assert_eq!(token(code0, v0).await.status(), StatusCode::OK);
    let session0 = session0.unwrap();
    let logout = http
        .get(format!("{issuer}/oidc/logout"))
        .header(header::COOKIE, &session0)
        .query(&[
            ("client_id", rp.client_id.as_str()),
            (
                "post_logout_redirect_uri",
                format!("{rp_base}/bye").as_str(),
            ),
            ("state", "bye-state"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::FOUND);
    let to_centre = location(&logout);
    assert!(
        to_centre.starts_with(&format!(
            "{}/api/v1/logout?redirect_url=",
            sim.primary_url()
        )),
        "{to_centre}"
    );
    assert_eq!(
        param(&to_centre, "redirect_url"),
        Some(format!("{rp_base}/bye?state=bye-state"))
    );
    assert_eq!(backchannel.lock().unwrap().len(), 2);
    let centre = http.get(&to_centre).send().await.unwrap();
    assert_eq!(location(&centre), format!("{rp_base}/bye?state=bye-state"));
    let reuse = http
        .get(format!("{issuer}/oidc/authorize"))
        .header(header::COOKIE, &session0)
        .query(&[
            ("response_type", "code"),
            ("client_id", rp.client_id.as_str()),
            ("redirect_uri", rp.redirect().as_str()),
            ("scope", "openid"),
            ("code_challenge", c0.as_str()),
            ("code_challenge_method", "S256"),
            ("prompt", "none"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        param(&location(&reuse), "error").as_deref(),
        Some("login_required"),
        "the session is gone"
    );
    host.shutdown().await;
}
