//! Expired entries leave as fast as new ones arrive, at scale: the file stops growing.

use chrono::{DateTime, Duration, Utc};
use koogallery::metering::{PackageQuotas, UsageReport, UsageStore};
use redb::ReadableTableMetadata;

use crate::{EmbeddedStore, USAGE_KEY_EXPIRY, USAGE_KEYS};

/// (keys, index entries) on disk.
fn keys_on_disk(store: &EmbeddedStore) -> (u64, u64) {
    let read = store.database_ref().begin_read().unwrap();
    (
        read.open_table(USAGE_KEYS).unwrap().len().unwrap(),
        read.open_table(USAGE_KEY_EXPIRY).unwrap().len().unwrap(),
    )
}

/// 100 batches of 1000 reports, each with a key of its own, all at `at`.
async fn hundred_batches(store: &EmbeddedStore, round: &str, at: DateTime<Utc>) {
    for b in 0..100 {
        let reports: Vec<UsageReport> = (0..1000)
            .map(|i| UsageReport {
                instance_id: "i-1".into(),
                quantity: "1".parse().unwrap(),
                occurred_at: at,
                idempotency_key: format!("{round}-{b}-{i}"),
                package_instance_id: None,
            })
            .collect();
        let outcome = store
            .ingest(&reports, &PackageQuotas::new(), at)
            .await
            .unwrap();
        assert_eq!(outcome.duplicates, 0);
    }
}

/// 100 batches of 1000 reports, then, once their keys passed their retention (22 days), 100
/// batches more: the second round's keys replace the first's, so the file holds one round and
/// does not grow. A purge of 64 per batch (the old one) dropped 6 400 of the 100 000 expired
/// keys, leaving 193 600 on disk.
#[tokio::test]
async fn usage_keys_past_their_retention_leave_as_fast_as_batches_add_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.redb");
    let store = EmbeddedStore::open(&path).unwrap();
    let t0 = koogallery::protocol::time::parse_compact("20261101100000").unwrap();
    let size = || std::fs::metadata(&path).unwrap().len();
    let mut sizes = Vec::new();
    for (round, at) in ["a", "b"].into_iter().zip([t0, t0 + Duration::days(23)]) {
        hundred_batches(&store, round, at).await;
        assert_eq!(
            keys_on_disk(&store),
            (100_000, 100_000),
            "round {round}: only its own keys are left"
        );
        sizes.push(size());
    }
    assert!(
        sizes[1] <= sizes[0],
        "the file grew though it holds as many keys: {sizes:?}"
    );
}
