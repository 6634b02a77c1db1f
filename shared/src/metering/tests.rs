//! Metering domain tests: the batch rules, windows, sealing and the stored form.

use std::{collections::HashMap, sync::Arc};

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;

use super::{
    ingest::{self, IngestError, Refusal, UsageReport},
    *,
};
use crate::instance::Instance;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn report(instance: &str, quantity: &str, at: &str, key: &str) -> UsageReport {
    UsageReport {
        instance_id: instance.into(),
        quantity: d(quantity),
        occurred_at: t(at),
        idempotency_key: key.into(),
        package_instance_id: None,
    }
}

/// [`ingest::apply`] without packages, on windows and keys kept by the test.
fn apply(
    batch: &[UsageReport],
    windows: &mut HashMap<WindowKey, UsageWindow>,
    known: &HashMap<String, ingest::KeyRecord>,
    now: DateTime<Utc>,
) -> Result<ingest::Applied, IngestError> {
    let mut loaded = ingest::Loaded {
        windows: std::mem::take(windows),
        keys: known.clone(),
        ..Default::default()
    };
    let result = ingest::apply(batch, &PackageQuotas::new(), &mut loaded, now);
    *windows = loaded.windows;
    result
}

fn key(instance: &str, start: &str) -> WindowKey {
    WindowKey {
        instance_id: instance.into(),
        start: t(start),
        package: None,
    }
}

fn refusal(e: IngestError) -> (usize, Refusal) {
    match e {
        IngestError::Invalid { index, reason } => (index, reason),
        other => panic!("expected a refused report, got {other}"),
    }
}

#[test]
fn windows_are_utc_hours_and_serials_are_stable() {
    assert_eq!(
        window_start(t("2026-11-21T13:25:59.999Z")),
        t("2026-11-21T13:00:00Z")
    );
    let sn = metering_sn("i-1", None, t("2026-11-21T13:00:00Z"));
    // Pinned (computed apart, with Python's uuid.uuid5): a change would re-bill every window
    // already pushed under the old serial.
    assert_eq!(sn, "53b97790-218c-5e39-8b4e-c27ad1e188c0");
    assert_eq!(sn, metering_sn("i-1", None, t("2026-11-21T13:00:00Z")));
    assert_ne!(sn, metering_sn("i-1", None, t("2026-11-21T14:00:00Z")));
    assert_ne!(sn, metering_sn("i-2", None, t("2026-11-21T13:00:00Z")));
    assert_ne!(
        sn,
        metering_sn("i-1", Some("pkg"), t("2026-11-21T13:00:00Z"))
    );
}

#[test]
fn a_batch_is_checked_before_anything_is_applied() {
    let now = t("2026-11-21T14:00:00Z");
    let ok = report("i-1", "1.5", "2026-11-21T13:10:00Z", "k1");
    assert!(ingest::check_batch(std::slice::from_ref(&ok), now).is_ok());
    assert!(matches!(
        ingest::check_batch(&[], now),
        Err(IngestError::Empty)
    ));
    let many = vec![ok.clone(); ingest::MAX_BATCH + 1];
    assert!(matches!(
        ingest::check_batch(&many, now),
        Err(IngestError::TooMany { got: 1001 })
    ));
    let cases = [
        (
            report("i-1", "0", "2026-11-21T13:10:00Z", "k"),
            "NotPositive",
        ),
        (
            report("i-1", "-2", "2026-11-21T13:10:00Z", "k"),
            "NotPositive",
        ),
        (
            report("i-1", "1.23456", "2026-11-21T13:10:00Z", "k"),
            "TooManyDecimals",
        ),
        (
            report("i-1", "100000000", "2026-11-21T13:10:00Z", "k"),
            "TooLarge",
        ),
        (report("i-1", "1", "2026-11-21T14:01:00Z", "k"), "Future"),
        // Its hour (10-31 15:00) starts less than an hour after the 21-day horizon (10-31 14:00).
        (
            report("i-1", "1", "2026-10-31T15:59:59Z", "k"),
            "BeyondHorizon",
        ),
        (report("i-1", "1", "2026-11-21T13:10:00Z", ""), "BadKey"),
    ];
    for (bad, kind) in cases {
        let (index, reason) = refusal(ingest::check_batch(&[ok.clone(), bad], now).unwrap_err());
        assert_eq!(index, 1);
        assert!(format!("{reason:?}").starts_with(kind), "{reason:?}");
    }
    // Trailing zeros are not decimals: 1.50000 is 1.5.
    assert!(
        ingest::check_batch(
            &[report("i-1", "1.50000", "2026-11-21T13:10:00Z", "k")],
            now
        )
        .is_ok()
    );
}

#[test]
fn reports_must_name_a_live_real_instance_that_existed_then() {
    let created = t("2026-11-21T12:30:00Z");
    let mut instances = HashMap::new();
    let (live, _) =
        Instance::new_provisioning(&"O1".into(), &"O1-1".into(), "i-live", false, created);
    let (debug, _) =
        Instance::new_provisioning(&"O2".into(), &"O2-1".into(), "i-debug", true, created);
    let (mut gone, _) =
        Instance::new_provisioning(&"O3".into(), &"O3-1".into(), "i-gone", false, created);
    let _ = gone.release(None, t("2026-11-21T12:50:00Z"));
    for i in [live, debug, gone] {
        instances.insert(i.instance_id.clone(), Arc::new(i));
    }
    let at = "2026-11-21T13:00:00Z";
    assert!(
        ingest::check_instances(
            &[report("i-live", "1", at, "k")],
            &instances,
            &Default::default()
        )
        .is_ok()
    );
    for (id, at, expected) in [
        ("i-none", at, Refusal::UnknownInstance("i-none".into())),
        ("i-debug", at, Refusal::Debug("i-debug".into())),
        ("i-gone", at, Refusal::Released("i-gone".into())),
    ] {
        let (_, reason) = refusal(
            ingest::check_instances(&[report(id, "1", at, "k")], &instances, &Default::default())
                .unwrap_err(),
        );
        assert_eq!(reason, expected);
    }
    let (_, reason) = refusal(
        ingest::check_instances(
            &[report("i-live", "1", "2026-11-21T12:29:59Z", "k")],
            &instances,
            &Default::default(),
        )
        .unwrap_err(),
    );
    assert!(matches!(reason, Refusal::BeforeInstance(..)), "{reason:?}");
    // Usage from before the release, arriving after it, is still taken.
    assert!(
        ingest::check_instances(
            &[report("i-gone", "1", "2026-11-21T12:49:59Z", "k")],
            &instances,
            &Default::default()
        )
        .is_ok()
    );
}

/// The oldest hour taken starts more than an hour after KooGallery's 21-day horizon.
#[test]
fn usage_too_old_to_bill_is_refused_and_keys_outlive_every_repeat_it_could_refuse() {
    let now = t("2026-11-21T14:00:00Z");
    let oldest = report("i-1", "1", "2026-10-31T16:00:00Z", "k");
    assert!(ingest::check_batch(std::slice::from_ref(&oldest), now).is_ok());
    let key = ingest::KeyRecord {
        instance_id: oldest.instance_id.clone(),
        quantity: oldest.quantity,
        occurred_at: oldest.occurred_at,
        package_instance_id: None,
    };
    assert_eq!(key.keep_until(), t("2026-11-22T16:00:00Z"));
    // An hour later (a day before the key may go), its repeat is refused as too old, before any
    // key is read.
    let (_, reason) = refusal(
        ingest::check_batch(std::slice::from_ref(&oldest), now + Duration::hours(1)).unwrap_err(),
    );
    assert!(matches!(reason, Refusal::BeyondHorizon(_)), "{reason:?}");
}

#[test]
fn reports_add_up_per_window_and_a_repeated_key_counts_once() {
    let now = t("2026-11-21T14:00:00Z");
    let batch = [
        report("i-1", "1.5", "2026-11-21T13:10:00Z", "a"),
        report("i-1", "2.25", "2026-11-21T13:50:00Z", "b"),
        report("i-1", "1", "2026-11-21T12:59:59Z", "c"),
        report("i-2", "7", "2026-11-21T13:00:00Z", "d"),
        report("i-1", "1.5", "2026-11-21T13:10:00Z", "a"),
    ];
    let mut windows = HashMap::new();
    let applied = apply(&batch, &mut windows, &HashMap::new(), now).unwrap();
    assert_eq!(applied.outcome.applied, 4);
    assert_eq!(applied.outcome.duplicates, 1);
    assert_eq!(applied.new_keys.len(), 4);
    let w13 = &windows[&key("i-1", "2026-11-21T13:00:00Z")];
    assert_eq!((w13.total, w13.reports), (d("3.75"), 2));
    assert_eq!(applied.changed.len(), 3);

    // The same batch again, against the stored keys: nothing more.
    let known: HashMap<_, _> = applied.new_keys.into_iter().collect();
    let again = apply(&batch, &mut windows, &known, now).unwrap();
    assert_eq!(again.outcome.applied, 0);
    assert_eq!(again.outcome.duplicates, 5);

    // A key reused for other content is refused.
    let (index, reason) = refusal(
        apply(
            &[report("i-1", "9", "2026-11-21T13:10:00Z", "a")],
            &mut windows,
            &known,
            now,
        )
        .unwrap_err(),
    );
    assert_eq!((index, reason), (0, Refusal::KeyReused("a".into())));
}

#[test]
fn a_sealed_window_takes_no_more_usage_and_keeps_its_record() {
    let now = t("2026-11-21T14:06:00Z");
    let key = key("i-1", "2026-11-21T13:00:00Z");
    let mut w = UsageWindow::open(&key, now);
    w.total = d("3.75");
    w.reports = 2;
    assert!(w.seal(now));
    assert!(!w.seal(now + Duration::minutes(1)), "sealed once");
    let sealed = w.sealed().unwrap().clone();
    assert_eq!(sealed.value, d("3.75"));
    assert_eq!(sealed.metering_sn, metering_sn("i-1", None, key.start));
    assert_eq!(sealed.record_time, now);

    let mut windows = HashMap::from([(key.clone(), w.clone())]);
    let (_, reason) = refusal(
        apply(
            &[report("i-1", "1", "2026-11-21T13:59:00Z", "late")],
            &mut windows,
            &HashMap::new(),
            now,
        )
        .unwrap_err(),
    );
    assert!(
        matches!(reason, Refusal::WindowReported { .. }),
        "{reason:?}"
    );
    assert_eq!(windows[&key], w, "nothing changed");

    w.push_failed("timeout");
    assert_eq!(w.sealed().unwrap().failed_pushes, 1);
    assert_eq!(
        w.sealed().unwrap().value,
        sealed.value,
        "the record is unchanged"
    );
    w.accept(now);
    assert!(!w.is_unsettled());
    assert_eq!(w.sealed().unwrap().metering_sn, sealed.metering_sn);
}

#[test]
fn a_window_never_exceeds_what_one_record_carries() {
    let now = t("2026-11-21T14:00:00Z");
    let mut windows = HashMap::new();
    let big = "99999999.9999";
    apply(
        &[report("i-1", big, "2026-11-21T13:00:00Z", "a")],
        &mut windows,
        &HashMap::new(),
        now,
    )
    .unwrap();
    let (_, reason) = refusal(
        apply(
            &[report("i-1", "0.0001", "2026-11-21T13:01:00Z", "b")],
            &mut windows,
            &HashMap::new(),
            now,
        )
        .unwrap_err(),
    );
    assert!(matches!(reason, Refusal::WindowFull { .. }));
}

/// The stored form of a window is a contract: what an earlier release wrote (schema 1) still
/// reads, and this release writes schema 2, the very same fields.
#[test]
fn stored_windows_keep_their_form() {
    let v1 = include_str!("../../tests/fixtures/usage_window_v1.json").trim();
    let golden = include_str!("../../tests/fixtures/usage_window_v2.json").trim();
    assert_eq!(
        record::decode_window(v1.as_bytes()).unwrap(),
        record::decode_window(golden.as_bytes()).unwrap(),
        "a schema-1 window reads as the same window"
    );
    let w = record::decode_window(golden.as_bytes()).unwrap();
    assert_eq!(w.instance_id, "i-1");
    assert_eq!(w.total, d("3.75"));
    assert!(matches!(w.state, WindowState::Rejected { ref code, .. } if code == "MKT.9001"));
    assert_eq!(
        String::from_utf8(record::encode_window(&w).unwrap()).unwrap(),
        golden
    );
    for state in ["open", "sealed", "accepted"] {
        let mut v: serde_json::Value = serde_json::from_str(golden).unwrap();
        v["state"] = state.into();
        let w = record::decode_window(v.to_string().as_bytes()).unwrap();
        assert_eq!(w.is_unsettled(), state != "accepted");
    }
    let mut v: serde_json::Value = serde_json::from_str(golden).unwrap();
    v["schema"] = 3.into();
    assert!(record::decode_window(v.to_string().as_bytes()).is_err());
}

/// A stop-when-used-up package's window and a package's usage are stored contracts too; the
/// serial of a package window (computed apart with Python's `uuid5`) includes the package.
#[test]
fn stored_packages_keep_their_form() {
    let golden = include_str!("../../tests/fixtures/usage_window_v2_package.json").trim();
    let v1 = include_str!("../../tests/fixtures/usage_window_v1_package.json").trim();
    let w = record::decode_window(golden.as_bytes()).unwrap();
    assert_eq!(record::decode_window(v1.as_bytes()).unwrap(), w);
    assert_eq!(w.package.as_deref(), Some("pkg-1"));
    assert_eq!(
        w.sealed().unwrap().metering_sn,
        metering_sn("od-1", Some("pkg-1"), w.start)
    );
    assert_eq!(
        w.sealed().unwrap().metering_sn,
        "7de0e1f7-12d6-500f-a023-43aa074d81cc"
    );
    assert_eq!(
        String::from_utf8(record::encode_window(&w).unwrap()).unwrap(),
        golden
    );
    let mut reopened = w.clone();
    reopened.state = WindowState::Open;
    assert!(reopened.seal(t("2026-11-21T14:06:00Z")));
    assert_eq!(
        reopened.sealed(),
        w.sealed(),
        "sealing gives the same record"
    );

    // The first hour of an instance begins at its start: the offset rides in the field package
    // windows already had, and the serial stays the hour's.
    let golden = include_str!("../../tests/fixtures/usage_window_v2_first_hour.json").trim();
    let v1 = include_str!("../../tests/fixtures/usage_window_v1_first_hour.json").trim();
    let w = record::decode_window(golden.as_bytes()).unwrap();
    assert_eq!(record::decode_window(v1.as_bytes()).unwrap(), w);
    let record = super::push::PushRecord::of(&w).unwrap();
    assert_eq!(
        (record.begin, record.end),
        (t("2026-11-21T19:59:08Z"), t("2026-11-21T20:00:00Z"))
    );
    assert_eq!(record.metering_sn, metering_sn("i-7", None, w.start));
    assert_eq!(
        String::from_utf8(record::encode_window(&w).unwrap()).unwrap(),
        golden
    );
    let mut reopened = w.clone();
    reopened.state = WindowState::Open;
    assert!(reopened.seal_from(
        t("2026-11-21T20:06:00Z"),
        Some(t("2026-11-21T19:59:08.300Z"))
    ));
    assert_eq!(
        reopened.sealed(),
        w.sealed(),
        "sealing gives the same record"
    );

    let golden = include_str!("../../tests/fixtures/usage_package_v1.json").trim();
    let p = record::decode_package(golden.as_bytes()).unwrap();
    assert_eq!((p.quota, p.used_total()), (Some(d("20")), d("20")));
    assert_eq!(p.remaining(), Some(Decimal::ZERO));
    assert_eq!(
        String::from_utf8(record::encode_package(&p).unwrap()).unwrap(),
        golden
    );
    let mut v: serde_json::Value = serde_json::from_str(golden).unwrap();
    v["schema"] = 2.into();
    assert!(record::decode_package(v.to_string().as_bytes()).is_err());
}

/// An instance's usage total is a stored contract too (added after windows and packages).
#[test]
fn stored_totals_keep_their_form() {
    let golden = include_str!("../../tests/fixtures/usage_total_v1.json").trim();
    let total = record::decode_total(golden.as_bytes()).unwrap();
    assert_eq!(
        (
            total.instance_id.as_str(),
            total.total,
            total.reports,
            total.windows
        ),
        ("od-1", d("3.7501"), 3, 2)
    );
    assert_eq!(total.last_reported_at, t("2026-11-21T15:11:00Z"));
    assert_eq!(total.version, 3);
    assert_eq!(
        String::from_utf8(record::encode_total(&total).unwrap()).unwrap(),
        golden
    );
    let mut v: serde_json::Value = serde_json::from_str(golden).unwrap();
    v["schema"] = 2.into();
    assert!(record::decode_total(v.to_string().as_bytes()).is_err());
}

/// [`ingest::apply`] keeps each named instance's total the sum of its windows, own and
/// package, as a store built from them would find it; duplicates and refused batches add nothing.
#[test]
fn totals_follow_the_windows_they_sum() {
    let quotas: PackageQuotas = [("pkg".to_owned(), Some(d("100")))].into();
    let with_pkg = |r: UsageReport| UsageReport {
        package_instance_id: Some("pkg".into()),
        ..r
    };
    let mut loaded = ingest::Loaded::default();
    let first = vec![
        report("i-1", "1.5", "2026-11-21T13:10:00Z", "a"),
        report("i-1", "2", "2026-11-21T13:20:00Z", "b"),
        with_pkg(report("i-1", "0.25", "2026-11-21T13:30:00Z", "c")),
        report("i-2", "4", "2026-11-21T14:10:00Z", "d"),
    ];
    let at1 = t("2026-11-21T14:30:00Z");
    // As a store does: the keys applied are kept.
    let store = |batch: &[UsageReport], loaded: &mut ingest::Loaded, now| {
        let a = ingest::apply(batch, &quotas, loaded, now).unwrap();
        loaded.keys.extend(a.new_keys.clone());
        a
    };
    let a = store(&first, &mut loaded, at1);
    assert_eq!(a.changed_totals, ["i-1", "i-2"]);
    let at2 = t("2026-11-21T14:40:00Z");
    let second = vec![
        report("i-1", "1.5", "2026-11-21T13:10:00Z", "a"),
        report("i-1", "3", "2026-11-21T14:05:00Z", "e"),
    ];
    assert_eq!(store(&second, &mut loaded, at2).outcome.duplicates, 1);
    // A clock behind the last batch's does not move the latest back.
    let behind = vec![report("i-2", "1", "2026-11-21T14:20:00Z", "f")];
    store(&behind, &mut loaded, t("2026-11-21T14:25:00Z"));
    let refused = vec![
        report("i-2", "7", "2026-11-21T14:50:00Z", "g"),
        report("i-2", "1", "2026-11-21T14:50:00Z", "g"),
    ];
    let before = loaded.clone();
    assert!(ingest::apply(&refused, &quotas, &mut loaded.clone(), at2).is_err());
    for id in ["i-1", "i-2"] {
        let windows: Vec<UsageWindow> = loaded
            .windows
            .values()
            .filter(|w| w.instance_id == id)
            .cloned()
            .collect();
        let built = UsageTotal::of_windows(id, &windows).unwrap();
        assert!(built.same_sums(&loaded.totals[id]), "{id}: {built:?}");
        assert!(before.totals[id].same_sums(&loaded.totals[id]));
    }
    let i1 = &loaded.totals["i-1"];
    assert_eq!((i1.total, i1.reports, i1.windows), (d("6.75"), 4, 3));
    assert_eq!(i1.last_reported_at, at2);
    assert_eq!(loaded.totals["i-2"].last_reported_at, at1);
    assert_eq!(
        loaded.windows[&key("i-2", "2026-11-21T14:00:00Z")].last_reported_at,
        at1
    );
}

mod packages {
    //! Ingestion with packages: quotas read from the package order, deducted, refused beyond,
    //! and `quotaExhausted` recorded once (healed by the next batch naming the package).

    use super::*;
    use crate::{
        instance::{AccessInfo, EventKind, InstanceStore, Outcome},
        jobs::Job,
        metering::{
            UsageStore,
            ingest::ingest_batch,
            package::{PackageQuotaList, QUOTA_PARAM},
        },
        order::{ChargingMode, OrderDetails},
        testing::memory::{MemoryQueue, MemoryStore},
    };

    const NOW: &str = "2026-11-21T14:00:00Z";

    async fn instance(
        store: &MemoryStore,
        id: &str,
        mode: ChargingMode,
        sku: &str,
        quantity: Option<f64>,
        params: Vec<(String, String)>,
    ) {
        let (mut i, created) = Instance::new_provisioning(
            &format!("O-{id}").into(),
            &"1".into(),
            id,
            false,
            t("2026-11-21T12:00:00Z"),
        );
        i.order = Some(OrderDetails {
            charging_mode: Some(mode),
            sku_code: Some(sku.into()),
            quantity,
            extend_params: params,
            ..OrderDetails::default()
        });
        let access = AccessInfo {
            front_end_url: "https://app.example.com".into(),
            admin_url: None,
            user_name: None,
            password: None,
            memo: None,
        };
        let Ok(Outcome::Changed(active)) = i.activate(access, t("2026-11-21T12:00:00Z")) else {
            panic!("activate")
        };
        store
            .create_for_order_line(&i, &[created, active])
            .await
            .unwrap();
    }

    fn used(instance: &str, package: &str, q: &str, key: &str) -> UsageReport {
        UsageReport {
            package_instance_id: Some(package.into()),
            ..report(instance, q, "2026-11-21T13:30:00Z", key)
        }
    }

    async fn bed() -> (Arc<MemoryStore>, PackageQuotaList) {
        let store = Arc::new(MemoryStore::new());
        instance(&store, "od", ChargingMode::OnDemand, "sku-od", None, vec![]).await;
        // 2 units of a 10-per-unit SKU: 20.
        instance(
            &store,
            "stop",
            ChargingMode::OnDemandPkg,
            "sku-pkg",
            Some(2.0),
            vec![],
        )
        .await;
        // The order's own parameter wins over the SKU's.
        let own = vec![(QUOTA_PARAM.to_owned(), "3.5".to_owned())];
        instance(
            &store,
            "own",
            ChargingMode::OnDemandPkg,
            "sku-pkg",
            None,
            own,
        )
        .await;
        instance(
            &store,
            "od-pkg",
            ChargingMode::OnDemandPkg,
            "sku-other",
            None,
            vec![],
        )
        .await;
        let quotas = PackageQuotaList::from_json(r#"{"sku-pkg":"10"}"#).unwrap();
        (store, quotas)
    }

    async fn ingest(
        store: &Arc<MemoryStore>,
        quotas: &PackageQuotaList,
        batch: &[UsageReport],
    ) -> Result<IngestOutcome, IngestError> {
        ingest_queued(store, &MemoryQueue::new(), quotas, batch).await
    }

    async fn ingest_queued(
        store: &Arc<MemoryStore>,
        jobs: &MemoryQueue,
        quotas: &PackageQuotaList,
        batch: &[UsageReport],
    ) -> Result<IngestOutcome, IngestError> {
        ingest_batch(store.as_ref(), store.as_ref(), jobs, quotas, batch, t(NOW)).await
    }

    async fn notices(store: &MemoryStore, id: &str) -> usize {
        store
            .events(id)
            .await
            .unwrap()
            .iter()
            .filter(|e| matches!(e.kind, EventKind::QuotaExhausted { .. }))
            .count()
    }

    #[test]
    fn a_quota_list_takes_only_positive_decimals() {
        assert!(PackageQuotaList::from_json(r#"{"a":"0"}"#).is_err());
        assert!(PackageQuotaList::from_json(r#"{"a":"x"}"#).is_err());
        assert!(PackageQuotaList::from_json(r#"{"a":"1.5"}"#).is_ok());
    }

    /// A batch whose first reports use a package up and whose next one is refused for it is
    /// refused whole: nothing is stored, so the package is not used up and no `quotaExhausted`
    /// may reach the vendor (found by the usage API's fuzz target: the refusal recorded it).
    #[tokio::test]
    async fn a_refused_batch_that_used_a_package_up_itself_notices_nothing() {
        let (store, quotas) = bed().await;
        let jobs = MemoryQueue::new();
        let batch = [used("od", "stop", "20", "a"), used("od", "stop", "1", "b")];
        let (index, reason) = refusal(
            ingest_queued(&store, &jobs, &quotas, &batch)
                .await
                .unwrap_err(),
        );
        assert_eq!((index, reason), (1, Refusal::QuotaExhausted("stop".into())));
        assert_eq!(notices(&store, "stop").await, 0, "no notice");
        assert!(jobs.is_empty(), "no drain queued");
        assert!(
            store.package("stop").await.unwrap().is_none(),
            "nothing stored"
        );
        // The first report alone uses it up, and that is heard.
        ingest_queued(&store, &jobs, &quotas, &batch[..1])
            .await
            .unwrap();
        assert_eq!(notices(&store, "stop").await, 1);
        assert_eq!(jobs.len(), 1);
    }

    #[tokio::test]
    async fn a_stop_when_used_up_package_is_deducted_refused_beyond_and_heard_once() {
        let (store, quotas) = bed().await;
        let o = ingest(&store, &quotas, &[used("od", "stop", "15", "a")])
            .await
            .unwrap();
        assert!(o.exhausted_packages.is_empty());
        let (_, reason) = refusal(
            ingest(&store, &quotas, &[used("od", "stop", "5.0001", "b")])
                .await
                .unwrap_err(),
        );
        assert_eq!(
            reason,
            Refusal::QuotaExceeded {
                package: "stop".into(),
                left: "5".into(),
                quantity: "5.0001".into()
            }
        );
        let o = ingest(&store, &quotas, &[used("od", "stop", "5", "c")])
            .await
            .unwrap();
        assert_eq!(o.exhausted_packages, ["stop"]);
        assert_eq!(notices(&store, "stop").await, 1);
        let pending = store
            .get("stop")
            .await
            .unwrap()
            .unwrap()
            .outbox
            .pending
            .len();
        assert_eq!(pending, 1, "the vendor is told");
        // The repeat is a duplicate and no second notice; more usage is refused.
        ingest(&store, &quotas, &[used("od", "stop", "5", "c")])
            .await
            .unwrap();
        let (_, reason) = refusal(
            ingest(&store, &quotas, &[used("od", "stop", "1", "d")])
                .await
                .unwrap_err(),
        );
        assert_eq!(reason, Refusal::QuotaExhausted("stop".into()));
        assert_eq!(notices(&store, "stop").await, 1);
        // The package's usage has its own window, pushed with relate_pkg_instance.
        let windows = store.windows_of("od").await.unwrap();
        assert_eq!(windows.len(), 1);
        assert_eq!(windows[0].package.as_deref(), Some("stop"));
        assert_eq!(windows[0].total, d("20"));
        // A new package resumes.
        let (_, reason) = refusal(
            ingest(&store, &quotas, &[used("od", "own", "3.6", "e")])
                .await
                .unwrap_err(),
        );
        assert!(matches!(reason, Refusal::QuotaExceeded { ref left, .. } if left == "3.5"));
        ingest(&store, &quotas, &[used("od", "own", "1", "e")])
            .await
            .unwrap();
    }

    /// The vendor hears `quotaExhausted` from the worker within seconds, not from the
    /// reconciler's next pass: the batch that records the notice queues its outbox's drain (once,
    /// not again for each later batch naming the package).
    #[tokio::test]
    async fn the_notice_is_queued_for_delivery_when_it_is_recorded() {
        let (store, quotas) = bed().await;
        let jobs = MemoryQueue::new();
        ingest_queued(&store, &jobs, &quotas, &[used("od", "stop", "19", "a")])
            .await
            .unwrap();
        assert!(jobs.is_empty(), "nothing to tell yet");
        ingest_queued(&store, &jobs, &quotas, &[used("od", "stop", "1", "b")])
            .await
            .unwrap();
        let seq = *store
            .get("stop")
            .await
            .unwrap()
            .unwrap()
            .outbox
            .pending
            .last()
            .expect("the notice is pending");
        assert_eq!(
            jobs.take_all(),
            [Job::Notify {
                instance_id: "stop".into(),
                seq
            }]
        );
        let refused = ingest_queued(&store, &jobs, &quotas, &[used("od", "stop", "1", "c")]).await;
        assert!(refused.is_err());
        assert!(jobs.is_empty(), "queued once");
    }

    /// A queue outage neither fails the batch (it is applied) nor loses the notice: it stays in
    /// the package's outbox, where the reconciler finds it.
    #[tokio::test]
    async fn a_queue_outage_leaves_the_notice_to_the_reconciler() {
        let (store, quotas) = bed().await;
        let jobs = MemoryQueue::new();
        jobs.fail_next_enqueue();
        let o = ingest_queued(&store, &jobs, &quotas, &[used("od", "stop", "20", "a")])
            .await
            .unwrap();
        assert_eq!((o.applied, o.exhausted_packages.len()), (1, 1));
        assert!(jobs.is_empty());
        let package = store.get("stop").await.unwrap().unwrap();
        assert_eq!(package.outbox.pending.len(), 1);
        let unsettled = store.unsettled().await.unwrap();
        assert!(unsettled.iter().any(|i| i.instance_id == "stop"));
    }

    #[tokio::test]
    async fn a_notice_lost_to_a_crash_is_made_by_the_next_batch_naming_the_package() {
        let (store, quotas) = bed().await;
        let batch = [used("od", "stop", "20", "all")];
        // The store applied the batch, then the process died before the notice.
        let q: PackageQuotas = [("stop".to_owned(), Some(d("20")))].into();
        store.ingest(&batch, &q, t(NOW)).await.unwrap();
        assert_eq!(notices(&store, "stop").await, 0);
        let o = ingest(&store, &quotas, &batch).await.unwrap();
        assert_eq!((o.duplicates, o.exhausted_packages.len()), (1, 1));
        assert_eq!(notices(&store, "stop").await, 1);
    }

    #[tokio::test]
    async fn only_live_package_instances_can_be_consumed() {
        let (store, quotas) = bed().await;
        for (package, expected) in [
            ("od", Refusal::NotAPackage("od".into())),
            ("none", Refusal::UnknownInstance("none".into())),
        ] {
            let (_, reason) = refusal(
                ingest(&store, &quotas, &[used("od", package, "1", "k")])
                    .await
                    .unwrap_err(),
            );
            assert_eq!(reason, expected);
        }
        crate::instance::mutate(store.as_ref(), "stop", |i| Ok(i.release(None, t(NOW))))
            .await
            .unwrap();
        let (_, reason) = refusal(
            ingest(&store, &quotas, &[used("od", "stop", "1", "k")])
                .await
                .unwrap_err(),
        );
        assert_eq!(reason, Refusal::Released("stop".into()));
        // An on-demand package has no quota here: KooGallery deducts.
        let o = ingest(&store, &quotas, &[used("od", "od-pkg", "1000", "k")])
            .await
            .unwrap();
        assert_eq!(o.applied, 1);
        let p = store.package("od-pkg").await.unwrap().unwrap();
        assert_eq!((p.quota, p.used["od"]), (None, d("1000")));
    }
}
