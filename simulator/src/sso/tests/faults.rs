//! Injected faults, lifetimes and the control API.

use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde_json::{Value, json};

use super::harness;
use crate::sso::{SsoFault, SsoSettings};

#[tokio::test]
async fn sso_each_fault_once() {
    let h = harness().await;
    h.sim.push_sso_fault(SsoFault::UsedCode);
    let (status, body) = h.exchange(&h.code().await).await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_grant"))
    );

    h.sim.push_sso_fault(SsoFault::ServerError);
    let (status, body) = h.exchange(&h.code().await).await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::INTERNAL_SERVER_ERROR, &json!("server_error"))
    );

    h.sim.push_sso_fault(SsoFault::NoRefreshToken);
    let (status, body) = h.exchange(&h.code().await).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.get("refresh_token").is_none(), "{body}");

    let (access, refresh) = h.tokens().await;
    h.sim.push_sso_fault(SsoFault::ExpiredRefresh);
    let (status, body) = h.refresh(&refresh).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error_description"], "Invalid refresh token");
    assert_eq!(h.refresh(&refresh).await.0, StatusCode::BAD_REQUEST);

    // Through the control API: a userinfo refused once, then answered.
    let answer = h
        .http
        .post(format!("{}/_sim/sso/faults", h.base))
        .json(&json!({"kind": "unauthorized"}))
        .send()
        .await
        .expect("fault");
    assert_eq!(answer.status(), StatusCode::NO_CONTENT);
    assert_eq!(h.userinfo(&access).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(h.userinfo(&access).await.0, StatusCode::OK);

    // A queued fault waits for a request it applies to; `clear` drops it.
    h.sim.push_sso_fault(SsoFault::ExpiredRefresh);
    assert_eq!(h.userinfo(&access).await.0, StatusCode::OK);
    let answer = h
        .http
        .post(format!("{}/_sim/sso/faults", h.base))
        .json(&json!({"kind": "clear"}))
        .send()
        .await
        .expect("clear");
    assert_eq!(answer.status(), StatusCode::NO_CONTENT);
    let (_, refresh) = h.tokens().await;
    assert_eq!(h.refresh(&refresh).await.0, StatusCode::OK);
    let unknown = h
        .http
        .post(format!("{}/_sim/sso/faults", h.base))
        .json(&json!({"kind": "nonsense"}))
        .send()
        .await
        .expect("unknown");
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);

    let details: Vec<String> = h.sim.sso_seen().into_iter().map(|s| s.detail).collect();
    for fault in [
        "UsedCode",
        "ServerError",
        "NoRefreshToken",
        "ExpiredRefresh",
        "Unauthorized",
    ] {
        assert!(
            details.iter().any(|d| d == &format!("fault {fault}")),
            "{fault}: {details:?}"
        );
    }
}

#[tokio::test]
async fn sso_tokens_past_their_lifetime_are_refused() {
    let h = harness().await;
    let answer = h
        .http
        .post(format!("{}/_sim/sso/settings", h.base))
        .json(&json!({"accessTokenSeconds": 1, "refreshTokenSeconds": 1}))
        .send()
        .await
        .expect("settings");
    assert_eq!(answer.status(), StatusCode::NO_CONTENT);
    let (access, refresh) = h.tokens().await;
    assert_eq!(h.userinfo(&access).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(h.userinfo(&access).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(h.refresh(&refresh).await.0, StatusCode::BAD_REQUEST);
    // A code past its lifetime too.
    h.sim.sso_settings(SsoSettings {
        code_seconds: Some(0),
        ..SsoSettings::default()
    });
    assert_eq!(h.exchange(&h.code().await).await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn sso_control_api_registers_apps_and_tenants() {
    let h = harness().await;
    let post = |path: &'static str, body: Value| {
        let request = h.http.post(format!("{}{path}", h.base)).json(&body);
        async move { request.send().await.expect("send").status() }
    };
    let app = json!({"appId": "app-http", "loginAddress": "https://vendor.example/login"});
    assert_eq!(post("/_sim/sso/apps", app).await, StatusCode::NO_CONTENT);
    let bad = json!({"appId": "app-http", "loginAddress": "ftp://x"});
    assert_eq!(post("/_sim/sso/apps", bad).await, StatusCode::BAD_REQUEST);
    let tenant = json!({"tenantId": "tenant-http", "name": "模拟租户", "appId": "app-http",
        "clientId": "c-http", "clientSecret": "s-http",
        "users": [{"userName": "admin@t", "name": "管理员", "orgCode": "D1", "role": "admin",
            "enable": "false", "organizationName": "总部"}]});
    assert_eq!(
        post("/_sim/sso/tenants", tenant).await,
        StatusCode::NO_CONTENT
    );
    // authSync's enable is the vendor's to check: a disabled user still logs in.
    let answer = h.login_at("app-http", "tenant-http", "admin@t").await;
    assert_eq!(answer.status(), StatusCode::FOUND);
    let location = Url::parse(answer.headers()["location"].to_str().expect("ascii")).expect("url");
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let (status, body) = h
        .token(&[
            ("client_id", "c-http"),
            ("client_secret", "s-http"),
            ("code", &code),
            ("grant_type", "authorization_code"),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, user) = h.userinfo(body["access_token"].as_str().expect("a")).await;
    assert_eq!(
        (
            &user["role"],
            &user["organizationName"],
            &user["projectName"]
        ),
        (&json!("admin"), &json!("总部"), &json!("模拟租户"))
    );
    assert_eq!(user["email"], Value::Null);
}
