//! The worker under real traffic, over real HTTP: the local host, the KooGallery
//! simulator, and a scripted vendor webhook inside the test (an outage longer than a minute, a
//! release during it, duplicate deliveries, a notice that fails, SIGKILL mid-provisioning).

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use koogallery::{
    ResultCode,
    jobs::consume::{QueueMessage, Receive, Settle},
    jobs::{Job, JobQueue, QueueError},
    testing::{Scripted, ScriptedProvisioner},
};
use koogallery_e2e::{
    ChildHost, Vendor, config, eventually, host, simulator, wait_for, with_openapi,
};
use serde_json::json;

async fn query(sim: &koogallery_sim::Simulator, id: &str) -> ResultCode {
    sim.call(&json!({"activity":"queryInstance","instanceId":id}))
        .await
        .expect("queryInstance answered")
        .reply
        .result_code
}

/// `make run`'s process on `dir`, pointed at `vendor`, with short claims and backoffs and the
/// reconciler every second (its grace short) so crash tests take seconds. It listens on a port of
/// its own, which it reports.
async fn spawn_host(vendor: &Vendor, dir: &std::path::Path) -> ChildHost {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_e2e-host"));
    command
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
        .env("KOOGALLERY_RECONCILE_GRACE_SECS", "1");
    ChildHost::start(command).await
}

/// The simulator pointed at a child host.
fn simulator_for(child: &ChildHost) -> koogallery_sim::Simulator {
    koogallery_sim::Simulator::new(
        &format!("http://{}/produce", child.addr),
        koogallery_e2e::KEY,
    )
    .expect("simulator")
}

/// Waits until the host's queue holds no job, ready or in flight (leased, or put back for a
/// retry): every delivery has been settled, so nothing more is on its way to the vendor unless a
/// new job is queued.
async fn all_jobs_settled(h: &koogallery_local::RunningHost) {
    eventually(Duration::from_secs(30), "every job settled", || {
        let depth = h.backend.queue.depth(chrono::Utc::now()).unwrap();
        (depth.ready, depth.in_flight) == (0, 0)
    })
    .await;
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
            &koogallery::exchange::ExchangeRecorder::off(),
        )
        .unwrap(),
        provision_worker::marketplace(
            &cfg.settings.marketplace,
            None,
            clock.clone(),
            &koogallery::exchange::ExchangeRecorder::off(),
        )
        .unwrap(),
        clock,
        &cfg.settings,
        Arc::new(koogallery::metrics::NoMetrics),
        Arc::new(koogallery::security::at_rest::LocalKeySealer::random()),
        h.backend.store.clone(),
    )
}

/// The second worker's queue, counting how it settled each delivery: acked, put back for later
/// (with the delay asked for), or dead-lettered.
struct Counting {
    queue: koogallery_embedded::EmbeddedConsumer,
    acked: AtomicUsize,
    put_back: Mutex<Vec<Duration>>,
    dead_lettered: AtomicUsize,
}

impl Counting {
    fn new(queue: koogallery_embedded::EmbeddedConsumer) -> Self {
        Self {
            queue,
            acked: AtomicUsize::new(0),
            put_back: Mutex::new(Vec::new()),
            dead_lettered: AtomicUsize::new(0),
        }
    }

    fn put_back(&self) -> Vec<Duration> {
        self.put_back.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl Settle for Counting {
    async fn ack(&self, m: &QueueMessage) -> Result<(), QueueError> {
        self.acked.fetch_add(1, Ordering::SeqCst);
        self.queue.ack(m).await
    }

    async fn retry_after(&self, m: &QueueMessage, delay: Duration) -> Result<(), QueueError> {
        let done = self.queue.retry_after(m, delay).await;
        self.put_back.lock().unwrap().push(delay);
        done
    }

    async fn dead_letter(&self, m: &QueueMessage, reason: &str) -> Result<(), QueueError> {
        self.dead_lettered.fetch_add(1, Ordering::SeqCst);
        self.queue.dead_letter(m, reason).await
    }
}

#[async_trait::async_trait]
impl Receive for Counting {
    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<QueueMessage>, QueueError> {
        self.queue.receive(max, visibility).await
    }
}

fn new_instance(order: &str, business_id: &str) -> serde_json::Value {
    json!({"activity":"newInstance","orderId":order,"orderLineId":format!("{order}-000001"),"businessId":business_id})
}

/// A one-minute retry budget would refund good orders, and a release during an outage must still
/// be sent: the vendor's webhook is down for more than a minute. The order waits,
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
    // Every delivery settled: anything else for rel-1 would have had to come from one of them.
    all_jobs_settled(&h).await;
    assert_eq!(
        vendor.accepted("rel-1"),
        ["released"],
        "never provisioned after its release, nothing after released"
    );
    h.shutdown().await;
}

/// Duplicate deliveries of one provisioning job, taken by a second worker (as a second
/// Lambda invocation would) while the vendor is slow to answer, make one provision call; the
/// duplicates wait for the claim instead of spending their attempts and failing the good order
/// under the claim holder.
///
/// The vendor holds the first provision call until the second worker has settled all five
/// duplicates, so they certainly meet the claim; the webhook timeout (60 s, the claim 600 s to
/// cover such calls) is far beyond that hold. Each duplicate must have been put back until the
/// claim ends (minutes, not a retry's backoff of at most 200 ms), none acked or dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_deliveries_make_one_provision_call_and_never_fail_the_order() {
    let vendor = Vendor::start().await;
    vendor.set(|s| s.hold_provisions = true);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = vendor.config();
    cfg.settings.provisioner = koogallery::config::ProvisionerSettings::Webhook {
        url: vendor.url.clone(),
        timeout: Duration::from_secs(60),
        event_version: 2,
    };
    // Longer than a delivery of 60 s calls can take (2 x (3 tries x 60 s + pauses) + 5 s), as
    // start-up requires of the settings.
    cfg.settings.worker.claim_duration = Duration::from_secs(600);
    let h = host(dir.path(), cfg.clone(), None).await;
    let sim = simulator(&h);
    let a = sim.call(&new_instance("CSDUP", "dup-1")).await.unwrap();
    assert_eq!(a.reply.result_code, ResultCode::Processing);
    eventually(Duration::from_secs(10), "the first call in flight", || {
        vendor.arrived.load(Ordering::SeqCst) >= 1
    })
    .await;
    // A second worker on the same queue and store: another concurrent invocation. Started now,
    // it takes every duplicate: the host's own worker waits for the held call before it receives
    // again.
    let clock: Arc<dyn koogallery::clock::Clock> = Arc::new(koogallery::clock::SystemClock);
    let second = second_worker(&h, &cfg, clock.clone());
    let consumer = Arc::new(Counting::new(koogallery_embedded::EmbeddedConsumer::new(
        h.backend.queue.clone(),
        clock,
    )));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let poller = {
        let consumer = consumer.clone();
        tokio::spawn(async move {
            provision_worker::consume::poll(&second, consumer.as_ref(), stopped).await;
        })
    };
    for _ in 0..5 {
        h.backend
            .queue
            .enqueue(&Job::Provision {
                instance_id: "dup-1".into(),
            })
            .await
            .unwrap();
    }
    eventually(
        Duration::from_secs(30),
        "the second worker settles the five duplicates",
        || consumer.put_back().len() >= 5,
    )
    .await;
    let claim = cfg.settings.worker.claim_duration;
    for delay in consumer.put_back() {
        assert!(
            delay >= claim / 2,
            "a duplicate waits for the claim ({claim:?}), not a retry's backoff: {delay:?}"
        );
    }
    assert_eq!(consumer.acked.load(Ordering::SeqCst), 0);
    assert_eq!(
        consumer.dead_lettered.load(Ordering::SeqCst),
        0,
        "never failed"
    );
    assert_eq!(query(&sim, "dup-1").await, ResultCode::Processing);
    assert_eq!(
        vendor.arrived.load(Ordering::SeqCst),
        1,
        "the duplicates called nobody"
    );

    vendor.set(|s| s.hold_provisions = false);
    eventually(Duration::from_secs(20), "provisioned", || {
        vendor.accepted("dup-1") == ["provision"]
    })
    .await;
    let code = query_until_ready(&sim, "dup-1", Duration::from_secs(10)).await;
    assert_eq!(code, ResultCode::Success, "never failed");
    // The first delivery is acked; the five duplicates stay put back until the claim would end.
    eventually(
        Duration::from_secs(10),
        "the first delivery settled",
        || {
            let depth = h.backend.queue.depth(chrono::Utc::now()).unwrap();
            (depth.ready, depth.in_flight, depth.dead) == (0, 5, 0)
        },
    )
    .await;
    assert_eq!(consumer.put_back().len(), 5, "each duplicate put back once");
    assert_eq!(
        vendor.received_for("dup-1").len(),
        1,
        "one call to the vendor for six deliveries"
    );
    assert_eq!(vendor.arrived.load(Ordering::SeqCst), 1);
    let _ = stop.send(true);
    poller.await.unwrap();
    h.shutdown().await;
}

/// Freeze, unfreeze and release in quick succession while the vendor fails the first
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
    // Every delivery settled: a notice sent twice or out of turn would have come from one.
    all_jobs_settled(&h).await;
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

/// A crash mid-provisioning: the host is killed (SIGKILL) while the vendor is
/// still answering the provision call. Restarted on the same data, it provisions the instance
/// once the dead delivery's claim expires, with the same event ID (the vendor's idempotency key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_provisioning_then_restart_provisions_the_order() {
    let vendor = Vendor::start().await;
    vendor.set(|s| s.provision_delay = Duration::from_secs(30));
    let dir = tempfile::tempdir().unwrap();
    let mut first = spawn_host(&vendor, dir.path()).await;
    let a = simulator_for(&first)
        .call(&new_instance("CSKILL", "kill-1"))
        .await
        .unwrap();
    assert_eq!(a.reply.result_code, ResultCode::Processing);
    eventually(
        Duration::from_secs(10),
        "the provision call in flight",
        || vendor.arrived.load(Ordering::SeqCst) >= 1,
    )
    .await;
    first.kill();
    vendor.set(|s| s.provision_delay = Duration::ZERO);

    // Restarted on the same data directory (and a port of its own).
    let mut second = spawn_host(&vendor, dir.path()).await;
    let sim = simulator_for(&second);
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
    second.kill();

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

/// A provisioning job lost outside the worker (here taken off the queue while the host
/// is down, as SQS's redrive policy or an expired message would) no longer leaves the order in
/// `000004` for ever: after a restart the reconciler finds the instance and queues it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_job_is_found_by_the_reconciler_and_the_order_provisioned() {
    let vendor = Vendor::start().await;
    vendor.set(|s| s.down = true);
    let dir = tempfile::tempdir().unwrap();
    let mut first = spawn_host(&vendor, dir.path()).await;
    let a = simulator_for(&first)
        .call(&new_instance("CSLOST", "lost-1"))
        .await
        .unwrap();
    assert_eq!(a.reply.result_code, ResultCode::Processing);
    eventually(Duration::from_secs(10), "a provision attempt", || {
        !vendor.received_for("lost-1").is_empty()
    })
    .await;
    first.kill();

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
    let mut second = spawn_host(&vendor, dir.path()).await;
    let sim = simulator_for(&second);
    let code = query_until_ready(&sim, "lost-1", Duration::from_secs(45)).await;
    second.kill();
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
            .all()
            .into_iter()
            .filter(|r| r.event == "order" && r.status == 200)
            .map(|r| r.body)
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
    // Each repeat queued its work (if any was still owed) before answering: once every job is
    // settled, nothing more is on its way to the vendor.
    all_jobs_settled(&h).await;
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
    // A notice is recorded and its job queued before the answer: neither happened.
    use koogallery::order::notice::OrderNoticeStore;
    assert!(
        h.backend
            .store
            .notice(&"CSDEBUG01".into(), &"CSDEBUG01-000001".into())
            .await
            .unwrap()
            .is_none(),
        "a debug orderNotify records nothing"
    );
    let depth = h.backend.queue.depth(chrono::Utc::now()).unwrap();
    assert_eq!((depth.ready, depth.in_flight), (0, 0), "and queues nothing");
    assert_eq!(orders().len(), 1);
    h.shutdown().await;
}

/// Internal details never reach KooGallery's `resultMsg`: a webhook URL that carries the vendor's
/// token in its query, unreachable until the provisioning deadline, fails the order with a fixed
/// text; the cause (which names the URL) goes to the log only.
///
/// The webhook is a listener of the test's own that accepts each connection and closes it at once:
/// no other process can answer on its port, and it shows the worker did try the URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_order_answers_a_fixed_message_that_never_carries_the_webhook_url() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = koogallery_e2e::config();
    let webhook = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/hook?token=s3cret-token",
        webhook.local_addr().unwrap()
    );
    let tries = Arc::new(AtomicUsize::new(0));
    let counted = tries.clone();
    tokio::spawn(async move {
        while let Ok((connection, _)) = webhook.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(connection);
        }
    });
    cfg.settings.provisioner = koogallery::config::ProvisionerSettings::Webhook {
        url,
        timeout: Duration::from_secs(1),
        event_version: 2,
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
    assert!(tries.load(Ordering::SeqCst) > 0, "the webhook was tried");
    h.shutdown().await;
}

/// A provisioner that keeps failing is retried until the provisioning deadline; then the order
/// fails with a fixed message and the job waits in the dead-letter table, called no more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_failures_retry_until_the_deadline_then_dead_letter_and_the_order_fails() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.settings.worker.provisioning_deadline = Duration::from_millis(1500);
    let provisioner = Arc::new(ScriptedProvisioner::new(vec![Scripted::Transient; 1000]));
    let h = host(dir.path(), cfg, Some(provisioner.clone())).await;
    let sim = simulator(&h);
    let a = sim
        .call(&json!({"activity":"newInstance","orderId":"CSFAIL","orderLineId":"CSFAIL-000001","businessId":"fail-1"}))
        .await
        .unwrap();
    assert_eq!(a.reply.result_code, ResultCode::Processing);
    let reply = wait_for(&sim, "fail-1", ResultCode::InternalError).await;
    // A fixed text: the cause (here the provisioner's transient error) is in the log only.
    assert_eq!(
        reply.result_msg,
        provision_worker::PROVISIONING_DEADLINE_PASSED
    );
    let calls = provisioner.provision_calls();
    assert!(calls >= 3, "retried until the deadline: {calls} calls");
    // The job is not lost: it waits in the dead-letter table with its reason. Dead-lettering is
    // the last thing its last delivery does, and then no delivery is left that could call the
    // provisioner again.
    eventually(Duration::from_secs(30), "the job dead-lettered", || {
        !h.backend.queue.dead_letters().unwrap().is_empty()
    })
    .await;
    let dead = h.backend.queue.dead_letters().unwrap();
    assert_eq!(dead.len(), 1);
    let depth = h.backend.queue.depth(chrono::Utc::now()).unwrap();
    assert_eq!((depth.ready, depth.in_flight), (0, 0), "no delivery left");
    assert_eq!(
        provisioner.provision_calls(),
        calls,
        "nothing after the order failed"
    );
    assert_eq!(dead[0].attempts as usize, calls);
    h.shutdown().await;
}
