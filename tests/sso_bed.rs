//! A 联营 SSO deployment for the end-to-end tests and the login benchmark
//! (docs/protocol/decisions.md §19): the simulator playing the unified login and the tenant's
//! auth centre, the local host with SSO on, one OIDC client, and the Kit syncs that give the
//! tenant, its app client and its users; then a sign-in through all of it, step by step.

use std::time::{Duration, Instant};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use koogallery_local::{Embedded, LocalSettings, Running, SsoHostSettings, start_with};
use koogallery_sim::{
    kit::{self, KitSimulator},
    openapi::OpenApiSim,
};
use reqwest::{StatusCode, header};
use sha2::{Digest as _, Sha256};
use sso::clients::{ClientOptions, add_client};

pub const KIT_KEY: &str = "e2e-kit-key";
pub const APP: &str = "app-sso-1";
pub const SECRET: &str = "tenant-client-secret";

/// The whole deployment, on the embedded store (`B` = `Embedded`) or the AWS adapters.
pub struct SsoBed<B = Embedded> {
    pub sim: OpenApiSim,
    pub host: Running<B>,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// The relying party's base URL (its redirect URI is `{rp}/cb`).
    pub rp: String,
    pub tenant: String,
    pub instance: String,
    pub kit: KitSimulator,
    /// What `kit::users` made; `authorized` of them were sent in the authSync.
    pub users: Vec<serde_json::Value>,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// A free loopback port (the issuer must be known before the host starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// What is set up before the host starts: the simulator, the issuer and the client.
struct Prepared {
    sim: OpenApiSim,
    settings: LocalSettings,
    client: sso::clients::NewClient,
    issuer: String,
    rp: String,
    dir: tempfile::TempDir,
}

async fn prepare(rp: &str) -> Prepared {
    let sim = OpenApiSim::start(
        Default::default(),
        "127.0.0.1:0".parse().expect("addr"),
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("the simulator starts");
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    sim.register_sso_app(APP, &format!("{issuer}/sso/callback"))
        .expect("app registered");
    let dir = tempfile::tempdir().expect("temp dir");
    let clients_file = dir.path().join("oidc-clients.json");
    let client = add_client(
        &clients_file,
        ClientOptions {
            name: "Vendor app".into(),
            redirect_uris: vec![format!("{rp}/cb")],
            post_logout_redirect_uris: vec![format!("{rp}/bye")],
            backchannel_logout_uri: Some(format!("{rp}/backchannel")),
            initiate_login_uri: None,
        },
    )
    .expect("client added");
    let settings = LocalSettings {
        listen: format!("127.0.0.1:{port}").parse().expect("addr"),
        sso: Some(SsoHostSettings {
            provider: sso::ProviderSettings::new(
                &issuer,
                &format!(
                    "{}/unified-login/portal-login?ind=UNOP&appId={{appId}}",
                    sim.primary_url()
                ),
                APP,
            )
            .expect("provider settings"),
            clients: clients_file.display().to_string(),
        }),
        ..LocalSettings::on_loopback(dir.path())
    };
    Prepared {
        sim,
        settings,
        client,
        issuer,
        rp: rp.to_owned(),
        dir,
    }
}

impl SsoBed<Embedded> {
    /// `known` users at the auth centre, of which the indexes in `authorized` are authorized by
    /// authSync; the relying party at `rp` (its back-channel logout at `{rp}/backchannel`).
    pub async fn start(rp: &str, known: usize, authorized: &[usize]) -> Self {
        Self::start_with(rp, known, authorized, crate::config()).await
    }

    /// As [`SsoBed::start`], with the host's `config` (a webhook vendor's, say).
    pub async fn start_with(
        rp: &str,
        known: usize,
        authorized: &[usize],
        config: koogallery::config::Config,
    ) -> Self {
        let p = prepare(rp).await;
        let host = start_with(config, p.settings.clone(), None)
            .await
            .expect("the host starts");
        SsoBed::finish(p, host, known, authorized).await
    }
}

impl SsoBed<koogallery_local::aws::Aws> {
    /// As [`SsoBed::start`], the host on the AWS adapters against the emulator (a table and
    /// queues of its own).
    pub async fn start_aws(rp: &str, known: usize, authorized: &[usize]) -> Self {
        assert!(
            std::env::var("AWS_ENDPOINT_URL").is_ok(),
            "AWS_ENDPOINT_URL is not set: run through `make test`, which starts the emulator"
        );
        let p = prepare(rp).await;
        let name = format!("e2e-sso-{}", crate::unique());
        let aws = koogallery_local::aws::AwsSettings {
            table: name.clone(),
            queue: name,
        };
        let host = koogallery_local::aws::start_aws_with(
            crate::config(),
            p.settings.clone(),
            aws,
            None,
            koogallery_aws::sdk_config().await,
        )
        .await
        .expect("the host on the AWS adapters starts");
        SsoBed::finish(p, host, known, authorized).await
    }
}

impl<B> SsoBed<B> {
    async fn finish(p: Prepared, host: Running<B>, known: usize, authorized: &[usize]) -> Self {
        let Prepared {
            sim,
            client,
            issuer,
            rp,
            dir,
            ..
        } = p;
        let tenant = format!("tenant-{}", crate::unique());
        let instance = format!("inst-{}", crate::unique());
        let kit = KitSimulator::new(&host.produce_url(), KIT_KEY).expect("kit simulator");
        let pem = kit.public_key().await.expect("the Kit public key");
        let users = kit::users(known);
        let granted: Vec<serde_json::Value> =
            authorized.iter().map(|i| users[*i].clone()).collect();
        for (name, body) in [
            (
                "tenantSync",
                kit::tenant_sync(&instance, "CSSSO1", &tenant, &sim.primary_url(), 1),
            ),
            (
                "applicationSync",
                kit::application_sync(&instance, &tenant, APP, SECRET, &pem, 1).expect("body"),
            ),
            (
                "authSync",
                kit::auth_sync(&instance, &tenant, APP, &granted, 1),
            ),
        ] {
            let a = kit
                .call(name, &body)
                .await
                .expect("the Kit sync is answered");
            assert_eq!(
                a.reply.result_code.as_str(),
                "000000",
                "{name}: {}",
                a.reply.result_msg
            );
        }
        sim.register_sso_tenant(koogallery_sim::sso::SsoTenantRegistration::kit(
            &tenant, APP, SECRET, known,
        ))
        .expect("tenant registered");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Self {
            sim,
            host,
            issuer,
            client_id: client.client_id,
            client_secret: client.client_secret,
            rp,
            tenant,
            instance,
            kit,
            users,
            http,
            _dir: dir,
        }
    }

    pub fn redirect_uri(&self) -> String {
        format!("{}/cb", self.rp)
    }

    /// The user name of `kit::users`' `i`th user.
    pub fn user(&self, i: usize) -> String {
        self.users[i]["userName"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Sends one Kit sync and asserts it was answered `000000`.
    pub async fn sync(&self, name: &str, body: &serde_json::Value) {
        let a = self
            .kit
            .call(name, body)
            .await
            .expect("the Kit sync is answered");
        assert_eq!(
            a.reply.result_code.as_str(),
            "000000",
            "{name}: {}",
            a.reply.result_msg
        );
    }

    /// `/oidc/authorize` as the client, with the browser's `session` cookie if any, the PKCE
    /// `challenge`, and `extra` parameters (`prompt`, `nonce`, `max_age`, …).
    pub async fn authorize(
        &self,
        session: Option<&str>,
        challenge: &str,
        extra: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self
            .http
            .get(format!("{}/oidc/authorize", self.issuer))
            .query(&[
                ("response_type", "code"),
                ("client_id", self.client_id.as_str()),
                ("redirect_uri", self.redirect_uri().as_str()),
                ("scope", "openid profile email"),
                ("code_challenge", challenge),
                ("code_challenge_method", "S256"),
            ])
            .query(extra);
        if let Some(cookie) = session {
            req = req.header(header::COOKIE, cookie);
        }
        req.send().await.expect("authorize answers")
    }

    /// Exchanges `code` at the token endpoint as the client.
    pub async fn token(&self, code: &str, verifier: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/oidc/token", self.issuer))
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", self.redirect_uri().as_str()),
                ("code_verifier", verifier),
            ])
            .send()
            .await
            .expect("the token endpoint answers")
    }

    /// A whole sign-in as `user` from the client's authorization request: KooGallery's callback
    /// answer, the session cookie it set, and how long that callback step took.
    pub async fn sign_in(&self, user: &str, challenge: &str) -> SignIn {
        let http = &self.http;
        let authorize = http
            .get(format!("{}/oidc/authorize", self.issuer))
            .query(&[
                ("response_type", "code"),
                ("client_id", self.client_id.as_str()),
                ("redirect_uri", self.redirect_uri().as_str()),
                ("scope", "openid profile email"),
                ("state", "rp-state"),
                ("nonce", "rp-nonce"),
                ("code_challenge", challenge),
                ("code_challenge_method", "S256"),
            ])
            .send()
            .await
            .expect("authorize answers");
        assert_eq!(authorize.status(), StatusCode::FOUND);
        let login_page = location(&authorize);
        assert!(
            login_page.contains(&format!("/unified-login/portal-login?ind=UNOP&appId={APP}")),
            "{login_page}"
        );
        let login_cookie = cookie(&authorize, "kg_login").expect("the pending login's cookie");
        let page = http.get(&login_page).send().await.expect("login page");
        assert_eq!(page.status(), StatusCode::OK);
        let base = login_page
            .split("/unified-login/")
            .next()
            .unwrap_or_default();
        let back = http
            .post(format!("{base}/unified-login/login"))
            .form(&[
                ("appId", APP),
                ("tenant", self.tenant.as_str()),
                ("userName", user),
            ])
            .send()
            .await
            .expect("the unified login answers");
        assert_eq!(back.status(), StatusCode::FOUND);
        let callback = location(&back);
        assert!(
            callback.starts_with(&format!("{}/sso/callback?code=", self.issuer)),
            "{callback}"
        );
        assert_eq!(
            param(&callback, "tenant").as_deref(),
            Some(self.tenant.as_str())
        );
        let started = Instant::now();
        let answer = http
            .get(&callback)
            .header(header::COOKIE, &login_cookie)
            .send()
            .await
            .expect("the callback answers");
        let callback_step = started.elapsed();
        let session = cookie(&answer, "kg_sso").filter(|c| c.len() > "kg_sso=".len());
        SignIn {
            answer,
            session,
            callback_step,
        }
    }
}

/// What a sign-in ended with.
pub struct SignIn {
    /// The host's answer to KooGallery's callback.
    pub answer: reqwest::Response,
    /// `kg_sso=…`, when a session was set.
    pub session: Option<String>,
    /// KooGallery's callback to the login address, answered (code exchange, userinfo, checks,
    /// session): what the buyer waits for after the unified login.
    pub callback_step: Duration,
}

pub fn cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
}

pub fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no Location in {resp:?}"))
        .to_owned()
}

pub fn param(url: &str, name: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A PKCE verifier and its S256 challenge.
pub fn verifier_and_challenge() -> (String, String) {
    let verifier = format!("v-{}", koogallery::sso::Opaque::random().expose());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// The claims of a JWT (not verified: the provider's tests and the browser test verify).
pub fn claims(jwt: &str) -> serde_json::Value {
    let payload = jwt.split('.').nth(1).unwrap_or_default();
    URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}
