//! The license items' keys, without a table (License codes: docs/protocol/openapi.md §5–§6,
//! docs/protocol/decisions.md §21).

use chrono::NaiveDate;
use koogallery::license::LicenseCode;

use super::keys::*;

fn code(s: &str) -> LicenseCode {
    LicenseCode::parse(s).unwrap()
}

#[test]
fn keys_follow_the_documented_schema() {
    let day = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
    assert_eq!(license_pk(&code("PL0000001")), "LICENSE#PL0000001");
    assert_eq!(license_pk(&code("a#b%c")), "LICENSE#a%23b%25c");
    assert_eq!(usage_pk(day), "LICUSE#2026-12-01");
    assert_eq!(usage_sk(&code("a#b")), "a%23b");
    assert_eq!(day_sk(day), "2026-12-01");
    assert_eq!(day_of("2026-12-01"), Some(day));
    assert_eq!(day_of("2026-13-01"), None);
    // 2027-03-01T00:00:00Z: 90 days after 2026-12-01.
    assert_eq!(usage_ttl(day), 1_803_859_200);
    // Day sort keys sort as the days do (what `usage_due`'s `sk < :before` relies on).
    let days = [
        NaiveDate::from_ymd_opt(2026, 9, 30).unwrap(),
        NaiveDate::from_ymd_opt(2026, 10, 1).unwrap(),
        NaiveDate::from_ymd_opt(2027, 1, 1).unwrap(),
    ];
    assert!(days.windows(2).all(|w| day_sk(w[0]) < day_sk(w[1])));
}

/// No other store's partition starts like a license one, nor the reverse.
#[test]
fn license_partitions_are_their_own() {
    let others = crate::usage::keys::LEADING_KEYS
        .iter()
        .chain(crate::sso::keys::LEADING_KEYS)
        .chain(crate::directory::keys::LEADING_KEYS)
        .chain(crate::dynamo::leading_keys(
            koogallery::callbacks::StoreAccess::Create,
        ))
        .chain(crate::dynamo::leading_keys(
            koogallery::callbacks::StoreAccess::ReadMany,
        ))
        .chain(crate::dynamo::leading_keys(
            koogallery::callbacks::StoreAccess::Notices,
        ));
    for other in others {
        let other = other.trim_end_matches('*');
        for mine in LEADING_KEYS {
            let mine = mine.trim_end_matches('*');
            assert!(
                !other.starts_with(mine) && !mine.starts_with(other),
                "{mine} and {other}"
            );
        }
    }
    // Nor do the license partitions among themselves.
    for (i, a) in LEADING_KEYS.iter().enumerate() {
        for b in &LEADING_KEYS[i + 1..] {
            let (a, b) = (a.trim_end_matches('*'), b.trim_end_matches('*'));
            assert!(!a.starts_with(b) && !b.starts_with(a), "{a} and {b}");
        }
    }
}
