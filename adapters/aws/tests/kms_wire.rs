//! `KmsSealer`'s requests and KMS's answers as KMS's JSON API has them, against a stand-in on
//! loopback (the emulator cannot answer IncorrectKeyException or fail on purpose): the operation
//! header, the key, the key spec and the encryption context that binds a data key to its instance;
//! a wrong key opening as `Corrupt`, an outage as `Unavailable`; one Decrypt per wrapped key.

mod common;

use std::sync::{Arc, Mutex};

use aws_credential_types::Credentials;
use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
};
use koogallery::security::at_rest::{CredentialSealer, SealError, encode_base64};
use koogallery_aws::{
    KmsSealer,
    signed::{Service, SignedClient},
};
use serde_json::{Value, json};

const DATA_KEY: [u8; 32] = [7; 32];
const WRAPPED: &[u8] = b"wrapped-by-kms";

/// What the stand-in received (operation, body), and how it answers Decrypt.
struct Kms {
    received: Mutex<Vec<(String, Value)>>,
    decrypt: Mutex<(StatusCode, String)>,
}

async fn kms(State(k): State<Arc<Kms>>, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    let target = headers["x-amz-target"].to_str().unwrap().to_owned();
    assert_eq!(headers["content-type"], "application/x-amz-json-1.1");
    let body: Value = serde_json::from_slice(&body).unwrap();
    k.received.lock().unwrap().push((target.clone(), body));
    match target.as_str() {
        "TrentService.GenerateDataKey" => (
            StatusCode::OK,
            json!({
                "KeyId": "arn:aws:kms:eu-west-1:1:key/k",
                "Plaintext": encode_base64(&DATA_KEY),
                "CiphertextBlob": encode_base64(WRAPPED),
            })
            .to_string(),
        ),
        _ => k.decrypt.lock().unwrap().clone(),
    }
}

async fn sealer(k: Arc<Kms>) -> KmsSealer {
    let (sdk, http) = common::stand_in(
        Router::new().fallback(kms).with_state(k),
        Credentials::for_tests(),
    )
    .await;
    let client = SignedClient::new(&sdk, &http, Service::Kms).unwrap();
    KmsSealer::new(client, "alias/credentials")
}

fn stand_in(decrypt: (StatusCode, Value)) -> Arc<Kms> {
    Arc::new(Kms {
        received: Mutex::new(Vec::new()),
        decrypt: Mutex::new((decrypt.0, decrypt.1.to_string())),
    })
}

#[tokio::test]
async fn seals_under_a_data_key_bound_to_the_instance_and_opens_with_one_decrypt() {
    let k = stand_in((
        StatusCode::OK,
        json!({"KeyId": "k", "Plaintext": encode_base64(&DATA_KEY)}),
    ));
    let sealed = sealer(k.clone()).await.seal("i-1", "pa55").await.unwrap();
    assert!(sealed.starts_with(&format!("kms2.{}.", encode_base64(WRAPPED))));
    let (op, body) = k.received.lock().unwrap()[0].clone();
    assert_eq!(op, "TrentService.GenerateDataKey");
    assert_eq!(
        body,
        json!({"KeyId": "alias/credentials", "KeySpec": "AES_256", "EncryptionContext": {"instanceId": "i-1"}})
    );

    // Another execution environment (no cached key) opens it with one Decrypt per wrapped key.
    let other = sealer(k.clone()).await;
    assert_eq!(other.open("i-1", &sealed).await.unwrap(), "pa55");
    assert_eq!(other.open("i-1", &sealed).await.unwrap(), "pa55");
    let received = k.received.lock().unwrap().clone();
    assert_eq!(received.len(), 2, "{received:?}");
    assert_eq!(received[1].0, "TrentService.Decrypt");
    assert_eq!(
        received[1].1,
        json!({"KeyId": "alias/credentials", "CiphertextBlob": encode_base64(WRAPPED), "EncryptionContext": {"instanceId": "i-1"}})
    );
}

#[tokio::test]
async fn a_wrong_key_is_corrupt_and_an_outage_unavailable() {
    let k = stand_in((
        StatusCode::BAD_REQUEST,
        json!({"__type": "IncorrectKeyException", "message": "not this key"}),
    ));
    let sealed = sealer(k.clone()).await.seal("i-1", "pa55").await.unwrap();
    let fresh = sealer(k.clone()).await;
    assert!(matches!(
        fresh.open("i-1", &sealed).await.unwrap_err(),
        SealError::Corrupt(_)
    ));

    *k.decrypt.lock().unwrap() = (
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({"__type": "KMSInternalException"}).to_string(),
    );
    let before = k.received.lock().unwrap().len();
    assert!(matches!(
        fresh.open("i-1", &sealed).await.unwrap_err(),
        SealError::Unavailable(_)
    ));
    // A server error is retried: three attempts in all.
    assert_eq!(k.received.lock().unwrap().len() - before, 3);
}
