//! Tests of what the memory store adds to the port contracts (those run in `contract.rs`).

use chrono::{DateTime, Duration, Utc};

use super::MemoryStore;
use crate::metering::{
    IngestError, PackageQuotas, UsageStore,
    ingest::{Refusal, UsageReport},
};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn report(instance: &str, quantity: &str, at: &str, key: &str) -> UsageReport {
    UsageReport {
        instance_id: instance.into(),
        quantity: quantity.parse().unwrap(),
        occurred_at: t(at),
        idempotency_key: key.into(),
        package_instance_id: None,
    }
}

fn refusal(e: IngestError) -> (usize, Refusal) {
    match e {
        IngestError::Invalid { index, reason } => (index, reason),
        other => panic!("expected a refused report, got {other}"),
    }
}

/// The memory store drops keys past their retention too: until then a key is the report it was
/// first used for; after, it is forgotten (a repeat would be refused as too old anyway).
#[tokio::test]
async fn the_memory_store_forgets_keys_past_their_retention() {
    let store = MemoryStore::new();
    let none = PackageQuotas::new();
    let t0 = t("2026-11-01T10:00:00Z");
    store
        .ingest(
            &[report("i-1", "1", "2026-11-01T10:00:00Z", "k")],
            &none,
            t0,
        )
        .await
        .unwrap();
    let other = |at: &str| report("i-1", "2", at, "k");
    let kept = t0 + Duration::days(22) - Duration::seconds(1);
    let err = store
        .ingest(&[other("2026-11-23T09:00:00Z")], &none, kept)
        .await
        .unwrap_err();
    assert_eq!(refusal(err), (0, Refusal::KeyReused("k".into())));
    // The first batch past it drops the key; the one after may use it afresh.
    let later = t0 + Duration::days(22);
    store
        .ingest(
            &[report("i-1", "1", "2026-11-23T09:00:00Z", "x")],
            &none,
            later,
        )
        .await
        .unwrap();
    let outcome = store
        .ingest(&[other("2026-11-23T09:00:00Z")], &none, later)
        .await
        .unwrap();
    assert_eq!(outcome.applied, 1);
}
