//! Item keys and attribute names of the license items (License codes: docs/protocol/openapi.md
//! §5–§6, docs/protocol/decisions.md §21; see the [module docs](super)).

use chrono::NaiveDate;
use koogallery::license::LicenseCode;

use crate::dynamo::keys::escape_component as esc;

pub const LICENSE_PK_PREFIX: &str = "LICENSE#";
pub const LICENSE_SK: &str = "LICENSE";
pub const USAGE_PK_PREFIX: &str = "LICUSE#";
/// The partition of the day markers: one item per day that has (or had) usage to report.
pub const DAYS_PK: &str = "LICUSEDAYS";
/// A usage item's attributes: the code as sent (its sort key is escaped), the client IDs (a
/// string set), set once the day was reported (the clients are then removed), and set once its
/// day marker is known written.
pub const CODE: &str = "code";
pub const CLIENTS: &str = "clients";
pub const REPORTED: &str = "reported";
pub const LISTED: &str = "listed";
/// A day marker's attribute: bumped by every transaction that lists a code on the day, so the
/// marker's removal (once nothing of the day is left to report) is conditioned on no listing
/// having happened since it was read.
pub const TOUCHES: &str = "touches";
/// Usage items and day markers expire (the table's `ttl`) this many days after their day: a day
/// is reported once it is over, long before.
pub const USAGE_KEEP_DAYS: u64 = 90;
/// The partition keys the license store lives under (for an IAM `dynamodb:LeadingKeys` condition).
pub const LEADING_KEYS: &[&str] = &["LICENSE#*", "LICUSE#*", DAYS_PK];
/// The table actions the license store sends (a `TransactWriteItems` of updates is authorised as
/// `UpdateItem` per item).
pub const IAM_ACTIONS: &[&str] = &[
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:UpdateItem",
];

/// `LICENSE#{code}`, escaped: the code's record.
pub fn license_pk(code: &LicenseCode) -> String {
    format!("{LICENSE_PK_PREFIX}{}", esc(code.as_str()))
}

/// `yyyy-mm-dd`: a day marker's sort key, and its usage partition's suffix.
pub fn day_sk(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

/// The day back from [`day_sk`].
pub fn day_of(sk: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(sk, "%Y-%m-%d").ok()
}

/// `LICUSE#{yyyy-mm-dd}`: the day's usage, one item per code.
pub fn usage_pk(day: NaiveDate) -> String {
    format!("{USAGE_PK_PREFIX}{}", day_sk(day))
}

/// The code, escaped: its usage item's sort key in the day's partition.
pub fn usage_sk(code: &LicenseCode) -> String {
    esc(code.as_str()).into_owned()
}

/// The `ttl` of a day's usage items and marker: [`USAGE_KEEP_DAYS`] after the day starts (UTC),
/// in Unix seconds.
pub fn usage_ttl(day: NaiveDate) -> i64 {
    let keep = day
        .checked_add_days(chrono::Days::new(USAGE_KEEP_DAYS))
        .unwrap_or(NaiveDate::MAX);
    keep.and_time(chrono::NaiveTime::MIN).and_utc().timestamp()
}
