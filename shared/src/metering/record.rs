//! How a usage window is kept on disk and in DynamoDB: a versioned contract (schema 2), pinned by
//! the golden files `tests/fixtures/usage_window_v2*.json`; likewise a package's usage and an
//! instance's usage total (schema 1). Domain renames never change them: the stored form is this
//! module's own struct.
//!
//! Window schema 2 is schema 1 with `package`, `sealed.beginOffsetSecs` and `sealed.endsAt`,
//! which earlier releases added while still writing schema 1. A schema-1 window reads as schema 2
//! with those absent (no package, offset 0, the hour's end): exactly what it meant when written.
//! A release that knows only schema 1 refuses a schema-2 window loudly rather than misread it.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{PackageUsage, Sealed, UsageTotal, UsageWindow, WindowState, ingest::KeyRecord};
use crate::storage::StoreError;

/// The schema of packages and totals.
pub const SCHEMA: u32 = 1;
/// The schema this release writes windows with; [`WINDOW_SCHEMAS_READ`] are read.
pub const WINDOW_SCHEMA: u32 = 2;
pub const WINDOW_SCHEMAS_READ: [u32; 2] = [1, 2];

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stored {
    schema: u32,
    instance_id: String,
    start: DateTime<Utc>,
    /// Since schema 2 (absent = none): the stop-when-used-up package of the usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    package: Option<String>,
    #[serde(with = "rust_decimal::serde::str")]
    total: Decimal,
    reports: u64,
    first_reported_at: DateTime<Utc>,
    last_reported_at: DateTime<Utc>,
    version: u64,
    /// `open`, `sealed`, `accepted` or `rejected`.
    state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sealed: Option<StoredSealed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    settled_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredSealed {
    metering_sn: String,
    #[serde(with = "rust_decimal::serde::str")]
    value: Decimal,
    record_time: DateTime<Utc>,
    /// Since schema 2 (absent = 0): see `Sealed::begin_offset_secs`.
    #[serde(default, skip_serializing_if = "is_zero")]
    begin_offset_secs: u32,
    /// Since schema 2 (absent = the hour's end): see `Sealed::ends_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ends_at: Option<DateTime<Utc>>,
    failed_pushes: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl From<&Sealed> for StoredSealed {
    fn from(s: &Sealed) -> Self {
        Self {
            metering_sn: s.metering_sn.clone(),
            value: s.value,
            record_time: s.record_time,
            begin_offset_secs: s.begin_offset_secs,
            ends_at: s.ends_at,
            failed_pushes: s.failed_pushes,
            last_error: s.last_error.clone(),
        }
    }
}

impl From<StoredSealed> for Sealed {
    fn from(s: StoredSealed) -> Self {
        Self {
            metering_sn: s.metering_sn,
            value: s.value,
            record_time: s.record_time,
            begin_offset_secs: s.begin_offset_secs,
            ends_at: s.ends_at,
            failed_pushes: s.failed_pushes,
            last_error: s.last_error,
        }
    }
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("usage window: {e}").into())
}

/// The stored bytes of `w`.
pub fn encode_window(w: &UsageWindow) -> Result<Vec<u8>, StoreError> {
    let (state, sealed, settled_at, code, message) = match &w.state {
        WindowState::Open => ("open", None, None, None, None),
        WindowState::Sealed(s) => ("sealed", Some(s.into()), None, None, None),
        WindowState::Accepted { sealed, at } => {
            ("accepted", Some(sealed.into()), Some(*at), None, None)
        }
        WindowState::Rejected {
            sealed,
            code,
            message,
            at,
        } => (
            "rejected",
            Some(sealed.into()),
            Some(*at),
            Some(code.clone()),
            Some(message.clone()),
        ),
    };
    serde_json::to_vec(&Stored {
        schema: WINDOW_SCHEMA,
        instance_id: w.instance_id.clone(),
        start: w.start,
        package: w.package.clone(),
        total: w.total,
        reports: w.reports,
        first_reported_at: w.first_reported_at,
        last_reported_at: w.last_reported_at,
        version: w.version,
        state: state.to_owned(),
        sealed,
        settled_at,
        code,
        message,
    })
    .map_err(corrupt)
}

/// A window back from its stored bytes; `Corrupt` for an unknown schema or state.
pub fn decode_window(bytes: &[u8]) -> Result<UsageWindow, StoreError> {
    let s: Stored = serde_json::from_slice(bytes).map_err(corrupt)?;
    if !WINDOW_SCHEMAS_READ.contains(&s.schema) {
        return Err(corrupt(format!("unknown schema {}", s.schema)));
    }
    let record: Option<Sealed> = s.sealed.map(Sealed::from);
    let sealed = || -> Result<Sealed, StoreError> {
        record
            .clone()
            .ok_or_else(|| corrupt(format!("a {} window without its record", s.state)))
    };
    let settled = || {
        s.settled_at
            .ok_or_else(|| corrupt("a settled window without its time"))
    };
    let state = match s.state.as_str() {
        "open" => WindowState::Open,
        "sealed" => WindowState::Sealed(sealed()?),
        "accepted" => WindowState::Accepted {
            sealed: sealed()?,
            at: settled()?,
        },
        "rejected" => WindowState::Rejected {
            sealed: sealed()?,
            code: s.code.clone().unwrap_or_default(),
            message: s.message.clone().unwrap_or_default(),
            at: settled()?,
        },
        other => return Err(corrupt(format!("unknown state {other}"))),
    };
    Ok(UsageWindow {
        instance_id: s.instance_id,
        start: s.start,
        package: s.package,
        total: s.total,
        reports: s.reports,
        first_reported_at: s.first_reported_at,
        last_reported_at: s.last_reported_at,
        state,
        version: s.version,
    })
}

/// The stored bytes of an idempotency key's record (camelCase JSON, schema-free: three fields and
/// the optional package).
pub fn encode_key(k: &KeyRecord) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(k).map_err(corrupt)
}

pub fn decode_key(bytes: &[u8]) -> Result<KeyRecord, StoreError> {
    serde_json::from_slice(bytes).map_err(corrupt)
}

/// How a package's usage is kept (schema 1), pinned by `tests/fixtures/usage_package_v1.json`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredPackage {
    schema: u32,
    package_instance_id: String,
    #[serde(default, with = "rust_decimal::serde::str_option")]
    quota: Option<Decimal>,
    /// Used per on-demand instance (`relatedInstanceId`), as decimal strings.
    used: std::collections::BTreeMap<String, String>,
    reports: u64,
    last_reported_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exhausted_at: Option<DateTime<Utc>>,
    version: u64,
}

/// The stored bytes of a package's usage.
pub fn encode_package(p: &PackageUsage) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(&StoredPackage {
        schema: SCHEMA,
        package_instance_id: p.package_instance_id.clone(),
        quota: p.quota,
        used: p
            .used
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect(),
        reports: p.reports,
        last_reported_at: p.last_reported_at,
        exhausted_at: p.exhausted_at,
        version: p.version,
    })
    .map_err(corrupt)
}

/// A package's usage back from its stored bytes.
pub fn decode_package(bytes: &[u8]) -> Result<PackageUsage, StoreError> {
    let s: StoredPackage = serde_json::from_slice(bytes).map_err(corrupt)?;
    if s.schema != SCHEMA {
        return Err(corrupt(format!("unknown package schema {}", s.schema)));
    }
    let mut used = std::collections::BTreeMap::new();
    for (k, v) in s.used {
        let v: Decimal = v.parse().map_err(corrupt)?;
        used.insert(k, v);
    }
    Ok(PackageUsage {
        package_instance_id: s.package_instance_id,
        quota: s.quota,
        used,
        reports: s.reports,
        last_reported_at: s.last_reported_at,
        exhausted_at: s.exhausted_at,
        version: s.version,
    })
}

/// How an instance's [`UsageTotal`] is kept (schema 1), pinned by
/// `tests/fixtures/usage_total_v1.json`. Added after windows: a store whose windows were written
/// without it builds it from them (see `UsageStore::usage_totals`).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredTotal {
    schema: u32,
    instance_id: String,
    #[serde(with = "rust_decimal::serde::str")]
    total: Decimal,
    reports: u64,
    windows: u64,
    last_reported_at: DateTime<Utc>,
    version: u64,
}

/// The stored bytes of an instance's usage total.
pub fn encode_total(t: &UsageTotal) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(&StoredTotal {
        schema: SCHEMA,
        instance_id: t.instance_id.clone(),
        total: t.total,
        reports: t.reports,
        windows: t.windows,
        last_reported_at: t.last_reported_at,
        version: t.version,
    })
    .map_err(corrupt)
}

/// An instance's usage total back from its stored bytes.
pub fn decode_total(bytes: &[u8]) -> Result<UsageTotal, StoreError> {
    let s: StoredTotal = serde_json::from_slice(bytes).map_err(corrupt)?;
    if s.schema != SCHEMA {
        return Err(corrupt(format!("unknown usage total schema {}", s.schema)));
    }
    Ok(UsageTotal {
        instance_id: s.instance_id,
        total: s.total,
        reports: s.reports,
        windows: s.windows,
        last_reported_at: s.last_reported_at,
        version: s.version,
    })
}
