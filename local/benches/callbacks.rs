//! In-process cost of a signed callback through the edge, next to the bare HMAC + JSON parse it cannot
//! avoid. Run: `make bench` (or `cargo bench -p koogallery-local --bench callbacks`).
//!
//! - `bare/verify_and_parse`: signature check on the raw bytes plus parsing the body.
//! - `edge/*/memory`: the whole edge (window, signature, nonce guard, dispatch, callback, Body-Sign)
//!   on the in-memory store and queue: the code's own cost.
//! - `edge/*/embedded`: the same on the durable redb file store, as `make run` serves it.

use std::{
    hint::black_box,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use edge::Edge;
use koogallery::{
    callbacks::{InProcessDispatcher, Resources},
    clock::{Clock, SystemClock},
    config::Config,
    instance::{Instance, InstanceStore, Outcome},
    jobs::JobQueue,
    security::{
        KeyRing, SecretKey, basic_signature, canonical_payload, replay::NonceStore, verify_basic,
    },
    testing::{MemoryQueue, MemoryStore, sample_access},
};
use koogallery_embedded::EmbeddedStore;

const KEY: &str = "bench-access-key";
static SEQ: AtomicU64 = AtomicU64::new(0);

fn signed(body: &[u8]) -> String {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let nonce = format!("bench-nonce-{n:020}");
    let ts = SystemClock.now().timestamp_millis().to_string();
    let payload = canonical_payload(body).expect("bench bodies are JSON objects");
    let sig = basic_signature(KEY, &nonce, &ts, payload.as_bytes());
    format!("signature={sig}&timestamp={ts}&nonce={nonce}")
}

fn new_instance_body() -> Vec<u8> {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    format!(
        r#"{{"activity":"newInstance","orderId":"CSBENCH{n}","orderLineId":"CSBENCH{n}-000001","businessId":"bench-{n}","testFlag":"0"}}"#
    )
    .into_bytes()
}

fn edge_on(
    store: Arc<dyn InstanceStore>,
    nonces: Arc<dyn NonceStore>,
    queue: Arc<dyn JobQueue>,
    intake: Option<Arc<dyn koogallery::instance::OrderLineIntake>>,
) -> Edge {
    let config = Config::with_keys(KEY, "bench-kit-key");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut resources = Resources::from_config(store, queue, clock.clone(), &config)
        .with_order_notices(Arc::new(MemoryStore::new()));
    if let Some(intake) = intake {
        // As the local host: the record and its job in one commit.
        resources = resources.with_intake(intake);
    }
    let dispatcher = InProcessDispatcher::build(&koogallery::testing::with_kit(resources.clone()))
        .expect("every callback builds");
    Edge::new(
        &config.settings.edge,
        config.secrets.keys.clone(),
        nonces,
        clock,
        Arc::new(dispatcher),
    )
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let body = new_instance_body();
    let query = signed(&body);
    let params: Vec<(String, String)> = query
        .split('&')
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect();
    let (sig, ts, nonce) = (&params[0].1, &params[1].1, &params[2].1);
    let ring = KeyRing::new(SecretKey::new(KEY), None);
    c.bench_function("bare/verify_and_parse", |b| {
        b.iter(|| {
            verify_basic(&ring, nonce, ts, sig, black_box(&body)).expect("valid");
            black_box(serde_json::from_slice::<serde_json::Value>(&body).expect("json"))
        })
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let embedded = Arc::new(EmbeddedStore::open(dir.path().join("bench.redb")).expect("store"));
    let memory = Arc::new(MemoryStore::new());
    let edges: [(&str, Edge, Arc<dyn InstanceStore>); 2] = [
        (
            "memory",
            edge_on(
                memory.clone(),
                memory.clone(),
                Arc::new(MemoryQueue::new()),
                None,
            ),
            memory.clone(),
        ),
        (
            "embedded",
            edge_on(
                embedded.clone(),
                embedded.clone(),
                Arc::new(embedded.queue()),
                Some(embedded.clone()),
            ),
            embedded.clone(),
        ),
    ];

    for (name, edge, store) in &edges {
        c.bench_function(&format!("edge/new_instance/{name}"), |b| {
            b.to_async(&rt).iter_batched(
                || {
                    let body = new_instance_body();
                    (signed(&body), body)
                },
                |(q, body)| async move {
                    let r = edge.handle_basic(&q, &body).await;
                    assert_eq!(r.result_code, koogallery::ResultCode::Processing);
                    r
                },
                BatchSize::SmallInput,
            )
        });

        // One active instance to query, as the worker leaves it after provisioning. (Debug calls
        // keep their records apart, so a real query must find a real record.)
        let now = chrono::Utc::now();
        let (mut inst, created) = Instance::new_provisioning(
            &"CSQ".into(),
            &"CSQ-000001".into(),
            "bench-query",
            false,
            now,
        );
        let Ok(Outcome::Changed(provisioned)) = inst.activate(sample_access("bench-query"), now)
        else {
            panic!("a new instance activates")
        };
        rt.block_on(store.create_for_order_line(&inst, &[created, provisioned]))
            .expect("the instance to query is stored");
        let query_body = br#"{"activity":"queryInstance","instanceId":"bench-query"}"#;
        c.bench_function(&format!("edge/query_instance/{name}"), |b| {
            b.to_async(&rt).iter_batched(
                || signed(query_body),
                |q| async move {
                    let r = edge.handle_basic(&q, query_body).await;
                    assert_eq!(r.result_code, koogallery::ResultCode::Success);
                    r
                },
                BatchSize::SmallInput,
            )
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
