//! The directory's keys, item codecs, chunk sizing and cancellation classification, without a
//! table.

use std::collections::HashMap;

use chrono::{DateTime, TimeZone, Utc};
use koogallery::{
    StoreError,
    directory::{Department, DirectoryEvent, EventBody, TenantKey, User, record},
};

use super::{
    MAX_ITEM_BYTES,
    departments::{SetRef, fits_inline, generation_of},
    items::*,
    keys::*,
    numbering::{Cancel, State, classify, generation_unchanged, seq_unchanged},
    records::{last_wins, unique},
};
use crate::dynamo::{
    attr::{Item, n, s},
    keys::{DATA, SEQ, SK},
};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap()
}

fn user(name: &str) -> User {
    koogallery::testing::directory::sample_user("a1", name, t0())
}

#[test]
fn keys_follow_the_documented_schema() {
    let key = TenantKey::new("inst-1", "tenant-1");
    assert_eq!(tenant_pk(&key), "DIR#inst-1#tenant-1");
    assert_eq!(tenant_pk(&TenantKey::new("", "t")), "DIR##t");
    assert_eq!(app_sk("app-1"), "APP#app-1");
    assert_eq!(user_sk("app-1", "zhangsan"), "USER#app-1#zhangsan");
    assert_eq!(users_prefix("app-1"), "USER#app-1#");
    assert_eq!(org_sk("0", "10001"), "ORG#0#10001");
    assert_eq!(chunk_sk("g1", 3), "ORGCHUNK#g1#0003");
    assert_eq!(chunk_prefix("g1"), "ORGCHUNK#g1#");
    assert_eq!(event_sk(7), "EVENT#00000000000000000007");
    assert_eq!(event_sk(u64::MAX), "EVENT#18446744073709551615");
    assert_eq!(LEADING_KEYS, [format!("{DIR_PK_PREFIX}*").as_str()]);
    // No other partition starts like a tenant's.
    for other in crate::usage::keys::LEADING_KEYS
        .iter()
        .chain(crate::sso::keys::LEADING_KEYS)
    {
        let other = other.trim_end_matches('*');
        assert!(!other.starts_with(DIR_PK_PREFIX) && !DIR_PK_PREFIX.starts_with(other));
    }
}

/// A locator partition (one `#`) is never a tenant's (two), whatever the IDs hold, and it is
/// under the directory's leading key.
#[test]
fn a_locator_never_shares_a_key_with_a_tenant() {
    assert_eq!(locator_pk("t#1"), "DIR#t%231");
    assert_eq!(locator_sk(""), "TENANT#");
    assert_eq!(locator_sk("i%1"), "TENANT#i%251");
    for (i, t) in [("", "t"), ("a", "b"), ("a#b", "c"), ("", "")] {
        let tenant = tenant_pk(&TenantKey::new(i, t));
        for id in [t, i, "a#b", "t#", ""] {
            assert_ne!(locator_pk(id), tenant);
        }
    }
    assert!(locator_pk("x").starts_with(DIR_PK_PREFIX));
}

#[test]
fn ids_with_hash_or_percent_never_share_a_key() {
    let pk = |i: &str, t: &str| tenant_pk(&TenantKey::new(i, t));
    assert_ne!(pk("a#b", "c"), pk("a", "b#c"));
    assert_ne!(pk("", "a#b"), pk("a", "b"));
    assert_ne!(pk("a%23", "b"), pk("a#", "b"));
    assert_eq!(pk("a#b", "c%"), "DIR#a%23b#c%25");
    assert_ne!(user_sk("a#b", "c"), user_sk("a", "b#c"));
    assert!(!user_sk("a#b", "c").starts_with(&users_prefix("a")));
    assert!(!user_sk("ab", "c").starts_with(&users_prefix("a")));
    assert_ne!(org_sk("0", "x#y"), org_sk("0#x", "y"));
    assert_ne!(app_sk("x%23"), app_sk("x#"));
}

#[test]
fn sort_key_prefixes_do_not_overlap() {
    let kinds = [
        TENANT_SK.to_owned(),
        app_sk("a"),
        user_sk("a", "u"),
        ORGSET_SK.to_owned(),
        org_sk("0", "d"),
        chunk_sk("0", 0),
        SEQ_SK.to_owned(),
        event_sk(1),
    ];
    let prefixes = [
        APP_SK_PREFIX,
        USER_SK_PREFIX,
        ORG_SK_PREFIX,
        ORGCHUNK_SK_PREFIX,
        EVENT_SK_PREFIX,
    ];
    for p in prefixes {
        assert_eq!(kinds.iter().filter(|k| k.starts_with(p)).count(), 1, "{p}");
    }
    // A tenant deletion's `ORG` sweep takes the departments (both layouts) and ORGSET,
    // nothing else.
    let swept: Vec<_> = kinds
        .iter()
        .filter(|k| k.starts_with(ORG_SWEEP_PREFIX))
        .collect();
    assert_eq!(swept, [ORGSET_SK, &org_sk("0", "d"), &chunk_sk("0", 0)]);
    // Delivered events are a BETWEEN range: EVENT# up to the seq.
    assert!(EVENT_SK_PREFIX < event_sk(0).as_str());
    assert!(event_sk(9) < event_sk(10));
}

#[test]
fn items_round_trip_and_damaged_ones_are_corrupt() {
    let pk = "DIR#i#t";
    let u = user("zhangsan");
    let item = record_item(pk, user_sk("a1", "zhangsan"), record::encode_user(&u)).unwrap();
    assert_eq!(decode_user_item(&item, "a1").unwrap(), u);
    // Filed under another app or name: corrupt, not misread.
    assert!(matches!(
        decode_user_item(&item, "a2"),
        Err(StoreError::Corrupt(_))
    ));
    let mut no_data = item.clone();
    no_data.remove(DATA);
    let mut bad_json = item.clone();
    bad_json.insert(DATA.into(), s("{"));
    let mut not_string = item.clone();
    not_string.insert(DATA.into(), n(1));
    for bad in [no_data, bad_json, not_string] {
        assert!(matches!(
            decode_user_item(&bad, "a1"),
            Err(StoreError::Corrupt(_))
        ));
    }

    let event = DirectoryEvent {
        seq: 12,
        at: t0(),
        body: EventBody::TenantDeleted,
    };
    let item = event_item(pk, &event).unwrap();
    assert_eq!(item.get(SEQ), Some(&n(12)));
    assert_eq!(decode_event_item(&item).unwrap(), event);
    let mut moved = item.clone();
    moved.insert(SK.into(), s(event_sk(13)));
    assert!(matches!(
        decode_event_item(&moved),
        Err(StoreError::Corrupt(_))
    ));

    assert_eq!(decode_seq_item(&seq_item(pk, 41)).unwrap(), 41);
    let mut seq = seq_item(pk, 41);
    seq.insert(SEQ.into(), s("41"));
    assert!(matches!(decode_seq_item(&seq), Err(StoreError::Corrupt(_))));

    assert_eq!(
        decode_orgset_item(&orgset_item(pk, "abc", 2)).unwrap(),
        SetRef {
            generation: "abc".into(),
            chunks: Some(2)
        }
    );
    // Written by a release before the chunks: one item per department.
    let mut per_item = orgset_item(pk, "abc", 2);
    per_item.remove(CHUNKS);
    assert_eq!(decode_orgset_item(&per_item).unwrap().chunks, None);
    let mut bad_count = orgset_item(pk, "abc", 2);
    bad_count.insert(CHUNKS.into(), s("2"));
    assert!(matches!(
        decode_orgset_item(&bad_count),
        Err(StoreError::Corrupt(_))
    ));
    for bad in ["", "a#b"] {
        assert!(matches!(
            decode_orgset_item(&orgset_item(pk, bad, 1)),
            Err(StoreError::Corrupt(_))
        ));
    }

    let departments = [Department {
        org_code: "d1".into(),
        org_name: "研发部".into(),
        parent_code: None,
    }];
    let chunk = record_item(
        pk,
        chunk_sk("g", 1),
        record::encode_department_chunk(&departments),
    )
    .unwrap();
    assert_eq!(decode_chunk_item(&chunk, "g", 2).unwrap(), departments);
    // Another generation's, or past the count: corrupt, not misread.
    for (generation, count) in [("h", 2), ("g", 1)] {
        assert!(matches!(
            decode_chunk_item(&chunk, generation, count),
            Err(StoreError::Corrupt(_))
        ));
    }
}

#[test]
fn the_last_copy_of_a_key_wins_in_first_order() {
    let mut second = user("b");
    second.name = "later".into();
    let users = [user("b"), user("a"), second.clone(), user("c")];
    let kept = last_wins(&users, |u| &u.user_name);
    assert_eq!(
        kept.iter()
            .map(|u| (u.user_name.as_str(), u.name.as_str()))
            .collect::<Vec<_>>(),
        [("b", "later"), ("a", "张三"), ("c", "张三")]
    );
    let names = ["x".to_owned(), "y".to_owned(), "x".to_owned()];
    assert_eq!(unique(&names).collect::<Vec<_>>(), ["x", "y"]);
}

#[test]
fn oversized_items_are_refused_up_front() {
    let item = record_item("DIR#i#t", TENANT_SK.into(), vec![b'x'; MAX_ITEM_BYTES]).unwrap();
    assert!(matches!(check_size(&item), Err(StoreError::Corrupt(_))));
    assert!(check_size(&seq_item("DIR#i#t", 1)).is_ok());
}

#[test]
fn chunks_ride_in_the_transaction_while_they_fit() {
    let pk = "DIR#i#t";
    let chunk = |kb: usize| record_item(pk, chunk_sk("g", 0), vec![b'x'; kb * 1024]).unwrap();
    let small = [EventBody::TenantDeleted];
    assert!(fits_inline(pk, &[chunk(300)], &small, t0()).unwrap());
    assert!(fits_inline(pk, &vec![chunk(300); 10], &small, t0()).unwrap());
    // Over the bytes, or over the actions.
    assert!(!fits_inline(pk, &vec![chunk(300); 11], &small, t0()).unwrap());
    assert!(!fits_inline(pk, &vec![chunk(1); 97], &small, t0()).unwrap());
    assert!(fits_inline(pk, &vec![chunk(1); 96], &small, t0()).unwrap());
    assert!(fits_inline(pk, &[], &small, t0()).unwrap());
}

#[test]
fn cancellations_classify_by_position() {
    let r = |codes: &[&str]| -> Vec<(String, Option<Item>)> {
        codes.iter().map(|c| ((*c).to_owned(), None)).collect()
    };
    // SEQ moved: a concurrent apply won.
    assert!(matches!(
        classify(&r(&["ConditionalCheckFailed", "None", "None"]), 1, 1),
        Cancel::Contended(_)
    ));
    // ORGSET flipped.
    assert!(matches!(
        classify(
            &r(&["None", "ConditionalCheckFailed", "None", "None"]),
            2,
            3
        ),
        Cancel::Contended(_)
    ));
    assert!(matches!(
        classify(&r(&["None", "TransactionConflict", "None"]), 1, 1),
        Cancel::Contended(_)
    ));
    assert_eq!(
        classify(&r(&["None", "None", "ConditionalCheckFailed"]), 1, 2),
        Cancel::EventTaken
    );
    assert_eq!(
        classify(&r(&["ThrottlingError", "None"]), 1, 1),
        Cancel::Other("ThrottlingError, None".into())
    );
}

#[test]
fn generation_conditions_follow_the_state_read() {
    let absent = State::default();
    assert_eq!(generation_of(absent.set.as_ref()), FIRST_GENERATION);
    assert_eq!(
        generation_unchanged(&absent).expression(),
        "attribute_not_exists(#pk)"
    );
    assert!(generation_unchanged(&absent).values().is_none());
    let stored = State {
        last_seq: 4,
        seq_stored: true,
        set: Some(SetRef {
            generation: "g1".into(),
            chunks: Some(1),
        }),
    };
    assert_eq!(generation_of(stored.set.as_ref()), "g1");
    assert_eq!(generation_unchanged(&stored).expression(), "#g = :g");
    assert_eq!(
        seq_unchanged(&stored).values(),
        Some(HashMap::from([(":seq".to_owned(), n(4))]))
    );
}
