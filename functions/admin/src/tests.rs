//! The routes in each authentication mode, in process: IAM mode answers the API and the pages
//! without a token or a cookie, names the caller's ARN with every action and refuses a request
//! that did not come through the function URL; token mode is the local host's, unchanged.

use std::sync::Arc;

use axum::{
    body::Body,
    http::{Request, StatusCode, header},
};
use http_body_util::BodyExt;
use koogallery::{
    exchange::{Direction, ExchangeFilter, ExchangeQuery},
    instance::{Instance, InstanceStore},
    jobs::Job,
    operator::Operator,
    order::{OrderId, OrderLineId},
    testing::{
        ManualClock, MemoryDeadLetters, MemoryDirectory, MemorySso, license::MemoryLicenses,
        operator::MemoryOperator,
    },
};

use super::*;

const ARN: &str = "arn:aws:iam::123456789012:user/alice";

struct Bed {
    router: Router,
    operator: Arc<Operator>,
    dead: Arc<MemoryDeadLetters>,
    directory: Arc<MemoryDirectory>,
    sso: Arc<MemorySso>,
    licenses: Arc<MemoryLicenses>,
}

async fn bed(auth: Auth) -> Bed {
    let now = chrono::Utc::now();
    let m = MemoryOperator::start(Arc::new(ManualClock::at(now)));
    let (i, ev) = Instance::new_provisioning(
        &OrderId::new("CS2603010800ABC"),
        &OrderLineId::new("CS2603010800ABC-000001"),
        "i-buyer-1",
        false,
        now,
    );
    m.store.create_for_order_line(&i, &[ev]).await.unwrap();
    m.dead.add(
        Job::Provision {
            instance_id: "i-buyer-1".into(),
        },
        "provisioning deadline passed",
        now,
    );
    let operator = Arc::new(m.operator);
    Bed {
        router: routes(Console {
            operator: operator.clone(),
            auth,
        }),
        operator,
        dead: m.dead,
        directory: m.directory,
        sso: m.sso,
        licenses: m.licenses,
    }
}

async fn call(
    router: &Router,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let response = tower_service::Service::call(&mut router.clone(), request)
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn as_caller(mut request: Request<Body>, arn: &str) -> Request<Body> {
    request.extensions_mut().insert(IamCaller(arn.to_owned()));
    request
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

async fn actions(operator: &Operator) -> Vec<koogallery::exchange::Exchange> {
    operator.recorder.flush().await;
    operator
        .exchanges(&ExchangeQuery::newest(ExchangeFilter::All, 10))
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.direction == Direction::Operator)
        .collect()
}

#[tokio::test]
async fn iam_mode_answers_the_caller_without_a_token_and_keeps_its_arn_with_each_action() {
    let b = bed(Auth::Iam).await;
    let (status, _, body) = call(&b.router, as_caller(get("/admin/api/instances"), ARN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("i-buyer-1"), "{body}");

    // The caller cannot name itself: the header the routes use is replaced, and the operator
    // header is not who asked.
    let redrive = Request::post("/admin/api/dead-letters/redrive")
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            "x-koogallery-iam-caller",
            "arn:aws:iam::999999999999:user/mallory",
        )
        .header(OPERATOR_HEADER, "mallory")
        .body(Body::from(r#"{"all": true}"#))
        .unwrap();
    let (status, _, body) = call(&b.router, as_caller(redrive, ARN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(b.dead.redriven.lock().unwrap().len(), 1);
    let kept = actions(&b.operator).await;
    assert_eq!(kept.len(), 1, "{kept:#?}");
    let who = kept[0].request["who"].as_str().unwrap();
    assert!(who.starts_with(ARN), "{who}");
    assert!(!who.contains("mallory"), "{who}");

    // Pages: no sign-in, no cookie, no sign-out; a form action takes no CSRF token.
    let (status, _, page) = call(&b.router, as_caller(get("/admin/instances"), ARN)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("i-buyer-1") && !page.contains("Sign out"),
        "{page}"
    );
    let (status, headers, _) = call(&b.router, as_caller(get("/admin/login"), ARN)).await;
    assert!(status.is_redirection());
    assert_eq!(headers[header::LOCATION], "/admin/instances");
    let id = b.dead.add(
        Job::Provision {
            instance_id: "i-buyer-1".into(),
        },
        "again",
        chrono::Utc::now(),
    );
    let redrive = Request::post("/admin/dead-letters/redrive")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!(
            "csrf=&id={id}&return=/admin/dead-letters"
        )))
        .unwrap();
    let (status, headers, _) = call(&b.router, as_caller(redrive, ARN)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(headers.get(header::SET_COOKIE).is_none());
    assert_eq!(b.dead.redriven.lock().unwrap().len(), 2);
    let kept = actions(&b.operator).await;
    assert_eq!(kept.len(), 2, "{kept:#?}");
    assert!(
        kept.iter()
            .any(|a| a.request["who"] == format!("{ARN} (IAM, console)")),
        "{kept:#?}"
    );
}

#[tokio::test]
async fn iam_mode_refuses_a_request_without_its_caller() {
    let b = bed(Auth::Iam).await;
    for uri in ["/admin/api/instances", "/admin/instances", "/admin/login"] {
        let (status, _, body) = call(&b.router, get(uri)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}: {body}");
    }
    // Not even with a caller header of its own.
    let forged = Request::get("/admin/api/instances")
        .header("x-koogallery-iam-caller", ARN)
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&b.router, forged).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn token_mode_is_the_local_hosts_whatever_the_caller_extension() {
    let token = AdminToken::read_str("the-token-of-this-host").unwrap();
    let b = bed(Auth::Token {
        token,
        https: false,
    })
    .await;
    // An IAM caller means nothing here.
    let (status, _, _) = call(&b.router, as_caller(get("/admin/api/instances"), ARN)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, page) = call(&b.router, as_caller(get("/admin/instances"), ARN)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(page.contains("Admin token"), "the sign-in form");
    let authorised = Request::get("/admin/api/instances")
        .header(header::AUTHORIZATION, "Bearer the-token-of-this-host")
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&b.router, authorised).await.0, StatusCode::OK);
    let redrive = Request::post("/admin/api/dead-letters/redrive")
        .header(header::AUTHORIZATION, "Bearer the-token-of-this-host")
        .header("x-koogallery-iam-caller", ARN)
        .header(OPERATOR_HEADER, "ops")
        .body(Body::from(r#"{"all": true}"#))
        .unwrap();
    assert_eq!(call(&b.router, redrive).await.0, StatusCode::OK);
    let kept = actions(&b.operator).await;
    assert_eq!(kept[0].request["who"], "ops (admin token, API)");
}

/// The instance page's 联营 and License sections: empty ones say so in words; filled ones show the
/// tenant's app client, its users by login ID with their status, the live session by `sid`, and
/// the code masked; never a secret, a token, the session key, the whole code or a personal field.
#[tokio::test]
async fn the_instance_page_shows_the_buyers_tenant_session_and_license_code_without_secrets() {
    use koogallery::{
        directory::{DirectoryChange, TenantDirectory, TenantKey},
        license::{License, LicenseCode, LicenseStore, Origin},
        sso::SessionStore,
        testing::directory::{sample_app, sample_department, sample_tenant, sample_user},
    };
    let b = bed(Auth::Iam).await;
    let (status, _, empty) =
        call(&b.router, as_caller(get("/admin/instances/i-buyer-1"), ARN)).await;
    assert_eq!(status, StatusCode::OK);
    for words in [
        "No Kit tenant",
        "No live SSO session",
        "No License code names this instance",
    ] {
        assert!(empty.contains(words), "{words}: {empty}");
    }

    let now = chrono::Utc::now();
    let key = TenantKey::new("i-buyer-1", "tenant-1");
    let mut revoked = sample_user("app-1", "lisi", now);
    revoked.revoked = true;
    for change in [
        DirectoryChange::PutTenant(sample_tenant("Acme 有限公司", now)),
        DirectoryChange::PutApp(sample_app("app-1", now)),
        DirectoryChange::PutUsers {
            app_id: "app-1".into(),
            users: vec![sample_user("app-1", "zhangsan", now), revoked],
        },
        DirectoryChange::ReplaceDepartments(vec![sample_department("10000", None)]),
    ] {
        b.directory.apply(&key, &change, now).await.unwrap();
    }
    let mut session = koogallery::testing::sso::sample_session(&key, "app-1", "zhangsan");
    session.auth_time = now;
    session.access_expires_at = now + chrono::Duration::hours(2);
    session.refresh_expires_at = now + chrono::Duration::days(30);
    b.sso.create_session(&session).await.unwrap();
    let code = "PLWHOLECODE0123456789";
    let mut license = License::new(
        LicenseCode::parse(code).unwrap(),
        Origin::Marketplace,
        false,
        now,
    );
    license.order_id = Some("CS2603010800ABC".into());
    license.version = 1;
    b.licenses.put(&license).await.unwrap();

    let (status, _, page) =
        call(&b.router, as_caller(get("/admin/instances/i-buyer-1"), ARN)).await;
    assert_eq!(status, StatusCode::OK);
    for shown in [
        "tenant-1",
        "client-app-1",
        "zhangsan",
        "may sign in",
        "lisi",
        "revoked (authSync)",
        session.sid.as_str(),
        "PLWH…(21)",
        "not activated",
    ] {
        assert!(page.contains(shown), "{shown} is not shown: {page}");
    }
    for hidden in [
        code,
        session.key.as_str(),
        "sealed",
        "Acme",
        "张三",
        "王伟",
        "13800000000",
    ] {
        assert!(!page.contains(hidden), "{hidden} is shown: {page}");
    }
    let (status, _, api) = call(
        &b.router,
        as_caller(get("/admin/api/instances/i-buyer-1"), ARN),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let api: serde_json::Value = serde_json::from_str(&api).unwrap();
    assert_eq!(api["v"], 1);
    assert_eq!(api["kit_tenants"][0]["users"][1]["user_name"], "zhangsan");
    assert_eq!(api["sso_sessions"][0]["sid"], session.sid.as_str());
    assert_eq!(api["license_codes"][0]["code"], "PLWH…(21)");
    assert!(!api.to_string().contains(code));
}
