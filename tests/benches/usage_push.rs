//! The usage push at volume: 100 000 closed windows (200 instances × 500 hours, all
//! within KooGallery's 21 days) pushed by one pass over HTTP to the simulated open API, with the
//! body and APIG signatures, 1000 records per call. Prints the time, the calls and what the
//! simulator accepted. Run: `cargo bench -p koogallery-e2e --bench usage_push`.

use std::{sync::Arc, time::Instant};

use chrono::{Duration, Utc};
use koogallery::{
    instance::{Instance, InstanceStore},
    metering::{UsageReport, UsageStore, push::PushSettings, window_start},
};

/// `USAGE_PUSH_INSTANCES` and `USAGE_PUSH_HOURS` override the sizes (200 and 500).
fn size(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let instances = size("USAGE_PUSH_INSTANCES", 200);
    let hours = size("USAGE_PUSH_HOURS", 500) as i64;
    let (openapi, cfg) = koogallery_e2e::with_openapi(
        koogallery_e2e::config(),
        false,
        std::time::Duration::from_secs(30),
    )
    .await;
    openapi.set_interconnection_key(koogallery_e2e::KEY);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        koogallery_embedded::EmbeddedStore::open(dir.path().join("koogallery.redb")).unwrap(),
    );
    let now = Utc::now();
    let first = window_start(now) - Duration::hours(hours);
    let ids: Vec<String> = (0..instances).map(|i| format!("bench-{i:03}")).collect();
    for id in &ids {
        let (inst, ev) =
            Instance::new_provisioning(&format!("O{id}").into(), &"1".into(), id, false, first);
        store.create_for_order_line(&inst, &[ev]).await.unwrap();
    }
    let started = Instant::now();
    for hour in 0..hours {
        let at = first + Duration::hours(hour) + Duration::minutes(30);
        let reports: Vec<UsageReport> = ids
            .iter()
            .map(|id| UsageReport {
                instance_id: id.clone(),
                quantity: "1.5".parse().unwrap(),
                occurred_at: at,
                idempotency_key: format!("{id}-{hour}"),
                package_instance_id: None,
            })
            .collect();
        store
            .ingest(&reports, &Default::default(), now)
            .await
            .unwrap();
    }
    let ingest_secs = started.elapsed().as_secs_f64();
    eprintln!("ingested in {ingest_secs:.1} s; pushing");
    let api = koogallery_openapi::client_for(
        &cfg.settings.marketplace,
        cfg.secrets.open_api.as_ref(),
        &koogallery::exchange::ExchangeRecorder::off(),
    )
    .unwrap()
    .unwrap();
    let pusher = koogallery::metering::UsagePusher {
        store: store.clone(),
        sink: Arc::new(koogallery_openapi::usage::UsagePushClient {
            api,
            key: koogallery::security::SecretKey::new(koogallery_e2e::KEY),
        }),
        clock: Arc::new(koogallery::clock::SystemClock),
        metrics: Arc::new(koogallery::metrics::NoMetrics),
        settings: PushSettings::default(),
        instances: Some(store.clone()),
    };
    let started = Instant::now();
    let report = pusher.run_once().await.unwrap();
    let push_secs = started.elapsed().as_secs_f64();
    let (accepted, duplicates) = openapi.usage();
    println!(
        "ingested {} windows in {ingest_secs:.1} s; pushed in {push_secs:.1} s: {} sealed, {} calls, {} accepted by KooGallery ({} repeats), {} rejected, stopped: {:?}",
        instances as i64 * hours,
        report.sealed,
        report.pushes,
        accepted.len(),
        duplicates,
        report.rejected,
        report.stopped
    );
    assert_eq!(accepted.len(), instances * hours as usize);
}
