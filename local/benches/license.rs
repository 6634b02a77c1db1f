//! License checks per second in process, on the durable redb store as `make run` serves them
//! (docs/protocol/openapi.md §5): the cached path (the code activated and queried today: a read,
//! the day's client recorded, a token signed) and the first activation (KooGallery's answer
//! scripted, in memory: the record written, its event queued, a token signed). Run:
//! `cargo bench -p koogallery-local --bench license`.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use criterion::{Criterion, criterion_group, criterion_main};
use koogallery::{
    clock::SystemClock,
    license::service::{LicenseService, TokenKeys},
    testing::{MemoryQueue, license::ScriptedLicenseMarketplace},
};
use koogallery_embedded::EmbeddedStore;

static SEQ: AtomicU64 = AtomicU64::new(0);

fn service(dir: &std::path::Path, market: Arc<ScriptedLicenseMarketplace>) -> LicenseService {
    let store = Arc::new(EmbeddedStore::open(dir.join("bench.redb")).expect("store"));
    LicenseService::new(
        store,
        market,
        Arc::new(MemoryQueue::new()),
        Arc::new(TokenKeys::from_secrets([9; 32], None)),
        Arc::new(SystemClock),
        chrono::Duration::days(7),
    )
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let expiry = chrono::Utc::now() + chrono::Duration::days(365);
    let market = Arc::new(ScriptedLicenseMarketplace::default().knowing("PLBENCH0", expiry));
    let svc = service(dir.path(), market.clone());
    // Activated and queried once: every later check today is the cached path.
    rt.block_on(svc.check("PLBENCH0", "client-0"))
        .expect("first check");

    let mut group = c.benchmark_group("license");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("check/cached/embedded", |b| {
        b.iter(|| {
            let n = SEQ.fetch_add(1, Ordering::Relaxed) % 50;
            rt.block_on(svc.check("PLBENCH0", &format!("client-{n}")))
                .expect("check")
        })
    });
    group.bench_function("activate/first/embedded", |b| {
        b.iter_batched(
            || {
                let code = format!("PLBENCHA{}", SEQ.fetch_add(1, Ordering::Relaxed));
                market.known.lock().expect("lock").insert(
                    koogallery::license::LicenseCode::parse(&code).expect("code"),
                    koogallery::license::LicenseInfo {
                        status: koogallery::license::RemoteStatus::Alive,
                        expire_time: Some(expiry),
                        product_id: Some("00301-1".into()),
                        order_id: Some("CSBENCH".into()),
                        amount: Some(1),
                        activate_time: None,
                    },
                );
                code
            },
            |code| {
                rt.block_on(svc.activate(&code, "client-0"))
                    .expect("activate")
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
