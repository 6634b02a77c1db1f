//! The whole lifecycle over real HTTP with the local host on the AWS adapters (DynamoDB and SQS on
//! the emulator), including 16 concurrent duplicate newInstance calls, and usage reported over HTTP
//! and pushed to the simulated open API from DynamoDB. `make test` starts the emulator.

use std::{sync::Arc, time::Duration};

use koogallery::{
    ResultCode,
    instance::{CreateOutcome, Instance, InstanceStore},
    metering::{api::UsageRecordIn, window_start},
    testing::ScriptedProvisioner,
};
use koogallery_e2e::{KEY, config, sixteen_concurrent_duplicates, wait_for, with_openapi};
use koogallery_local::{
    LocalSettings,
    aws::{AwsSettings, RunningAwsHost, start_aws},
};
use koogallery_sim::{LifecycleOptions, Simulator};

fn require_emulator() {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "AWS_ENDPOINT_URL is not set: run through `make test`, which starts the emulator"
    );
}

/// A host and its own data directory (removed when the test ends): tests never share one, so
/// nothing an earlier or a parallel run left behind can change what a test sees.
async fn host(
    provisioner: Option<Arc<dyn koogallery::provisioning::Provisioner>>,
) -> (RunningAwsHost, tempfile::TempDir) {
    host_with(config(), provisioner).await
}

async fn host_with(
    config: koogallery::config::Config,
    provisioner: Option<Arc<dyn koogallery::provisioning::Provisioner>>,
) -> (RunningAwsHost, tempfile::TempDir) {
    require_emulator();
    let data = tempfile::tempdir().expect("a data directory for this test");
    let unique = uuid_like();
    let aws = AwsSettings {
        table: format!("e2e-{unique}"),
        queue: format!("e2e-{unique}"),
    };
    let settings = LocalSettings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data.path().to_path_buf(),
    };
    let host = start_aws(config, settings, aws, provisioner)
        .await
        .expect("host on the AWS adapters starts");
    (host, data)
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn full_lifecycle_through_the_aws_adapters() {
    let (h, _data) = host(None).await;
    let sim = Simulator::new(&h.produce_url(), KEY).unwrap();
    let opts = LifecycleOptions {
        order_id: format!("CSAWS{}", uuid_like()),
        test_flag: false,
        poll_timeout: Duration::from_secs(30),
        poll_interval: Duration::from_millis(100),
    };
    let report = sim
        .run_lifecycle(&opts)
        .await
        .expect("lifecycle passes on DynamoDB + SQS");
    println!("{report}");
    assert!(report.steps.iter().all(|s| s.ok));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn sixteen_concurrent_duplicates_make_one_instance_on_dynamodb() {
    let provisioner = Arc::new(ScriptedProvisioner::default());
    let (h, _data) = host(Some(provisioner.clone())).await;
    let sim = Arc::new(Simulator::new(&h.produce_url(), KEY).unwrap());
    let id = sixteen_concurrent_duplicates(sim.clone(), &format!("CSDUP{}", uuid_like())).await;
    wait_for(&sim, &id, ResultCode::Success).await;
    assert_eq!(provisioner.provision_calls(), 1, "provisioned exactly once");
    h.shutdown().await;
}

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
    let (h, _data) = host_with(cfg, None).await;

    let hour = window_start(chrono::Utc::now());
    let id = format!("use-aws-{}", uuid_like());
    let (instance, event) = Instance::new_provisioning(
        &format!("CS{id}"),
        &format!("CS{id}-1"),
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
