//! Item keys and attribute names of the usage items (see the [module docs](super)).

use chrono::{DateTime, Utc};
use koogallery::{StoreError, metering::WindowKey};

/// Prefix of a window's partition key: the instance's usage partition.
pub const USAGE_PK_PREFIX: &str = "USAGE#";
/// Prefix of every window's sort key.
pub const WINDOW_SK_PREFIX: &str = "W#";
pub const KEY_PK_PREFIX: &str = "USAGEKEY#";
pub const KEY_SK: &str = "USAGEKEY";
pub const PACKAGE_PK_PREFIX: &str = "USAGEPKG#";
pub const PACKAGE_SK: &str = "USAGEPKG";
/// The sort key of an instance's usage total, in its usage partition (never a window's `W#…`).
pub const TOTAL_SK: &str = "TOTAL";
/// What a window adds up to (`usage_of`): a save must leave it unchanged.
pub const USAGE: &str = "usage";
/// The token of the batch holding the item (module docs, Ingestion 5).
pub const HOLD: &str = "usage_hold";
/// Until when (Unix millis) the hold lasts.
pub const HOLD_UNTIL: &str = "usage_hold_until";
/// Present (`"1"`) only on unsettled windows: the partition key of the due index.
pub const DUE: &str = "usage_due";
/// `{end:015}#{series}`: the sort key of the due index.
pub const DUE_AT: &str = "usage_due_at";
pub const DUE_INDEX: &str = "usage-due-index";
pub const DUE_PARTITION: &str = "1";

/// The largest time the 15-digit keys hold (Unix millis).
const MAX_MILLIS: i64 = 999_999_999_999_999;

/// The push claim's item (`usage_pk("")`: no instance has an empty ID).
pub const PUSH_CLAIM_PK: &str = USAGE_PK_PREFIX;
pub const PUSH_CLAIM_SK: &str = "PUSH";
pub const PUSH_HOLDER: &str = "push_holder";
pub const PUSH_UNTIL: &str = "push_until";

/// The partition keys the usage items live under (for an IAM `dynamodb:LeadingKeys` condition).
pub const LEADING_KEYS: &[&str] = &["USAGE#*", "USAGEKEY#*", "USAGEPKG#*"];

/// `USAGE#{instanceId}`: an instance's windows, its packages' included.
pub fn usage_pk(instance_id: &str) -> String {
    format!("{USAGE_PK_PREFIX}{instance_id}")
}

/// `W#{start:015}`, or `W#{start:015}#{package}` for a package window.
pub fn window_sk(start: DateTime<Utc>, package: Option<&str>) -> Result<String, StoreError> {
    let start = millis_text(start)?;
    Ok(match package {
        None => format!("{WINDOW_SK_PREFIX}{start}"),
        Some(p) => format!("{WINDOW_SK_PREFIX}{start}#{p}"),
    })
}

/// The (`pk`, `sk`) of a window.
pub fn window_key(key: &WindowKey) -> Result<(String, String), StoreError> {
    Ok((
        usage_pk(&key.instance_id),
        window_sk(key.start, key.package.as_deref())?,
    ))
}

/// `USAGEKEY#{idempotencyKey}`.
pub fn key_pk(idempotency_key: &str) -> String {
    format!("{KEY_PK_PREFIX}{idempotency_key}")
}

/// `USAGEPKG#{packageInstanceId}`.
pub fn package_pk(package_instance_id: &str) -> String {
    format!("{PACKAGE_PK_PREFIX}{package_instance_id}")
}

/// `{end:015}#{series}`: the due index orders by the end of the hour, then by series.
pub fn due_at(end: DateTime<Utc>, series: &str) -> Result<String, StoreError> {
    Ok(format!("{}#{series}", millis_text(end)?))
}

/// The exclusive upper bound of `usage_due_at` for the windows ended by `ended_by`; `None`
/// when no window can have ended (before 1970).
pub fn due_bound(ended_by: DateTime<Utc>) -> Option<String> {
    let ms = ended_by.timestamp_millis();
    if ms < 0 {
        return None;
    }
    // Past the last 15-digit time, a bound above every digit.
    Some(if ms >= MAX_MILLIS {
        "~".to_owned()
    } else {
        format!("{:015}", ms + 1)
    })
}

fn millis_text(t: DateTime<Utc>) -> Result<String, StoreError> {
    let ms = t.timestamp_millis();
    if !(0..=MAX_MILLIS).contains(&ms) {
        return Err(StoreError::Corrupt(
            format!("usage window time {t} is outside what the table's keys hold (1970 to 33658)")
                .into(),
        ));
    }
    Ok(format!("{ms:015}"))
}
