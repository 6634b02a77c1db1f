//! The operator console in a real browser (docs/operations.md, "The operator console"): headless
//! Chromium driven by `playwright-core` (`tests/browser/console.mjs`) against the local host, with
//! an instance that has a customer, usage pushed to KooGallery's open API (the simulator's), calls
//! KooGallery made, and a dead letter. The script signs in, finds, opens, reads the timeline and the
//! usage chart, redrives, reads the exchange log, is refused a forged form, and signs out,
//! asserting what each page shows.
//!
//! Screenshots go to `CARGO_TARGET_TMPDIR/console-screenshots/`; with `UPDATE_SCREENSHOTS=1` the
//! instance page's is also copied to `docs/console-instance.png` (the README shows it).
//!
//! Needs `node`, Debian's `/usr/bin/chromium` and `tests/browser/node_modules`:
//! `scripts/browser.sh` installs them (`make test` runs it first). Without them the test fails.

use std::{path::Path, time::Duration};

use chrono::{DateTime, Utc};
use koogallery::metering::api::UsageRecordIn;
use koogallery::{
    instance::{CreateOutcome, Instance, InstanceStore},
    jobs::Job,
    metering::window_start,
    order::OrderDetails,
};
use koogallery_e2e::{config, host, simulator, with_openapi};
use koogallery_sim::usage::UsageClient;
use rust_decimal::Decimal;

const USAGE_KEY: &str = "console-usage-key";
const INSTANCE: &str = "buyer-1";
const CUSTOMER: &str = "cust-42";
const HOURS: i64 = 6;

/// An active instance of `CUSTOMER`, created `HOURS + 2` hours ago.
async fn seed(store: &dyn InstanceStore, created: DateTime<Utc>) {
    let (mut inst, created_ev) = Instance::new_provisioning(
        &"CS2612050800XYZ".to_owned().into(),
        &"CS2612050800XYZ-000001".to_owned().into(),
        INSTANCE,
        false,
        created,
    );
    let Ok(koogallery::instance::Outcome::Changed(active)) =
        inst.activate(koogallery::testing::sample_access(INSTANCE), created)
    else {
        panic!("activates")
    };
    inst.order = Some(OrderDetails {
        customer_id: Some(CUSTOMER.into()),
        customer_name: Some("Zhang San".into()),
        product_id: Some("OFFI740586423398866944".into()),
        sku_code: Some("sku-hourly".into()),
        ..OrderDetails::default()
    });
    assert_eq!(
        store
            .create_for_order_line(&inst, &[created_ev, active])
            .await
            .unwrap(),
        CreateOutcome::Created
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and the Node packages: scripts/browser.sh (make test runs it)"]
async fn an_operator_finds_reads_and_redrives_in_a_real_browser() {
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    koogallery_e2e::node::prerequisites(&project, &["playwright-core"]);

    let (openapi, mut cfg) = with_openapi(config(), false, Duration::from_secs(1)).await;
    openapi.set_interconnection_key(koogallery_e2e::KEY);
    cfg.secrets.usage = Some(koogallery::security::SecretKey::new(USAGE_KEY));
    cfg.settings.metering.push_every = Duration::from_millis(100);
    cfg.settings.metering.push.grace = chrono::Duration::zero();
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path(), cfg, None).await;
    let hour = window_start(Utc::now());
    seed(
        h.backend.store.as_ref(),
        hour - chrono::Duration::hours(HOURS + 2),
    )
    .await;

    // The app reports usage for the last HOURS closed hours, and some of this one; the push
    // takes the closed ones to KooGallery.
    let mut records = Vec::new();
    for back in 0..=HOURS {
        let start = hour - chrono::Duration::hours(back);
        for k in 0..3 {
            records.push(UsageRecordIn {
                instance_id: INSTANCE.into(),
                quantity: Decimal::from(back * 3 + k + 1),
                // This hour's reports are from now (a later minute would be in the future).
                occurred_at: if back == 0 {
                    Utc::now() - chrono::Duration::seconds(1)
                } else {
                    start + chrono::Duration::minutes(5 + 10 * k)
                },
                idempotency_key: format!("console-{back}-{k}"),
                package_instance_id: None,
            });
        }
    }
    let usage = UsageClient::new(&format!("http://{}/usage", h.addr), USAGE_KEY).unwrap();
    let taken = usage.send_until_taken(&records, 20).await.unwrap();
    assert_eq!(taken.status, 200, "{:?}", taken.body);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while openapi.usage().0.len() < HOURS as usize {
        assert!(tokio::time::Instant::now() < deadline, "usage not pushed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // KooGallery asks about the instance; a notice job of it was given up on.
    let sim = simulator(&h);
    for _ in 0..5 {
        sim.call(&serde_json::json!({"activity":"queryInstance","instanceId":INSTANCE}))
            .await
            .unwrap();
    }
    let queue = &h.backend.queue;
    let id = queue
        .enqueue_at(
            &Job::Notify {
                instance_id: INSTANCE.into(),
                seq: 1,
            },
            Utc::now(),
        )
        .unwrap();
    queue
        .dead_letter(
            id,
            "notice deadline passed (the webhook answered 503)",
            Utc::now(),
        )
        .unwrap();

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    let token = std::fs::read_to_string(dir.path().join("admin-token")).unwrap();
    let stdout = koogallery_e2e::node::run_script(
        &project,
        "console.mjs",
        &[
            ("BASE_URL", format!("http://{}", h.addr)),
            ("TOKEN", token.trim().to_owned()),
            ("INSTANCE", INSTANCE.to_owned()),
            ("CUSTOMER", CUSTOMER.to_owned()),
            ("HOURS", HOURS.to_string()),
            ("SHOTS", shots.display().to_string()),
        ],
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ok ")).count(),
        9,
        "{stdout}"
    );
    for shot in [
        "instances.png",
        "instance.png",
        "redriven.png",
        "exchanges.png",
    ] {
        let bytes = std::fs::read(shots.join(shot)).unwrap();
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
            "{shot}"
        );
    }
    if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
        std::fs::copy(
            shots.join("instance.png"),
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/console-instance.png"),
        )
        .unwrap();
    }
    // The redrive went through the queue: the job ran (its notice was not pending) and is gone.
    assert!(queue.dead_letters().unwrap().is_empty());
    h.shutdown().await;
}
