//! `POST /usage` through the Lambda handler: statuses, JSON answers and headers as API Gateway
//! hands them over, on the memory store.

use std::sync::Arc;

use chrono::{Duration, Utc};
use koogallery::{
    clock::Clock,
    instance::{Instance, InstanceStore},
    metering::{UsageStore, WindowKey, api::sign, package::PackageQuotaList, window_start},
    security::SecretKey,
    testing::{ManualClock, MemoryStore},
};
use lambda_http::http;

use super::*;

const KEY: &str = "app-usage-key";

struct Bed {
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
    ingestion: UsageIngestion,
}

async fn bed(key: Option<&str>) -> Bed {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::at(Utc::now()));
    let (instance, event) =
        Instance::new_provisioning(&"O-1".into(), &"O-1-1".into(), "biz-1", false, clock.now());
    store
        .create_for_order_line(&instance, &[event])
        .await
        .unwrap();
    clock.advance(Duration::minutes(1));
    let ingestion = UsageIngestion {
        key: key.map(SecretKey::new),
        nonces: store.clone(),
        instances: store.clone(),
        usage: store.clone(),
        jobs: Arc::new(koogallery::testing::MemoryQueue::new()),
        quotas: Arc::new(PackageQuotaList::default()),
        clock: clock.clone(),
    };
    Bed {
        store,
        clock,
        ingestion,
    }
}

fn batch(b: &Bed, instance: &str, key: &str) -> String {
    json!({"records": [{
        "instanceId": instance,
        "quantity": "1.5",
        "occurredAt": b.clock.now().to_rfc3339(),
        "idempotencyKey": key,
    }]})
    .to_string()
}

/// A request as API Gateway passes it: headers, raw body.
fn request(headers: &[(&str, String)], body: &str) -> Request {
    let mut builder = http::Request::builder().method("POST").uri("/usage");
    for (name, value) in headers {
        builder = builder.header(*name, value);
    }
    builder.body(Body::from(body.to_owned())).unwrap()
}

fn signed(b: &Bed, key: &str, body: &str) -> Request {
    request(&sign(key, body.as_bytes(), b.clock.now()), body)
}

async fn call(b: &Bed, req: Request) -> (u16, Value) {
    let response = serve(&b.ingestion, req).await;
    assert_eq!(
        response.headers().get(CONTENT_TYPE).unwrap(),
        "application/json"
    );
    let status = response.status().as_u16();
    let json = serde_json::from_slice(response.body().as_ref()).expect("a JSON answer");
    (status, json)
}

#[tokio::test]
async fn a_signed_batch_is_ingested_and_its_replay_refused() {
    let b = bed(Some(KEY)).await;
    let body = batch(&b, "biz-1", "e-1");
    let req = signed(&b, KEY, &body);
    let replay = request(
        &req.headers()
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap().to_owned()))
            .collect::<Vec<_>>(),
        &body,
    );
    assert_eq!(
        call(&b, req).await,
        (200, json!({"applied": 1, "duplicates": 0}))
    );
    let window = b
        .store
        .window(&WindowKey {
            instance_id: "biz-1".into(),
            start: window_start(b.clock.now()),
            package: None,
        })
        .await
        .unwrap()
        .expect("the window the report opened");
    assert_eq!(window.total.to_string(), "1.5");
    let (status, json) = call(&b, replay).await;
    assert_eq!(status, 401);
    assert_eq!(json["retryable"], false);
    assert!(json["error"].as_str().unwrap().contains("nonce"), "{json}");
    // A new signature of the same batch: applied once (the idempotency key).
    assert_eq!(
        call(&b, signed(&b, KEY, &body)).await,
        (200, json!({"applied": 0, "duplicates": 1}))
    );
}

#[tokio::test]
async fn refusals_answer_their_status_and_reason_as_json() {
    let b = bed(Some(KEY)).await;
    // Wrong key, missing headers.
    let body = batch(&b, "biz-1", "e-1");
    assert_eq!(call(&b, signed(&b, "other-key", &body)).await.0, 401);
    assert_eq!(call(&b, request(&[], &body)).await.0, 401);
    // An unknown instance: 400 with the report's index, nothing stored.
    let (status, json) = call(&b, signed(&b, KEY, &batch(&b, "nobody", "e-2"))).await;
    assert_eq!(status, 400);
    assert_eq!(json["index"], 0);
    assert!(json["error"].as_str().unwrap().contains("nobody"), "{json}");
    assert!(b.store.windows_of("nobody").await.unwrap().is_empty());
    // A body that is not a batch.
    let (status, json) = call(&b, signed(&b, KEY, r#"{"records":[{"instanceId":1}]}"#)).await;
    assert_eq!(status, 400);
    assert!(
        json["error"].as_str().unwrap().contains("records[0]"),
        "{json}"
    );
    // Too large: refused before anything is read.
    let huge = "x".repeat(MAX_BODY_BYTES + 1);
    let (status, json) = call(&b, signed(&b, KEY, &huge)).await;
    assert_eq!((status, &json["retryable"]), (413, &json!(false)));
}

#[tokio::test]
async fn without_a_usage_key_every_request_says_so() {
    let b = bed(None).await;
    let body = batch(&b, "biz-1", "e-1");
    let (status, json) = call(&b, signed(&b, KEY, &body)).await;
    assert_eq!(status, 503);
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("KOOGALLERY_USAGE_KEY"),
        "{json}"
    );
}

/// `GET /usage/estimate` through the same handler: signed over the raw query, priced by the
/// SKU's model; a GET without the signature is refused.
#[tokio::test]
async fn a_get_is_an_estimate_signed_over_its_query() {
    use koogallery::metering::{estimate::UsageEstimates, pricing::PriceList};
    let b = bed(Some(KEY)).await;
    koogallery::instance::mutate(b.store.as_ref(), "biz-1", |i| {
        i.order = Some(koogallery::order::OrderDetails {
            sku_code: Some("sku-min".into()),
            ..Default::default()
        });
        Ok(koogallery::instance::Outcome::Quiet)
    })
    .await
    .unwrap();
    let body = batch(&b, "biz-1", "e1");
    assert_eq!(call(&b, signed(&b, KEY, &body)).await.0, 200);
    let estimates = UsageEstimates {
        key: b.ingestion.key.clone(),
        nonces: b.store.clone(),
        instances: b.store.clone(),
        usage: b.store.clone(),
        prices: Arc::new(
            PriceList::from_json(r#"{"sku-min":{"model":"linear","unitPrice":"2"}}"#).unwrap(),
        ),
        clock: b.clock.clone(),
    };
    let get = |headers: &[(&str, String)], query: &str| {
        let mut builder = http::Request::builder()
            .method("GET")
            .uri(format!("/usage/estimate?{query}"));
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        builder.body(Body::Empty).unwrap()
    };
    let from = (b.clock.now() - Duration::hours(2)).timestamp();
    let query = format!(
        "instanceId=biz-1&from={}",
        chrono::DateTime::from_timestamp(from, 0)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%SZ")
    );
    let headers = sign(KEY, query.as_bytes(), b.clock.now());
    let response = route(&b.ingestion, &estimates, get(&headers, &query)).await;
    assert_eq!(response.status().as_u16(), 200);
    let json: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    assert_eq!(
        (json["quantity"].as_str(), json["amount"].as_str()),
        (Some("1.5"), Some("3"))
    );
    let response = route(&b.ingestion, &estimates, get(&[], &query)).await;
    assert_eq!(response.status().as_u16(), 401);
}
