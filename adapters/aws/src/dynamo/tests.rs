//! The key schema, the item codecs, the classification of cancelled creates and the request
//! tokens, without a table.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use chrono::{DateTime, TimeZone, Utc};
use koogallery::{
    StoreError,
    instance::{Instance, InstanceState},
};

use super::{
    attr::{Item, n, s},
    create::{CreateCancel, classify_create},
    items::*,
    keys::*,
    sdk::{CONDITION_FAILED, backoff, request_token},
};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap()
}

#[test]
fn keys_follow_the_documented_schema() {
    assert_eq!(instance_pk("biz-1"), "INSTANCE#biz-1");
    assert_eq!(instance_id_of("INSTANCE#biz-1"), Some("biz-1"));
    assert_eq!(instance_id_of("NONCE#x"), None);
    assert_eq!(
        order_line_pk(
            &"CS1906666666ABCDE".into(),
            &"CS1906666666ABCDE-000001".into()
        ),
        "ORDERLINE#CS1906666666ABCDE#CS1906666666ABCDE-000001"
    );
    assert_eq!(event_sk(7), "EVENT#00000000000000000007");
    assert_eq!(event_sk(u64::MAX), "EVENT#18446744073709551615");
    assert_eq!(nonce_pk("abc"), "NONCE#abc");
}

#[test]
fn order_line_keys_are_unambiguous() {
    assert_ne!(
        order_line_pk(&"A#B".into(), &"C".into()),
        order_line_pk(&"A".into(), &"B#C".into())
    );
    assert_eq!(
        order_line_pk(&"A#B".into(), &"C".into()),
        "ORDERLINE#A%23B#C"
    );
    assert_ne!(
        order_line_pk(&"A%23".into(), &"B".into()),
        order_line_pk(&"A#".into(), &"B".into())
    );
}

#[test]
fn event_sort_keys_sort_by_sequence() {
    let mut seqs = [10u64, 2, 100, 1, 9, 11, 0];
    let mut keys: Vec<String> = seqs.iter().map(|s| event_sk(*s)).collect();
    keys.sort();
    seqs.sort_unstable();
    assert_eq!(keys, seqs.iter().map(|s| event_sk(*s)).collect::<Vec<_>>());
    assert!(keys.iter().all(|k| k.starts_with(EVENT_SK_PREFIX)));
    assert!(!INSTANCE_SK.starts_with(EVENT_SK_PREFIX));
}

#[test]
fn ttl_rounds_up_to_whole_seconds() {
    assert_eq!(ttl_secs(1_000), 1);
    assert_eq!(ttl_secs(1_001), 2);
    assert_eq!(ttl_secs(0), 0);
    assert_eq!(ttl_secs(-1), 0);
    let item = nonce_item("n", 1_767_225_600_500);
    assert_eq!(item.get(TTL), Some(&n(1_767_225_601i64)));
    assert_eq!(item.get(EXPIRES_MS), Some(&n(1_767_225_600_500i64)));
    assert_eq!(item.get(PK), Some(&s("NONCE#n")));
}

#[test]
fn instance_items_round_trip_with_the_version_attribute() {
    let (mut inst, ev) =
        Instance::new_provisioning(&"O-1".into(), &"O-1-000001".into(), "biz-1", false, t0());
    inst.version = 3;
    let item = instance_item(&inst).unwrap();
    assert_eq!(item.get(PK), Some(&s("INSTANCE#biz-1")));
    assert_eq!(item.get(SK), Some(&s(INSTANCE_SK)));
    assert_eq!(item.get(VERSION), Some(&n(3)));
    assert_eq!(item.get(STATE), Some(&s("provisioning")));
    assert_eq!(item.get(ORDER_ID), Some(&s("O-1")));
    assert_eq!(decode_instance(&item).unwrap(), inst);

    // The attribute wins over the JSON copy.
    let mut bumped = item.clone();
    bumped.insert(VERSION.into(), n(4));
    assert_eq!(decode_instance(&bumped).unwrap().version, 4);

    let ev_item = event_item("biz-1", &ev).unwrap();
    assert_eq!(ev_item.get(SK), Some(&s(event_sk(ev.seq))));
    assert_eq!(decode_event(&ev_item).unwrap(), ev);

    let line = order_line_item(&inst);
    assert_eq!(line.get(INSTANCE_ID), Some(&s("biz-1")));
    assert_eq!(line.get(SK), Some(&s(ORDER_LINE_SK)));
    assert_eq!(inst.state, InstanceState::Provisioning);
}

#[test]
fn damaged_items_are_corrupt_not_panics() {
    let (inst, _) = Instance::new_provisioning(&"O-1".into(), &"L".into(), "biz-1", false, t0());
    let good = instance_item(&inst).unwrap();
    let cases: Vec<Item> = vec![
        {
            let mut i = good.clone();
            i.insert(DATA.into(), s("{not json"));
            i
        },
        {
            let mut i = good.clone();
            i.remove(DATA);
            i
        },
        {
            let mut i = good.clone();
            i.insert(VERSION.into(), s("1"));
            i
        },
        {
            let mut i = good.clone();
            i.insert(VERSION.into(), n("x"));
            i
        },
        {
            let mut i = good.clone();
            i.insert(PK.into(), s("INSTANCE#other"));
            i
        },
    ];
    for item in cases {
        assert!(
            matches!(decode_instance(&item), Err(StoreError::Corrupt(_))),
            "{item:?}"
        );
    }
    let mut ev = HashMap::from([
        (PK.to_owned(), s("INSTANCE#x")),
        (SK.to_owned(), s("EVENT#1")),
    ]);
    assert!(matches!(decode_event(&ev), Err(StoreError::Corrupt(_))));
    ev.insert(DATA.into(), s("[]"));
    assert!(matches!(decode_event(&ev), Err(StoreError::Corrupt(_))));
}

#[test]
fn cancellation_reasons_classify_as_documented() {
    let r = |codes: &[&str]| -> Vec<(String, Option<Item>)> {
        codes.iter().map(|c| ((*c).to_owned(), None)).collect()
    };
    assert_eq!(
        classify_create(&r(&[
            "ConditionalCheckFailed",
            "ConditionalCheckFailed",
            "None"
        ])),
        CreateCancel::OrderLineTaken(None)
    );
    let with_item = vec![
        (
            CONDITION_FAILED.to_owned(),
            Some(HashMap::from([(INSTANCE_ID.to_owned(), s("biz-0"))])),
        ),
        ("None".to_owned(), None),
    ];
    assert_eq!(
        classify_create(&with_item),
        CreateCancel::OrderLineTaken(Some("biz-0".into()))
    );
    assert_eq!(
        classify_create(&r(&["None", "ConditionalCheckFailed", "None"])),
        CreateCancel::InstanceIdTaken
    );
    assert_eq!(
        classify_create(&r(&["TransactionConflict", "None"])),
        CreateCancel::Contended
    );
    assert_eq!(
        classify_create(&r(&["ThrottlingError", "None"])),
        CreateCancel::Other("ThrottlingError, None".into())
    );
}

#[test]
fn backoff_grows_and_is_bounded() {
    assert!(backoff(1) >= Duration::from_millis(20));
    assert!(backoff(1) < Duration::from_millis(40));
    assert!(backoff(50) < Duration::from_millis(1280));
}

/// The shard of an instance is stable (a save never moves it) and the shards share the
/// instances about evenly.
#[test]
fn unsettled_shards_are_stable_and_spread() {
    let mut counts = [0u32; UNSETTLED_SHARDS as usize];
    for k in 0..1600 {
        let id = format!("CS2611210000{k:05}-000001");
        let shard = unsettled_shard(&id);
        assert_eq!(shard, unsettled_shard(&id));
        let n: usize = shard.parse().unwrap();
        counts[n] += 1;
    }
    assert!(counts.iter().all(|c| (50..=150).contains(c)), "{counts:?}");
}

#[test]
fn request_tokens_are_distinct_and_fit_dynamodb() {
    let tokens: HashSet<String> = (0..1000).map(|_| request_token()).collect();
    assert_eq!(tokens.len(), 1000);
    assert!(tokens.iter().all(|t| (1..=36).contains(&t.len())));
}
