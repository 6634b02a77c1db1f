//! `DynamoUsageStore` against the emulator: the usage store contract, batches larger than one
//! DynamoDB transaction (exactly once across a failure between transactions), concurrent batches,
//! and the writes per ingested batch (BENCHMARKS.md). A table per store.

mod common;

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, Utc};
use common::{emulator_config, unique};
use koogallery::{
    metering::{PackageQuotas, UsageReport, UsageStore, UsageWindow, WindowKey},
    testing::contract::usage_store_contract,
};
use koogallery_aws::{
    DynamoUsageStore,
    bootstrap::ensure_table,
    usage::{Calls, keys},
};

/// A store on a table of its own. The emulator (moto) deep-copies the whole table for every item
/// of a `TransactWriteItems`, so a transaction costs it time in proportion to the table: small
/// tables keep the 1000-report batches to seconds.
async fn fresh_store() -> DynamoUsageStore {
    let config = emulator_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = unique("koogallery-usage-test");
    ensure_table(&client, &table).await.unwrap();
    DynamoUsageStore::new(client, table)
}

fn t0() -> DateTime<Utc> {
    koogallery::protocol::time::parse_compact("20260101000000").unwrap()
}

fn report(instance: &str, quantity: &str, at: DateTime<Utc>, key: &str) -> UsageReport {
    UsageReport {
        instance_id: instance.to_owned(),
        quantity: quantity.parse().unwrap(),
        occurred_at: at,
        idempotency_key: key.to_owned(),
        package_instance_id: None,
    }
}

/// `count` reports, each in an hour of its own, spread over `instances` instances.
fn spread(instances: &[String], count: usize, quantity: &str) -> Vec<UsageReport> {
    (0..count)
        .map(|i| {
            let instance = &instances[i % instances.len()];
            let hour = i64::try_from(i / instances.len()).unwrap();
            report(
                instance,
                quantity,
                t0() + Duration::hours(hour) + Duration::minutes(7),
                &unique("key"),
            )
        })
        .collect()
}

async fn windows(store: &DynamoUsageStore, instances: &[String]) -> Vec<UsageWindow> {
    let mut all = Vec::new();
    for id in instances {
        all.extend(store.windows_of(id).await.unwrap());
    }
    all
}

/// A row of BENCHMARKS.md's table: what a batch sent DynamoDB.
fn row(batch: &str, c: Calls) {
    println!(
        "| {batch} | {} | {} | {} | {} |",
        c.writes, c.items, c.reads, c.largest_item_bytes
    );
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn dynamo_store_passes_the_usage_store_contract() {
    usage_store_contract(Arc::new(fresh_store().await)).await;
}

/// An idempotency key carries the table's `ttl` (Unix seconds) at the end of its retention, so
/// keys do not pile up for ever.
#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn usage_keys_carry_their_retention_as_the_table_ttl() {
    let store = fresh_store().await;
    let r = report("i-ttl", "1", t0() + Duration::minutes(10), "k-ttl");
    store
        .ingest(
            std::slice::from_ref(&r),
            &PackageQuotas::new(),
            t0() + Duration::hours(1),
        )
        .await
        .unwrap();
    let client = aws_sdk_dynamodb::Client::new(&emulator_config().await);
    let item = client
        .get_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S(keys::key_pk(&r.idempotency_key)))
        .key("sk", AttributeValue::S(keys::KEY_SK.into()))
        .send()
        .await
        .unwrap()
        .item
        .expect("the key is stored");
    // t0's hour + 21 days + 1 day.
    let expected = (t0() + Duration::days(22)).timestamp().to_string();
    assert_eq!(item["ttl"], AttributeValue::N(expected));
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn a_batch_over_one_transaction_applies_each_report_once_even_across_a_failure() {
    let store = fresh_store().await;
    let none = PackageQuotas::new();
    let now = t0() + Duration::days(30);
    let instances: Vec<String> = (0..10).map(|_| unique("inst")).collect();
    let batch = spread(&instances, 1000, "1.5");
    store.take_calls();

    let o = store.ingest(&batch, &none, now).await.unwrap();
    assert_eq!((o.applied, o.duplicates), (1000, 0));
    let calls = store.take_calls();
    row(
        "1000 reports, 1000 windows (10 instances x 100 hours)",
        calls,
    );
    assert_eq!(
        (calls.writes, calls.items),
        (10 + 21, 10 + 2000 + 30),
        "a hold per instance's total; a key and a window per report, 49 reports and their \
         instances' totals per transaction"
    );
    let stored = windows(&store, &instances).await;
    assert_eq!(stored.len(), 1000);
    assert!(
        stored
            .iter()
            .all(|w| w.reports == 1 && w.total == "1.5".parse().unwrap())
    );

    // Sent again: every report a duplicate, nothing written, nothing changed.
    let o = store.ingest(&batch, &none, now).await.unwrap();
    assert_eq!((o.applied, o.duplicates), (0, 1000));
    assert_eq!(store.take_calls().writes, 0);
    assert_eq!(windows(&store, &instances).await, stored);

    // A failure after 3 of its transactions: those stay, whole; the retry applies the rest.
    let store = fresh_store().await;
    let others: Vec<String> = (0..10).map(|_| unique("inst")).collect();
    let batch = spread(&others, 1000, "2");
    store.fail_next_ingest_after(3);
    let err = store.ingest(&batch, &none, now).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    let partial = windows(&store, &others).await;
    assert_eq!(partial.len(), 147, "three transactions of 49 reports");
    assert!(partial.iter().all(|w| w.reports == 1));
    let o = store.ingest(&batch, &none, now).await.unwrap();
    assert_eq!((o.applied, o.duplicates), (853, 147));
    let stored = windows(&store, &others).await;
    assert_eq!(stored.len(), 1000);
    assert!(
        stored
            .iter()
            .all(|w| w.reports == 1 && w.total == "2".parse().unwrap()),
        "each report exactly once"
    );
    let o = store.ingest(&batch, &none, now).await.unwrap();
    assert_eq!((o.applied, o.duplicates), (0, 1000));
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn a_thousand_reports_in_one_window_add_up_across_transactions() {
    let store = fresh_store().await;
    let none = PackageQuotas::new();
    let instance = unique("inst");
    let at = t0() + Duration::minutes(30);
    let batch: Vec<UsageReport> = (0..1000)
        .map(|i| report(&instance, "0.25", at, &format!("{instance}/{i}")))
        .collect();
    store.take_calls();
    store.fail_next_ingest_after(4);
    assert!(store.ingest(&batch, &none, at).await.is_err());
    let key = WindowKey {
        instance_id: instance.clone(),
        start: t0(),
        package: None,
    };
    let partial = store.window(&key).await.unwrap().unwrap();
    assert_eq!(
        partial.reports,
        4 * 98,
        "four transactions of 98 keys, the window and the instance's total"
    );
    let o = store.ingest(&batch, &none, at).await.unwrap();
    assert_eq!((o.applied, o.duplicates), (1000 - 392, 392));
    let w = store.window(&key).await.unwrap().unwrap();
    assert_eq!((w.reports, w.total), (1000, "250".parse().unwrap()));
    assert!(w.version > partial.version);
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn concurrent_batches_on_one_window_each_count_once() {
    let store = Arc::new(fresh_store().await);
    let none = PackageQuotas::new();
    let instance = unique("inst");
    let at = t0() + Duration::minutes(5);
    // Every batch: 20 reports of its own, and the same 5 shared reports.
    let shared: Vec<UsageReport> = (0..5)
        .map(|i| report(&instance, "1", at, &format!("{instance}/shared/{i}")))
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for b in 0..8 {
        let (store, none, instance, shared) = (
            store.clone(),
            none.clone(),
            instance.clone(),
            shared.clone(),
        );
        tasks.spawn(async move {
            let mut batch: Vec<UsageReport> = (0..20)
                .map(|i| report(&instance, "1", at, &format!("{instance}/{b}/{i}")))
                .collect();
            batch.extend(shared);
            store.ingest(&batch, &none, at).await.unwrap()
        });
    }
    let (mut applied, mut duplicates) = (0, 0);
    while let Some(done) = tasks.join_next().await {
        let o = done.unwrap();
        applied += o.applied;
        duplicates += o.duplicates;
    }
    assert_eq!((applied, duplicates), (8 * 20 + 5, 7 * 5));
    // All eight read the window before the first wrote it: the others lost and applied again.
    assert!(store.take_calls().contended > 0);
    let w = store
        .window(&WindowKey {
            instance_id: instance,
            start: t0(),
            package: None,
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!((w.reports, w.total), (165, "165".parse().unwrap()));
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn an_hour_of_windows_and_many_saves_at_once() {
    let store = fresh_store().await;
    let instance = unique("inst");
    let package = unique("pkg");
    let quotas: PackageQuotas = [(package.clone(), Some("1000".parse().unwrap()))].into();
    let h = |n: i64| t0() + Duration::hours(n);
    let mut batch: Vec<UsageReport> = (0..40)
        .map(|i| report(&instance, "1", h(i), &unique("key")))
        .collect();
    batch.push(UsageReport {
        package_instance_id: Some(package.clone()),
        ..report(&instance, "2", h(3), &unique("key"))
    });
    store.ingest(&batch, &quotas, h(48)).await.unwrap();

    // The hour's own window, then its package window; no other hour.
    let at = store.windows_at(&instance, h(3)).await.unwrap();
    assert_eq!(
        at.iter()
            .map(|w| (w.start, w.package.clone()))
            .collect::<Vec<_>>(),
        [(h(3), None), (h(3), Some(package.clone()))]
    );
    assert!(store.windows_at(&instance, h(41)).await.unwrap().is_empty());

    // 41 windows sealed at once, three of them from stale copies.
    let mut windows = store.windows_of(&instance).await.unwrap();
    assert_eq!(windows.len(), 41);
    for w in &mut windows {
        assert!(w.seal(h(48)));
    }
    for stale in [0, 17, 40] {
        let mut current = store.window(&windows[stale].key()).await.unwrap().unwrap();
        current.push_failed("bump");
        store.save_window(&current).await.unwrap();
    }
    store.take_calls();
    let saved = store.save_windows(&windows).await.unwrap();
    assert_eq!(store.take_calls().writes, 41, "one conditional put each");
    let expected: Vec<bool> = (0..41).map(|i| ![0, 17, 40].contains(&i)).collect();
    assert_eq!(saved, expected);
    for (w, saved) in windows.iter().zip(saved) {
        let stored = store.window(&w.key()).await.unwrap().unwrap();
        assert_eq!(stored.sealed().is_some(), saved, "{:?}", w.key());
    }
    // The sealed ones are still due; the stale ones too (still open).
    assert_eq!(store.due(h(48), 10_000).await.unwrap().len(), 41);
}

/// The figures of BENCHMARKS.md ("DynamoDB writes per ingested batch"; the batch of 1000 windows
/// is measured by `a_batch_over_one_transaction_…`):
/// `cargo test -p koogallery-aws --test usage -- --ignored --nocapture --test-threads=1 writes_per_batch a_batch_over`.
#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn writes_per_batch() {
    let none = PackageQuotas::new();
    let hour = t0() + Duration::minutes(10);
    let now = t0() + Duration::days(60);
    let one_window = |n: usize| -> Vec<UsageReport> {
        let instance = unique("inst");
        (0..n)
            .map(|i| report(&instance, "1", hour, &format!("{instance}/{i}")))
            .collect()
    };
    let cases: Vec<(&str, Vec<UsageReport>)> = vec![
        ("1 report", one_window(1)),
        ("100 reports, one instance, one hour", one_window(100)),
        ("98 reports, one instance, one hour", one_window(98)),
        ("1000 reports, one instance, one hour", one_window(1000)),
    ];
    // One transaction up to 98 reports (with the window and the total); beyond, a hold on the
    // total first, then transactions of 98 keys with the window and the total.
    let expected = [
        (1, 3),
        (1 + 2, 1 + 100 + 4),
        (1, 100),
        (1 + 11, 1 + 1000 + 22),
    ];
    for ((what, batch), (writes, items)) in cases.iter().zip(expected) {
        let store = fresh_store().await;
        let o = store.ingest(batch, &none, now).await.unwrap();
        assert_eq!(o.applied, batch.len());
        let c = store.take_calls();
        row(what, c);
        assert_eq!((c.writes, c.items), (writes, items), "{what}");
        assert!(c.largest_item_bytes <= 1024, "every item within 1 KB");
    }
    let store = fresh_store().await;
    for (what, batch) in &cases[1..2] {
        store.ingest(batch, &none, now).await.unwrap();
        store.take_calls();
        let o = store.ingest(batch, &none, now).await.unwrap();
        assert_eq!(o.duplicates, batch.len());
        let c = store.take_calls();
        row(&format!("{what}, sent again"), c);
        assert_eq!((c.writes, c.items), (0, 0));
    }
}

/// What a batch over one instance left: its windows' (reports, total) summed.
async fn stored_on(store: &DynamoUsageStore, instance: &str) -> (u64, rust_decimal::Decimal) {
    let windows = store.windows_of(instance).await.unwrap();
    (
        windows.iter().map(|w| w.reports).sum(),
        windows.iter().map(|w| w.total).sum(),
    )
}

/// A batch of several transactions validates the whole of it before its first
/// write and holds what it validated, so a seal between two of its transactions cannot refuse
/// its rest after its first reports were stored (the README: nothing of a refused batch is
/// stored). Here the late report's hour is sealed while the batch is paused after its first
/// transaction: the seal is refused (the window is held), and the batch is stored whole.
#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn a_seal_between_the_transactions_of_a_batch_cannot_refuse_its_rest() {
    let store = Arc::new(fresh_store().await);
    let none = PackageQuotas::new();
    let now = t0() + Duration::days(10);
    let instance = unique("inst");
    let late = t0() + Duration::hours(149);
    // The late report's hour already has usage (open): the batch adds to it last.
    store
        .ingest(&[report(&instance, "1", late, &unique("key"))], &none, now)
        .await
        .unwrap();
    let before = stored_on(&store, &instance).await;
    let batch: Vec<UsageReport> = (0..150)
        .map(|h| {
            report(
                &instance,
                "1",
                t0() + Duration::hours(h) + Duration::minutes(30),
                &unique("key"),
            )
        })
        .collect();
    let mut pause = store.pause_next_ingest_after(1);
    let task = {
        let (store, batch, none) = (store.clone(), batch.clone(), none.clone());
        tokio::spawn(async move { store.ingest(&batch, &none, now).await })
    };
    pause.reached().await;
    let mut window = store
        .window(&WindowKey {
            instance_id: instance.clone(),
            start: late,
            package: None,
        })
        .await
        .unwrap()
        .unwrap();
    assert!(window.seal(now));
    let sealed = store.save_window(&window).await;
    pause.resume();
    let result = task.await.unwrap();
    let after = stored_on(&store, &instance).await;
    match &result {
        Err(koogallery::metering::IngestError::Invalid { .. }) => {
            assert_eq!(after, before, "a refused batch stored {after:?}")
        }
        Ok(o) => {
            assert_eq!(o.applied, 150);
            assert_eq!(after.0, before.0 + 150, "all of it");
        }
        Err(e) => panic!("{e}"),
    }
    assert!(
        matches!(sealed, Err(koogallery::StoreError::Conflict)),
        "the held window was sealed under the batch: {sealed:?}, batch {result:?}"
    );
    let total = store.usage_total(&instance).await.unwrap().unwrap();
    assert_eq!((total.reports, total.total), after);
    // Once the batch is through, the hour seals.
    let mut window = store.window(&window.key()).await.unwrap().unwrap();
    assert_eq!(window.reports, 2);
    assert!(window.seal(now));
    store.save_window(&window).await.unwrap();
}

/// Another batch using the same stop-when-used-up package between two
/// transactions of a batch cannot make the batch's rest exceed the quota after its first
/// reports were stored: it waits for the package (held), and is refused itself, whole, when
/// too little is left. The batch is held between its transactions until the rival has tried.
#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn another_batch_on_the_package_cannot_refuse_the_rest_of_a_batch() {
    let store = Arc::new(fresh_store().await);
    let now = t0() + Duration::days(10);
    let (instance, other, package) = (unique("inst"), unique("inst"), unique("pkg"));
    let quotas: PackageQuotas = [(package.clone(), Some("200".parse().unwrap()))].into();
    let with_package = |r: UsageReport| UsageReport {
        package_instance_id: Some(package.clone()),
        ..r
    };
    let batch: Vec<UsageReport> = (0..150)
        .map(|h| {
            with_package(report(
                &instance,
                "1",
                t0() + Duration::hours(h) + Duration::minutes(30),
                &unique("key"),
            ))
        })
        .collect();
    let mut pause = store.pause_next_ingest_after(1);
    let task = {
        let (store, batch, quotas) = (store.clone(), batch.clone(), quotas.clone());
        tokio::spawn(async move { store.ingest(&batch, &quotas, now).await })
    };
    pause.reached().await;
    // Only the rival writes from here until the batch resumes.
    store.take_calls();
    let rival = {
        let (store, quotas) = (store.clone(), quotas.clone());
        let r = with_package(report(
            &other,
            "60",
            t0() + Duration::hours(3),
            &unique("key"),
        ));
        tokio::spawn(async move { store.ingest(&[r], &quotas, now).await })
    };
    // The batch resumes once the rival has met its holds (a write refused, to be read again) or
    // has ended: past the point where a rival could spoil the batch's rest.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while store.take_calls().contended == 0 && !rival.is_finished() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rival neither met the batch's holds nor ended"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    pause.resume();
    let ours = task.await.unwrap();
    let theirs = rival.await.unwrap();
    for (who, result, id, reports) in [
        ("batch", &ours, &instance, 150),
        ("rival", &theirs, &other, 1),
    ] {
        let stored = stored_on(&store, id).await;
        match result {
            Ok(o) => assert_eq!((o.applied, stored.0), (reports, reports as u64), "{who}"),
            Err(koogallery::metering::IngestError::Invalid { .. }) => {
                assert_eq!(stored.0, 0, "{who}: a refused batch stored {stored:?}")
            }
            Err(e) => panic!("{who}: {e}"),
        }
    }
    assert!(ours.is_ok(), "{ours:?}");
    assert!(
        matches!(
            theirs,
            Err(koogallery::metering::IngestError::Invalid {
                reason: koogallery::metering::ingest::Refusal::QuotaExceeded { .. },
                ..
            })
        ),
        "{theirs:?}"
    );
    let used = store.package(&package).await.unwrap().unwrap();
    assert_eq!(used.used_total(), "150".parse().unwrap());
}

/// A table written before usage totals were kept: an instance's usage still reads as the sum of
/// its windows (summed on read, one `Query`), and the first batch reporting for it writes its
/// total, built from those windows; from then on a read is one `BatchGetItem`, no `Query`.
#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn totals_of_a_table_from_before_are_summed_then_built_by_the_next_batch() {
    let store = fresh_store().await;
    let none = PackageQuotas::new();
    let now = t0() + Duration::days(20);
    let (old, untouched) = (unique("inst"), unique("inst"));
    let mut legacy = Vec::new();
    for (id, hours) in [(&old, 300), (&untouched, 5)] {
        for h in 0..hours {
            let key = WindowKey {
                instance_id: id.clone(),
                start: t0() + Duration::hours(h),
                package: None,
            };
            let mut w = UsageWindow::open(&key, t0() + Duration::hours(h + 1));
            w.total = "0.5".parse().unwrap();
            w.reports = 2;
            w.version = 1;
            if h < hours - 2 {
                assert!(w.seal(t0() + Duration::hours(h + 2)));
                w.accept(t0() + Duration::hours(h + 2));
            }
            legacy.push(w);
        }
    }
    store.put_windows_without_totals(&legacy).await.unwrap();
    let ids = [old.as_str(), untouched.as_str()];
    let summed = store.usage_totals(&ids).await.unwrap();
    let of = |totals: &[koogallery::metering::UsageTotal], id: &str| {
        let t = totals.iter().find(|t| t.instance_id == id).unwrap().clone();
        (t.total, t.reports, t.windows)
    };
    assert_eq!(of(&summed, &old), ("150".parse().unwrap(), 600, 300));
    assert_eq!(of(&summed, &untouched), ("2.5".parse().unwrap(), 10, 5));

    // The next batch builds the total from the windows, and adds to it.
    let batch = [report(
        &old,
        "1",
        t0() + Duration::hours(299),
        &unique("key"),
    )];
    store.ingest(&batch, &none, now).await.unwrap();
    store.take_calls();
    let read = store.usage_totals(&ids).await.unwrap();
    assert_eq!(of(&read, &old), ("151".parse().unwrap(), 601, 300));
    assert_eq!(of(&read, &untouched), ("2.5".parse().unwrap(), 10, 5));
    assert_eq!(
        store.take_calls().reads,
        2,
        "one BatchGetItem, and one Query for the instance still without a total"
    );
    let total = store.usage_total(&old).await.unwrap().unwrap();
    let windows = store.windows_of(&old).await.unwrap();
    let built = koogallery::metering::UsageTotal::of_windows(&old, &windows).unwrap();
    assert!(built.same_sums(&total), "{total:?} vs {built:?}");
    // Sealing and settling leave the total alone.
    let mut last = store
        .window(&batch[0].window(&none))
        .await
        .unwrap()
        .unwrap();
    assert!(last.seal(now));
    store.save_window(&last).await.unwrap();
    assert!(
        store
            .usage_total(&old)
            .await
            .unwrap()
            .unwrap()
            .same_sums(&total)
    );
}
