//! The usage items' keys and codecs, and the crediting of a batch's own keys, without a table.

use std::collections::HashSet;

use chrono::{DateTime, Duration, TimeZone, Utc};
use koogallery::{
    StoreError,
    metering::{IngestOutcome, PackageUsage, UsageReport, UsageWindow, WindowKey},
};

use super::{
    ingestion::credit_own,
    items::{decode_record_item, record_item},
    keys::*,
    windows::{decode_window_item, window_item},
};
use crate::dynamo::{
    attr::{n, s},
    keys::{DATA, PK, VERSION},
};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap()
}

fn window(package: Option<&str>) -> UsageWindow {
    let key = WindowKey {
        instance_id: "inst-1".into(),
        start: t0(),
        package: package.map(str::to_owned),
    };
    let mut w = UsageWindow::open(&key, t0());
    w.total = "3.5".parse().unwrap();
    w.reports = 2;
    w.version = 4;
    w
}

#[test]
fn keys_follow_the_documented_schema() {
    let ms = t0().timestamp_millis();
    assert_eq!(usage_pk("inst-1"), "USAGE#inst-1");
    assert_eq!(window_sk(t0(), None).unwrap(), format!("W#{ms:015}"));
    assert_eq!(
        window_sk(t0(), Some("pkg-1")).unwrap(),
        format!("W#{ms:015}#pkg-1")
    );
    assert_eq!(key_pk("app/1"), "USAGEKEY#app/1");
    assert_eq!(package_pk("pkg-1"), "USAGEPKG#pkg-1");
    assert_eq!(
        due_at(t0(), "inst-1\npkg-1").unwrap(),
        format!("{ms:015}#inst-1\npkg-1")
    );
    // Before 1970 the keys cannot sort; it is refused, not mangled.
    let old = Utc
        .with_ymd_and_hms(1969, 12, 31, 23, 0, 0)
        .single()
        .unwrap();
    assert!(matches!(window_sk(old, None), Err(StoreError::Corrupt(_))));
    assert_eq!(due_bound(old), None);
    for prefix in [KEY_PK_PREFIX, PACKAGE_PK_PREFIX] {
        assert!(!prefix.starts_with(USAGE_PK_PREFIX));
        assert!(LEADING_KEYS.contains(&format!("{prefix}*").as_str()));
    }
}

#[test]
fn window_sort_keys_order_by_start_then_package() {
    let h = |n: i64| t0() + Duration::hours(n);
    let mut keys = vec![
        window_sk(h(10), Some("a")).unwrap(),
        window_sk(h(2), Some("z")).unwrap(),
        window_sk(h(10), None).unwrap(),
        window_sk(h(2), None).unwrap(),
    ];
    keys.sort();
    assert_eq!(
        keys,
        vec![
            window_sk(h(2), None).unwrap(),
            window_sk(h(2), Some("z")).unwrap(),
            window_sk(h(10), None).unwrap(),
            window_sk(h(10), Some("a")).unwrap(),
        ]
    );
}

#[test]
fn the_due_bound_takes_windows_ended_by_it_and_no_later() {
    let end = t0();
    let bound = due_bound(end).unwrap();
    assert!(due_at(end, "x").unwrap() < bound);
    assert!(due_at(end - Duration::hours(5), "zzz").unwrap() < bound);
    assert!(due_at(end + Duration::milliseconds(1), "").unwrap() > bound);
}

#[test]
fn window_items_round_trip_and_carry_the_due_index_while_unsettled() {
    for package in [None, Some("pkg-1")] {
        let w = window(package);
        let item = window_item(&w).unwrap();
        assert_eq!(item.get(VERSION), Some(&n(4)));
        assert_eq!(item.get(DUE), Some(&s(DUE_PARTITION)));
        assert_eq!(
            item.get(DUE_AT),
            Some(&s(due_at(w.end(), &w.key().series()).unwrap()))
        );
        assert_eq!(decode_window_item(&item).unwrap(), w);
        // The attribute wins over the JSON copy.
        let mut bumped = item.clone();
        bumped.insert(VERSION.into(), n(5));
        assert_eq!(decode_window_item(&bumped).unwrap().version, 5);
    }
    let mut settled = window(None);
    assert!(settled.seal(t0() + Duration::hours(2)));
    assert!(
        window_item(&settled).unwrap().contains_key(DUE),
        "sealed is still due"
    );
    settled.accept(t0() + Duration::hours(3));
    let item = window_item(&settled).unwrap();
    assert!(!item.contains_key(DUE) && !item.contains_key(DUE_AT));
    assert_eq!(decode_window_item(&item).unwrap(), settled);
}

#[test]
fn damaged_or_misfiled_items_are_corrupt() {
    let good = window_item(&window(None)).unwrap();
    let mut misfiled = good.clone();
    misfiled.insert(PK.into(), s(usage_pk("other")));
    let mut no_data = good.clone();
    no_data.remove(DATA);
    let mut bad_json = good.clone();
    bad_json.insert(DATA.into(), s("{"));
    for item in [misfiled, no_data, bad_json] {
        assert!(matches!(
            decode_window_item(&item),
            Err(StoreError::Corrupt(_))
        ));
    }
    let p = PackageUsage::new("pkg-1", Some("10".parse().unwrap()), t0());
    let mut item = record_item(&p).unwrap();
    assert_eq!(decode_record_item::<PackageUsage>(&item).unwrap(), Some(p));
    item.insert(PK.into(), s(package_pk("pkg-2")));
    assert!(matches!(
        decode_record_item::<PackageUsage>(&item),
        Err(StoreError::Corrupt(_))
    ));
}

#[test]
fn own_keys_count_as_applied_once() {
    let r = |key: &str| UsageReport {
        instance_id: "i".into(),
        quantity: "1".parse().unwrap(),
        occurred_at: t0(),
        idempotency_key: key.into(),
        package_instance_id: None,
    };
    let reports = [r("a"), r("b"), r("a"), r("c")];
    let seen = IngestOutcome {
        applied: 1,
        duplicates: 3,
        exhausted_packages: vec![],
    };
    let own: HashSet<String> = ["a".to_owned()].into();
    let o = credit_own(seen, &reports, &own);
    assert_eq!((o.applied, o.duplicates), (2, 2));
}
