//! `DynamoSso` and the tenant locator of `DynamoDirectory` against the emulator: the shared
//! contracts, the documented items read back raw (both items of a session, `ttl`), a session whose
//! user changed moves its index item, a take deletes the grant, a damaged item is corrupt, and the
//! locator follows tenant puts and deletes with IDs holding `#` and `%`. A table per test, as
//! `tests/directory.rs` does.

mod common;

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Duration;
use common::{client_and_table, raw};
use koogallery::{
    StoreError,
    directory::{DirectoryChange as C, TenantDirectory, TenantKey},
    sso::{GrantKind, GrantStore, SessionStore, TenantLocator},
    testing::{
        directory::sample_tenant,
        sso::{sample_session, sso_store_contract, tenant_locator_contract},
    },
};
use koogallery_aws::{
    DynamoDirectory, DynamoSso,
    dynamo::keys::{DATA, PK, SK, TTL, VERSION},
    sso::keys::{INDEX_PK, INDEX_SK},
};

async fn fresh_sso() -> (DynamoSso, aws_sdk_dynamodb::Client) {
    let (client, table) = client_and_table("koogallery-sso-test").await;
    (DynamoSso::new(client.clone(), table), client)
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn dynamo_sso_passes_the_sso_store_contract() {
    sso_store_contract(Arc::new(fresh_sso().await.0)).await;
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn dynamo_directory_passes_the_tenant_locator_contract() {
    let (client, table) = client_and_table("koogallery-locator-test").await;
    tenant_locator_contract(Arc::new(DynamoDirectory::new(client, table))).await;
}

/// The items as the module docs describe them, read back raw.
#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn a_session_is_two_items_as_documented() {
    let (sso, client) = fresh_sso().await;
    let tenant = TenantKey::new("inst#1", "t%1");
    let session = sample_session(&tenant, "app#1", "alice");
    sso.create_session(&session).await.unwrap();
    let own = raw(
        &client,
        sso.table(),
        &format!("SSOSESSION#{}", session.key),
        "SESSION",
    )
    .await
    .unwrap();
    let index_sk = format!("SESSION#app%231#alice#{}", session.key);
    assert_eq!(own[INDEX_PK].as_s().unwrap(), "SSO#inst%231#t%251");
    assert_eq!(own[INDEX_SK].as_s().unwrap(), &index_sk);
    assert_eq!(own[VERSION].as_n().unwrap(), "1");
    assert_eq!(
        own[TTL].as_n().unwrap(),
        &session.refresh_expires_at.timestamp().to_string()
    );
    let index = raw(&client, sso.table(), "SSO#inst%231#t%251", &index_sk)
        .await
        .unwrap();
    assert_eq!(index[DATA], own[DATA]);
    assert_eq!(index[TTL], own[TTL]);

    // Deleted, both go.
    assert_eq!(
        sso.delete_session(&session.key).await.unwrap(),
        Some(session.clone())
    );
    assert!(
        raw(&client, sso.table(), "SSO#inst%231#t%251", &index_sk)
            .await
            .is_none()
    );
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn a_session_whose_user_changed_moves_its_index_item() {
    let (sso, _) = fresh_sso().await;
    let tenant = TenantKey::new("inst-1", "tenant-1");
    let session = sample_session(&tenant, "app-1", "alice");
    sso.create_session(&session).await.unwrap();
    let mut moved = session.clone();
    moved.version = 2;
    moved.identity.user_name = "alice2".into();
    sso.replace_session(&moved, 1).await.unwrap();
    assert!(
        sso.sessions_of_user(&tenant, "app-1", "alice")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        sso.sessions_of_user(&tenant, "app-1", "alice2")
            .await
            .unwrap(),
        vec![moved.clone()]
    );
    assert!(matches!(
        sso.replace_session(&moved, 1).await,
        Err(StoreError::Conflict)
    ));
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn a_take_deletes_the_grant_and_an_expired_one_is_absent() {
    let (sso, client) = fresh_sso().await;
    let now = chrono::Utc::now();
    sso.put_grant(
        GrantKind::AccessToken,
        "k#1",
        "r",
        now + Duration::seconds(30),
    )
    .await
    .unwrap();
    let item = raw(&client, sso.table(), "SSOGRANT#token#k%231", "GRANT")
        .await
        .unwrap();
    assert!(item.contains_key(TTL));
    assert_eq!(
        sso.take_grant(GrantKind::AccessToken, "k#1", now + Duration::seconds(30))
            .await
            .unwrap(),
        None,
        "expired at expires_at"
    );
    assert!(
        raw(&client, sso.table(), "SSOGRANT#token#k%231", "GRANT")
            .await
            .is_none(),
        "taken, even expired"
    );
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn a_damaged_session_item_is_corrupt() {
    let (sso, client) = fresh_sso().await;
    let tenant = TenantKey::new("inst-1", "tenant-1");
    let session = sample_session(&tenant, "app-1", "alice");
    sso.create_session(&session).await.unwrap();
    client
        .update_item()
        .table_name(sso.table())
        .key(PK, AttributeValue::S(format!("SSOSESSION#{}", session.key)))
        .key(SK, AttributeValue::S("SESSION".into()))
        .update_expression("SET #d = :d")
        .expression_attribute_names("#d", DATA)
        .expression_attribute_values(":d", AttributeValue::S("{\"schema\":2}".into()))
        .send()
        .await
        .unwrap();
    assert!(matches!(
        sso.session(&session.key).await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        sso.delete_session(&session.key).await,
        Err(StoreError::Corrupt(_))
    ));
}

/// The locator item is written and deleted with the tenant; IDs with `#` and `%`, and the
/// seller's empty instanceId, find their own tenants only.
#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn the_locator_follows_the_tenant_record() {
    let (client, table) = client_and_table("koogallery-locator-test").await;
    let dir = DynamoDirectory::new(client.clone(), table.clone());
    let now = chrono::Utc::now();
    let a = TenantKey::new("i#1", "t%1#");
    let b = TenantKey::new("", "t%1#");
    let c = TenantKey::new("i#1", "t%1");
    for k in [&a, &b, &c] {
        dir.apply(k, &C::PutTenant(sample_tenant("甲", now)), now)
            .await
            .unwrap();
    }
    assert!(
        raw(&client, &table, "DIR#t%251%23", "TENANT#i%231")
            .await
            .is_some()
    );
    let mut found: Vec<TenantKey> = dir
        .tenants_by_id("t%1#")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    found.sort();
    let mut expected = vec![a.clone(), b.clone()];
    expected.sort();
    assert_eq!(found, expected);
    dir.apply(&a, &C::PutTenant(sample_tenant("乙", now)), now)
        .await
        .unwrap();
    let renamed = dir.tenants_by_id("t%1#").await.unwrap();
    assert!(renamed.iter().any(|(k, t)| k == &a && t.name == "乙"));
    dir.apply(&a, &C::DeleteTenant, now).await.unwrap();
    assert!(
        raw(&client, &table, "DIR#t%251%23", "TENANT#i%231")
            .await
            .is_none()
    );
    let left: Vec<TenantKey> = dir
        .tenants_by_id("t%1#")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(left, vec![b]);
    assert_eq!(
        dir.tenant(&c).await.unwrap().map(|t| t.name),
        Some("甲".into())
    );
}
