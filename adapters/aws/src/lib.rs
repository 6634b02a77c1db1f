//! The AWS adapters of the KooGallery production interface:
//!
//! - [`DynamoStore`]: [`InstanceStore`](koogallery::instance::InstanceStore) and
//!   [`NonceStore`](koogallery::security::replay::NonceStore) on one DynamoDB table (key schema in [`dynamo`]),
//!   with the exact semantics of the memory store of `koogallery::testing`.
//! - [`SqsQueue`]: [`JobQueue`](koogallery::jobs::JobQueue) on SQS, plus the consumer helpers a
//!   local polling loop and the tests use (on AWS the Lambda event source receives and deletes).
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
//! - [`bootstrap`]: creates the table and queues on the emulator (SAM creates them on AWS).
//!
//! Every client is built from [`sdk_config`], which honours `AWS_ENDPOINT_URL` and `AWS_REGION`:
//! that is how tests and local runs point the adapters at the emulator (`scripts/emulator.sh`).

pub mod bootstrap;
pub mod directory;
pub mod dispatch;
pub mod dynamo;
pub mod kms;
pub mod secrets;
pub mod sqs;
pub mod usage;

pub use directory::DynamoDirectory;
pub use dispatch::{DispatcherConfigError, LambdaDispatcher};
pub use dynamo::DynamoStore;
pub use kms::KmsSealer;
pub use secrets::{SecretsManagerSecrets, part_from_secret_json};
pub use sqs::{SqsConsumer, SqsQueue, from_lambda_event};
pub use usage::DynamoUsageStore;

use aws_config::BehaviorVersion;
pub use aws_config::SdkConfig;

/// The shared SDK configuration: region, credentials and endpoint from the environment and the
/// usual AWS configuration chain. `AWS_ENDPOINT_URL` (e.g. `http://127.0.0.1:5055`) sends every
/// client to the emulator.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .load()
        .await
}

/// [`sdk_config`] with `endpoint` instead of `AWS_ENDPOINT_URL` (a test's proxy in front of the
/// emulator).
pub async fn sdk_config_at(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .endpoint_url(endpoint)
        .load()
        .await
}

/// The SDK's HTTPS client on rustls with ring, not the SDK's default (aws-lc-rs: a long C build and
/// a larger binary). Certificates are verified against the system's roots, as the default does.
fn https_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
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

    use super::whole_secs;

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
