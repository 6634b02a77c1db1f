//! `SecretsManagerSecrets` against the emulator: each part from its own secret, read once,
//! cached, clear errors.

mod common;

use common::{emulator_config, unique};
use std::error::Error;

use koogallery::config::{SecretPart, Secrets, SecretsError};
use koogallery_aws::SecretsManagerSecrets;

async fn create(client: &aws_sdk_secretsmanager::Client, prefix: &str, value: &str) -> String {
    let id = unique(prefix);
    client
        .create_secret()
        .name(&id)
        .secret_string(value)
        .send()
        .await
        .unwrap();
    id
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn keys_are_read_once_and_cached() {
    let config = emulator_config().await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let keys = create(
        &client,
        "koogallery-callback-keys",
        r#"{"accessKey":"ak","accessKeyPrevious":"ak0","kitKey":"kk"}"#,
    )
    .await;
    let webhook = create(&client, "koogallery-webhook", r#"{"webhookSecret":"wh"}"#).await;
    let secrets = SecretsManagerSecrets::new(
        client.clone(),
        [
            (SecretPart::CallbackKeys, keys.clone()),
            (SecretPart::Webhook, webhook),
        ],
    );
    let both = [SecretPart::CallbackKeys, SecretPart::Webhook];
    let held = secrets.read_parts(&both).await.unwrap();
    let k = held.keys.as_ref().unwrap();
    assert_eq!(k.basic.current.expose(), "ak");
    assert_eq!(k.basic.previous.as_ref().map(|k| k.expose()), Some("ak0"));
    assert_eq!(k.kit.current.expose(), "kk");
    assert!(k.kit.previous.is_none());
    assert_eq!(held.webhook.as_ref().map(|k| k.expose()), Some("wh"));
    assert!(held.open_api.is_none() && held.usage.is_none());
    // Only the parts asked for.
    let only = secrets.read_parts(&[SecretPart::Webhook]).await.unwrap();
    assert!(only.keys.is_none() && only.webhook.is_some());

    // Cached for the life of the value: a rotated secret is not re-read.
    client
        .put_secret_value()
        .secret_id(&keys)
        .secret_string(r#"{"accessKey":"ak2","kitKey":"kk2"}"#)
        .send()
        .await
        .unwrap();
    let basic =
        |h: koogallery::config::HeldSecrets| h.keys.unwrap().basic.current.expose().to_owned();
    assert_eq!(basic(secrets.read_parts(&both).await.unwrap()), "ak");
    let fresh = SecretsManagerSecrets::new(client, [(SecretPart::CallbackKeys, keys)]);
    assert_eq!(
        basic(fresh.read_parts(&[SecretPart::CallbackKeys]).await.unwrap()),
        "ak2"
    );
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn errors_name_the_secret_or_the_field() {
    let config = emulator_config().await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let missing = unique("no-such-secret");
    let err = SecretsManagerSecrets::new(client.clone(), [(SecretPart::OpenApi, missing.clone())])
        .read_parts(&[SecretPart::OpenApi])
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(&missing)
            && err.to_string().contains("KOOGALLERY_OPENAPI_SECRET_ID"),
        "{err}"
    );
    // The service's own answer is kept as the source, for code that inspects it.
    let detail = err.source().expect("a detail");
    assert!(detail.source().is_some(), "{err:?}");

    let id = create(&client, "koogallery-keys", r#"{"accessKey":"ak-value"}"#).await;
    let secrets = SecretsManagerSecrets::new(client, [(SecretPart::CallbackKeys, id.clone())]);
    let err = secrets
        .read_parts(&[SecretPart::CallbackKeys])
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("kitKey") && err.to_string().contains(&id),
        "{err}"
    );
    assert!(!err.to_string().contains("ak-value"), "{err}");
    // A malformed secret is a set-up fault: retrying cannot mend it.
    assert!(
        matches!(err, SecretsError::Invalid(_)) && !err.is_retryable(),
        "{err:?}"
    );
    // A part no secret was given for is named, not silently empty.
    let err = secrets.read_parts(&[SecretPart::Usage]).await.unwrap_err();
    assert!(
        err.to_string().contains("KOOGALLERY_USAGE_KEY_SECRET_ID"),
        "{err}"
    );
}
