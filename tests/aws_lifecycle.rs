//! The whole lifecycle over real HTTP with the local host on the AWS adapters (DynamoDB and SQS on
//! the emulator), including 16 concurrent duplicate newInstance calls. `make test` starts the
//! emulator; pay-per-use on the same adapters is `aws_usage.rs`.

use std::{sync::Arc, time::Duration};

use koogallery::{ResultCode, testing::ScriptedProvisioner};
use koogallery_e2e::{KEY, config, sixteen_concurrent_duplicates, wait_for};
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
    let settings = LocalSettings::on_loopback(data.path());
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
        v1: false,
        poll_timeout: Duration::from_secs(30),
        poll_interval: Duration::from_millis(100),
    };
    let report = sim
        .run_lifecycle(&opts)
        .await
        .expect("lifecycle passes on DynamoDB + SQS");
    println!("{report}");
    assert!(report.steps.iter().all(|s| s.ok));
    // Every call KooGallery made is in the exchange log on the table, found by its order; the
    // host writes its last batch as it stops.
    let log = koogallery_aws::DynamoExchangeLog::from(h.backend.store.as_ref());
    h.shutdown().await;
    use koogallery::exchange::{ExchangeFilter, ExchangeLog, ExchangeQuery};
    let kept = log
        .find(
            &ExchangeQuery::newest(ExchangeFilter::Order(opts.order_id.clone()), 500),
            chrono::Utc::now(),
        )
        .await
        .expect("the exchange log reads");
    assert!(
        kept.iter().any(|e| e.activity == "newInstance"),
        "newInstance is kept by its order: {:?}",
        kept.iter().map(|e| &e.activity).collect::<Vec<_>>()
    );
}

/// A V1 (GET) purchase on DynamoDB + SQS (docs/protocol/callbacks.md §11).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn v1_lifecycle_through_the_aws_adapters() {
    let provisioner = Arc::new(koogallery::testing::ScriptedProvisioner::default());
    let (h, _data) = host(Some(provisioner)).await;
    let sim = Simulator::new(&h.produce_url(), KEY).unwrap();
    let opts = LifecycleOptions {
        order_id: format!("CSAWSV1{}", uuid_like()),
        test_flag: false,
        v1: true,
        poll_timeout: Duration::from_secs(30),
        poll_interval: Duration::from_millis(100),
    };
    let report = sim
        .run_lifecycle(&opts)
        .await
        .expect("the V1 lifecycle passes on DynamoDB + SQS");
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
