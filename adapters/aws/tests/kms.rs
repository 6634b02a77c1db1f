//! `KmsSealer` against the emulator: envelope encryption of passwords at rest under a KMS key.

mod common;

use common::emulator_config;
use koogallery::testing::contract::credential_sealer_contract;
use koogallery_aws::KmsSealer;

/// A new symmetric key on the emulator.
async fn new_key(client: &aws_sdk_kms::Client) -> String {
    client
        .create_key()
        .description("koogallery credentials (test)")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn kms_sealer_passes_the_sealer_contract() {
    let config = emulator_config().await;
    let client = aws_sdk_kms::Client::new(&config);
    let key = new_key(&client).await;
    let sealer = KmsSealer::new(client.clone(), &key);
    let again = KmsSealer::new(client.clone(), &key);
    credential_sealer_contract(&sealer, &again).await;
    // Another key cannot open it.
    let other_key = new_key(&client).await;
    use koogallery::security::at_rest::CredentialSealer;
    let sealed = sealer.seal("only-for-the-right-key").await.unwrap();
    assert!(sealed.starts_with("kms1."));
    assert!(
        KmsSealer::new(client, other_key)
            .open(&sealed)
            .await
            .is_err()
    );
}
