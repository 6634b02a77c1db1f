//! The SSO flow against an in-process `serve-openapi`, over HTTP with redirects not followed, as
//! the vendor's service and a browser meet it.

use std::collections::HashMap;

use reqwest::{Client, StatusCode, Url};
use serde_json::{Value, json};

mod faults;

use super::{KIT_TENANT_NAME, SsoKind, SsoTenantRegistration};
use crate::openapi::OpenApiSim;

const APP: &str = "app-0001";
const TENANT: &str = "tenant-sso-1";
const SECRET: &str = "sim-client-secret";
const CLIENT: &str = "client-app-0001";
const LANDING: &str = "http://vendor.example/sso/callback";

struct Harness {
    sim: OpenApiSim,
    http: Client,
    base: String,
}

async fn harness() -> Harness {
    let any = "127.0.0.1:0".parse().expect("address");
    let sim = OpenApiSim::start(HashMap::new(), any, any)
        .await
        .expect("listen");
    sim.register_sso_app(APP, LANDING).expect("app");
    sim.register_sso_tenant(SsoTenantRegistration::kit(TENANT, APP, SECRET, 3))
        .expect("tenant");
    let http = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let base = sim.primary_url();
    Harness { sim, http, base }
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

impl Harness {
    async fn post_form(&self, path: &str, pairs: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(pairs))
            .send()
            .await
            .expect("send")
    }

    /// Logs `user` in at `tenant` for `app`: the redirect's location.
    async fn login_at(&self, app: &str, tenant: &str, user: &str) -> reqwest::Response {
        self.post_form(
            "/unified-login/login",
            &[("appId", app), ("tenant", tenant), ("userName", user)],
        )
        .await
    }

    /// A fresh code for `user00001@tenant`.
    async fn code(&self) -> String {
        let answer = self.login_at(APP, TENANT, "user00001@tenant").await;
        assert_eq!(answer.status(), StatusCode::FOUND);
        let location =
            Url::parse(answer.headers()["location"].to_str().expect("ascii")).expect("location");
        let query: HashMap<_, _> = location.query_pairs().into_owned().collect();
        query["code"].clone()
    }

    async fn token(&self, pairs: &[(&str, &str)]) -> (StatusCode, Value) {
        let answer = self.post_form("/api/v1/oauth2/token", pairs).await;
        let status = answer.status();
        (status, answer.json().await.expect("json"))
    }

    async fn exchange(&self, code: &str) -> (StatusCode, Value) {
        self.token(&[
            ("client_id", CLIENT),
            ("client_secret", SECRET),
            ("code", code),
            ("grant_type", "authorization_code"),
            ("redirect_uri", LANDING),
        ])
        .await
    }

    async fn refresh(&self, refresh_token: &str) -> (StatusCode, Value) {
        self.token(&[
            ("client_id", CLIENT),
            ("client_secret", SECRET),
            ("refresh_token", refresh_token),
            ("grant_type", "refresh_token"),
        ])
        .await
    }

    async fn userinfo(&self, access_token: &str) -> (StatusCode, Value) {
        let answer = self
            .http
            .get(format!("{}/api/v1/oauth2/userinfo", self.base))
            .bearer_auth(access_token)
            .header("accept", "application/json")
            .send()
            .await
            .expect("send");
        let status = answer.status();
        (status, answer.json().await.expect("json"))
    }

    /// Code, then tokens: (access token, refresh token).
    async fn tokens(&self) -> (String, String) {
        let (status, body) = self.exchange(&self.code().await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (
            body["access_token"].as_str().expect("access").to_owned(),
            body["refresh_token"].as_str().expect("refresh").to_owned(),
        )
    }
}

#[tokio::test]
async fn sso_whole_flow_login_token_userinfo_refresh_logout() {
    let h = harness().await;
    let page = h
        .http
        .get(format!(
            "{}/unified-login/portal-login?ind=UNOP&appId={APP}",
            h.base
        ))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    for id in [r#"id="tenant""#, r#"id="userName""#, r#"id="login""#] {
        assert!(html.contains(id), "{id} missing from {html}");
    }
    assert!(html.contains(TENANT) && !html.contains("<script"));

    let answer = h.login_at(APP, TENANT, "user00001@tenant").await;
    assert_eq!(answer.status(), StatusCode::FOUND);
    let location = Url::parse(answer.headers()["location"].to_str().expect("ascii")).expect("url");
    assert!(location.as_str().starts_with(LANDING), "{location}");
    let query: HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(query.len(), 2, "only code and tenant: {query:?}");
    assert_eq!(query["tenant"], TENANT);
    let code = query["code"].clone();

    let (status, body) = h.exchange(&code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 7200);
    assert_eq!(body["scope"], "get_user_info");
    let access = body["access_token"].as_str().expect("access").to_owned();
    let refresh = body["refresh_token"].as_str().expect("refresh").to_owned();

    let (status, user) = h.userinfo(&access).await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["userName"], "user00001@tenant");
    assert_eq!(user["name"], crate::kit::users(2)[1]["name"]);
    assert_eq!(user["email"], "user00001@example.com");
    assert_eq!(user["mobile"], "13800000001");
    assert_eq!(user["role"], "user");
    assert_eq!(user["organizationCode"], "org00001");
    assert_eq!(user["organizationName"], "部门 org00001");
    assert_eq!(user["projectName"], KIT_TENANT_NAME);
    assert_eq!(user["tenant"], TENANT);
    assert!(user["id"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(user["id"], user["userId"]);

    // A code is single use.
    let (status, body) = h.exchange(&code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": "invalid_grant", "error_description": "Invalid authorization code"})
    );

    // A refresh rotates: the new refresh token works, the old one no longer does.
    let (status, body) = h.refresh(&refresh).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rotated = body["refresh_token"].as_str().expect("rotated").to_owned();
    assert_ne!(rotated, refresh);
    let (status, user) = h.userinfo(body["access_token"].as_str().expect("a")).await;
    assert_eq!(
        (status, &user["userName"]),
        (StatusCode::OK, &json!("user00001@tenant"))
    );
    let (status, body) = h.refresh(&refresh).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error_description"], "Invalid refresh token");
    assert_eq!(h.refresh(&rotated).await.0, StatusCode::OK);

    let back = "https://vendor.example/signed-out?x=1";
    let encoded: String = form_urlencoded::byte_serialize(back.as_bytes()).collect();
    let answer = h
        .http
        .get(format!("{}/api/v1/logout?redirect_url={encoded}", h.base))
        .send()
        .await
        .expect("logout");
    assert_eq!(answer.status(), StatusCode::FOUND);
    assert_eq!(answer.headers()["location"], back);
    let answer = h
        .http
        .get(format!("{}/api/v1/logout", h.base))
        .send()
        .await
        .expect("logout");
    assert_eq!(answer.status(), StatusCode::FOUND);
    assert_eq!(
        answer.headers()["location"],
        "/unified-login/portal-login?ind=UNOP&appId=app-0001"
    );

    let kinds: Vec<SsoKind> = h.sim.sso_seen().iter().map(|s| s.kind).collect();
    use SsoKind::*;
    assert_eq!(
        kinds,
        [
            Login, Token, Userinfo, Token, Refresh, Userinfo, Refresh, Refresh, Logout, Logout
        ]
    );
    let seen: Vec<Value> = h
        .http
        .get(format!("{}/_sim/sso/seen", h.sim.fallback_url()))
        .send()
        .await
        .expect("seen")
        .json()
        .await
        .expect("json");
    assert_eq!(seen[3]["outcome"], "invalid_grant");
    assert_eq!(seen[3]["tenant"], Value::Null);
    assert_eq!(seen[1]["tenant"], TENANT);
    let log = serde_json::to_string(&seen).expect("log");
    assert!(!log.contains(&code) && !log.contains(&refresh) && !log.contains(SECRET));
}

#[tokio::test]
async fn sso_refuses_bad_clients_other_clients_codes_and_wrong_content_type() {
    let h = harness().await;
    h.sim
        .register_sso_tenant(SsoTenantRegistration::kit(
            "tenant-sso-2",
            "app-0002",
            "other",
            1,
        ))
        .expect("second tenant");
    let code = h.code().await;
    for (id, secret) in [(CLIENT, "wrong"), ("client-nobody", SECRET)] {
        let (status, body) = h
            .token(&[
                ("client_id", id),
                ("client_secret", secret),
                ("code", &code),
                ("grant_type", "authorization_code"),
            ])
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"], "invalid_client");
    }
    let (status, body) = h
        .token(&[
            ("client_id", "client-app-0002"),
            ("client_secret", "other"),
            ("code", &code),
            ("grant_type", "authorization_code"),
        ])
        .await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_grant"))
    );
    let json_body = h
        .http
        .post(format!("{}/api/v1/oauth2/token", h.base))
        .json(
            &json!({"client_id": CLIENT, "client_secret": SECRET, "code": code,
            "grant_type": "authorization_code"}),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(json_body.status(), StatusCode::BAD_REQUEST);
    // None of the refusals spent the code: its own client still exchanges it.
    assert_eq!(h.exchange(&code).await.0, StatusCode::OK);
    let (status, body) = h.userinfo("not-a-token").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body["error_description"],
        "Full authentication is required to access this resource"
    );
}

#[tokio::test]
async fn sso_login_page_refuses_bad_entries_and_unknown_users() {
    let h = harness().await;
    for query in ["ind=XXX&appId=app-0001", "ind=UNOP&appId=nope", "ind=UNOP"] {
        let answer = h
            .http
            .get(format!("{}/unified-login/portal-login?{query}", h.base))
            .send()
            .await
            .expect("page");
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{query}");
    }
    for (tenant, user) in [
        (TENANT, "stranger@tenant"),
        ("tenant-nobody", "user00001@tenant"),
    ] {
        let answer = h.login_at(APP, tenant, user).await;
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
        let html = answer.text().await.expect("html");
        assert!(html.contains(r#"id="error""#) && html.contains(r#"id="userName""#));
    }
    // A login address with a query gets code and tenant appended with '&'.
    h.sim
        .register_sso_app(APP, "http://vendor.example/cb?site=cn")
        .expect("app");
    let answer = h.login_at(APP, TENANT, "user00002@tenant").await;
    let location = answer.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        location.starts_with("http://vendor.example/cb?site=cn&code="),
        "{location}"
    );
    assert!(h.sim.register_sso_app(APP, "not a url").is_err());
}
