//! License codes over redb (License 2.0: docs/protocol/openapi.md §5–§6; docs/protocol/decisions.md
//! §21), mirroring `koogallery::testing::license::MemoryLicenses`: each code's record in
//! `licenses`, its daily usage in `license_usage` (one row per client) and `license_reported` (key
//! layout: the crate docs).
//!
//! - A record is the `License` JSON (its serde form is the versioned contract pinned by
//!   `shared/tests/fixtures/license_record_v1.json`). `put` compares the stored version with the
//!   new one inside the write transaction that writes it (redb runs one writer at a time), so of
//!   two writers of the same version one gets [`StoreError::Conflict`].
//! - Usage keys start with the day (days since the Common Era, an `i32`, so they sort by date
//!   whatever the year), then the code: `usage_due` is a range scan of `license_usage` from its
//!   start up to `before`, oldest day first, reading only what is still to report — a reported
//!   day's client rows are deleted in the transaction that marks it reported, and its
//!   `license_reported` row is what makes a later `record_use` of that day do nothing.
//! - `record_use` and `usage_reported` are one write transaction each.
//! - The operator's [`OrderLicenses`] (the codes of an order) has no index: it reads every record
//!   of `licenses` in one read transaction and keeps those naming the order. A local host holds a
//!   handful of codes (a few hundred bytes each), so this is a read of some kilobytes, on an
//!   operator's look at one instance, never on a path KooGallery's calls take.
//!
//! Known limits: a day's client set is not bounded (one small row per distinct client, so a use is
//! O(log n) whatever the count; `DailyUsage` carries the whole set); the `license_reported` rows
//! (code, day: a few dozen bytes each) are kept forever — one per code per day of use, which a
//! local host's handful of codes keeps small.

use async_trait::async_trait;
use chrono::{Datelike, NaiveDate};
use koogallery::{
    StoreError,
    license::{DailyUsage, License, LicenseCode, LicenseStore},
    operator::OrderLicenses,
};
use redb::ReadableTable;

use crate::{EmbeddedStore, Fault, LICENSE_REPORTED, LICENSE_USAGE, LICENSES};

/// The day as stored in keys: days since the Common Era.
fn day_key(day: NaiveDate) -> i32 {
    day.num_days_from_ce()
}

fn day_of(key: i32) -> Result<NaiveDate, Fault> {
    NaiveDate::from_num_days_from_ce_opt(key)
        .ok_or_else(|| Fault::Corrupt(format!("license usage day {key} out of range")))
}

/// The smallest string above `s`: a key range from (…, `s`, "") up to (…, `after(s)`, "") holds
/// exactly the keys whose element is `s`.
fn after(s: &str) -> String {
    format!("{s}\0")
}

fn decode(code: &str, bytes: &[u8]) -> Result<License, Fault> {
    serde_json::from_slice(bytes).map_err(|e| {
        let masked = LicenseCode::parse(code).map_or_else(|_| "?".to_owned(), |c| c.masked());
        Fault::Corrupt(format!("license record {masked}: {e}"))
    })
}

#[async_trait]
impl OrderLicenses for EmbeddedStore {
    async fn licenses_of_order(&self, order_id: &str) -> Result<Vec<License>, StoreError> {
        let order_id = order_id.to_owned();
        Ok(self
            .blocking(move |db| {
                let table = db.begin_read()?.open_table(LICENSES)?;
                let mut found = Vec::new();
                // In key order: by code.
                for entry in table.iter()? {
                    let (code, bytes) = entry?;
                    let license = decode(code.value(), bytes.value())?;
                    if license.order_id.as_deref() == Some(order_id.as_str()) {
                        found.push(license);
                    }
                }
                Ok(found)
            })
            .await?)
    }
}

#[async_trait]
impl LicenseStore for EmbeddedStore {
    async fn get(&self, code: &LicenseCode) -> Result<Option<License>, StoreError> {
        let code = code.clone();
        Ok(self
            .blocking(move |db| {
                let table = db.begin_read()?.open_table(LICENSES)?;
                let found = table.get(code.as_str())?;
                found.map(|v| decode(code.as_str(), v.value())).transpose()
            })
            .await?)
    }

    async fn put(&self, license: &License) -> Result<(), StoreError> {
        let json = serde_json::to_vec(license).map_err(|e| {
            StoreError::Corrupt(format!("license record {}: {e}", license.code.masked()).into())
        })?;
        let (code, version) = (license.code.clone(), license.version);
        Ok(self
            .blocking(move |db| {
                let txn = db.begin_write()?;
                {
                    let mut table = txn.open_table(LICENSES)?;
                    let stored = match table.get(code.as_str())? {
                        Some(v) => decode(code.as_str(), v.value())?.version,
                        None => 0,
                    };
                    if stored.checked_add(1) != Some(version) {
                        return Err(Fault::Conflict);
                    }
                    table.insert(code.as_str(), json.as_slice())?;
                }
                txn.commit()?;
                Ok(())
            })
            .await?)
    }

    async fn record_use(
        &self,
        code: &LicenseCode,
        day: NaiveDate,
        client_id: &str,
    ) -> Result<(), StoreError> {
        let (code, client) = (code.clone(), client_id.to_owned());
        let day = day_key(day);
        Ok(self
            .blocking(move |db| {
                let txn = db.begin_write()?;
                {
                    if txn
                        .open_table(LICENSE_REPORTED)?
                        .get((day, code.as_str()))?
                        .is_some()
                    {
                        return Ok(());
                    }
                    let mut usage = txn.open_table(LICENSE_USAGE)?;
                    if usage.get((day, code.as_str(), client.as_str()))?.is_some() {
                        // Already recorded: no commit, no fsync.
                        return Ok(());
                    }
                    usage.insert((day, code.as_str(), client.as_str()), ())?;
                }
                txn.commit()?;
                Ok(())
            })
            .await?)
    }

    async fn usage_due(
        &self,
        before: NaiveDate,
        limit: usize,
    ) -> Result<Vec<DailyUsage>, StoreError> {
        let before = day_key(before);
        Ok(self
            .blocking(move |db| {
                let table = db.begin_read()?.open_table(LICENSE_USAGE)?;
                let mut out: Vec<DailyUsage> = Vec::new();
                if limit == 0 {
                    return Ok(out);
                }
                // (before, "", "") sorts above every key of an earlier day and below every key of
                // `before`.
                for entry in table.range(..(before, "", ""))? {
                    let (key, _) = entry?;
                    let (day, code, client) = key.value();
                    let same = out
                        .last()
                        .is_some_and(|u| u.code.as_str() == code && day_key(u.day) == day);
                    if !same {
                        if out.len() == limit {
                            break;
                        }
                        let parsed = LicenseCode::parse(code).map_err(|e| {
                            Fault::Corrupt(format!("license usage key of day {day}: {e}"))
                        })?;
                        out.push(DailyUsage {
                            code: parsed,
                            day: day_of(day)?,
                            clients: Default::default(),
                        });
                    }
                    if let Some(last) = out.last_mut() {
                        last.clients.insert(client.to_owned());
                    }
                }
                Ok(out)
            })
            .await?)
    }

    async fn usage_reported(&self, code: &LicenseCode, day: NaiveDate) -> Result<(), StoreError> {
        let code = code.clone();
        let day = day_key(day);
        Ok(self
            .blocking(move |db| {
                let txn = db.begin_write()?;
                {
                    let (c, end) = (code.as_str(), after(code.as_str()));
                    let mut usage = txn.open_table(LICENSE_USAGE)?;
                    let of_day = (day, c, "")..(day, end.as_str(), "");
                    if usage.range(of_day.clone())?.next().is_none() {
                        // No use recorded (or reported already): nothing to mark, as in memory.
                        return Ok(());
                    }
                    usage.retain_in(of_day, |_, _| false)?;
                    txn.open_table(LICENSE_REPORTED)?.insert((day, c), ())?;
                }
                txn.commit()?;
                Ok(())
            })
            .await?)
    }
}
