//! Tests of the license state machine, the usage batching and the record goldens (docs/protocol/openapi.md §5, §6).

use chrono::{DateTime, TimeZone, Utc};

use super::*;

fn at(h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, h, 0, 0).unwrap()
}

fn code() -> LicenseCode {
    LicenseCode::parse("PL0000001").unwrap()
}

fn renew(order: &str, expire: DateTime<Utc>) -> LicenseChange {
    LicenseChange::Renew {
        order_id: order.into(),
        order_line_id: Some(format!("{order}-000001")),
        scene: RenewScene::Renewal,
        product_id: None,
        expire_time: expire,
    }
}

#[test]
fn codes_are_trimmed_bounded_and_masked_in_logs() {
    assert_eq!(LicenseCode::parse("  PL1 ").unwrap().as_str(), "PL1");
    assert!(LicenseCode::parse("").is_err());
    assert!(LicenseCode::parse("PL 1").is_err());
    assert!(LicenseCode::parse(&"P".repeat(65)).is_err());
    assert!(LicenseCode::parse(&"P".repeat(64)).is_ok());
    assert_eq!(code().masked(), "PL00…(9)");
}

#[test]
fn a_renewal_applies_once_per_order_and_scene_and_queues_one_event() {
    let mut l = License::new(code(), Origin::Marketplace, false, at(0));
    assert!(l.apply(renew("R1", at(10)), at(1)).unwrap());
    assert!(!l.apply(renew("R1", at(11)), at(2)).unwrap(), "a repeat");
    assert_eq!(l.expire_time, Some(at(10)));
    assert!(l.apply(renew("R2", at(12)), at(3)).unwrap());
    assert_eq!(l.pending.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(l.status_at(at(11)), LicenseStatus::Active);
    assert_eq!(
        l.status_at(at(12)),
        LicenseStatus::Expired,
        "expiry in the past"
    );
}

#[test]
fn freeze_and_unfreeze_are_repeats_in_the_state_they_ask_for_and_release_is_final() {
    let mut l = License::new(code(), Origin::Marketplace, false, at(0));
    assert!(!l.apply(LicenseChange::Unfreeze, at(1)).unwrap());
    assert!(l.apply(LicenseChange::Freeze, at(1)).unwrap());
    assert!(!l.apply(LicenseChange::Freeze, at(2)).unwrap());
    assert!(!l.usable_at(at(2)));
    assert!(l.apply(LicenseChange::Unfreeze, at(3)).unwrap());
    assert!(l.usable_at(at(3)));
    assert!(
        l.apply(LicenseChange::Release { order_id: None }, at(4))
            .unwrap()
    );
    for change in [
        LicenseChange::Unfreeze,
        LicenseChange::Freeze,
        renew("R9", at(20)),
        LicenseChange::Release { order_id: None },
    ] {
        assert!(!l.apply(change, at(5)).unwrap(), "release is final");
    }
    assert_eq!(l.status, LicenseStatus::Released);
    assert!(matches!(
        l.apply(
            LicenseChange::Activate {
                client_id: "c".into(),
                info: None
            },
            at(6)
        ),
        Err(LicenseError::Released(_))
    ));
}

#[test]
fn a_query_corrects_the_expiry_and_never_lifts_a_freeze() {
    let info = |status, h| LicenseInfo {
        status,
        expire_time: Some(at(h)),
        product_id: Some("p".into()),
        order_id: Some("CS1".into()),
        amount: Some(2),
        activate_time: None,
    };
    let mut l = License::new(code(), Origin::Marketplace, false, at(0));
    let activate = LicenseChange::Activate {
        client_id: "host-1".into(),
        info: Some(info(RemoteStatus::Alive, 20)),
    };
    assert!(l.apply(activate.clone(), at(1)).unwrap());
    assert!(
        !l.apply(activate, at(2)).unwrap(),
        "activation happens once"
    );
    assert_eq!(l.order_id.as_deref(), Some("CS1"));
    l.apply(LicenseChange::Freeze, at(3)).unwrap();
    let seq = l.next_seq;
    assert!(
        l.apply(
            LicenseChange::Checked {
                info: info(RemoteStatus::Alive, 22)
            },
            at(4)
        )
        .unwrap()
    );
    assert_eq!(l.status, LicenseStatus::Frozen, "ALIVE does not unfreeze");
    assert_eq!(l.expire_time, Some(at(22)));
    assert_eq!(l.next_seq, seq + 1, "the expiry changed: an event");
    assert!(
        l.apply(
            LicenseChange::Checked {
                info: info(RemoteStatus::Alive, 22)
            },
            at(5)
        )
        .unwrap()
    );
    assert_eq!(l.next_seq, seq + 1, "nothing changed: no event");
    assert_eq!(l.checked_at, Some(at(5)));
    l.apply(
        LicenseChange::Checked {
            info: info(RemoteStatus::Released, 22),
        },
        at(6),
    )
    .unwrap();
    assert_eq!(l.status, LicenseStatus::Released);
}

#[test]
fn usage_goes_out_per_day_at_most_a_hundred_codes_a_call_and_counts_above_a_hundred_clients() {
    use chrono::NaiveDate;
    use std::collections::BTreeSet;
    let d1 = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
    let d2 = d1.succ_opt().unwrap();
    let mut due = Vec::new();
    for i in 0..150 {
        due.push(DailyUsage {
            code: LicenseCode::parse(&format!("PL{i:04}")).unwrap(),
            day: d1,
            clients: BTreeSet::from([format!("c{i}")]),
        });
    }
    due.push(DailyUsage {
        code: code(),
        day: d2,
        clients: (0..101).map(|i| format!("c{i}")).collect(),
    });
    let calls = usage::calls(&due);
    assert_eq!(
        calls.iter().map(|(d, u)| (*d, u.len())).collect::<Vec<_>>(),
        [(d1, 100), (d1, 50), (d2, 1)]
    );
    assert_eq!(
        calls[2].1[0],
        SoftwareUsage::Count {
            code: code(),
            active_num: 101
        }
    );
}

/// The stored record and the events are versioned contracts.
#[test]
fn the_record_and_its_events_keep_their_schema_1_form() {
    let mut l = License::new(code(), Origin::Marketplace, false, at(0));
    l.apply(
        LicenseChange::Activate {
            client_id: "host-1".into(),
            info: Some(LicenseInfo {
                status: RemoteStatus::Alive,
                expire_time: Some(at(20)),
                product_id: Some("00301-1".into()),
                order_id: Some("CS1".into()),
                amount: Some(2),
                activate_time: None,
            }),
        },
        at(1),
    )
    .unwrap();
    l.apply(renew("R1", at(22)), at(2)).unwrap();
    l.apply(LicenseChange::Freeze, at(3)).unwrap();
    l.apply(LicenseChange::Unfreeze, at(4)).unwrap();
    l.apply(
        LicenseChange::Checked {
            info: LicenseInfo {
                status: RemoteStatus::Expired,
                expire_time: Some(at(5)),
                product_id: None,
                order_id: None,
                amount: None,
                activate_time: None,
            },
        },
        at(6),
    )
    .unwrap();
    l.apply(
        LicenseChange::Release {
            order_id: Some("U1".into()),
        },
        at(7),
    )
    .unwrap();
    l.version = 6;
    let legacy = License::issue_legacy(
        LicenseCode::parse("LG0123").unwrap(),
        LegacyPurchase {
            order_id: "CS2".into(),
            product_id: "p2".into(),
            customer_id: "cust".into(),
            amount: None,
            expire_time: Some(at(23)),
        },
        false,
        at(8),
    );
    crate::testing::golden::check("license_record_v1.json", &serde_json::json!([l, legacy]));
    let events: Vec<_> = l.pending.iter().chain(&legacy.pending).collect();
    crate::testing::golden::check("license_events_v1.json", &serde_json::json!(events));
}
