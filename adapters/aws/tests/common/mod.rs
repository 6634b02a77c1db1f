//! Shared set-up of the emulator tests: the SDK configuration from the environment that
//! `scripts/emulator.sh start` prints, and unique resource names.

#![allow(dead_code)]

use std::time::Duration;

/// The SDK configuration for the emulator. Panics with instructions when `AWS_ENDPOINT_URL` is not
/// set: these tests must never run against real AWS by accident.
pub async fn emulator_config() -> aws_config::SdkConfig {
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let Some(endpoint) = endpoint else {
        panic!(
            "AWS_ENDPOINT_URL is not set: these tests need the AWS emulator. Run \
             `scripts/tools.sh && eval \"$(scripts/emulator.sh start)\"` (which exports \
             AWS_ENDPOINT_URL=http://127.0.0.1:5055 AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test \
             AWS_SECRET_ACCESS_KEY=test), then `cargo test -p koogallery-aws -- --include-ignored`"
        );
    };
    let config = koogallery_aws::sdk_config().await;
    assert!(
        config.region().is_some(),
        "AWS_REGION is not set (emulator at {endpoint}); export AWS_REGION=us-east-1"
    );
    config
}

/// A name no other test run uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Polls `probe` every 100 ms until it yields a value or `timeout` passes.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Serves `app` on loopback, a stand-in for one AWS service, and the SDK configuration pointed at
/// it (region eu-west-1, `credentials`, the adapters' HTTP client, which is also returned for the
/// signed calls).
pub async fn stand_in(
    app: axum::Router,
    credentials: aws_credential_types::Credentials,
) -> (aws_config::SdkConfig, koogallery_aws::AwsHttp) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let http = koogallery_aws::AwsHttp::new(koogallery_aws::Roots::System);
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .endpoint_url(endpoint)
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(credentials),
        )
        .http_client(http.sdk_client())
        .build();
    (sdk, http)
}

/// A DynamoDB client on the emulator and a new table named after `prefix`, created as the
/// template creates it (a table per test: no other run's items share its partitions).
pub async fn client_and_table(prefix: &str) -> (aws_sdk_dynamodb::Client, String) {
    let config = emulator_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = unique(prefix);
    koogallery_aws::bootstrap::ensure_table(&client, &table)
        .await
        .unwrap();
    (client, table)
}

/// The item at (`pk`, `sk`) as stored, read consistently: what a test checks the documented
/// item layout against.
pub async fn raw(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    pk: &str,
    sk: &str,
) -> Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    use aws_sdk_dynamodb::types::AttributeValue;
    use koogallery_aws::dynamo::keys::{PK, SK};
    client
        .get_item()
        .table_name(table)
        .key(PK, AttributeValue::S(pk.into()))
        .key(SK, AttributeValue::S(sk.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}
