//! The AWS adapters of the KooGallery production interface:
//!
//! - [`DynamoStore`]: [`InstanceStore`](koogallery::instance::InstanceStore) and
//!   [`NonceStore`](koogallery::security::replay::NonceStore) on one DynamoDB table (key schema in [`dynamo`]),
//!   with the exact semantics of the memory store of `koogallery::testing`; also the operator's
//!   [`InstanceListing`](koogallery::operator::InstanceListing) (a `Scan`, see `dynamo/listing.rs`;
//!   its IAM actions in [`dynamo::operator_iam_actions`]).
//! - [`SqsQueue`]: [`JobQueue`](koogallery::jobs::JobQueue) on SQS, plus the consumer helpers a
//!   local polling loop and the tests use (on AWS the Lambda event source receives and deletes).
//! - [`SqsDeadLetters`]: the operator's [`DeadLetters`](koogallery::operator::DeadLetters) port on
//!   the jobs' dead-letter queue (listed, redriven to the jobs queue, discarded; each a sweep of
//!   the DLQ, which has no access by ID).
//! - [`SecretsManagerSecrets`]: the [`Secrets`](koogallery::config::Secrets) port on Secrets Manager,
//!   one secret per [`SecretPart`](koogallery::config::SecretPart), each fetched once per execution
//!   environment; [`part_from_secret_json`] is its pure parser.
//! - [`LambdaDispatcher`]: the edge's [`Dispatcher`](koogallery::callbacks::Dispatcher), a synchronous
//!   invocation of the callback function that serves the activity.
//! - [`KmsSealer`]: the [`CredentialSealer`](koogallery::security::at_rest::CredentialSealer) port:
//!   passwords at rest sealed by envelope encryption under the template's KMS key.
//! - [`DynamoUsageStore`]: the [`UsageStore`](koogallery::metering::UsageStore) port (usage windows,
//!   idempotency keys, packages) on the same table, batches over DynamoDB's 100-item transactions
//!   split so that a retry applies each report once (key schema in [`usage`]).
//! - [`DynamoDirectory`]: the [`TenantDirectory`](koogallery::directory::TenantDirectory) port
//!   (the Kit syncs' tenants, apps, users, departments and their numbered events) on the same
//!   table, one partition per tenant (key schema in [`directory`]).
//! - [`DynamoSso`]: the SSO stores ([`SsoStore`](koogallery::sso::SsoStore): sessions, grants,
//!   OIDC clients, signing keys; docs/protocol/decisions.md §19) on the same table (key schema in
//!   [`sso`]); [`DynamoDirectory`] is also the [`TenantLocator`](koogallery::sso::TenantLocator),
//!   and the operator's [`KitTenants`](koogallery::operator::KitTenants) (a `Scan`, see
//!   `directory/instance_tenants.rs`).
//! - [`DynamoLicenses`]: the [`LicenseStore`](koogallery::license::LicenseStore) port (license
//!   codes and their daily usage; docs/protocol/decisions.md §21) on the same table (key schema in
//!   [`license`]); also the operator's [`OrderLicenses`](koogallery::operator::OrderLicenses) (a
//!   `Scan`, see `license/orders.rs`).
//! - [`DynamoExchangeLog`]: the [`ExchangeLog`](koogallery::exchange::ExchangeLog) port (every
//!   call KooGallery made, redacted, for a retention) on the same table, under its instance's, its
//!   order's and its day's partitions (key schema in [`dynamo::exchanges`]).
//! - [`bootstrap`]: creates the table and queues on the emulator (SAM creates them on AWS).
//!
//! - [`AwsHttp`]: the one HTTPS client of every AWS call (the SDK's and the signed ones, [`signed`]),
//!   which counts them by service and operation when a test installs [`AwsCalls`] ([`calls`]).
//!
//! Every client is built from [`sdk_config`] (a host's) or [`lambda_sdk_config`] (a function's),
//! which honour `AWS_ENDPOINT_URL` and `AWS_REGION`: that is how tests and local runs point the
//! adapters at the emulator (`scripts/emulator.sh`).

pub mod bootstrap;
pub mod calls;
pub mod directory;
pub mod dispatch;
pub mod dynamo;
pub mod http;
pub mod kms;
pub mod license;
pub mod secrets;
pub mod signed;
pub mod sqs;
pub mod sso;
pub mod usage;

pub use calls::AwsCalls;
pub use directory::DynamoDirectory;
pub use dispatch::{DispatcherConfigError, LambdaDispatcher};
pub use dynamo::{DynamoExchangeLog, DynamoStore};
pub use kms::KmsSealer;
pub use license::DynamoLicenses;
pub use secrets::{SecretsManagerSecrets, part_from_secret_json};
pub use sqs::{SqsConsumer, SqsDeadLetters, SqsQueue, from_lambda_event};
pub use sso::DynamoSso;
pub use usage::DynamoUsageStore;

use aws_config::BehaviorVersion;
pub use aws_config::SdkConfig;
pub use http::{AwsHttp, Roots};

/// The shared SDK configuration: region, credentials and endpoint from the environment and the
/// usual AWS configuration chain. `AWS_ENDPOINT_URL` (e.g. `http://127.0.0.1:5055`) sends every
/// client to the emulator.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(AwsHttp::new(Roots::System).sdk_client())
        .load()
        .await
}

/// The SDK configuration of a Lambda function, from its environment alone: the region
/// (`AWS_REGION`) and the execution role's credentials (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), which Lambda always sets, and `AWS_ENDPOINT_URL`
/// when set (the emulator). [`sdk_config`]'s chain also reads profile files and knows the instance
/// metadata service, web identity and STS, none of which a function uses: they cost it start-up
/// time and their code (STS's client among it). Retries and the connection timeout are
/// `aws_config`'s defaults (standard retries, 3.1 s).
/// Its calls go through `http` (a function's: [`Roots::Bundled`]).
pub fn lambda_sdk_config(
    env: &koogallery::config::Env,
    http: &AwsHttp,
) -> Result<SdkConfig, LambdaSdkConfigError> {
    use aws_types::sdk_config::{RetryConfig, SharedAsyncSleep, TimeoutConfig};
    let region = env
        .derived("AWS_REGION")
        .or_else(|| env.derived("AWS_DEFAULT_REGION"))
        .filter(|r| !r.trim().is_empty())
        .ok_or(LambdaSdkConfigError::NoRegion)?;
    let mut config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(aws_config::Region::new(region))
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
            ),
        )
        .http_client(http.sdk_client())
        .sleep_impl(SharedAsyncSleep::new(
            aws_smithy_async::rt::sleep::TokioSleep::new(),
        ))
        .retry_config(RetryConfig::standard())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(http::CONNECT_TIMEOUT)
                .build(),
        );
    if let Some(url) = env
        .derived("AWS_ENDPOINT_URL")
        .filter(|u| !u.trim().is_empty())
    {
        config = config.endpoint_url(url);
    }
    Ok(config.build())
}

/// A Lambda function's environment lacks what the SDK needs.
#[derive(Debug, thiserror::Error)]
pub enum LambdaSdkConfigError {
    #[error("AWS_REGION is not set (Lambda sets it; set it when running a function elsewhere)")]
    NoRegion,
}

/// [`sdk_config`] with `endpoint` instead of `AWS_ENDPOINT_URL` (a test's proxy in front of the
/// emulator).
pub async fn sdk_config_at(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(AwsHttp::new(Roots::System).sdk_client())
        .endpoint_url(endpoint)
        .load()
        .await
}

/// Whole seconds for an SQS time parameter: rounds a fraction up (a visibility timeout never hides
/// a message for less than asked) and caps at `max_secs`.
pub(crate) fn whole_secs(d: std::time::Duration, max_secs: i32) -> i32 {
    let secs = d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0));
    i32::try_from(secs).unwrap_or(i32::MAX).min(max_secs)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use koogallery::config::Env;

    use super::{AwsHttp, LambdaSdkConfigError, Roots, lambda_sdk_config, whole_secs};

    #[test]
    fn a_function_s_sdk_configuration_comes_from_its_environment() {
        let env = Env::from_fn(|k| match k {
            "AWS_REGION" => Some("eu-west-1".into()),
            "AWS_ENDPOINT_URL" => Some("http://127.0.0.1:5055".into()),
            _ => None,
        });
        let config = lambda_sdk_config(&env, &AwsHttp::new(Roots::Bundled)).unwrap();
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:5055"));
        assert!(config.credentials_provider().is_some());
        assert!(config.sleep_impl().is_some());
        assert_eq!(config.retry_config().map(|r| r.max_attempts()), Some(3));

        let fallback = Env::from_fn(|k| (k == "AWS_DEFAULT_REGION").then(|| "cn-north-1".into()));
        let config = lambda_sdk_config(&fallback, &AwsHttp::new(Roots::Bundled)).unwrap();
        assert_eq!(config.region().map(|r| r.as_ref()), Some("cn-north-1"));
        assert_eq!(config.endpoint_url(), None);

        assert!(matches!(
            lambda_sdk_config(&Env::empty(), &AwsHttp::new(Roots::Bundled)),
            Err(LambdaSdkConfigError::NoRegion)
        ));
    }

    #[test]
    fn whole_secs_rounds_up_and_caps() {
        assert_eq!(whole_secs(Duration::ZERO, 20), 0);
        assert_eq!(whole_secs(Duration::from_millis(1), 20), 1);
        assert_eq!(whole_secs(Duration::from_millis(1500), 20), 2);
        assert_eq!(whole_secs(Duration::from_secs(3), 20), 3);
        assert_eq!(whole_secs(Duration::from_secs(60), 20), 20);
        assert_eq!(whole_secs(Duration::MAX, 43_200), 43_200);
    }
}
