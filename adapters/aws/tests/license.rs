//! `DynamoLicenses` against the emulator (License codes: docs/protocol/openapi.md §5–§6,
//! docs/protocol/decisions.md §21): the shared contract, the documented items read back raw
//! (record, usage with its `ttl`, day marker), a reported day's clients removed and its later
//! uses not recorded, the marker of a day with nothing left to report dropped, and a damaged
//! record reported as corrupt. A table per test, as `tests/sso.rs` does.

mod common;

use std::collections::BTreeSet;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{NaiveDate, TimeZone, Utc};
use common::{client_and_table, raw};
use koogallery::{
    StoreError,
    license::{License, LicenseCode, LicenseStore, Origin},
    testing::license::license_store_contract,
};
use koogallery_aws::{
    DynamoLicenses,
    dynamo::keys::{DATA, PK, SK, TTL, VERSION},
    license::keys::{CLIENTS, DAYS_PK, LICENSE_SK, REPORTED, usage_ttl},
};

async fn fresh() -> (DynamoLicenses, aws_sdk_dynamodb::Client, String) {
    let (client, table) = client_and_table("koogallery-license-test").await;
    (
        DynamoLicenses::new(client.clone(), table.clone()),
        client,
        table,
    )
}

fn code(s: &str) -> LicenseCode {
    LicenseCode::parse(s).unwrap()
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 12, d).unwrap()
}

fn license(c: &str) -> License {
    let mut l = License::new(
        code(c),
        Origin::Marketplace,
        false,
        Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(),
    );
    l.version = 1;
    l
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn dynamo_licenses_pass_the_license_store_contract() {
    license_store_contract(|| async { fresh().await.0 }).await;
}

/// The items as the module docs describe them, read back raw.
#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn the_items_are_as_documented() {
    let (store, client, table) = fresh().await;
    let l = license("PL#1%x");
    store.put(&l).await.unwrap();
    let record = raw(&client, &table, "LICENSE#PL%231%25x", LICENSE_SK)
        .await
        .unwrap();
    assert_eq!(record.get(VERSION), Some(&AttributeValue::N("1".into())));
    let AttributeValue::S(data) = &record[DATA] else {
        panic!("{record:?}")
    };
    assert_eq!(serde_json::from_str::<License>(data).unwrap(), l);

    store.record_use(&l.code, day(1), "a").await.unwrap();
    store.record_use(&l.code, day(1), "b").await.unwrap();
    store.record_use(&l.code, day(1), "").await.unwrap();
    let usage = raw(&client, &table, "LICUSE#2026-12-01", "PL%231%25x")
        .await
        .unwrap();
    let AttributeValue::Ss(ids) = &usage[CLIENTS] else {
        panic!("{usage:?}")
    };
    assert_eq!(
        ids.iter().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from(["a".to_owned(), "b".to_owned()])
    );
    assert_eq!(
        usage.get(TTL),
        Some(&AttributeValue::N(usage_ttl(day(1)).to_string()))
    );
    let marker = raw(&client, &table, DAYS_PK, "2026-12-01").await.unwrap();
    assert_eq!(
        marker.get(TTL),
        Some(&AttributeValue::N(usage_ttl(day(1)).to_string()))
    );
    let due = store.usage_due(day(2), 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].code, l.code, "the code as sent, not its escaped key");

    // Reported: the clients go, the flag stays, a later use records nothing.
    store.usage_reported(&l.code, day(1)).await.unwrap();
    store.record_use(&l.code, day(1), "c").await.unwrap();
    let usage = raw(&client, &table, "LICUSE#2026-12-01", "PL%231%25x")
        .await
        .unwrap();
    assert_eq!(usage.get(REPORTED), Some(&AttributeValue::Bool(true)));
    assert_eq!(usage.get(CLIENTS), None, "{usage:?}");

    // Nothing of the day is left to report: the next read drops its marker.
    assert_eq!(store.usage_due(day(2), 10).await.unwrap(), vec![]);
    assert_eq!(raw(&client, &table, DAYS_PK, "2026-12-01").await, None);
    // A new code's first use of the day lists it again.
    store.record_use(&code("PL-2"), day(1), "z").await.unwrap();
    assert!(raw(&client, &table, DAYS_PK, "2026-12-01").await.is_some());
    assert_eq!(store.usage_due(day(2), 10).await.unwrap().len(), 1);

    // A day without use is not marked reported: a later use of it is due.
    store.usage_reported(&l.code, day(3)).await.unwrap();
    assert_eq!(
        raw(&client, &table, "LICUSE#2026-12-03", "PL%231%25x").await,
        None
    );
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn a_damaged_record_is_corrupt_not_a_panic() {
    let (store, client, table) = fresh().await;
    let l = license("PL-DAMAGED-1");
    store.put(&l).await.unwrap();
    client
        .put_item()
        .table_name(&table)
        .item(PK, AttributeValue::S("LICENSE#PL-DAMAGED-1".into()))
        .item(SK, AttributeValue::S(LICENSE_SK.into()))
        .item(DATA, AttributeValue::S("{\"schema\":1,\"code\":".into()))
        .item(VERSION, AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();
    let got = store.get(&l.code).await;
    let Err(StoreError::Corrupt(m)) = got else {
        panic!("{got:?}")
    };
    assert!(
        !format!("{m:?}").contains("PL-DAMAGED-1"),
        "the code is masked: {m:?}"
    );
    // The version condition still holds: a stale write is a conflict, the next one lands.
    assert!(matches!(store.put(&l).await, Err(StoreError::Conflict)));
    let mut next = l.clone();
    next.version = 2;
    store.put(&next).await.unwrap();
    assert_eq!(store.get(&l.code).await.unwrap(), Some(next));
}
