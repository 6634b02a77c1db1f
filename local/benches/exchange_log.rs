//! The exchange log's writer, in process, per call (BENCHMARKS.md, "The exchange log's cost on
//! queryInstance"): a signed queryInstance's capture made into its kept record (redaction and
//! encoding), and a batch of those appended to the embedded file as `make run` keeps it. Run:
//! `cargo bench -p koogallery-local --bench exchange_log`.

use std::{borrow::Cow, time::Duration};

use chrono::Utc;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use koogallery::exchange::{Capture, Direction, ExchangeLog, Kept, recorder::BATCH};
use koogallery_embedded::EmbeddedExchangeLog;

/// A queryInstance as KooGallery sends it and the answer the edge gives for an active instance
/// (its `appInfo` holds names to hide, so the answer is walked).
fn capture() -> Capture {
    let request = br#"{"activity":"queryInstance","instanceIds":"i-0a1b2c3d4e5f","testFlag":"0","timeStamp":"1765000000000"}"#;
    let response = br#"{"resultCode":"000000","resultMsg":"success","info":[{"instanceId":"i-0a1b2c3d4e5f","appInfo":{"frontEndUrl":"https://app.example.com/t/0a1b2c3d","adminUrl":"https://admin.example.com/t/0a1b2c3d","userName":"6f1c2a9e0b7d4c3f8a5e1d2c3b4a59687f6e5d4c3b2a1908","password":"1b2c3d4e5f60718293a4b5c6d7e8f9011b2c3d4e5f60718293a4b5c6d7e8f90","memo":"ready"}}]}"#;
    Capture {
        at: Utc::now(),
        direction: Direction::Inbound,
        family: Cow::Borrowed("v2_basic"),
        activity: Cow::Borrowed("queryInstance"),
        instance_id: Some("i-0a1b2c3d4e5f".into()),
        order_id: Some("CS2612060000001".into()),
        tenant_id: None,
        request: request.to_vec(),
        response: response.to_vec(),
        result_code: Some("000000".into()),
        http_status: None,
        latency: Duration::from_micros(420),
        key: Some("current"),
        attempt: None,
        test: false,
        error: None,
    }
}

fn bench(c: &mut Criterion) {
    let retention = chrono::Duration::days(14);
    let mut group = c.benchmark_group("exchange_log");
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(1));
    group.bench_function("capture_into_kept", |b| {
        b.iter_batched(capture, |c| c.into_kept(retention), BatchSize::SmallInput)
    });

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let log = EmbeddedExchangeLog::open(dir.path().join(EmbeddedExchangeLog::FILE)).expect("log");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("append_batch/embedded", |b| {
        b.iter_batched(
            || -> Vec<Kept> { (0..BATCH).map(|_| capture().into_kept(retention)).collect() },
            |batch| rt.block_on(log.append(&batch)).expect("append"),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
