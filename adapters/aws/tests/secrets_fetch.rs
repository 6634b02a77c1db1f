//! `SecretsManagerSecrets` fetches the parts a function asks for side by side: a function that
//! needs two secrets waits for one round trip at start-up, not two. A stand-in for Secrets
//! Manager on loopback holds each `GetSecretValue` until a second one is in flight (or 5 s have
//! passed), and notes how many it held at once.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use aws_credential_types::Credentials;
use axum::{Router, body::Bytes, extract::State};
use koogallery::config::{SecretPart, Secrets};
use koogallery_aws::SecretsManagerSecrets;
use serde_json::{Value, json};

#[derive(Default)]
struct Stand {
    in_flight: AtomicUsize,
    most: AtomicUsize,
    arrived: tokio::sync::Notify,
}

async fn get_secret_value(State(s): State<Arc<Stand>>, body: Bytes) -> String {
    let id = serde_json::from_slice::<Value>(&body).unwrap()["SecretId"]
        .as_str()
        .unwrap()
        .to_owned();
    let now = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    s.most.fetch_max(now, Ordering::SeqCst);
    s.arrived.notify_waiters();
    if now < 2 {
        let _ = tokio::time::timeout(Duration::from_secs(5), s.arrived.notified()).await;
    }
    s.in_flight.fetch_sub(1, Ordering::SeqCst);
    let value = match id.as_str() {
        "keys" => r#"{"accessKey":"ak","kitKey":"kk"}"#,
        _ => r#"{"webhookSecret":"wh"}"#,
    };
    json!({"ARN": format!("arn:aws:secretsmanager:eu-west-1:1:secret:{id}"), "Name": id, "SecretString": value})
        .to_string()
}

#[tokio::test]
async fn the_parts_are_fetched_side_by_side() {
    let stand = Arc::new(Stand::default());
    let (sdk, _) = common::stand_in(
        Router::new()
            .fallback(get_secret_value)
            .with_state(stand.clone()),
        Credentials::for_tests(),
    )
    .await;
    let secrets = SecretsManagerSecrets::new(
        aws_sdk_secretsmanager::Client::new(&sdk),
        [
            (SecretPart::CallbackKeys, "keys".to_owned()),
            (SecretPart::Webhook, "webhook".to_owned()),
        ],
    );
    let held = secrets
        .read_parts(&[SecretPart::CallbackKeys, SecretPart::Webhook])
        .await
        .unwrap();
    assert_eq!(held.keys.unwrap().basic.current.expose(), "ak");
    assert_eq!(held.webhook.unwrap().expose(), "wh");
    assert_eq!(
        stand.most.load(Ordering::SeqCst),
        2,
        "fetched one after the other"
    );
}
