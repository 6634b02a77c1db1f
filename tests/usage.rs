//! Pay-per-use end to end: the vendor's app reports usage over HTTP to the local host,
//! the host pushes each closed hour to the simulated KooGallery open API while that API fails in
//! every way it can, and the host is stopped and restarted on its data directory meanwhile.
//! Afterwards, per (instance, hour), KooGallery holds exactly what was ingested: nothing twice with
//! other content, nothing missing.

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use koogallery::{
    instance::{CreateOutcome, Instance, InstanceStore},
    metering::{api::UsageRecordIn, window_start},
};
use koogallery_e2e::{ChildHost, KEY, config, eventually, host, with_openapi};
use koogallery_sim::{openapi::Fault, usage::UsageClient};
use rust_decimal::Decimal;

const USAGE_KEY: &str = "e2e-usage-key";

/// Seeds an active instance created `hours` ago (usage may not predate its instance).
async fn seed(store: &dyn InstanceStore, id: &str, created: DateTime<Utc>) {
    let (mut inst, created_ev) = Instance::new_provisioning(
        &format!("CS{id}").into(),
        &format!("CS{id}-1").into(),
        id,
        false,
        created,
    );
    let activated = inst.activate(koogallery::testing::sample_access(id), created);
    let Ok(koogallery::instance::Outcome::Changed(active_ev)) = activated else {
        panic!("{id} activates: {activated:?}")
    };
    let events = vec![created_ev, active_ev];
    assert_eq!(
        store.create_for_order_line(&inst, &events).await.unwrap(),
        CreateOutcome::Created
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_closed_hour_reaches_koogallery_once_whatever_fails() {
    let (openapi, mut cfg) = with_openapi(config(), true, Duration::from_secs(1)).await;
    openapi.set_interconnection_key(KEY);
    cfg.secrets.usage = Some(koogallery::security::SecretKey::new(USAGE_KEY));
    cfg.settings.metering.push_every = Duration::from_millis(100);
    cfg.settings.metering.push.grace = chrono::Duration::zero();

    let dir = tempfile::tempdir().unwrap();
    let mut h = host(dir.path(), cfg.clone(), None).await;
    let now = Utc::now();
    let hour = window_start(now);
    let instances = ["use-a", "use-b", "use-c"];
    for id in instances {
        seed(
            h.backend.store.as_ref(),
            id,
            hour - chrono::Duration::hours(30),
        )
        .await;
    }

    // Faults queued for the push: 5xx, a timeout, an answer lost after KooGallery accepted,
    // throttling, an internal error, a record-level refusal (cured by splitting the push), and
    // the primary host down for a while.
    for fault in [
        Fault::Status { status: 500 },
        Fault::Slow { millis: 1_500 },
        // Accepted, but the answer never arrives: the retry must be the very same record.
        Fault::LostAnswer { millis: 1_500 },
        Fault::Mkt {
            code: "MKT.0250".into(),
        },
        Fault::Mkt {
            code: "MKT.0999".into(),
        },
        Fault::Mkt {
            code: "MKT.9002".into(),
        },
        Fault::Status { status: 503 },
    ] {
        openapi.inject(fault);
    }
    openapi.set_primary_down(true);

    // The app reports steadily: 24 closed hours for each instance, several reports per hour,
    // some of them sent twice (a retry of the app's own), in batches.
    let mut ingested: BTreeMap<(String, String), Decimal> = BTreeMap::new();
    let mut n = 0u64;
    for back in (1..=24).rev() {
        let start = hour - chrono::Duration::hours(back);
        let mut batch = Vec::new();
        for id in instances {
            for k in 0..3 {
                n += 1;
                let quantity: Decimal = format!("{}.{:04}", n % 7 + 1, n % 10_000).parse().unwrap();
                let record = UsageRecordIn {
                    instance_id: id.into(),
                    quantity,
                    occurred_at: start + chrono::Duration::minutes(10 + 15 * k),
                    idempotency_key: format!("app-{n}"),
                    package_instance_id: None,
                };
                *ingested
                    .entry((id.to_owned(), start.format("%Y%m%dT%H%M%SZ").to_string()))
                    .or_default() += quantity;
                batch.push(record);
            }
        }
        if back == 12 {
            // Halfway: the host stops and starts again on its data directory.
            h.shutdown().await;
            h = host(dir.path(), cfg.clone(), None).await;
            openapi.set_primary_down(false);
        }
        let client = UsageClient::new(&format!("http://{}/usage", h.addr), USAGE_KEY).unwrap();
        let answer = client.send_until_taken(&batch, 20).await.expect("taken");
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        if back % 5 == 0 {
            // The app's own retry of a batch already taken: nothing more is applied.
            let again = client.send_until_taken(&batch, 20).await.expect("taken");
            assert_eq!(again.body["applied"], 0, "{:?}", again.body);
            assert_eq!(again.body["duplicates"], 9);
        }
    }

    // Wait until KooGallery holds every closed window.
    let expected = ingested.len();
    for _ in 0..300 {
        if openapi.usage().0.len() >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (accepted, _duplicates) = openapi.usage();
    let mut received: BTreeMap<(String, String), Decimal> = BTreeMap::new();
    for r in &accepted {
        let value: Decimal = r.usage_value.parse().unwrap();
        let previous = received.insert((r.instance_id.clone(), r.begin_time.clone()), value);
        assert!(previous.is_none(), "window accepted twice: {r:?}");
    }
    assert_eq!(received, ingested, "per window, accepted = ingested");
    assert!(
        openapi.usage_conflicts().is_empty(),
        "a window was sent twice with different content: {:?}",
        openapi.usage_conflicts()
    );
    h.shutdown().await;
}

/// Seeds an active instance with its order (charging mode, SKU, extension parameters).
async fn seed_order(
    store: &dyn InstanceStore,
    id: &str,
    created: DateTime<Utc>,
    mode: koogallery::order::ChargingMode,
    sku: &str,
    params: Vec<(String, String)>,
) {
    seed(store, id, created).await;
    koogallery::instance::mutate(store, id, |i| {
        i.order = Some(koogallery::order::OrderDetails {
            charging_mode: Some(mode),
            sku_code: Some(sku.into()),
            extend_params: params.clone(),
            ..Default::default()
        });
        Ok(koogallery::instance::Outcome::Quiet)
    })
    .await
    .unwrap();
}

/// Packages and bill estimates over HTTP, as the vendor's app sees them: a stop-when-used-up
/// package is used up (`exhaustedPackages`, the `quotaExhausted` event, further usage refused),
/// its usage is pushed with `relate_pkg_instance`, and the estimate prices KooGallery's example
/// (step: 8 minutes in one daily cycle → 1.90) leaving the prepaid package usage out. The same
/// minutes under hourly cycles are two cycles (1.30 + 0.90). KooGallery's bill from what it
/// accepted equals each estimate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packages_are_deducted_and_estimates_price_the_rest() {
    use koogallery::order::ChargingMode;
    let (openapi, mut cfg) = with_openapi(config(), false, Duration::from_secs(2)).await;
    openapi.set_interconnection_key(KEY);
    cfg.secrets.usage = Some(koogallery::security::SecretKey::new(USAGE_KEY));
    cfg.settings.metering.push_every = Duration::from_millis(100);
    cfg.settings.metering.push.grace = chrono::Duration::zero();
    let daily = r#"{"model":"step","cycle":"day","bands":[{"upTo":"3","unitPrice":"0.3"},{"unitPrice":"0.2"}]}"#;
    let hourly = r#"{"model":"step","cycle":"hour","bands":[{"upTo":"3","unitPrice":"0.3"},{"unitPrice":"0.2"}]}"#;
    cfg.settings.metering.pricing = koogallery::metering::pricing::PriceList::from_json(&format!(
        r#"{{"sku-min":{daily},"sku-hourly":{hourly}}}"#
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path(), cfg, None).await;
    let hour = window_start(Utc::now()) - chrono::Duration::hours(2);
    let store = h.backend.store.as_ref();
    seed_order(
        store,
        "calls-1",
        hour,
        ChargingMode::OnDemand,
        "sku-min",
        vec![],
    )
    .await;
    seed_order(
        store,
        "calls-2",
        hour,
        ChargingMode::OnDemand,
        "sku-hourly",
        vec![],
    )
    .await;
    let quota = vec![("packageQuota".to_owned(), "10".to_owned())];
    seed_order(
        store,
        "pkg-10",
        hour,
        ChargingMode::OnDemandPkg,
        "sku-pkg",
        quota,
    )
    .await;

    let client = UsageClient::new(&format!("http://{}/usage", h.addr), USAGE_KEY).unwrap();
    let record_of =
        |instance: &str, q: &str, minutes: i64, key: &str, package: Option<&str>| UsageRecordIn {
            instance_id: instance.into(),
            quantity: q.parse().unwrap(),
            occurred_at: hour + chrono::Duration::minutes(minutes),
            idempotency_key: key.into(),
            package_instance_id: package.map(str::to_owned),
        };
    let record = |q: &str, minutes: i64, key: &str, package: Option<&str>| {
        record_of("calls-1", q, minutes, key, package)
    };
    let on_demand = [
        record("5", 10, "m1", None),
        record("3", 70, "m2", None),
        record_of("calls-2", "5", 10, "h1", None),
        record_of("calls-2", "3", 70, "h2", None),
    ];
    let a = client.send_until_taken(&on_demand, 20).await.unwrap();
    assert_eq!(a.body["applied"], 4, "{:?}", a.body);
    let a = client
        .send_until_taken(&[record("7", 20, "p1", Some("pkg-10"))], 20)
        .await
        .unwrap();
    assert!(a.body.get("exhaustedPackages").is_none(), "{:?}", a.body);
    let a = client
        .send_until_taken(&[record("4", 30, "p2", Some("pkg-10"))], 20)
        .await
        .unwrap();
    assert_eq!(a.status, 400, "more than is left: {:?}", a.body);
    assert!(
        a.body["error"].as_str().unwrap().contains("has 3 left"),
        "{:?}",
        a.body
    );
    let a = client
        .send_until_taken(&[record("3", 30, "p3", Some("pkg-10"))], 20)
        .await
        .unwrap();
    assert_eq!(a.body["exhaustedPackages"], serde_json::json!(["pkg-10"]));
    let a = client
        .send_until_taken(&[record("0.5", 40, "p4", Some("pkg-10"))], 20)
        .await
        .unwrap();
    assert_eq!(a.status, 400);
    assert!(
        a.body["error"].as_str().unwrap().contains("used up"),
        "{:?}",
        a.body
    );
    let events = store.events("pkg-10").await.unwrap();
    assert!(
        events.iter().any(|e| e.kind.name() == "quota_exhausted"),
        "the vendor is told"
    );

    // The estimate: 8 on-demand units priced by steps in one daily cycle; the 10 from the
    // package apart. Under hourly cycles, the same 8 are 5 in one cycle and 3 in the next.
    let from = (hour - chrono::Duration::hours(1)).to_rfc3339();
    let e = client.estimate("calls-1", Some(&from), None).await.unwrap();
    assert_eq!(e.status, 200, "{:?}", e.body);
    assert_eq!(
        (e.body["quantity"].as_str(), e.body["amount"].as_str()),
        (Some("8"), Some("1.9"))
    );
    assert_eq!(e.body["packageQuantity"], "10");
    assert_eq!(
        (&e.body["schema"], &e.body["cycle"]),
        (&2.into(), &"day".into())
    );
    let e2 = client.estimate("calls-2", Some(&from), None).await.unwrap();
    assert_eq!(
        (e2.body["quantity"].as_str(), e2.body["amount"].as_str()),
        (Some("8"), Some("2.2")),
        "{:?}",
        e2.body
    );
    let unknown = client.estimate("nobody", None, None).await.unwrap();
    assert_eq!(unknown.status, 404);
    let unpriced = client.estimate("pkg-10", None, None).await.unwrap();
    assert_eq!(unpriced.status, 409, "{:?}", unpriced.body);
    let forged = UsageClient::new(&format!("http://{}/usage", h.addr), "not-the-key").unwrap();
    assert_eq!(
        forged.estimate("calls-1", None, None).await.unwrap().status,
        401
    );

    // KooGallery gets the package's hour with relate_pkg_instance, the on-demand hours without.
    for _ in 0..100 {
        if openapi.usage().0.len() >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (accepted, _) = openapi.usage();
    let mut got: Vec<(String, Option<String>)> = accepted
        .iter()
        .filter(|r| r.instance_id != "calls-2")
        .map(|r| (r.usage_value.clone(), r.relate_pkg_instance.clone()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("10".to_owned(), Some("pkg-10".to_owned())),
            ("3".to_owned(), None),
            ("5".to_owned(), None)
        ]
    );
    // What KooGallery bills from what it accepted matches the vendor's estimate.
    for (instance, estimate, pricing) in [("calls-1", &e, daily), ("calls-2", &e2, hourly)] {
        let period = |k: &str| {
            DateTime::parse_from_rfc3339(estimate.body[k].as_str().unwrap())
                .unwrap()
                .to_utc()
        };
        let (quantity, amount) = koogallery_sim::usage::koogallery_bill(
            &accepted,
            instance,
            period("from"),
            period("to"),
            &serde_json::from_str(pricing).unwrap(),
        )
        .unwrap();
        assert_eq!(
            (
                Some(quantity.to_string().as_str()),
                Some(amount.to_string().as_str())
            ),
            (
                estimate.body["quantity"].as_str(),
                estimate.body["amount"].as_str()
            ),
            "{instance}"
        );
    }
    h.shutdown().await;
}

/// The same guarantee when the host dies without warning: `make run`'s process is killed with
/// SIGKILL twice while usage is being ingested and pushed, each time while a push is in flight
/// with its answer lost (KooGallery took the records and holds the answer), and started again on
/// its data directory. KooGallery ends up with exactly what was ingested.
///
/// Each kill waits for the simulated KooGallery to report that it holds a push's answer. The hold
/// (60 s) outlasts the host's open API timeout (10 s here, the most it may be), and the test kills
/// the host within one 50 ms poll of the report: the push is still in flight at the kill unless
/// the machine stalls the test for 10 s. Each child listens on a port of its own, which it
/// reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_host_loses_and_doubles_nothing() {
    let (openapi, _) = with_openapi(config(), true, Duration::from_secs(1)).await;
    openapi.set_interconnection_key(KEY);
    let dir = tempfile::tempdir().unwrap();
    let hour = window_start(Utc::now());
    let instances = ["kill-a", "kill-b"];
    {
        // Seeded before the host owns the file.
        let store =
            koogallery_embedded::EmbeddedStore::open(dir.path().join("koogallery.redb")).unwrap();
        for id in instances {
            seed(&store, id, hour - chrono::Duration::hours(30)).await;
        }
    }
    let spawn = || {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_e2e-host"));
        command
            .env("KOOGALLERY_DATA_DIR", dir.path())
            .env("KOOGALLERY_ACCESS_KEY", KEY)
            .env("KOOGALLERY_KIT_KEY", "e2e-kit-key")
            .env("KOOGALLERY_USAGE_KEY", USAGE_KEY)
            .env("KOOGALLERY_AK", "e2e-ak")
            .env("KOOGALLERY_SK", "e2e-sk")
            .env("KOOGALLERY_OPENAPI_URL", openapi.primary_url())
            .env("KOOGALLERY_OPENAPI_FALLBACK_URL", openapi.fallback_url())
            .env("KOOGALLERY_OPENAPI_TIMEOUT_SECS", "10")
            .env("KOOGALLERY_USAGE_PUSH_EVERY_SECS", "1")
            .env("KOOGALLERY_USAGE_GRACE_SECS", "0");
        ChildHost::start(command)
    };
    let usage_client = |child: &ChildHost| {
        UsageClient::new(&format!("http://{}/usage", child.addr), USAGE_KEY).unwrap()
    };
    let mut child = spawn().await;
    let mut client = usage_client(&child);
    let mut ingested: BTreeMap<(String, String), Decimal> = BTreeMap::new();
    let mut n = 0u32;
    for back in (1..=12).rev() {
        let start = hour - chrono::Duration::hours(back);
        let mut batch = Vec::new();
        for id in instances {
            for k in 0..2 {
                n += 1;
                let quantity: Decimal = format!("{}.{:02}", n % 5 + 1, n % 100).parse().unwrap();
                batch.push(UsageRecordIn {
                    instance_id: id.into(),
                    quantity,
                    occurred_at: start + chrono::Duration::minutes(5 + 20 * k),
                    idempotency_key: format!("kill-{n}"),
                    package_instance_id: None,
                });
                *ingested
                    .entry((id.to_owned(), start.format("%Y%m%dT%H%M%SZ").to_string()))
                    .or_default() += quantity;
            }
        }
        let kill = back == 8 || back == 4;
        let held = openapi.answers_held();
        if kill {
            // The next push is taken and its answer held back.
            openapi.inject(Fault::LostAnswer { millis: 60_000 });
        }
        // This batch's hour is closed: taken, it is due for a push at once.
        let answer = client.send_until_taken(&batch, 100).await.expect("taken");
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        if kill {
            eventually(
                Duration::from_secs(30),
                "a push in flight, its answer held",
                || openapi.answers_held() > held,
            )
            .await;
            child.kill();
            child = spawn().await;
            client = usage_client(&child);
        }
    }
    let expected = ingested.len();
    for _ in 0..300 {
        if openapi.usage().0.len() >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill();
    let (accepted, duplicates) = openapi.usage();
    let mut received: BTreeMap<(String, String), Decimal> = BTreeMap::new();
    for r in &accepted {
        let previous = received.insert(
            (r.instance_id.clone(), r.begin_time.clone()),
            r.usage_value.parse().unwrap(),
        );
        assert!(previous.is_none(), "window accepted twice: {r:?}");
    }
    assert_eq!(received, ingested, "per window, accepted = ingested");
    assert!(
        openapi.usage_conflicts().is_empty(),
        "{:?}",
        openapi.usage_conflicts()
    );
    assert!(
        duplicates >= 2,
        "each restarted host sent again what the killed one never heard was taken: {duplicates}"
    );
}

/// The vendor hears `quotaExhausted` within seconds of the batch that used up its package: the
/// batch queues the delivery. The reconciler (which would otherwise find the notice, minutes
/// later) runs only at start-up here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vendor_hears_quota_exhausted_within_seconds() {
    use koogallery::order::ChargingMode;
    let vendor = koogallery_e2e::Vendor::start().await;
    let mut cfg = vendor.config();
    cfg.secrets.usage = Some(koogallery::security::SecretKey::new(USAGE_KEY));
    cfg.settings.worker.reconcile_every = Duration::from_secs(3600);
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path(), cfg, None).await;
    let store = h.backend.store.as_ref();
    let created = Utc::now() - chrono::Duration::minutes(30);
    seed_order(
        store,
        "od-q",
        created,
        ChargingMode::OnDemand,
        "sku-od",
        vec![],
    )
    .await;
    let quota = vec![("packageQuota".to_owned(), "4".to_owned())];
    seed_order(
        store,
        "pkg-q",
        created,
        ChargingMode::OnDemandPkg,
        "sku-pkg",
        quota,
    )
    .await;

    let client = UsageClient::new(&format!("http://{}/usage", h.addr), USAGE_KEY).unwrap();
    let a = client
        .send_until_taken(
            &[UsageRecordIn {
                instance_id: "od-q".into(),
                quantity: "4".parse().unwrap(),
                occurred_at: Utc::now() - chrono::Duration::minutes(1),
                idempotency_key: "q-1".into(),
                package_instance_id: Some("pkg-q".into()),
            }],
            20,
        )
        .await
        .unwrap();
    assert_eq!(a.body["exhaustedPackages"], serde_json::json!(["pkg-q"]));
    koogallery_e2e::eventually(
        Duration::from_secs(5),
        "quotaExhausted reaches the vendor",
        || vendor.accepted("pkg-q") == ["quotaExhausted"],
    )
    .await;
    let heard = &vendor.received_for("pkg-q")[0].body;
    assert_eq!(heard["state"], "active", "{heard}");
    h.shutdown().await;
}

/// A refused report is named by its `index` (from 0) whether a rule refuses it or the parser
/// cannot read it (`"NaN"`, `"abc"`: before, serde's error came without one); every refusal is
/// `{"error", "retryable", "index"?}` as the README documents, and nothing of the batch is
/// stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refused_report_names_its_index() {
    let mut cfg = config();
    cfg.secrets.usage = Some(koogallery::security::SecretKey::new(USAGE_KEY));
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path(), cfg, None).await;
    let now = Utc::now();
    seed(
        h.backend.store.as_ref(),
        "idx-1",
        now - chrono::Duration::hours(2),
    )
    .await;
    let url = format!("http://{}/usage", h.addr);
    let http = reqwest::Client::new();
    let post = |body: String| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let mut req = http.post(&url).body(body.clone());
            for (name, value) in
                koogallery::metering::api::sign(USAGE_KEY, body.as_bytes(), Utc::now())
            {
                req = req.header(name, value);
            }
            let resp = req.send().await.expect("answered");
            let status = resp.status().as_u16();
            let bytes = resp.bytes().await.expect("a body");
            let json: serde_json::Value = serde_json::from_slice(&bytes).expect("a JSON answer");
            (status, json)
        }
    };
    let at = now.to_rfc3339();
    let report = |quantity: &str, key: &str| {
        format!(
            r#"{{"instanceId":"idx-1","quantity":{quantity},"occurredAt":"{at}","idempotencyKey":"{key}"}}"#
        )
    };
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
        k.sort();
        k
    };
    for (quantity, why) in [
        (r#""NaN""#, "not a decimal"),
        (r#""abc""#, "not a decimal"),
        ("NaN", "records[1].quantity"),
        (r#""-1""#, "greater than 0"),
        (r#""1.00001""#, "decimals"),
    ] {
        let body = format!(
            r#"{{"records":[{},{},{}]}}"#,
            report(r#""1""#, "k0"),
            report(quantity, "k1"),
            report(r#""1""#, "k2")
        );
        let (status, answer) = post(body).await;
        assert_eq!(status, 400, "{quantity}: {answer}");
        assert_eq!(keys(&answer), ["error", "index", "retryable"], "{answer}");
        assert_eq!(answer["index"], 1, "{quantity}: {answer}");
        assert_eq!(answer["retryable"], false);
        assert!(answer["error"].as_str().unwrap().contains(why), "{answer}");
    }
    // A body at fault as a whole names no report.
    let (status, answer) = post("not json".into()).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(keys(&answer), ["error", "retryable"], "{answer}");
    // Nothing of the refused batches was stored: their first report is new.
    let (status, answer) = post(format!(r#"{{"records":[{}]}}"#, report(r#""1""#, "k0"))).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["applied"].as_u64(), answer["duplicates"].as_u64()),
        (Some(1), Some(0))
    );
    h.shutdown().await;
}

/// KooGallery refuses every usage push with `MKT.0100` for a while (a refusal that names no
/// record), then recovers: nothing is rejected on the way, and every window is then accepted,
/// once, unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_of_everything_for_a_while_rejects_nothing() {
    use koogallery::metering::{UsageStore, WindowState};
    let (openapi, mut cfg) = with_openapi(config(), false, Duration::from_secs(2)).await;
    openapi.set_interconnection_key(KEY);
    cfg.secrets.usage = Some(koogallery::security::SecretKey::new(USAGE_KEY));
    cfg.settings.metering.push_every = Duration::from_millis(100);
    cfg.settings.metering.push.grace = chrono::Duration::zero();
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path(), cfg, None).await;
    let hour = window_start(Utc::now());
    let instances = ["sys-a", "sys-b", "sys-c", "sys-d", "sys-e"];
    for id in instances {
        seed(
            h.backend.store.as_ref(),
            id,
            hour - chrono::Duration::hours(8),
        )
        .await;
    }
    openapi.inject(Fault::MktFor {
        code: "MKT.0100".into(),
        millis: 3_000,
    });
    let client = UsageClient::new(&format!("http://{}/usage", h.addr), USAGE_KEY).unwrap();
    let mut batch = Vec::new();
    for back in 1..=6 {
        for id in instances {
            batch.push(UsageRecordIn {
                instance_id: id.into(),
                quantity: "1.5".parse().unwrap(),
                occurred_at: hour - chrono::Duration::hours(back) + chrono::Duration::minutes(7),
                idempotency_key: format!("{id}-{back}"),
                package_instance_id: None,
            });
        }
    }
    let a = client.send_until_taken(&batch, 20).await.unwrap();
    assert_eq!(a.body["applied"], 30, "{:?}", a.body);
    // Until KooGallery holds every record and the pass has recorded its answer: the simulator
    // counts a record before the pusher saves the window settled.
    let usage = h.backend.store.as_ref();
    for _ in 0..200 {
        let mut settled = 0;
        for id in instances {
            settled += usage
                .windows_of(id)
                .await
                .unwrap()
                .iter()
                .filter(|w| matches!(w.state, WindowState::Accepted { .. }))
                .count();
        }
        if openapi.usage().0.len() >= 30 && settled >= 30 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pushes = openapi
        .seen()
        .iter()
        .filter(|s| s.path == koogallery_sim::openapi::USAGE_PATH)
        .count();
    assert!(pushes > 2, "the refusal was met: {pushes} pushes");
    let (accepted, _) = openapi.usage();
    assert_eq!(accepted.len(), 30, "every window accepted");
    assert!(openapi.usage_conflicts().is_empty());
    for id in instances {
        for w in usage.windows_of(id).await.unwrap() {
            assert!(
                matches!(w.state, WindowState::Accepted { .. }),
                "{id} {}: {:?}",
                w.start,
                w.state
            );
        }
    }
    h.shutdown().await;
}

/// docs/protocol/openapi.md §3 rule 3 over HTTP: an instance ordered mid-hour gets its first record
/// from its start (to the second), not from the hour's start; its next hour is whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_record_of_an_instance_begins_at_its_start() {
    let (openapi, mut cfg) = with_openapi(config(), false, Duration::from_secs(2)).await;
    openapi.set_interconnection_key(KEY);
    cfg.secrets.usage = Some(koogallery::security::SecretKey::new(USAGE_KEY));
    cfg.settings.metering.push_every = Duration::from_millis(100);
    cfg.settings.metering.push.grace = chrono::Duration::zero();
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path(), cfg, None).await;
    let first = window_start(Utc::now()) - chrono::Duration::hours(2);
    let created = first + chrono::Duration::milliseconds(59 * 60_000 + 8_300);
    seed(h.backend.store.as_ref(), "mid-1", created).await;
    let client = UsageClient::new(&format!("http://{}/usage", h.addr), USAGE_KEY).unwrap();
    let report = |minutes: i64, key: &str| UsageRecordIn {
        instance_id: "mid-1".into(),
        quantity: "2".parse().unwrap(),
        occurred_at: first + chrono::Duration::minutes(minutes),
        idempotency_key: key.into(),
        package_instance_id: None,
    };
    let before = client
        .send_until_taken(&[report(59, "m-1")], 20)
        .await
        .unwrap();
    assert_eq!(
        before.status, 400,
        "usage before the start: {:?}",
        before.body
    );
    let just_after = UsageRecordIn {
        occurred_at: created + chrono::Duration::seconds(20),
        ..report(0, "m-2")
    };
    let a = client
        .send_until_taken(&[just_after, report(70, "m-3")], 20)
        .await
        .unwrap();
    assert_eq!(a.body["applied"], 2, "{:?}", a.body);
    for _ in 0..100 {
        if openapi.usage().0.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut got: Vec<(String, String)> = openapi
        .usage()
        .0
        .into_iter()
        .map(|r| (r.begin_time, r.end_time))
        .collect();
    got.sort();
    let fmt = |t: DateTime<Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
    let second = first + chrono::Duration::hours(1);
    assert_eq!(
        got,
        [
            (
                fmt(first + chrono::Duration::seconds(59 * 60 + 8)),
                fmt(second)
            ),
            (fmt(second), fmt(second + chrono::Duration::hours(1))),
        ]
    );
    h.shutdown().await;
}
