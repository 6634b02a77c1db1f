//! `KmsSealer` against the emulator: envelope encryption of passwords at rest under a KMS key,
//! through the signed KMS client (its requests, signature and error answers as KMS's JSON API
//! has them).

mod common;

use bytes::Bytes;
use common::emulator_config;
use koogallery::security::at_rest::{
    CredentialSealer, SealError, aead_seal, decode_base64, encode_base64, unbound_v1,
};
use koogallery::testing::contract::credential_sealer_contract;
use koogallery_aws::{
    AwsHttp, KmsSealer, Roots,
    signed::{Call, DEFAULT_ATTEMPT_TIMEOUT, Service, SignedClient, SignedError},
};
use serde_json::{Value, json};

fn kms(config: &aws_config::SdkConfig) -> SignedClient {
    SignedClient::new(config, &AwsHttp::new(Roots::System), Service::Kms).unwrap()
}

/// One KMS operation on the emulator, as a test sets it up (`CreateKey`, a version-1 data key).
async fn kms_call(
    config: &aws_config::SdkConfig,
    operation: &str,
    body: Value,
) -> Result<Value, SignedError> {
    let target = format!("TrentService.{operation}");
    let answer = kms(config)
        .call(&Call {
            path: "/",
            content_type: "application/x-amz-json-1.1",
            headers: &[("x-amz-target", &target)],
            body: Bytes::from(body.to_string()),
            timeout: DEFAULT_ATTEMPT_TIMEOUT,
        })
        .await?;
    Ok(serde_json::from_slice(&answer.body).unwrap())
}

/// A new symmetric key on the emulator.
async fn new_key(config: &aws_config::SdkConfig) -> String {
    let created = kms_call(
        config,
        "CreateKey",
        json!({"Description": "koogallery credentials (test)"}),
    )
    .await
    .unwrap();
    created["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned()
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn kms_sealer_passes_the_sealer_contract() {
    let config = emulator_config().await;
    let key = new_key(&config).await;
    let sealer = KmsSealer::new(kms(&config), &key);
    let again = KmsSealer::new(kms(&config), &key);
    credential_sealer_contract(&sealer, &again).await;
    // Another key cannot open it (real KMS answers IncorrectKeyException, which opens as
    // `Corrupt`; the emulator answers AccessDeniedException).
    let other_key = new_key(&config).await;
    let sealed = sealer.seal("i-1", "only-for-the-right-key").await.unwrap();
    assert!(sealed.starts_with("kms2."));
    assert!(
        KmsSealer::new(kms(&config), other_key)
            .open("i-1", &sealed)
            .await
            .is_err()
    );

    // Sealed by the version-1 code (no encryption context, unbound associated data) still opens.
    let data_key = kms_call(
        &config,
        "GenerateDataKey",
        json!({"KeyId": key, "KeySpec": "AES_256"}),
    )
    .await
    .unwrap();
    let plain_key: [u8; 32] = decode_base64("key", data_key["Plaintext"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let v1 = format!(
        "kms1.{}.{}",
        data_key["CiphertextBlob"].as_str().unwrap(),
        encode_base64(&aead_seal(&plain_key, unbound_v1(), b"old-pass"))
    );
    assert_eq!(
        KmsSealer::new(kms(&config), &key)
            .open("any", &v1)
            .await
            .unwrap(),
        "old-pass"
    );
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn kms_errors_keep_the_service_error_type_and_are_not_retried() {
    let config = emulator_config().await;
    let err = kms_call(
        &config,
        "Decrypt",
        json!({"CiphertextBlob": encode_base64(b"not a wrapped key")}),
    )
    .await
    .unwrap_err();
    assert!(
        err.code()
            .is_some_and(|c| !c.is_empty() && !c.contains('#')),
        "{err}"
    );
    assert!(!err.is_retryable(), "{err}");
    // A key that does not exist is the service's answer, not a transport failure.
    let sealer = KmsSealer::new(kms(&config), "alias/koogallery-no-such-key");
    assert!(matches!(
        sealer.seal("i-1", "x").await.unwrap_err(),
        SealError::Unavailable(_)
    ));
}
