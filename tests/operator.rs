//! The operator API end to end on the local host (docs/operations.md, "The operator console"):
//! a notice the vendor could not take before its deadline parks the instance's outbox and
//! dead-letters its job; the operator finds the instance by its order, reads what happened (its
//! history, its dead letter, what KooGallery sent), redrives it once the webhook is back, and the
//! vendor hears the notice. Calls go through `koogallery-admin`'s transport
//! (`operator_cli::call`), with the admin token of the data directory; the refusals without it.
//! And "I can't log in" on a 联营 product: the Kit syncs and a License activation through the
//! simulator, then the instance's page (the API's and the console's) shows the tenant, its users
//! and the code masked, and no secret.

use std::{sync::Arc, time::Duration};

use koogallery::ResultCode;
use koogallery_e2e::{Vendor, eventually, host, simulator};
use koogallery_local::{admin_cli::HostArgs, operator_cli::call};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_notice_is_found_by_its_order_read_and_redriven() {
    let vendor = Vendor::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = vendor.config();
    cfg.settings.worker.notice_deadline = Duration::from_millis(1500);
    let h = host(dir.path(), cfg, None).await;
    let sim = Arc::new(simulator(&h));
    let admin = HostArgs {
        url: Some(format!("http://{}", h.addr)),
        data_dir: Some(dir.path().to_owned()),
        ..HostArgs::default()
    };
    let api = |method: Method, path: String, body: Option<Value>| {
        let admin = admin.clone();
        async move {
            call(
                &admin,
                &koogallery::config::Env::empty(),
                method,
                &path,
                body,
            )
            .await
        }
    };

    sim.call(&json!({"activity":"newInstance","orderId":"CSOPS1","orderLineId":"CSOPS1-000001","businessId":"ops-1","customerName":"Zhang San"}))
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "provisioned", || {
        vendor.accepted("ops-1") == ["provision"]
    })
    .await;
    vendor.set(|s| s.down = true);
    let frozen = sim
        .call(&json!({"activity":"updateInstanceStatus","instanceId":"ops-1","status":"FREEZE"}))
        .await
        .unwrap();
    assert_eq!(frozen.reply.result_code, ResultCode::Success);
    eventually(Duration::from_secs(30), "the notice dead-lettered", || {
        !h.backend.queue.dead_letters().unwrap().is_empty()
    })
    .await;

    // 1. Which instance: by its order.
    let list = api(
        Method::GET,
        "/admin/api/instances?order=CSOPS1".into(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(list["v"], 1);
    let instances = list["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 1, "{list}");
    assert_eq!(instances[0]["instance_id"], "ops-1");
    assert_eq!(instances[0]["state"], "frozen");
    assert_eq!(instances[0]["notices_pending"], 1);
    assert_eq!(instances[0]["outbox_parked"], true);
    let frozen_ones = api(
        Method::GET,
        "/admin/api/instances?state=frozen".into(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(frozen_ones["instances"].as_array().unwrap().len(), 1);

    // 2. What happened: history, the dead letter, and what KooGallery sent (redacted).
    let page = api(Method::GET, "/admin/api/instances/ops-1".into(), None)
        .await
        .unwrap();
    let kinds: Vec<&str> = page["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"]["type"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"frozen"), "{kinds:?}");
    let dead = page["dead_letters"].as_array().unwrap();
    assert_eq!(dead.len(), 1, "{page}");
    let dead_id = dead[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(dead[0]["job"]["type"], "notify");
    let activities: Vec<String> = page["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["activity"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        activities.contains(&"newInstance".to_owned())
            && activities.contains(&"updateInstanceStatus".to_owned()),
        "{activities:?}"
    );
    // And what we sent the vendor: the provision event, answered, its password redacted.
    let provision = page["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["direction"] == "outbound" && x["activity"] == "provision")
        .unwrap_or_else(|| panic!("the provision call is not kept: {page}"));
    assert_eq!(provision["family"], "webhook");
    assert_eq!(provision["http_status"], 200);
    assert_eq!(provision["attempt"], 1);
    assert_eq!(provision["request"]["instanceId"], "ops-1");
    let text = page.to_string();
    assert!(!text.contains("Zhang San"), "the buyer's name is redacted");
    assert!(
        !text.contains("pw-ops-1"),
        "the instance's password is redacted"
    );

    // 3. Redrive, once the webhook is back: the vendor hears the notice.
    vendor.set(|s| s.down = false);
    let done = api(
        Method::POST,
        "/admin/api/dead-letters/redrive".into(),
        Some(json!({"instance": "ops-1"})),
    )
    .await
    .unwrap();
    assert_eq!(done["redriven"], json!([dead_id]));
    eventually(
        Duration::from_secs(30),
        "the frozen notice accepted",
        || vendor.accepted("ops-1") == ["provision", "frozen"],
    )
    .await;
    eventually(Duration::from_secs(10), "the outbox drained", || {
        h.backend.queue.dead_letters().unwrap().is_empty()
    })
    .await;
    let again = api(
        Method::POST,
        "/admin/api/dead-letters/redrive".into(),
        Some(json!({"id": dead_id})),
    )
    .await
    .unwrap();
    assert_eq!(again["redriven"], json!([]), "idempotent");
    assert_eq!(again["gone"], json!([dead_id]));

    // The redrive is kept with who asked.
    let log = api(
        Method::GET,
        "/admin/api/exchanges?instance=ops-1".into(),
        None,
    )
    .await
    .unwrap();
    let redrive = log["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["direction"] == "operator" && x["activity"] == "redrive")
        .unwrap_or_else(|| panic!("no redrive kept: {log}"))
        .clone();
    assert!(
        redrive["request"]["who"]
            .as_str()
            .unwrap()
            .contains("admin token"),
        "{redrive}"
    );
    assert_eq!(redrive["request"]["dead_letter"], dead_id);

    // A reconciler pass on demand; a discard without a reason is refused.
    let report = api(Method::POST, "/admin/api/reconcile".into(), None)
        .await
        .unwrap();
    assert_eq!(report["v"], 1);
    let refused = api(
        Method::POST,
        "/admin/api/dead-letters/discard".into(),
        Some(json!({"id": "1", "reason": " "})),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        refused.contains("400") && refused.contains("reason"),
        "{refused}"
    );
    let missing = api(Method::GET, "/admin/api/instances/nope".into(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(missing.contains("404"), "{missing}");

    // Without the token: 401; with another: 403; the same for the pages' actions without a
    // session (401, the sign-in page).
    let client = reqwest::Client::new();
    let base = format!("http://{}", h.addr);
    let none = client
        .get(format!("{base}/admin/api/instances"))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    let other = client
        .get(format!("{base}/admin/api/instances"))
        .bearer_auth("not-this-hosts-token")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 403);
    let page = client
        .get(format!("{base}/admin/instances"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 401);
    assert!(page.text().await.unwrap().contains("Admin token"));
    let post = client
        .post(format!("{base}/admin/dead-letters/redrive"))
        .form(&[("all", "true"), ("csrf", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 401);
    h.shutdown().await;
}

/// The reconciler's passes are kept, the host's scheduled ones and a forced one, and listed
/// newest first with who ran them (`koogallery-admin passes`, the dead-letter page's table).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconcilers_passes_are_listed_scheduled_and_forced() {
    let vendor = Vendor::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = vendor.config();
    cfg.settings.worker.reconcile_every = Duration::from_millis(200);
    let h = host(dir.path(), cfg, None).await;
    let admin = HostArgs {
        url: Some(format!("http://{}", h.addr)),
        data_dir: Some(dir.path().to_owned()),
        ..HostArgs::default()
    };
    let env = koogallery::config::Env::empty();
    let passes = || async {
        call(
            &admin,
            &env,
            Method::GET,
            "/admin/api/reconcile?limit=50",
            None,
        )
        .await
        .unwrap()
    };
    let mut listed = Value::Null;
    for _ in 0..100 {
        listed = passes().await;
        if listed["passes"].as_array().is_some_and(|p| !p.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(listed["v"], 1);
    assert_eq!(listed["passes"][0]["who"], "schedule", "{listed}");
    assert_eq!(listed["passes"][0]["stuck_provisioning"], json!([]));

    call(&admin, &env, Method::POST, "/admin/api/reconcile", None)
        .await
        .unwrap();
    // Scheduled passes go on every 200 ms: the forced one is among the newest.
    let mut forced = None;
    for _ in 0..100 {
        forced = passes().await["passes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["who"] != "schedule")
            .cloned();
        if forced.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let forced = forced.expect("the forced pass is listed");
    assert!(
        forced["who"].as_str().unwrap().contains("API"),
        "the forced pass, with who asked: {forced}"
    );
}

/// A joint purchase's instance as the operator reads it: KooGallery creates the instance, the Kit
/// syncs its tenant, app (with a client secret) and two users, the vendor's software activates the
/// order's License code; the instance page, through the API and in the console, shows the tenant,
/// its app's client, its users by login ID, and the code masked; never the client secret, the whole
/// code, nor the users' names, phones or e-mail addresses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joint_purchase_shows_its_tenant_users_and_license_code_masked() {
    use koogallery_sim::kit::{self, KitSimulator};
    const KIT_KEY: &str = "e2e-kit-key";
    const LICENSE_CLIENT_KEY: &str = "e2e-operator-license-key";
    const APP: &str = "app-ops-1";
    const CLIENT_SECRET: &str = "the-tenants-client-secret";

    let vendor = Vendor::start().await;
    let (openapi, mut cfg) =
        koogallery_e2e::with_openapi(vendor.config(), false, Duration::from_secs(5)).await;
    cfg.secrets.license_client = Some(koogallery::security::SecretKey::new(LICENSE_CLIENT_KEY));
    // A License 2.0 test code: the simulator knows it, and its order is `CSTEST` + the rest.
    let suffix = koogallery_sim::license_walk::new_test_code()["PLTEST".len()..].to_owned();
    let (code, order) = (format!("PLTEST{suffix}"), format!("CSTEST{suffix}"));
    openapi.place(koogallery_sim::openapi::SimOrder::yearly(
        &order,
        1,
        chrono::Utc::now(),
    ));
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path(), cfg, None).await;
    let sim = simulator(&h);
    let instance = "ops-kit-1";
    let created = sim
        .call(&json!({"activity":"newInstance","orderId": order,"orderLineId": format!("{order}-000001"),"businessId": instance}))
        .await
        .unwrap();
    assert!(created.body_sign_valid);

    // The Kit syncs: the tenant, its app and its users.
    let kit = KitSimulator::new(&h.produce_url(), KIT_KEY).unwrap();
    let pem = kit.public_key().await.unwrap();
    let tenant = format!("tenant-ops-{}", koogallery_e2e::unique());
    let users = kit::users(2);
    for (name, body) in [
        (
            "tenantSync",
            kit::tenant_sync(instance, &order, &tenant, "https://idaas.example.com", 1),
        ),
        (
            "applicationSync",
            kit::application_sync(instance, &tenant, APP, CLIENT_SECRET, &pem, 1).unwrap(),
        ),
        (
            "authSync",
            kit::auth_sync(instance, &tenant, APP, &users, 1),
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

    // The vendor's software activates the order's code.
    let base = format!("http://{}", h.addr);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let body = json!({"license": code, "clientId": "host-ops-1"}).to_string();
    let mut activate = http
        .post(format!("{base}/license/activate"))
        .header("content-type", "application/json");
    for (name, value) in
        koogallery::license::api::sign(LICENSE_CLIENT_KEY, body.as_bytes(), chrono::Utc::now())
    {
        activate = activate.header(name, value);
    }
    let activated = activate.body(body).send().await.unwrap();
    assert_eq!(
        activated.status(),
        200,
        "{}",
        activated.text().await.unwrap()
    );

    // The API's instance page.
    let admin = HostArgs {
        url: Some(base.clone()),
        data_dir: Some(dir.path().to_owned()),
        ..HostArgs::default()
    };
    let page = call(
        &admin,
        &koogallery::config::Env::empty(),
        Method::GET,
        &format!("/admin/api/instances/{instance}"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(page["v"], 1);
    let tenants = page["kit_tenants"].as_array().unwrap();
    assert_eq!(tenants.len(), 1, "{page}");
    assert_eq!(tenants[0]["tenant_id"], tenant.as_str());
    assert_eq!(tenants[0]["apps"][0]["app_id"], APP);
    let logins: Vec<&str> = tenants[0]["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user_name"].as_str().unwrap())
        .collect();
    assert_eq!(logins, ["user00000@tenant", "user00001@tenant"]);
    assert_eq!(tenants[0]["users"][0]["may_use_app"], true);
    let codes = page["license_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 1, "{page}");
    assert_eq!(codes[0]["code"], "PLTE…(18)");
    assert_eq!(codes[0]["status"], "ACTIVE");
    assert_eq!(codes[0]["activation"]["client_id"], "host-ops-1");
    assert_eq!(page["sso_sessions"], json!([]), "no one signed in");

    // The console's instance page, signed in with the admin token.
    let token = std::fs::read_to_string(dir.path().join("admin-token")).unwrap();
    let signed_in = http
        .post(format!("{base}/admin/login"))
        .form(&[("token", token.trim())])
        .send()
        .await
        .unwrap();
    let cookie = signed_in
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let html = http
        .get(format!("{base}/admin/instances/{instance}"))
        .header(reqwest::header::COOKIE, cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for shown in [
        tenant.as_str(),
        "user00000@tenant",
        "may sign in",
        "PLTE…(18)",
        "host-ops-1",
        "No live SSO session",
    ] {
        assert!(html.contains(shown), "{shown} is not on the page: {html}");
    }

    let api_text = page.to_string();
    let mut never = vec![code.clone(), CLIENT_SECRET.to_owned()];
    for u in &users {
        for field in ["name", "mobile", "email"] {
            never.push(u[field].as_str().unwrap().to_owned());
        }
    }
    for secret in &never {
        assert!(
            !api_text.contains(secret.as_str()),
            "the API shows {secret}"
        );
        assert!(!html.contains(secret.as_str()), "the page shows {secret}");
    }
    h.shutdown().await;
}
