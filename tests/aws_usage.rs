//! Pay-per-use end to end with the local host on the AWS adapters (DynamoDB and SQS on the
//! emulator): usage reported over HTTP and pushed to the simulated open API from DynamoDB. `make
//! test` starts the emulator; the same on the embedded store is `usage.rs`.

use std::time::Duration;

use koogallery::{
    instance::{CreateOutcome, Instance, InstanceStore},
    metering::{api::UsageRecordIn, window_start},
};
use koogallery_e2e::{KEY, aws_host, config, unique, with_openapi};

/// Pay-per-use on the AWS adapters: `POST /usage` into DynamoDB (a retried batch applied once, a
/// refused one storing nothing), then the push timer sends each closed hour to KooGallery once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn usage_is_ingested_into_dynamodb_and_pushed() {
    const USAGE_KEY: &str = "e2e-usage-key";
    let (openapi, mut cfg) = with_openapi(config(), false, Duration::from_secs(2)).await;
    openapi.set_interconnection_key(KEY);
    cfg.secrets.usage = Some(koogallery::security::SecretKey::new(USAGE_KEY));
    cfg.settings.metering.push_every = Duration::from_millis(200);
    cfg.settings.metering.push.grace = chrono::Duration::zero();
    let (h, _data) = aws_host(cfg, None, None).await;

    let hour = window_start(chrono::Utc::now());
    let id = format!("use-aws-{}", unique());
    let (instance, event) = Instance::new_provisioning(
        &format!("CS{id}").into(),
        &format!("CS{id}-1").into(),
        &id,
        false,
        hour - chrono::Duration::hours(5),
    );
    assert_eq!(
        h.backend
            .store
            .create_for_order_line(&instance, &[event])
            .await
            .unwrap(),
        CreateOutcome::Created
    );
    let report = |back: i64, minute: i64, quantity: &str, key: &str| UsageRecordIn {
        instance_id: id.clone(),
        quantity: quantity.parse().unwrap(),
        occurred_at: hour - chrono::Duration::hours(back) + chrono::Duration::minutes(minute),
        idempotency_key: format!("{id}-{key}"),
        package_instance_id: None,
    };
    let batch = vec![
        report(2, 5, "1.25", "a"),
        report(2, 40, "2", "b"),
        report(1, 30, "0.5", "c"),
    ];
    let client =
        koogallery_sim::usage::UsageClient::new(&format!("http://{}/usage", h.addr), USAGE_KEY)
            .unwrap();
    let answer = client.send_until_taken(&batch, 20).await.expect("taken");
    assert_eq!(
        (answer.status, &answer.body["applied"]),
        (200, &serde_json::json!(3)),
        "{:?}",
        answer.body
    );
    let again = client.send_until_taken(&batch, 20).await.expect("taken");
    assert_eq!(again.body["duplicates"], 3, "{:?}", again.body);
    let mut refused = batch.clone();
    refused[0].idempotency_key = format!("{id}-new");
    refused[1].instance_id = "nobody".into();
    let answer = client
        .send_until_taken(&refused, 20)
        .await
        .expect("answered");
    assert_eq!(
        (answer.status, &answer.body["index"]),
        (400, &serde_json::json!(1))
    );

    // The push timer: two closed hours, each pushed once with what was ingested.
    let mut pushed = Vec::new();
    for _ in 0..150 {
        pushed = openapi.usage().0;
        if pushed.iter().filter(|r| r.instance_id == id).count() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut mine: Vec<(String, String)> = pushed
        .into_iter()
        .filter(|r| r.instance_id == id)
        .map(|r| (r.begin_time, r.usage_value))
        .collect();
    mine.sort();
    let values: Vec<&str> = mine.iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(values, ["3.25", "0.5"], "{mine:?}");
    assert!(openapi.usage_conflicts().is_empty());
    h.shutdown().await;
}
