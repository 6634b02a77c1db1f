//! queryInstance's `usageInfo` on on-demand instances with a long history: 1 and
//! 100 instances of `BENCH_WINDOWS` (10 000) hourly windows each, the whole callback answered from
//! the running totals, next to what a poll read before them (every window of every instance, one
//! instance after another). Prints BENCHMARKS.md's rows.
//!
//! Run: `cargo bench -p koogallery-e2e --bench query_instance_usage` (embedded store); with the
//! emulator started (`scripts/emulator.sh start`) and its `AWS_*` variables set,
//! `BENCH_BACKENDS=embedded,emulator cargo bench -p koogallery-e2e --bench query_instance_usage`.
//! `BENCH_WINDOWS`, `BENCH_RUNS` (20) and `BENCH_OLD_RUNS` (3) override the sizes.
//!
//! The windows are written as a release before totals left them (no totals); the embedded store
//! then builds the totals when it is opened again (timed), the DynamoDB store with the first
//! batch reporting for each instance (one report each).

use std::{
    sync::Arc,
    time::{Duration as StdDuration, Instant},
};

use chrono::{DateTime, Duration, Utc};
use koogallery::{
    callbacks::{Dispatcher, InProcessDispatcher, Resources, registry::by_activity},
    clock::{Clock, SystemClock},
    config::Config,
    instance::{CreateOutcome, Instance, InstanceStore, Outcome},
    jobs::JobQueue,
    metering::{UsageReport, UsageStore, UsageWindow, WindowKey, window_start},
    order::{ChargingMode, OrderDetails},
    security::KeyUsed,
    testing::{MemoryQueue, sample_access},
};

const IDS: usize = 100;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// An active on-demand instance created before its first window.
fn instance(
    id: &str,
    created: DateTime<Utc>,
) -> (Instance, Vec<koogallery::instance::InstanceEvent>) {
    let order = koogallery::order::OrderId::new(format!("O-{id}"));
    let (mut inst, created_ev) = Instance::new_provisioning(
        &order,
        &format!("{order}-000001").into(),
        id,
        false,
        created,
    );
    inst.order = Some(OrderDetails {
        charging_mode: Some(ChargingMode::OnDemand),
        ..Default::default()
    });
    let mut events = vec![created_ev];
    match inst.activate(sample_access(id), created) {
        Ok(Outcome::Changed(ev)) => events.push(ev),
        other => panic!("{id} must activate: {other:?}"),
    }
    (inst, events)
}

/// `hours` closed windows of 0.5 (2 reports) each, accepted, as a year of polls leaves them.
fn history(id: &str, first: DateTime<Utc>, hours: usize) -> Vec<UsageWindow> {
    (0..hours)
        .map(|h| {
            let start = first + Duration::hours(h as i64);
            let key = WindowKey {
                instance_id: id.to_owned(),
                start,
                package: None,
            };
            let mut w = UsageWindow::open(&key, start + Duration::minutes(30));
            w.total = "0.5".parse().unwrap();
            w.reports = 2;
            w.version = 1;
            w.seal(start + Duration::hours(1));
            w.accept(start + Duration::hours(1));
            w
        })
        .collect()
}

fn percentile(sorted: &[StdDuration], p: f64) -> StdDuration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: StdDuration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

struct Backend {
    name: &'static str,
    instances: Arc<dyn InstanceStore>,
    usage: Arc<dyn UsageStore>,
}

async fn measure(b: &Backend, ids: &[String], windows: usize, runs: usize, old_runs: usize) {
    let config = Config::with_keys("bench-key", "bench-kit-key");
    let queue: Arc<dyn JobQueue> = Arc::new(MemoryQueue::new());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let resources = Resources::from_config(b.instances.clone(), queue, clock, &config)
        .with_usage(b.usage.clone())
        // Every callback is built; queryInstance reads no order notices.
        .with_order_notices(Arc::new(koogallery::testing::MemoryStore::new()));
    let dispatcher =
        InProcessDispatcher::build(&koogallery::testing::with_kit(resources.clone())).unwrap();
    let query = by_activity("queryInstance").unwrap();
    for n in [1, IDS] {
        let asked = &ids[..n];
        let body = serde_json::json!({"activity": "queryInstance", "instanceId": asked.join(",")});
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let started = Instant::now();
            let reply = dispatcher.dispatch(query, &body, KeyUsed::Current).await;
            times.push(started.elapsed());
            let info: Vec<koogallery::protocol::v2_basic::InstanceInfo> =
                reply.field("info").expect("info");
            assert_eq!(info.len(), n);
            let usage = info[0].usage_info.as_ref().expect("usageInfo")[0].usage_value;
            assert!(usage >= windows as f64 * 0.5, "{usage}");
        }
        times.sort();
        // Before totals: every window of every instance, one instance after another.
        let mut old = Vec::with_capacity(old_runs);
        for _ in 0..old_runs {
            let started = Instant::now();
            for id in asked {
                let w = b.usage.windows_of(id).await.unwrap();
                assert!(w.len() >= windows);
                std::hint::black_box(w.iter().map(|w| w.total).sum::<rust_decimal::Decimal>());
            }
            old.push(started.elapsed());
        }
        old.sort();
        println!(
            "| {} | {n} × {windows} | {} | {} | {} |",
            b.name,
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99)),
            ms(percentile(&old, 0.5)),
        );
    }
}

async fn seed_instances(store: &dyn InstanceStore, ids: &[String], created: DateTime<Utc>) {
    for id in ids {
        let (inst, events) = instance(id, created);
        match store.create_for_order_line(&inst, &events).await {
            Ok(CreateOutcome::Created) => {}
            other => panic!("seeding {id}: {other:?}"),
        }
    }
}

/// One report per instance in the latest hour: the first batch after an upgrade.
fn one_report_each(ids: &[String], at: DateTime<Utc>) -> Vec<UsageReport> {
    ids.iter()
        .map(|id| UsageReport {
            instance_id: id.clone(),
            quantity: "1".parse().unwrap(),
            occurred_at: at,
            idempotency_key: format!("{id}/now"),
            package_instance_id: None,
        })
        .collect()
}

async fn embedded(ids: &[String], windows: usize, runs: usize, old_runs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("koogallery.redb");
    let now = Utc::now();
    let first = window_start(now) - Duration::hours(windows as i64 + 1);
    {
        let store = koogallery_embedded::EmbeddedStore::open(&path).unwrap();
        seed_instances(&store, ids, first - Duration::hours(1)).await;
        let started = Instant::now();
        for id in ids {
            store
                .put_windows_without_totals(&history(id, first, windows))
                .await
                .unwrap();
        }
        eprintln!(
            "embedded: {} windows written in {:.1} s",
            ids.len() * windows,
            started.elapsed().as_secs_f64()
        );
    }
    let started = Instant::now();
    let store = Arc::new(koogallery_embedded::EmbeddedStore::open(&path).unwrap());
    eprintln!(
        "embedded: opened, totals built from {} windows, in {:.1} s",
        ids.len() * windows,
        started.elapsed().as_secs_f64()
    );
    store
        .ingest(
            &one_report_each(ids, now - Duration::minutes(1)),
            &Default::default(),
            now,
        )
        .await
        .unwrap();
    let backend = Backend {
        name: "embedded (redb)",
        instances: store.clone(),
        usage: store,
    };
    measure(&backend, ids, windows, runs, old_runs).await;
}

async fn emulator(ids: &[String], windows: usize, runs: usize, old_runs: usize) {
    let sdk = koogallery_aws::sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let table = format!("koogallery-bench-{}", std::process::id());
    koogallery_aws::bootstrap::ensure_table(&client, &table)
        .await
        .unwrap();
    let instances = Arc::new(koogallery_aws::DynamoStore::new(client.clone(), &table));
    let usage = Arc::new(koogallery_aws::DynamoUsageStore::new(client, &table));
    let now = Utc::now();
    let first = window_start(now) - Duration::hours(windows as i64 + 1);
    seed_instances(instances.as_ref(), ids, first - Duration::hours(1)).await;
    let started = Instant::now();
    for id in ids {
        usage
            .put_windows_without_totals(&history(id, first, windows))
            .await
            .unwrap();
    }
    eprintln!(
        "emulator: {} windows written in {:.1} s",
        ids.len() * windows,
        started.elapsed().as_secs_f64()
    );
    // The first batch after the upgrade builds each instance's total from its windows.
    let started = Instant::now();
    for chunk in ids.chunks(10) {
        usage
            .ingest(
                &one_report_each(chunk, now - Duration::minutes(1)),
                &Default::default(),
                now,
            )
            .await
            .unwrap();
    }
    eprintln!(
        "emulator: totals built by the first batches in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let backend = Backend {
        name: "emulator (DynamoDB, moto)",
        instances,
        usage,
    };
    measure(&backend, ids, windows, runs, old_runs).await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let windows = env("BENCH_WINDOWS", 10_000);
    let runs = env("BENCH_RUNS", 20);
    let old_runs = env("BENCH_OLD_RUNS", 3);
    let backends = std::env::var("BENCH_BACKENDS").unwrap_or_else(|_| "embedded".into());
    let ids: Vec<String> = (0..IDS).map(|i| format!("bench-od-{i:03}")).collect();
    println!(
        "| store | ids × windows each | queryInstance p50 | p99 | before: reading the windows, p50 |"
    );
    println!("|---|---|---|---|---|");
    for backend in backends.split(',') {
        match backend.trim() {
            "embedded" => embedded(&ids, windows, runs, old_runs).await,
            "emulator" => emulator(&ids, windows, runs, old_runs).await,
            other => panic!("unknown backend {other}: embedded or emulator"),
        }
    }
}
