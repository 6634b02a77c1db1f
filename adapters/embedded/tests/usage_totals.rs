//! Usage totals on the embedded store: a file written before totals were kept gets them when it
//! is opened, and they keep following the windows afterwards.

use chrono::{DateTime, Duration, Utc};
use koogallery::metering::{PackageQuotas, UsageReport, UsageStore, UsageTotal};
use koogallery_embedded::EmbeddedStore;

fn t0() -> DateTime<Utc> {
    koogallery::protocol::time::parse_compact("20261101100000").unwrap()
}

fn report(instance: &str, quantity: &str, hour: i64, key: &str) -> UsageReport {
    UsageReport {
        instance_id: instance.into(),
        quantity: quantity.parse().unwrap(),
        occurred_at: t0() + Duration::hours(hour) + Duration::minutes(3),
        idempotency_key: key.into(),
        package_instance_id: None,
    }
}

async fn assert_sums(store: &EmbeddedStore, ids: &[&str]) {
    let totals = store.usage_totals(ids).await.unwrap();
    assert_eq!(totals.len(), ids.len());
    for id in ids {
        let windows = store.windows_of(id).await.unwrap();
        let built = UsageTotal::of_windows(id, &windows).unwrap();
        let stored = totals.iter().find(|t| t.instance_id == *id).unwrap();
        assert!(built.same_sums(stored), "{id}: {stored:?} vs {built:?}");
    }
}

#[tokio::test]
async fn a_file_from_before_totals_gets_them_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let none = PackageQuotas::new();
    let now = t0() + Duration::days(2);
    {
        let store = EmbeddedStore::open(&path).unwrap();
        let batch: Vec<UsageReport> = (0..30)
            .map(|h| {
                report(
                    if h % 3 == 0 { "od-b" } else { "od-a" },
                    "1.25",
                    h,
                    &format!("k{h}"),
                )
            })
            .collect();
        store.ingest(&batch, &none, now).await.unwrap();
        assert_sums(&store, &["od-a", "od-b"]).await;
    }
    // As a release before totals left it: windows, no totals.
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        assert!(
            txn.delete_table(redb::TableDefinition::<&str, &[u8]>::new("usage_totals"))
                .unwrap()
        );
        txn.commit().unwrap();
    }
    let store = EmbeddedStore::open(&path).unwrap();
    assert_sums(&store, &["od-a", "od-b"]).await;
    let a = store.usage_total("od-a").await.unwrap().unwrap();
    assert_eq!(
        (a.total, a.reports, a.windows),
        ("25".parse().unwrap(), 20, 20)
    );
    // Later batches add to the built totals.
    let more = vec![
        report("od-a", "0.5", 40, "k40"),
        report("od-a", "0.5", 40, "k41"),
    ];
    store.ingest(&more, &none, now).await.unwrap();
    assert_sums(&store, &["od-a", "od-b"]).await;
    assert_eq!(
        store.usage_total("od-a").await.unwrap().unwrap().total,
        "26".parse().unwrap()
    );
    assert!(store.usage_total("od-none").await.unwrap().is_none());
}
