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
    let sealed = sealer.seal("i-1", "only-for-the-right-key").await.unwrap();
    assert!(sealed.starts_with("kms2."));
    assert!(
        KmsSealer::new(client.clone(), other_key)
            .open("i-1", &sealed)
            .await
            .is_err()
    );

    // Sealed by the version-1 code (no encryption context, unbound associated data) still opens.
    use koogallery::security::at_rest::{aead_seal, encode_base64, unbound_v1};
    let data_key = client
        .generate_data_key()
        .key_id(&key)
        .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
        .send()
        .await
        .unwrap();
    let plain_key: [u8; 32] = data_key.plaintext().unwrap().as_ref().try_into().unwrap();
    let v1 = format!(
        "kms1.{}.{}",
        encode_base64(data_key.ciphertext_blob().unwrap().as_ref()),
        encode_base64(&aead_seal(&plain_key, unbound_v1(), b"old-pass"))
    );
    assert_eq!(
        KmsSealer::new(client, &key).open("any", &v1).await.unwrap(),
        "old-pass"
    );
}
