//! License codes on the embedded store (docs/protocol/openapi.md §5–§6, docs/protocol/decisions.md
//! §21): the shared contract, and beyond it that records and usage survive a restart, a damaged
//! record is reported rather than panicked on, a reported day leaves no client rows behind, and
//! a file from before license codes opens with an empty store.

mod common;

use std::{collections::BTreeSet, sync::Mutex};

use chrono::{NaiveDate, TimeZone, Utc};
use koogallery::{
    StoreError,
    license::{License, LicenseCode, LicenseStore, Origin},
    testing::license::license_store_contract,
};
use koogallery_embedded::EmbeddedStore;
use redb::{ReadableDatabase, ReadableTableMetadata, TableDefinition};

const LICENSES: TableDefinition<&str, &[u8]> = TableDefinition::new("licenses");
const USAGE: TableDefinition<(i32, &str, &str), ()> = TableDefinition::new("license_usage");

fn code(s: &str) -> LicenseCode {
    LicenseCode::parse(s).unwrap()
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

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 12, d).unwrap()
}

async fn contract() {
    // The contract builds its store with `fresh()`: the directories live as long as the test.
    let dirs = Mutex::new(Vec::new());
    license_store_contract(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path().join("store.redb")).unwrap();
        dirs.lock().unwrap().push(dir);
        async move { store }
    })
    .await;
}

#[tokio::test]
async fn embedded_store_passes_the_license_store_contract() {
    contract().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_passes_the_license_store_contract_on_many_threads() {
    contract().await;
}

#[tokio::test]
async fn records_and_usage_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let l = license("PL-RESTART-1");
    {
        let store = EmbeddedStore::open(&path).unwrap();
        store.put(&l).await.unwrap();
        store.record_use(&l.code, day(1), "a").await.unwrap();
        store.record_use(&l.code, day(2), "b").await.unwrap();
        store.usage_reported(&l.code, day(2)).await.unwrap();
    }
    let store = EmbeddedStore::open(&path).unwrap();
    assert_eq!(store.get(&l.code).await.unwrap(), Some(l.clone()));
    assert!(matches!(store.put(&l).await, Err(StoreError::Conflict)));
    let due = store.usage_due(day(10), 10).await.unwrap();
    assert_eq!(
        due.iter()
            .map(|u| (u.day, u.clients.clone()))
            .collect::<Vec<_>>(),
        [(day(1), BTreeSet::from(["a".to_owned()]))]
    );
    store.record_use(&l.code, day(2), "c").await.unwrap();
    assert_eq!(
        store.usage_due(day(10), 10).await.unwrap().len(),
        1,
        "a reported day stays reported after a restart"
    );
}

#[tokio::test]
async fn a_damaged_record_is_corrupt_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let l = license("PL-DAMAGED-1");
    {
        let store = EmbeddedStore::open(&path).unwrap();
        store.put(&l).await.unwrap();
    }
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(LICENSES)
            .unwrap()
            .insert(l.code.as_str(), b"{\"schema\":1,\"code\":".as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let store = EmbeddedStore::open(&path).unwrap();
    let got = store.get(&l.code).await;
    let Err(StoreError::Corrupt(m)) = got else {
        panic!("{got:?}")
    };
    assert!(
        !m.to_string().contains(l.code.as_str()),
        "the message masks the code: {m}"
    );
    let mut next = l.clone();
    next.version = 2;
    assert!(matches!(
        store.put(&next).await,
        Err(StoreError::Corrupt(_))
    ));
}

/// Reporting a day deletes its client rows (what `usage_due` reads stays what is due); other
/// codes of the day, and the code's other days, keep theirs. Codes that extend one another
/// ("PL-1" and "PL-10") are different codes.
#[tokio::test]
async fn a_reported_day_leaves_no_client_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    {
        let store = EmbeddedStore::open(&path).unwrap();
        for (c, d, client) in [
            ("PL-1", 1, "a"),
            ("PL-1", 1, "b"),
            ("PL-10", 1, "a"),
            ("PL-1", 2, "a"),
        ] {
            store.record_use(&code(c), day(d), client).await.unwrap();
        }
        store.usage_reported(&code("PL-1"), day(1)).await.unwrap();
        let due = store.usage_due(day(3), 10).await.unwrap();
        assert_eq!(
            due.iter()
                .map(|u| (u.code.as_str(), u.day))
                .collect::<Vec<_>>(),
            [("PL-10", day(1)), ("PL-1", day(2))]
        );
        // A day with no use is not marked: a use recorded later is due, as in memory.
        store.usage_reported(&code("PL-2"), day(1)).await.unwrap();
        store.record_use(&code("PL-2"), day(1), "z").await.unwrap();
        assert_eq!(store.usage_due(day(3), 10).await.unwrap().len(), 3);
    }
    let db = redb::Database::open(&path).unwrap();
    let rows = db
        .begin_read()
        .unwrap()
        .open_table(USAGE)
        .unwrap()
        .len()
        .unwrap();
    assert_eq!(rows, 3, "PL-10's a, PL-1's day 2 a, PL-2's z");
}

/// The golden file of an earlier release has no license tables: it opens with an empty store.
#[tokio::test]
async fn a_file_from_before_license_codes_opens_with_an_empty_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::copy_of_earlier_release(dir.path());
    let store = EmbeddedStore::open(&path).unwrap();
    let l = license("PL-OLD-FILE-1");
    assert_eq!(store.get(&l.code).await.unwrap(), None);
    assert_eq!(store.usage_due(day(10), 10).await.unwrap(), vec![]);
    store.put(&l).await.unwrap();
    assert_eq!(store.get(&l.code).await.unwrap(), Some(l));
}
