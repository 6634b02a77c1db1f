//! Store outages on the local host, over HTTP: the redb file's disk fills up mid-traffic.
//!
//! The disk is a fault-injecting layer under redb (`koogallery_embedded::testing::LimitedDisk`):
//! every write fails with `ENOSPC` once its room is used up, as on a full filesystem, until space
//! is freed. (A real small tmpfs needs a mount namespace, which `make test` cannot count on.)

use std::time::Duration;

use koogallery::{
    ResultCode,
    instance::{Instance, InstanceState, InstanceStore, Outcome},
    metering::{UsageStore, api::UsageRecordIn},
};
use koogallery_e2e::{config, simulator, wait_for};
use koogallery_embedded::{EmbeddedStore, testing::LimitedDisk};
use koogallery_local::{LocalSettings, start_on};
use koogallery_sim::usage::UsageClient;
use serde_json::json;

const USAGE_KEY: &str = "e2e-usage-key";

fn new_instance(n: u32) -> serde_json::Value {
    json!({"activity":"newInstance","orderId":format!("CSFULL{n}"),
        "orderLineId":format!("CSFULL{n}-000001"),"businessId":format!("full-{n}")})
}

/// While the disk is full every callback answers a signed, retryable `000005` (the replay guard
/// takes no nonce it cannot persist; a write that fails is not half-made) and `POST /usage` a
/// retryable 503; nothing of the refused calls is stored; once space is freed, KooGallery's and
/// the app's retries complete everything on the same running host, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_a_signed_retryable_000005_and_everything_completes_after() {
    let dir = tempfile::tempdir().unwrap();
    let disk = LimitedDisk::new();
    let store = EmbeddedStore::open_on(dir.path().join("koogallery.redb"), &disk).unwrap();
    let settings = LocalSettings::on_loopback(dir.path());
    let mut cfg = config();
    cfg.secrets.usage = Some(koogallery::security::SecretKey::new(USAGE_KEY));
    let h = start_on(store, cfg, settings, None).await.unwrap();
    let sim = simulator(&h);
    sim.call(&new_instance(0)).await.unwrap();
    wait_for(&sim, "full-0", ResultCode::Success).await;
    // A pay-per-use instance of the app, created an hour ago.
    let created = chrono::Utc::now() - chrono::Duration::hours(1);
    let (mut metered, created_ev) =
        Instance::new_provisioning(&"CSUSE".into(), &"CSUSE-1".into(), "use-1", false, created);
    let Ok(Outcome::Changed(active_ev)) =
        metered.activate(koogallery::testing::sample_access("use-1"), created)
    else {
        panic!("activated")
    };
    h.backend
        .store
        .create_for_order_line(&metered, &[created_ev, active_ev])
        .await
        .unwrap();
    let usage = UsageClient::new(&format!("http://{}/usage", h.addr), USAGE_KEY).unwrap();
    let report = [UsageRecordIn {
        instance_id: "use-1".into(),
        quantity: "7".parse().unwrap(),
        occurred_at: chrono::Utc::now(),
        idempotency_key: "app-1".into(),
        package_instance_id: None,
    }];

    disk.fill_after(0);
    let mut refused = 0;
    for round in 0..3 {
        for n in 1..=5 {
            let a = sim.call(&new_instance(n)).await.unwrap();
            assert!(a.body_sign_valid, "signed: {:?}", a.reply);
            assert_eq!(
                a.reply.result_code,
                ResultCode::InternalError,
                "round {round}, order {n}"
            );
            refused += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Even a read: its nonce cannot be persisted.
    let q = sim
        .call(&json!({"activity":"queryInstance","instanceId":"full-0"}))
        .await
        .unwrap();
    assert!(q.body_sign_valid);
    assert_eq!(q.reply.result_code, ResultCode::InternalError);
    let refused_usage = usage.send(&report).await.unwrap();
    assert_eq!(refused_usage.status, 503, "{:?}", refused_usage.body);
    assert_eq!(refused_usage.body["retryable"], true);
    assert!(disk.refused_writes() > 0, "the disk was full");

    disk.free();
    // The file is reopened on the next call (at most every 200 ms); nothing of the refused calls
    // is in it. The bound is for a store that never reopens, far past a reopen on a slow disk.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while h.backend.store.get("full-0").await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the store reads again"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    for n in 1..=5 {
        assert!(
            h.backend
                .store
                .get(&format!("full-{n}"))
                .await
                .unwrap()
                .is_none(),
            "nothing of order {n} was stored"
        );
    }
    let depth = h.backend.queue.depth(chrono::Utc::now()).unwrap();
    assert_eq!((depth.ready, depth.in_flight, depth.dead), (0, 0, 0));
    // KooGallery retries each call (a new nonce each time) until it is taken.
    for n in 1..=5 {
        let mut answered = None;
        for _ in 0..200 {
            let a = sim.call(&new_instance(n)).await.unwrap();
            assert!(a.body_sign_valid);
            if a.reply.result_code != ResultCode::InternalError {
                answered = Some(a.reply.result_code);
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(
            matches!(answered, Some(ResultCode::Processing | ResultCode::Success)),
            "order {n} after recovery: {answered:?} ({refused} refused before)"
        );
    }
    for n in 0..=5 {
        wait_for(&sim, &format!("full-{n}"), ResultCode::Success).await;
        let inst = h
            .backend
            .store
            .get(&format!("full-{n}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(inst.state, InstanceState::Active);
        let kinds: Vec<&str> = h
            .backend
            .store
            .events(&inst.instance_id)
            .await
            .unwrap()
            .iter()
            .map(|e| e.kind.name())
            .filter(|k| *k == "provisioned")
            .collect();
        assert_eq!(kinds, ["provisioned"], "order {n} provisioned once");
    }
    let taken = usage.send_until_taken(&report, 50).await.unwrap();
    assert_eq!((taken.status, &taken.body["applied"]), (200, &json!(1)));
    let windows = h.backend.store.windows_of("use-1").await.unwrap();
    assert_eq!(windows.len(), 1);
    assert_eq!(
        (windows[0].total.to_string(), windows[0].reports),
        ("7".into(), 1)
    );
    h.shutdown().await;
}
