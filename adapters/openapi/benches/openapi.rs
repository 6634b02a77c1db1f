//! The cost of talking to KooGallery's open API. Run:
//! `cargo bench -p koogallery-openapi --bench openapi`.
//!
//! - `apig/bare_hmac_sha256`: one HMAC-SHA256 over a string-to-sign-sized input: the floor.
//! - `apig/sign_query_order`: the whole `SDK-HMAC-SHA256` signature of a Query Order request
//!   (canonical request, its SHA-256, the HMAC, the `Authorization` header).
//! - `openapi/query_order_round_trip`: the client's Query Order against `koogallery-sim
//!   serve-openapi` on loopback: signing, HTTP, the simulator's signature check, parsing.

use std::{collections::HashMap, hint::black_box, time::Duration};

use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit, Mac};
use koogallery::{
    config::OpenApiKeys,
    order::{MarketplaceClient, OrderId, OrderLineId},
    security::SecretKey,
    security::apig,
};
use koogallery_openapi::{OpenApiClient, OpenApiSettings};
use koogallery_sim::openapi::{OpenApiSim, SimOrder};
use sha2::Sha256;

fn bench(c: &mut Criterion) {
    let string_to_sign = "SDK-HMAC-SHA256\n20240317T144237Z\nd282ce755ed8d7764e1fc7da9c334c7565a00eb22fcbb5c9a7a10c427267e4af";
    c.bench_function("apig/bare_hmac_sha256", |b| {
        b.iter(|| {
            let mut mac = Hmac::<Sha256>::new_from_slice(b"0123456789abcdef0123456789abcdef")
                .expect("any key length");
            mac.update(black_box(string_to_sign).as_bytes());
            black_box(mac.finalize().into_bytes())
        })
    });

    let headers = [
        ("content-type", "application/json"),
        ("host", "mkt.myhuaweicloud.com"),
        ("x-sdk-date", "20240317T144237Z"),
    ];
    let request = apig::Request {
        method: "GET",
        path: "/api/mkp-openapi-public/global/v1/order/query",
        query: "orderId=MOCKPERIODYEARNEW&orderLineId=MOCKPERIODYEARNEW-000001",
        headers: &headers,
        body: b"",
    };
    c.bench_function("apig/sign_query_order", |b| {
        b.iter(|| {
            black_box(apig::sign(
                "bench-ak",
                "0123456789abcdef0123456789abcdef",
                black_box(&request),
            ))
        })
    });

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (sim, client) = rt.block_on(async {
        let sim = OpenApiSim::start(
            HashMap::from([("bench-ak".to_owned(), "bench-sk".to_owned())]),
            "127.0.0.1:0".parse().expect("addr"),
            "127.0.0.1:0".parse().expect("addr"),
        )
        .await
        .expect("the simulator listens");
        sim.place(SimOrder::yearly("CSBENCH", 50, chrono::Utc::now()));
        let client = OpenApiClient::new(
            OpenApiSettings {
                primary: koogallery::config::marketplace::base_url(
                    "KOOGALLERY_OPENAPI_URL",
                    &sim.primary_url(),
                )
                .expect("loopback"),
                fallback: None,
                timeout: Duration::from_secs(5),
            },
            OpenApiKeys {
                ak: "bench-ak".into(),
                sk: SecretKey::new("bench-sk"),
            },
        )
        .expect("client");
        (sim, client)
    });
    // Built once: the round trip is measured, not the IDs' allocation.
    let (order, line) = (
        OrderId::from("CSBENCH"),
        OrderLineId::from("CSBENCH-000001"),
    );
    c.bench_function("openapi/query_order_round_trip", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(client.query_order(&order, &line).await.expect("served")) })
    });
    drop(sim);
}

criterion_group!(benches, bench);
criterion_main!(benches);
