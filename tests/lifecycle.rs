//! The local host over real HTTP: the simulator plays KooGallery.

use std::{sync::Arc, time::Duration};

use koogallery::{
    ResultCode, protocol::v2_basic::InstanceInfo, security::verify_body_sign,
    testing::ScriptedProvisioner,
};
use koogallery_e2e::{KEY, config, host, simulator, sixteen_concurrent_duplicates, wait_for};
use koogallery_sim::{CallOptions, LifecycleOptions};
use serde_json::json;

/// The instance's history holds every step of a purchase's life, in KooGallery's terms.
async fn assert_history(h: &koogallery_local::RunningHost, instance_id: &str) {
    let events = koogallery::instance::InstanceStore::events(h.backend.store.as_ref(), instance_id)
        .await
        .unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
    for k in [
        "created",
        "provisioning_started",
        "provisioned",
        "refreshed",
        "frozen",
        "unfrozen",
        "upgraded",
        "released",
    ] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
}

fn lifecycle_options(order: &str, test_flag: bool) -> LifecycleOptions {
    LifecycleOptions {
        order_id: order.into(),
        test_flag,
        v1: false,
        poll_timeout: Duration::from_secs(20),
        poll_interval: Duration::from_millis(50),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_lifecycle_through_http() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path(), config(), None).await;
    let report = simulator(&h)
        .run_lifecycle(&lifecycle_options("CSE2E0001", false))
        .await
        .expect("lifecycle passes");
    println!("{report}");
    assert!(report.steps.iter().all(|s| s.ok));
    assert!(
        report.steps.len() >= 15,
        "every activity and probe was walked"
    );
    // The history tells the whole story.
    assert_history(&h, &report.instance_id).await;
    h.shutdown().await;
}

/// The simulator's V1 purchase (docs/protocol/callbacks.md §3.6, §11) through the GET interface:
/// a provisioner, so the ready newInstance and queryInstance answers carry encrypted credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_lifecycle_through_http() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(
        dir.path(),
        config(),
        Some(Arc::new(ScriptedProvisioner::default())),
    )
    .await;
    let opts = LifecycleOptions {
        v1: true,
        ..lifecycle_options("CSE2EV1LIFE01", false)
    };
    let report = simulator(&h)
        .run_lifecycle(&opts)
        .await
        .expect("V1 lifecycle passes");
    println!("{report}");
    assert!(report.steps.iter().all(|s| s.ok));
    let names: Vec<&str> = report.steps.iter().map(|s| s.name.as_str()).collect();
    for step in [
        "newInstance until ready",
        "queryInstance",
        "upgrade",
        "queryInstance (after release)",
        "stale token (timeStamp now - 20 min)",
        "unknown activity",
    ] {
        assert!(names.contains(&step), "{step} missing from {names:?}");
    }
    assert_history(&h, &report.instance_id).await;
    h.shutdown().await;
}

/// `lifecycle --v1 --test-flag`: every V1 call carries `testFlag=1`, the debug records answer
/// (docs/protocol/decisions.md §7) and nothing is provisioned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_debug_lifecycle_provisions_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let provisioner = Arc::new(ScriptedProvisioner::default());
    let h = host(dir.path(), config(), Some(provisioner.clone())).await;
    let opts = LifecycleOptions {
        v1: true,
        ..lifecycle_options("CSE2EV1DEBUG", true)
    };
    let report = simulator(&h)
        .run_lifecycle(&opts)
        .await
        .expect("V1 debug lifecycle passes");
    println!("{report}");
    assert!(report.steps.iter().all(|s| s.ok));
    assert_eq!(
        provisioner.provision_calls(),
        0,
        "testFlag=1 provisions nothing"
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_lifecycle_creates_nothing_outside_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let provisioner = Arc::new(ScriptedProvisioner::default());
    let h = host(dir.path(), config(), Some(provisioner.clone())).await;
    let report = simulator(&h)
        .run_lifecycle(&lifecycle_options("CSE2EDEBUG", true))
        .await
        .expect("debug lifecycle passes");
    assert!(report.steps.iter().all(|s| s.ok));
    // KooGallery's daily probes replay the same debug cases: the whole lifecycle passes again.
    let replay = simulator(&h)
        .run_lifecycle(&lifecycle_options("CSE2EDEBUG", true))
        .await
        .expect("a replayed debug lifecycle passes too");
    assert_eq!(
        replay.instance_id, report.instance_id,
        "the same debug instance, restarted"
    );
    assert_eq!(
        provisioner.provision_calls(),
        0,
        "testFlag=1 provisions nothing"
    );
    assert!(
        provisioner.notices.lock().unwrap().is_empty(),
        "testFlag=1 notifies no one"
    );
    let depth = h.backend.queue.depth(chrono::Utc::now()).unwrap();
    assert_eq!((depth.ready, depth.in_flight, depth.dead), (0, 0, 0));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_concurrent_duplicates_make_one_instance() {
    let dir = tempfile::tempdir().unwrap();
    let provisioner = Arc::new(ScriptedProvisioner::default());
    let h = host(dir.path(), config(), Some(provisioner.clone())).await;
    let sim = Arc::new(simulator(&h));
    let id = sixteen_concurrent_duplicates(sim.clone(), "CSCONC").await;
    wait_for(&sim, &id, ResultCode::Success).await;
    assert_eq!(provisioner.provision_calls(), 1, "provisioned exactly once");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let first = host(dir.path(), config(), None).await;
    let sim = simulator(&first);
    sim.call(&json!({"activity":"newInstance","orderId":"CSDUR","orderLineId":"CSDUR-000001","businessId":"dur-1"}))
        .await
        .unwrap();
    let before = wait_for(&sim, "dur-1", ResultCode::Success).await;
    let freeze = sim
        .call(&json!({"activity":"updateInstanceStatus","instanceId":"dur-1","status":"FREEZE"}))
        .await
        .unwrap();
    assert_eq!(freeze.reply.result_code, ResultCode::Success);
    first.shutdown().await;

    let second = host(dir.path(), config(), None).await;
    let sim = simulator(&second);
    let after = wait_for(&sim, "dur-1", ResultCode::Success).await;
    let (b, a): (Vec<InstanceInfo>, Vec<InstanceInfo>) =
        (before.field("info").unwrap(), after.field("info").unwrap());
    assert_eq!(a, b, "the same credentials after a restart");
    let dup = sim
        .call(&json!({"activity":"newInstance","orderId":"CSDUR","orderLineId":"CSDUR-000001","businessId":"dur-2"}))
        .await
        .unwrap();
    assert_eq!(
        dup.reply.field::<String>("instanceId").as_deref(),
        Some("dur-1")
    );
    let inst = koogallery::instance::InstanceStore::get(second.backend.store.as_ref(), "dur-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(inst.state, koogallery::instance::InstanceState::Frozen);
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_http_input_gets_a_signed_result_code() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.settings.edge.max_body_bytes = 1024;
    let h = host(dir.path(), cfg, None).await;
    let sim = simulator(&h);
    let client = reqwest::Client::new();

    // Oversize: rejected before anything is read into the store.
    let big = json!({"activity":"queryInstance","instanceId": "x".repeat(4096)});
    let a = sim.call(&big).await.unwrap();
    assert_eq!(
        (a.http_status, a.reply.result_code),
        (200, ResultCode::InvalidParameter)
    );
    assert!(a.body_sign_valid);

    // Unsigned garbage.
    let r = client
        .post(h.produce_url())
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let sign = r.headers()["body-sign"].to_str().unwrap().to_owned();
    let body = r.bytes().await.unwrap();
    assert!(verify_body_sign(KEY, &body, &sign));
    let reply: koogallery::protocol::Reply = serde_json::from_slice(&body).unwrap();
    assert_eq!(reply.result_code, ResultCode::AuthenticationFailed);

    // Replay, forged, stale.
    let q = json!({"activity":"queryInstance","instanceId":"nope"});
    let opts = CallOptions {
        nonce: Some("fixed-nonce-0001".into()),
        ..Default::default()
    };
    assert_eq!(
        sim.call_with(&q, opts.clone())
            .await
            .unwrap()
            .reply
            .result_code,
        ResultCode::InstanceNotFound
    );
    assert_eq!(
        sim.call_with(&q, opts).await.unwrap().reply.result_code,
        ResultCode::AuthenticationFailed
    );
    let forged = CallOptions {
        key: Some("not-the-key".into()),
        ..Default::default()
    };
    assert_eq!(
        sim.call_with(&q, forged).await.unwrap().reply.result_code,
        ResultCode::AuthenticationFailed
    );
    let stale = CallOptions {
        timestamp_ms: Some(chrono::Utc::now().timestamp_millis() - 600_000),
        ..Default::default()
    };
    assert_eq!(
        sim.call_with(&q, stale).await.unwrap().reply.result_code,
        ResultCode::InvalidParameter
    );

    // A Kit path without its x-sign headers is refused clearly; unknown paths are a JSON 404.
    let r = client
        .post(format!("{}/produceAPI/v2/tenantSync", h.produce_url()))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let reply: koogallery::protocol::Reply =
        serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(reply.result_code, ResultCode::InvalidParameter);
    assert!(reply.result_msg.contains("x-timestamp"), "{reply:?}");
    let r = client
        .get(format!("http://{}/nowhere", h.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    h.shutdown().await;
}

/// `koogallery-sim load` drives signed calls, each with its own nonce, and counts every
/// answer other than the expected code as unexpected (here, all of them under a wrong key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_mode_reports_throughput_latency_and_unexpected_answers() {
    use koogallery_sim::load::{LoadActivity, LoadOptions, run_load};
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path(), config(), None).await;
    let opts = LoadOptions {
        activity: LoadActivity::Mix,
        connections: 4,
        duration: Duration::from_secs(1),
        rate: None,
        instance_id: None,
    };
    let report = run_load(&h.produce_url(), KEY, &opts).await.unwrap();
    assert!(report.requests > 10, "{report}");
    assert_eq!(report.unexpected, 0, "{report}");
    assert!(
        report.by_code.get("000000").copied().unwrap_or(0) > 0,
        "{report}"
    );
    assert!(
        report.by_code.get("000004").copied().unwrap_or(0) > 0,
        "{report}"
    );
    assert!(report.requests_per_second() > 0.0);
    let forged = run_load(
        &h.produce_url(),
        "not-the-key",
        &LoadOptions {
            activity: LoadActivity::NewInstance,
            duration: Duration::from_millis(300),
            ..opts
        },
    )
    .await
    .unwrap();
    assert_eq!(forged.unexpected, forged.requests, "{forged}");
    assert!(forged.by_code.contains_key("000001"), "{forged}");
    h.shutdown().await;
}

/// A call the host serves no interface for (another method, a GET of a Kit path) still reaches
/// the edge, and KooGallery gets HTTP 200 with a signed `000002` naming what is not served, never
/// the router's bare 405 or 404; an unsigned V1 call gets a signed `000001`
/// (docs/protocol/decisions.md §3, §20).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_no_route_serves_get_a_signed_answer_not_a_bare_status() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path(), config(), None).await;
    let client = reqwest::Client::new();
    let base = h.produce_url();
    for (method, url) in [
        (reqwest::Method::PUT, base.clone()),
        (
            reqwest::Method::GET,
            format!("{base}/produceAPI/v2/tenantSync"),
        ),
    ] {
        let resp = client.request(method.clone(), &url).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{method} {url}");
        let sign = resp
            .headers()
            .get("Body-Sign")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("{method} {url}: no Body-Sign"));
        let body = resp.bytes().await.unwrap();
        let reply: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(reply["resultCode"], "000002", "{method} {url}: {reply}");
        // A Kit path is answered with the Kit key, every other with the basic key.
        let signed_by_either = koogallery::security::body_sign::verify_body_sign(KEY, &body, &sign)
            || koogallery::security::body_sign::verify_body_sign("e2e-kit-key", &body, &sign);
        assert!(
            signed_by_either,
            "{method} {url}: Body-Sign does not verify"
        );
    }
    for url in [
        format!("{base}?activity=newInstance&authToken=x&timeStamp=1"),
        format!("{base}/produceAPI/tenantSync"),
    ] {
        let method = if url.contains("produceAPI") {
            reqwest::Method::POST
        } else {
            reqwest::Method::GET
        };
        let resp = client.request(method, &url).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{url}");
        let sign = resp.headers()["Body-Sign"].to_str().unwrap().to_owned();
        let body = resp.bytes().await.unwrap();
        let reply: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(reply["resultCode"], "000001", "{url}: {reply}");
        assert!(koogallery::security::body_sign::verify_body_sign(
            KEY, &body, &sign
        ));
    }
    h.shutdown().await;
}

/// A load balancer's probes: `/healthz` live, `/readyz` ready once the worker runs (the store takes
/// a write, the reconciler has passed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_answers_health_and_readiness_probes() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path(), config(), None).await;
    let client = reqwest::Client::new();
    let base = format!("http://{}", h.addr);
    let live = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    let mut last = (0, serde_json::Value::Null);
    for _ in 0..100 {
        let r = client.get(format!("{base}/readyz")).send().await.unwrap();
        last = (r.status().as_u16(), r.json().await.unwrap());
        if last.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(last.0, 200, "{}", last.1);
    assert_eq!(last.1["checks"]["store"], "ok");
    h.shutdown().await;
}
