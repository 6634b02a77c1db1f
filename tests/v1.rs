//! A V1 (GET) purchase end to end over HTTP on the local host (docs/protocol/callbacks.md §3.6,
//! §11; docs/protocol/decisions.md §20): newInstance with the buyer's encrypted contact fields and
//! `saasExtendParams`, provisioning, the encrypted appInfo, renewal, expiry, unfreeze, upgrade,
//! release, and a stale token refused — every answer with a valid `Body-Sign`.

use std::time::Duration;

use chrono::Utc;
use koogallery::{
    instance::{InstanceState, InstanceStore},
    protocol::time::format_17,
    security::{
        body_sign::verify_body_sign,
        credential_cipher::{EncryptType, decrypt_field, encrypt_credential_with_iv},
        v1_auth_token,
    },
};
use koogallery_e2e::{KEY, config, host};
use serde_json::Value;

/// Calls `GET {produce}?…` the way KooGallery's V1 caller does: URL-encoded values, `timeStamp`
/// in UTC, `authToken` over the decoded parameters.
async fn v1_call(
    client: &reqwest::Client,
    produce: &str,
    params: &[(&str, &str)],
    at: chrono::DateTime<Utc>,
) -> Value {
    // KooGallery never sends one V1 call twice; the service refuses a repeated token as a replay.
    tokio::time::sleep(Duration::from_millis(2)).await;
    let ts = format_17(at);
    let mut all: Vec<(&str, &str)> = params.to_vec();
    all.push(("timeStamp", &ts));
    let token = v1_auth_token(KEY, &ts, &all);
    let mut url = reqwest::Url::parse(produce).expect("URL");
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in &all {
            q.append_pair(k, v);
        }
        q.append_pair("authToken", &token);
    }
    let resp = client.get(url).send().await.expect("answered");
    assert_eq!(resp.status(), 200);
    let sign = resp.headers()["Body-Sign"]
        .to_str()
        .expect("Body-Sign")
        .to_owned();
    let body = resp.bytes().await.expect("body");
    assert!(verify_body_sign(KEY, &body, &sign), "V1 checks Body-Sign");
    serde_json::from_slice(&body).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_purchase_runs_end_to_end_on_the_local_host() {
    let dir = tempfile::tempdir().unwrap();
    let provisioner = std::sync::Arc::new(koogallery::testing::ScriptedProvisioner::default());
    let h = host(dir.path(), config(), Some(provisioner)).await;
    let produce = h.produce_url();
    let client = reqwest::Client::new();
    let now = Utc::now;

    let phone =
        encrypt_credential_with_iv(KEY, "13800000000", EncryptType::Aes256, "AbCdEf0123456789")
            .unwrap();
    // [{"name":"idNum","value":"352255555555656"}, …] (docs/protocol/callbacks.md §14.7).
    let extend = "W3sibmFtZSI6ImlkTnVtIiwidmFsdWUiOiIzNTIyNTU1NTU1NTU2NTYifSx7Im5hbWUiOiJ1c2VyTmFtZSIsInZhbHVlIjoiaHVhd2VpMTIzIn0seyJuYW1lIjoiY3VzdEVtYWlsIiwidmFsdWUiOiIxMjNAaHVhd2VpLmNvbSJ9XQ==";
    let new_instance = [
        ("activity", "newInstance"),
        ("orderId", "CSV1E2E0001"),
        ("businessId", "v1-biz-1"),
        ("customerId", "cust-1"),
        ("customerName", "v1_buyer"),
        ("productId", "00301-v1"),
        ("skuCode", "sku-basic"),
        ("chargingMode", "1"),
        ("periodType", "month"),
        ("periodNumber", "1"),
        ("expireTime", "20991231000000"),
        ("mobilePhone", phone.as_str()),
        ("saasExtendParams", extend),
    ];
    let first = v1_call(&client, &produce, &new_instance, now()).await;
    assert!(
        matches!(first["resultCode"].as_str(), Some("000000" | "000004")),
        "{first}"
    );
    assert_eq!(first["instanceId"], "v1-biz-1");

    // The buyer views the resource: newInstance again, until it is ready with its appInfo.
    let mut ready = Value::Null;
    for _ in 0..200 {
        let again = v1_call(&client, &produce, &new_instance, now()).await;
        assert_eq!(again["instanceId"], "v1-biz-1", "idempotent per orderId");
        if again["resultCode"] == "000000" {
            ready = again;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ready["resultCode"], "000000", "provisioned: {ready}");
    assert_eq!(ready["encryptType"], "1");
    let user = ready["appInfo"]["userName"].as_str().expect("userName");
    assert_eq!(
        decrypt_field(KEY, user, EncryptType::Aes256)
            .ok()
            .as_deref(),
        Some("admin"),
        "credentials are encrypted with the V1 key: {user}"
    );

    // The order came with the call: the buyer's phone decrypted, the extension decoded.
    let instance = h.backend.store.get("v1-biz-1").await.unwrap().unwrap();
    let order = instance.order.expect("order kept");
    assert!(order.v1);
    assert_eq!(order.buyer.mobile_phone.as_deref(), Some("13800000000"));
    assert_eq!(order.customer_id.as_deref(), Some("cust-1"));
    assert_eq!(
        order.extend_params[1],
        ("userName".into(), "huawei123".into())
    );

    let query = v1_call(
        &client,
        &produce,
        &[("activity", "queryInstance"), ("instanceId", "v1-biz-1")],
        now(),
    )
    .await;
    assert_eq!(query["resultCode"], "000000", "{query}");
    assert_eq!(query["encryptType"], "1");
    assert!(query["info"][0]["appInfo"]["userName"].is_string());

    for (params, state) in [
        (
            vec![
                ("activity", "refreshInstance"),
                ("instanceId", "v1-biz-1"),
                ("orderId", "CSV1RENEW1"),
                ("expireTime", "21000131000000"),
                ("periodType", "month"),
                ("periodNumber", "1"),
            ],
            InstanceState::Active,
        ),
        (
            vec![
                ("activity", "expireInstance"),
                ("instanceId", "v1-biz-1"),
                ("orderId", "CSV1E2E0001"),
            ],
            InstanceState::Frozen,
        ),
        (
            vec![
                ("activity", "instanceStatus"),
                ("instanceId", "v1-biz-1"),
                ("instanceStatus", "NORMAL"),
            ],
            InstanceState::Active,
        ),
        (
            vec![
                ("activity", "upgrade"),
                ("instanceId", "v1-biz-1"),
                ("orderId", "CSV1UP1"),
                ("productId", "00301-v1"),
                ("skuCode", "sku-pro"),
            ],
            InstanceState::Active,
        ),
        (
            vec![
                ("activity", "releaseInstance"),
                ("instanceId", "v1-biz-1"),
                ("orderId", "CSV1E2E0001"),
            ],
            InstanceState::Released,
        ),
    ] {
        let r = v1_call(&client, &produce, &params, now()).await;
        assert_eq!(r["resultCode"], "000000", "{params:?}: {r}");
        let i = h.backend.store.get("v1-biz-1").await.unwrap().unwrap();
        assert_eq!(i.state, state, "{params:?}");
    }
    let i = h.backend.store.get("v1-biz-1").await.unwrap().unwrap();
    assert_eq!(
        i.order.unwrap().sku_code.as_deref(),
        Some("sku-pro"),
        "the V1 upgrade's spec is on the order"
    );
    assert_eq!(
        i.expire_time,
        koogallery::protocol::time::parse_compact("21000131000000")
    );

    // A logged URL replayed after the window is refused.
    let stale = v1_call(
        &client,
        &produce,
        &[("activity", "queryInstance"), ("instanceId", "v1-biz-1")],
        now() - chrono::Duration::minutes(20),
    )
    .await;
    assert_eq!(stale["resultCode"], "000001");
    h.shutdown().await;
}
