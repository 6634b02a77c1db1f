//! `SecretsManagerSecrets` against the emulator: read once, cached, clear errors.

mod common;

use common::{emulator_config, unique};
use koogallery::config::Secrets;
use koogallery_aws::SecretsManagerSecrets;

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn keys_are_read_once_and_cached() {
    let config = emulator_config().await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let id = unique("koogallery-keys");
    client
        .create_secret()
        .name(&id)
        .secret_string(
            r#"{"accessKey":"ak","accessKeyPrevious":"ak0","kitKey":"kk","webhookSecret":"wh"}"#,
        )
        .send()
        .await
        .unwrap();
    let secrets = SecretsManagerSecrets::new(client.clone(), &id);
    let keys = secrets.bundle().await.unwrap().keys;
    assert_eq!(keys.basic.current.expose(), "ak");
    assert_eq!(
        keys.basic.previous.as_ref().map(|k| k.expose()),
        Some("ak0")
    );
    assert_eq!(keys.kit.current.expose(), "kk");
    assert!(keys.kit.previous.is_none());
    assert_eq!(
        secrets
            .bundle()
            .await
            .unwrap()
            .webhook
            .as_ref()
            .map(|k| k.expose()),
        Some("wh")
    );

    // Cached for the life of the value: a rotated secret is not re-read.
    client
        .put_secret_value()
        .secret_id(&id)
        .secret_string(r#"{"accessKey":"ak2","kitKey":"kk2"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        secrets.bundle().await.unwrap().keys.basic.current.expose(),
        "ak"
    );
    let fresh = SecretsManagerSecrets::new(client, &id);
    assert_eq!(
        fresh.bundle().await.unwrap().keys.basic.current.expose(),
        "ak2"
    );
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn errors_name_the_secret_or_the_field() {
    let config = emulator_config().await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let missing = unique("no-such-secret");
    let err = SecretsManagerSecrets::new(client.clone(), &missing)
        .bundle()
        .await
        .map(|b| b.keys)
        .unwrap_err();
    assert!(err.0.contains(&missing), "{err}");

    let id = unique("koogallery-keys");
    client
        .create_secret()
        .name(&id)
        .secret_string(r#"{"accessKey":"ak-value"}"#)
        .send()
        .await
        .unwrap();
    let err = SecretsManagerSecrets::new(client, &id)
        .bundle()
        .await
        .map(|b| b.keys)
        .unwrap_err();
    assert!(err.0.contains("kitKey") && err.0.contains(&id), "{err}");
    assert!(!err.0.contains("ak-value"), "{err}");
}
