//! The worker under real traffic, over real HTTP: the local host, the KooGallery
//! simulator, and a scripted vendor webhook inside the test (an outage longer than a minute, a
//! release during it, duplicate deliveries, a notice that fails, SIGKILL mid-provisioning).

use std::{sync::Arc, time::Duration};

use koogallery::{ResultCode, jobs::Job, jobs::JobQueue};
use koogallery_e2e::{Vendor, eventually, host, simulator, with_openapi};
use serde_json::json;

async fn query(sim: &koogallery_sim::Simulator, id: &str) -> ResultCode {
    sim.call(&json!({"activity":"queryInstance","instanceId":id}))
        .await
        .expect("queryInstance answered")
        .reply
        .result_code
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `make run`'s process on `dir`, pointed at `vendor`, with short claims and backoffs and the
/// reconciler every second (its grace short) so crash tests take seconds.
fn spawn_host(vendor: &Vendor, dir: &std::path::Path, port: u16) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_e2e-host"))
        .env("PORT", port.to_string())
        .env("KOOGALLERY_DATA_DIR", dir)
        .env("KOOGALLERY_ACCESS_KEY", koogallery_e2e::KEY)
        .env("KOOGALLERY_KIT_KEY", "e2e-kit-key")
        .env("KOOGALLERY_PROVISIONER", "webhook")
        .env("KOOGALLERY_WEBHOOK_URL", &vendor.url)
        .env("KOOGALLERY_WEBHOOK_SECRET", koogallery_e2e::WEBHOOK_SECRET)
        .env("KOOGALLERY_WEBHOOK_TIMEOUT_SECS", "1")
        .env("KOOGALLERY_WORKER_CLAIM_SECS", "15")
        .env("KOOGALLERY_WORKER_BACKOFF_SECS", "1")
        .env("KOOGALLERY_WORKER_BACKOFF_MAX_SECS", "2")
        .env("KOOGALLERY_RECONCILE_EVERY_SECS", "1")
        .env("KOOGALLERY_RECONCILE_GRACE_SECS", "1")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("host starts")
}

/// Polls queryInstance until it answers `000000` or `limit` passes; the last code it answered.
async fn query_until_ready(
    sim: &koogallery_sim::Simulator,
    id: &str,
    limit: Duration,
) -> ResultCode {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let code = query(sim, id).await;
        if code == ResultCode::Success || tokio::time::Instant::now() >= deadline {
            return code;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until a host answers at the simulator's URL.
async fn wait_ready(sim: &koogallery_sim::Simulator) {
    for _ in 0..200 {
        if sim
            .call(&json!({"activity":"queryInstance","instanceId":"probe"}))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("host never answered");
}

/// Another worker over the host's own store and queue.
fn second_worker(
    h: &koogallery_local::RunningHost,
    cfg: &koogallery::config::Config,
    clock: Arc<dyn koogallery::clock::Clock>,
) -> provision_worker::Worker {
    provision_worker::Worker::new(
        h.backend.store.clone(),
        provision_worker::provisioners::from_settings(
            &cfg.settings.provisioner,
            cfg.secrets.webhook.clone(),
        )
        .unwrap(),
        provision_worker::marketplace(&cfg.settings.marketplace, None, clock.clone()).unwrap(),
        clock,
        &cfg.settings,
        Arc::new(koogallery::metrics::NoMetrics),
        Arc::new(koogallery::security::at_rest::LocalKeySealer::random()),
        h.backend.store.clone(),
    )
}

fn new_instance(order: &str, business_id: &str) -> serde_json::Value {
    json!({"activity":"newInstance","orderId":order,"orderLineId":format!("{order}-000001"),"businessId":business_id})
}

/// Defect 1 (a one-minute retry budget refunds good orders) and defect 4 (a release during an
/// outage is never sent): the vendor's webhook is down for more than a minute. The order waits,
/// answering `000004`, and is provisioned when the vendor returns; the order released during the
/// outage is never provisioned, and the vendor hears `released` for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_longer_than_a_minute_delays_provisioning_and_a_release_during_it_is_sent() {
    let vendor = Vendor::start().await;
    vendor.set(|s| s.down = true);
    let mut cfg = vendor.config();
    cfg.settings.worker.backoff_max = Duration::from_secs(2);
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path(), cfg, None).await;
    let sim = simulator(&h);
    for (order, id) in [("CSOUT", "out-1"), ("CSREL", "rel-1")] {
        let a = sim.call(&new_instance(order, id)).await.unwrap();
        assert_eq!(a.reply.result_code, ResultCode::Processing);
    }
    eventually(Duration::from_secs(10), "provisioning attempted", || {
        vendor.received_for("rel-1").len() >= 3
    })
    .await;
    let release = sim
        .call(&json!({"activity":"releaseInstance","instanceId":"rel-1"}))
        .await
        .unwrap();
    assert_eq!(release.reply.result_code, ResultCode::Success);

    let started = tokio::time::Instant::now();
    while started.elapsed() < Duration::from_secs(65) {
        assert_eq!(
            query(&sim, "out-1").await,
            ResultCode::Processing,
            "still waiting for the vendor, never refunded"
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let attempts = vendor.received_for("out-1").len();
    assert!(
        attempts > 6,
        "kept retrying past the old budget: {attempts}"
    );
    vendor.set(|s| s.down = false);

    eventually(
        Duration::from_secs(30),
        "provisioned after the outage",
        || vendor.accepted("out-1") == ["provision"],
    )
    .await;
    let code = query_until_ready(&sim, "out-1", Duration::from_secs(10)).await;
    assert_eq!(code, ResultCode::Success);
    eventually(
        Duration::from_secs(30),
        "the release reaches the vendor",
        || vendor.accepted("rel-1") == ["released"],
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        vendor.accepted("rel-1"),
        ["released"],
        "never provisioned after its release, nothing after released"
    );
    h.shutdown().await;
}

/// Defect 2: duplicate deliveries of one provisioning job, taken by a second worker (as a second
/// Lambda invocation would) while the vendor is slow to answer, make one provision call; the
/// duplicates wait for the claim instead of spending their attempts and failing the good order
/// under the claim holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_deliveries_make_one_provision_call_and_never_fail_the_order() {
    let vendor = Vendor::start().await;
    // Long enough for a duplicate to spend six deliveries (the old attempt budget) meanwhile.
    vendor.set(|s| s.provision_delay = Duration::from_secs(8));
    let dir = tempfile::tempdir().unwrap();
    let cfg = vendor.config();
    let h = host(dir.path(), cfg.clone(), None).await;
    let sim = simulator(&h);
    // A second worker on the same queue and store: another concurrent invocation.
    let clock: Arc<dyn koogallery::clock::Clock> = Arc::new(koogallery::clock::SystemClock);
    let second = second_worker(&h, &cfg, clock.clone());
    let consumer = koogallery_embedded::EmbeddedConsumer::new(h.backend.queue.clone(), clock);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let poller = tokio::spawn(async move {
        provision_worker::consume::poll(&second, &consumer, stopped).await;
    });

    sim.call(&new_instance("CSDUP", "dup-1")).await.unwrap();
    eventually(Duration::from_secs(10), "the first call in flight", || {
        vendor.arrived.load(std::sync::atomic::Ordering::SeqCst) >= 1
    })
    .await;
    for _ in 0..5 {
        h.backend
            .queue
            .enqueue(&Job::Provision {
                instance_id: "dup-1".into(),
            })
            .await
            .unwrap();
    }
    eventually(Duration::from_secs(20), "provisioned", || {
        vendor.accepted("dup-1") == ["provision"]
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        query(&sim, "dup-1").await,
        ResultCode::Success,
        "never failed"
    );
    assert_eq!(
        vendor.received_for("dup-1").len(),
        1,
        "one call to the vendor for six deliveries"
    );
    let _ = stop.send(true);
    poller.await.unwrap();
    h.shutdown().await;
}

/// Defect 3: freeze, unfreeze and release in quick succession while the vendor fails the first
/// notice: the vendor accepts them strictly in order, each with the state it produced, and
/// nothing after `released`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_reach_the_vendor_in_order_when_one_fails() {
    let vendor = Vendor::start().await;
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path(), vendor.config(), None).await;
    let sim = Arc::new(simulator(&h));
    sim.call(&new_instance("CSORD", "ord-1")).await.unwrap();
    eventually(Duration::from_secs(10), "provisioned", || {
        vendor.accepted("ord-1") == ["provision"]
    })
    .await;
    // `frozen` fails for ten whole deliveries (three quick tries each), then it succeeds.
    vendor.set(|s| {
        s.fail_next.insert("frozen".into(), 30);
    });
    for body in [
        json!({"activity":"updateInstanceStatus","instanceId":"ord-1","status":"FREEZE"}),
        json!({"activity":"updateInstanceStatus","instanceId":"ord-1","status":"UNFREEZE"}),
        json!({"activity":"releaseInstance","instanceId":"ord-1"}),
    ] {
        assert_eq!(
            sim.call(&body).await.unwrap().reply.result_code,
            ResultCode::Success
        );
    }
    eventually(Duration::from_secs(30), "every notice accepted", || {
        vendor.accepted("ord-1").len() >= 4
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let accepted: Vec<(String, String)> = vendor
        .received_for("ord-1")
        .into_iter()
        .filter(|r| r.status == 200)
        .map(|r| (r.event, r.state))
        .collect();
    assert_eq!(
        accepted,
        [
            ("provision".to_owned(), "provisioning".to_owned()),
            ("frozen".to_owned(), "frozen".to_owned()),
            ("unfrozen".to_owned(), "active".to_owned()),
            ("released".to_owned(), "released".to_owned()),
        ]
    );
    let failed: Vec<String> = vendor
        .received_for("ord-1")
        .into_iter()
        .filter(|r| r.status != 200)
        .map(|r| r.event)
        .collect();
    assert_eq!(failed, ["frozen"; 30], "the failure was real and retried");
    h.shutdown().await;
}

/// Defect 5 and the crash half of defect 2: the host is killed (SIGKILL) while the vendor is
/// still answering the provision call. Restarted on the same data, it provisions the instance
/// once the dead delivery's claim expires, with the same event ID (the vendor's idempotency key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_provisioning_then_restart_provisions_the_order() {
    let vendor = Vendor::start().await;
    vendor.set(|s| s.provision_delay = Duration::from_secs(30));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let spawn = || spawn_host(&vendor, dir.path(), port);
    let sim = koogallery_sim::Simulator::new(
        &format!("http://127.0.0.1:{port}/produce"),
        koogallery_e2e::KEY,
    )
    .unwrap();
    let mut first = spawn();
    wait_ready(&sim).await;
    sim.call(&new_instance("CSKILL", "kill-1")).await.unwrap();
    eventually(
        Duration::from_secs(10),
        "the provision call in flight",
        || vendor.arrived.load(std::sync::atomic::Ordering::SeqCst) >= 1,
    )
    .await;
    first.kill().expect("SIGKILL");
    first.wait().unwrap();
    vendor.set(|s| s.provision_delay = Duration::ZERO);

    let mut second = spawn();
    wait_ready(&sim).await;
    assert_eq!(query(&sim, "kill-1").await, ResultCode::Processing);
    let code = query_until_ready(&sim, "kill-1", Duration::from_secs(60)).await;
    assert_eq!(code, ResultCode::Success, "provisioned after the restart");
    let answer = sim
        .call(&json!({"activity":"queryInstance","instanceId":"kill-1"}))
        .await
        .unwrap();
    let info: Vec<serde_json::Value> = answer.reply.field("info").unwrap();
    assert_eq!(
        info[0]["appInfo"]["password"], "pw-kill-1",
        "queryInstance still hands out the vendor's password"
    );
    second.kill().unwrap();
    second.wait().unwrap();

    let received = vendor.received_for("kill-1");
    let ids: std::collections::BTreeSet<&str> =
        received.iter().map(|r| r.event_id.as_str()).collect();
    assert_eq!(
        ids.len(),
        1,
        "every attempt carries the same eventId: {received:?}"
    );
    let store = koogallery_embedded::EmbeddedStore::open(dir.path().join("koogallery.redb"))
        .expect("the store survives SIGKILL");
    let events = koogallery::instance::InstanceStore::events(&store, "kill-1")
        .await
        .unwrap();
    let provisioned = events
        .iter()
        .filter(|e| e.kind.name() == "provisioned")
        .count();
    assert_eq!(provisioned, 1, "activated once");
    drop(store);
    // The store file never holds the password in plain text; the key that
    // seals it is a file of its own, readable by its owner only.
    let file = std::fs::read(dir.path().join("koogallery.redb")).unwrap();
    assert!(
        !file.windows(b"pw-kill-1".len()).any(|w| w == b"pw-kill-1"),
        "the password is stored sealed"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = std::fs::metadata(dir.path().join("credentials.key")).unwrap();
        assert_eq!(key.permissions().mode() & 0o777, 0o600);
    }
}

/// Defect 5: a provisioning job lost outside the worker (here taken off the queue while the host
/// is down, as SQS's redrive policy or an expired message would) no longer leaves the order in
/// `000004` for ever: after a restart the reconciler finds the instance and queues it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_job_is_found_by_the_reconciler_and_the_order_provisioned() {
    let vendor = Vendor::start().await;
    vendor.set(|s| s.down = true);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut first = spawn_host(&vendor, dir.path(), port);
    let sim = koogallery_sim::Simulator::new(
        &format!("http://127.0.0.1:{port}/produce"),
        koogallery_e2e::KEY,
    )
    .unwrap();
    wait_ready(&sim).await;
    sim.call(&new_instance("CSLOST", "lost-1")).await.unwrap();
    eventually(Duration::from_secs(10), "a provision attempt", || {
        !vendor.received_for("lost-1").is_empty()
    })
    .await;
    first.kill().expect("SIGKILL");
    first.wait().unwrap();

    // The job disappears from the queue; the record still says provisioning, job enqueued.
    {
        let store =
            koogallery_embedded::EmbeddedStore::open(dir.path().join("koogallery.redb")).unwrap();
        let queue = store.queue();
        let later = chrono::Utc::now() + chrono::Duration::days(1);
        let lost = queue
            .receive(later, Duration::from_secs(1))
            .unwrap()
            .expect("the job was queued");
        queue
            .dead_letter(lost.id, "lost for the test", later)
            .unwrap();
        assert!(
            queue
                .receive(later, Duration::from_secs(1))
                .unwrap()
                .is_none()
        );
    }
    vendor.set(|s| s.down = false);
    let mut second = spawn_host(&vendor, dir.path(), port);
    wait_ready(&sim).await;
    let code = query_until_ready(&sim, "lost-1", Duration::from_secs(45)).await;
    second.kill().unwrap();
    second.wait().unwrap();
    assert_eq!(
        code,
        ResultCode::Success,
        "the reconciler re-queued the lost job"
    );
    assert_eq!(vendor.accepted("lost-1"), ["provision"]);
}

/// The worker reads the real order through KooGallery's open API (here the simulator's,
/// with the primary host down so the client falls back): a yearly 50-seat purchase reaches the
/// vendor's webhook as yearly, 50 seats, with its expiry and SKU, not as an offline month.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vendor_provisions_from_the_order_the_marketplace_served() {
    let vendor = Vendor::start().await;
    let (openapi, cfg) = with_openapi(vendor.config(), true, Duration::from_secs(2)).await;
    let now = chrono::Utc::now();
    openapi.place(koogallery_sim::openapi::SimOrder::yearly(
        "CSYEAR50E2E",
        50,
        now,
    ));
    openapi.set_primary_down(true);
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path(), cfg, None).await;
    let sim = simulator(&h);
    sim.call(&new_instance("CSYEAR50E2E", "year-1"))
        .await
        .unwrap();
    eventually(Duration::from_secs(20), "provisioned", || {
        vendor.accepted("year-1") == ["provision"]
    })
    .await;
    let event = vendor.received_for("year-1").remove(0).body;
    let order = &event["order"];
    assert_eq!(order["periodType"], "year");
    assert_eq!(order["periodNumber"], 1);
    assert_eq!(order["quantity"], 50.0);
    assert_eq!(order["skuCode"], "sim-sku-pro");
    assert_eq!(order["chargingMode"], "PERIOD");
    assert_eq!(order["offline"], false);
    let expiry: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(event["expireTime"].clone()).unwrap();
    assert!((expiry - now).num_days() >= 364, "{expiry}");
    assert!(
        openapi
            .seen()
            .iter()
            .any(|r| r.host == "fallback" && r.authorized),
        "read through the fallback host"
    );
    assert_eq!(query(&sim, "year-1").await, ResultCode::Success);
    h.shutdown().await;
}

/// OrderNotify end to end. KooGallery says an order line was paid; the answer is
/// `000000` at once; the worker reads the order through the open API and the vendor hears one
/// `order` event with it, however many times KooGallery repeats the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_notify_reaches_the_vendor_once_with_the_order_read_from_the_marketplace() {
    use koogallery_sim::openapi::SimOrder;
    let vendor = Vendor::start().await;
    let (openapi, cfg) = with_openapi(vendor.config(), false, Duration::from_secs(2)).await;
    openapi.place(SimOrder {
        charging_mode: "ONE_TIME".into(),
        period_type: None,
        period_number: None,
        expire_time: None,
        ..SimOrder::yearly("CSPAID0001", 3, chrono::Utc::now())
    });
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path(), cfg, None).await;
    let sim = simulator(&h);
    let notify = json!({"activity":"orderNotify","orderId":"CSPAID0001","orderLineId":"CSPAID0001-000001","testFlag":"0"});
    let a = sim.call(&notify).await.unwrap();
    assert_eq!(a.reply.result_code, ResultCode::Success);
    assert!(a.body_sign_valid);
    let orders = || -> Vec<serde_json::Value> {
        vendor
            .received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.event == "order" && r.status == 200)
            .map(|r| r.body.clone())
            .collect()
    };
    eventually(
        Duration::from_secs(20),
        "the vendor hears of the order",
        || orders().len() == 1,
    )
    .await;
    // KooGallery's repeats (it retries until it sees 000000, and may send again).
    for _ in 0..2 {
        assert_eq!(
            sim.call(&notify).await.unwrap().reply.result_code,
            ResultCode::Success
        );
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let heard = orders();
    assert_eq!(heard.len(), 1, "told once");
    assert_eq!(heard[0]["eventId"], "order:CSPAID0001:CSPAID0001-000001");
    assert_eq!(heard[0]["state"], "paid");
    assert_eq!(heard[0]["order"]["chargingMode"], "ONE_TIME");
    assert_eq!(heard[0]["order"]["quantity"], 3.0);
    assert_eq!(heard[0]["order"]["offline"], false);
    // A debug orderNotify answers 000000 and tells nobody.
    let debug = json!({"activity":"orderNotify","orderId":"CSDEBUG01","orderLineId":"CSDEBUG01-000001","testFlag":"1"});
    assert_eq!(
        sim.call(&debug).await.unwrap().reply.result_code,
        ResultCode::Success
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(orders().len(), 1);
    h.shutdown().await;
}

/// Internal details never reach KooGallery's `resultMsg`: a webhook URL that carries the vendor's
/// token in its query, unreachable until the provisioning deadline, fails the order with a fixed
/// text; the cause (which names the URL) goes to the log only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_order_answers_a_fixed_message_that_never_carries_the_webhook_url() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = koogallery_e2e::config();
    let url = format!("http://127.0.0.1:{}/hook?token=s3cret-token", free_port());
    cfg.settings.provisioner = koogallery::config::ProvisionerSettings::Webhook {
        url,
        timeout: Duration::from_secs(1),
    };
    cfg.secrets.webhook = Some(koogallery::security::SecretKey::new("w"));
    // Set directly (start-up would refuse under 60 s) so the deadline passes within the test.
    cfg.settings.worker.provisioning_deadline = Duration::from_secs(1);
    let h = host(dir.path(), cfg, None).await;
    let sim = simulator(&h);
    let answer = sim
        .call(&new_instance("CSLEAK", "biz-leak"))
        .await
        .expect("newInstance answered");
    let id: String = answer.reply.field("instanceId").expect("instanceId");
    let mut last = None;
    for _ in 0..400 {
        let a = sim
            .call(&json!({"activity":"queryInstance","instanceId":id}))
            .await
            .expect("queryInstance answered");
        let text = String::from_utf8_lossy(&a.raw).into_owned();
        assert!(
            !text.contains("s3cret") && !text.contains("/hook"),
            "KooGallery's answer names the webhook: {text}"
        );
        if a.reply.result_code != ResultCode::Processing {
            last = Some(a);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let failed = last.expect("the order fails at its deadline");
    assert_eq!(failed.reply.result_code, ResultCode::InternalError);
    assert_eq!(
        failed.reply.result_msg,
        provision_worker::PROVISIONING_DEADLINE_PASSED
    );
    h.shutdown().await;
}
