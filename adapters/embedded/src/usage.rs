//! [`UsageStore`] over redb: usage windows, the index of unsettled ones, idempotency keys and
//! packages, in the same file as the instances. Windows are keyed by their series
//! ([`WindowKey::series`]: the instance, or instance and package) and hour. A batch is one write transaction (one durable commit), and redb
//! runs one writer at a time, so a batch and a seal never interleave.
//!
//! Each instance's [`UsageTotal`] (`usage_totals`) is written in the batch's transaction with the
//! windows it sums. A file written before totals were kept gets them when it is opened: one pass
//! over its windows, once ([`build_usage_totals`]).

mod ingest;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use koogallery::{
    StoreError,
    metering::{
        IngestError, IngestOutcome, PackageQuotas, PackageUsage, UsageReport, UsageStore,
        UsageTotal, UsageWindow, WINDOW, WindowKey, record, series_range, store::PushClaim,
    },
};
use redb::{ReadableTable, ReadableTableMetadata};

use crate::{
    EmbeddedStore, Fault, USAGE_DUE, USAGE_KEY_EXPIRY, USAGE_KEYS, USAGE_PACKAGES, USAGE_TOTALS,
    USAGE_WINDOWS, Write, millis,
};
use ingest::ingest_in;

/// Indexes the retention of keys stored before the index existed (files written before it; once).
pub(crate) fn index_key_expiry(txn: &Write<'_>) -> Result<(), Fault> {
    let mut expiry = txn.open_table(USAGE_KEY_EXPIRY)?;
    let keys = txn.open_table(USAGE_KEYS)?;
    if !expiry.is_empty()? || keys.is_empty()? {
        return Ok(());
    }
    for entry in keys.iter()? {
        let (key, bytes) = entry?;
        let rec = record::decode_key(bytes.value()).map_err(corrupt)?;
        expiry.insert((millis(rec.keep_until()), key.value()), ())?;
    }
    Ok(())
}

fn corrupt(e: StoreError) -> Fault {
    Fault::Corrupt(e.to_string())
}

fn load_window(
    table: &impl ReadableTable<(&'static str, i64), &'static [u8]>,
    series: &str,
    start_ms: i64,
) -> Result<Option<UsageWindow>, Fault> {
    table
        .get((series, start_ms))?
        .map(|b| record::decode_window(b.value()).map_err(corrupt))
        .transpose()
}

/// Writes `w` as stored (its version as given) and keeps the unsettled index in step.
fn put_window(txn: &Write<'_>, w: &UsageWindow) -> Result<(), Fault> {
    let bytes = record::encode_window(w).map_err(corrupt)?;
    let start_ms = millis(w.start);
    let series = w.key().series();
    txn.open_table(USAGE_WINDOWS)?
        .insert((series.as_str(), start_ms), bytes.as_slice())?;
    let mut due = txn.open_table(USAGE_DUE)?;
    let index = (millis(w.end()), series.as_str());
    if w.is_unsettled() {
        due.insert(index, ())?;
    } else {
        due.remove(index)?;
    }
    Ok(())
}

/// Builds every instance's usage total from its windows, for a file written before totals were
/// kept (opened with windows and no total; once: afterwards every batch writes the totals with
/// its windows).
pub(crate) fn build_usage_totals(txn: &Write<'_>) -> Result<(), Fault> {
    let mut totals = txn.open_table(USAGE_TOTALS)?;
    let windows = txn.open_table(USAGE_WINDOWS)?;
    if !totals.is_empty()? || windows.is_empty()? {
        return Ok(());
    }
    let mut built: std::collections::BTreeMap<String, UsageTotal> = Default::default();
    for entry in windows.iter()? {
        let (_, bytes) = entry?;
        let w = record::decode_window(bytes.value()).map_err(corrupt)?;
        match built.get_mut(&w.instance_id) {
            Some(t) => {
                t.total += w.total;
                t.reports += w.reports;
                t.windows += 1;
                t.last_reported_at = t.last_reported_at.max(w.last_reported_at);
            }
            None => {
                if let Some(t) = UsageTotal::of_windows(&w.instance_id, std::slice::from_ref(&w)) {
                    built.insert(w.instance_id.clone(), t);
                }
            }
        }
    }
    for (id, t) in &built {
        totals.insert(
            id.as_str(),
            record::encode_total(t).map_err(corrupt)?.as_slice(),
        )?;
    }
    Ok(())
}

/// The stored total of each of `ids` that has one.
fn load_totals(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    ids: impl IntoIterator<Item = impl AsRef<str>>,
) -> Result<Vec<UsageTotal>, Fault> {
    let mut out = Vec::new();
    for id in ids {
        if let Some(v) = table.get(id.as_ref())? {
            out.push(record::decode_total(v.value()).map_err(corrupt)?);
        }
    }
    Ok(out)
}

impl EmbeddedStore {
    /// For tests and benchmarks: puts `windows` as they are, in one transaction, and touches no
    /// usage total, as a release from before totals left a file (they are built when it is
    /// opened again, if it has none).
    pub async fn put_windows_without_totals(
        &self,
        windows: &[UsageWindow],
    ) -> Result<(), StoreError> {
        let windows = windows.to_vec();
        Ok(self
            .blocking(move |db| {
                let txn = db.begin_write()?;
                for w in &windows {
                    put_window(&txn, w)?;
                }
                txn.commit()?;
                Ok(())
            })
            .await?)
    }
}

#[async_trait]
impl UsageStore for EmbeddedStore {
    async fn ingest(
        &self,
        reports: &[UsageReport],
        quotas: &PackageQuotas,
        now: DateTime<Utc>,
    ) -> Result<IngestOutcome, IngestError> {
        let (reports, quotas) = (reports.to_vec(), quotas.clone());
        self.blocking(move |db| ingest_in(db.begin_write()?, &reports, &quotas, now))
            .await
            .map_err(|f| IngestError::Store(f.into()))?
    }

    async fn due(
        &self,
        ended_by: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<UsageWindow>, StoreError> {
        let ended_ms = millis(ended_by);
        Ok(self
            .blocking(move |db| {
                let read = db.begin_read()?;
                let due = read.open_table(USAGE_DUE)?;
                let table = read.open_table(USAGE_WINDOWS)?;
                let mut out = Vec::new();
                for entry in due.range((i64::MIN, "")..(ended_ms.saturating_add(1), ""))? {
                    if out.len() >= limit {
                        break;
                    }
                    let (k, _) = entry?;
                    let (end_ms, series) = k.value();
                    let start_ms = end_ms - WINDOW.num_milliseconds();
                    match load_window(&table, series, start_ms)? {
                        Some(w) if w.is_unsettled() => out.push(w),
                        _ => {}
                    }
                }
                Ok(out)
            })
            .await?)
    }

    async fn save_window(&self, window: &UsageWindow) -> Result<(), StoreError> {
        let window = window.clone();
        Ok(self
            .blocking(move |db| {
                let txn = db.begin_write()?;
                let stored = {
                    let table = txn.open_table(USAGE_WINDOWS)?;
                    load_window(&table, &window.key().series(), millis(window.start))?
                };
                match stored {
                    Some(s) if s.version == window.version && s.same_usage(&window) => {}
                    _ => return Err(Fault::Conflict),
                }
                let mut next = window;
                next.version += 1;
                put_window(&txn, &next)?;
                txn.commit()?;
                Ok(())
            })
            .await?)
    }

    /// One transaction, one durable commit, for all of them (the push seals and settles up to
    /// 1000 windows at a time).
    async fn save_windows(&self, windows: &[UsageWindow]) -> Result<Vec<bool>, StoreError> {
        let windows = windows.to_vec();
        Ok(self
            .blocking(move |db| {
                let txn = db.begin_write()?;
                let mut saved = Vec::with_capacity(windows.len());
                for window in windows {
                    let stored = {
                        let table = txn.open_table(USAGE_WINDOWS)?;
                        load_window(&table, &window.key().series(), millis(window.start))?
                    };
                    if stored.is_some_and(|s| s.version == window.version && s.same_usage(&window))
                    {
                        let mut next = window;
                        next.version += 1;
                        put_window(&txn, &next)?;
                        saved.push(true);
                    } else {
                        saved.push(false);
                    }
                }
                txn.commit()?;
                Ok(saved)
            })
            .await?)
    }

    async fn window(&self, key: &WindowKey) -> Result<Option<UsageWindow>, StoreError> {
        let (id, start_ms) = (key.series(), millis(key.start));
        Ok(self
            .blocking(move |db| {
                let table = db.begin_read()?.open_table(USAGE_WINDOWS)?;
                load_window(&table, &id, start_ms)
            })
            .await?)
    }

    async fn windows_of(&self, instance_id: &str) -> Result<Vec<UsageWindow>, StoreError> {
        let id = instance_id.to_owned();
        Ok(self
            .blocking(move |db| {
                let table = db.begin_read()?.open_table(USAGE_WINDOWS)?;
                let (from, to) = series_range(&id);
                let mut out = Vec::new();
                for entry in table.range((from.as_str(), i64::MIN)..(to.as_str(), i64::MIN))? {
                    let (_, v) = entry?;
                    let w = record::decode_window(v.value()).map_err(corrupt)?;
                    // The range may hold another instance whose ID extends this one's with a
                    // control character; KooGallery's IDs have none, but be exact.
                    if w.instance_id == id {
                        out.push(w);
                    }
                }
                out.sort_by(|a, b| (a.start, &a.package).cmp(&(b.start, &b.package)));
                Ok(out)
            })
            .await?)
    }

    async fn package(&self, package_instance_id: &str) -> Result<Option<PackageUsage>, StoreError> {
        let id = package_instance_id.to_owned();
        Ok(self
            .blocking(move |db| {
                let table = db.begin_read()?.open_table(USAGE_PACKAGES)?;
                table
                    .get(id.as_str())?
                    .map(|v| record::decode_package(v.value()).map_err(corrupt))
                    .transpose()
            })
            .await?)
    }

    /// One read transaction for all of them.
    async fn usage_totals(&self, instance_ids: &[&str]) -> Result<Vec<UsageTotal>, StoreError> {
        let ids: Vec<String> = instance_ids.iter().map(|&id| id.to_owned()).collect();
        Ok(self
            .blocking(move |db| {
                let table = db.begin_read()?.open_table(USAGE_TOTALS)?;
                load_totals(&table, ids)
            })
            .await?)
    }

    async fn claim_push(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut held = self
            .database_ref()
            .push_claim
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        Ok(PushClaim::claim(&mut held, holder, now, until))
    }

    async fn release_push(&self, holder: &str) -> Result<(), StoreError> {
        let mut held = self
            .database_ref()
            .push_claim
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        PushClaim::release(&mut held, holder);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use koogallery::metering::ingest::KEY_PURGE_BATCH;
    use redb::ReadableTableMetadata;

    use super::*;

    fn report(key: &str, at: DateTime<Utc>) -> UsageReport {
        UsageReport {
            instance_id: "i-1".into(),
            quantity: "1".parse().unwrap(),
            occurred_at: at,
            idempotency_key: key.into(),
            package_instance_id: None,
        }
    }

    /// (keys, index entries) on disk.
    fn counts(store: &EmbeddedStore) -> (u64, u64) {
        let read = store.database_ref().begin_read().unwrap();
        (
            read.open_table(USAGE_KEYS).unwrap().len().unwrap(),
            read.open_table(USAGE_KEY_EXPIRY).unwrap().len().unwrap(),
        )
    }

    /// Keys do not pile up for ever: past their retention they go, a bounded number per batch;
    /// a file written before the retention index gets it when opened.
    #[tokio::test]
    async fn usage_keys_past_their_retention_are_dropped_a_few_per_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let t0 = koogallery::protocol::time::parse_compact("20261101100000").unwrap();
        let none = PackageQuotas::new();
        {
            let store = EmbeddedStore::open(&path).unwrap();
            let old: Vec<UsageReport> = (0..KEY_PURGE_BATCH + 6)
                .map(|i| report(&format!("old-{i}"), t0))
                .collect();
            store.ingest(&old, &none, t0).await.unwrap();
            let n = (KEY_PURGE_BATCH + 6) as u64;
            assert_eq!(counts(&store), (n, n));
            // A file from before the index: the index is built when it is opened.
            let txn = store.database_ref().begin_write().unwrap();
            txn.delete_table(USAGE_KEY_EXPIRY).unwrap();
            txn.commit().unwrap();
        }
        let store = EmbeddedStore::open(&path).unwrap();
        let n = (KEY_PURGE_BATCH + 6) as u64;
        assert_eq!(counts(&store), (n, n));
        // Within the retention nothing goes; the repeat is a duplicate.
        let kept = t0 + Duration::days(22) - Duration::seconds(1);
        let outcome = store
            .ingest(&[report("old-0", t0)], &none, kept)
            .await
            .unwrap();
        assert_eq!(outcome.duplicates, 1);
        assert_eq!(counts(&store), (n, n));
        // Past it: a batch drops at most as many as it adds plus KEY_PURGE_BATCH; the next, the rest.
        let later = t0 + Duration::days(23);
        store
            .ingest(&[report("new-1", later)], &none, later)
            .await
            .unwrap();
        assert_eq!(counts(&store), (6, 6));
        store
            .ingest(&[report("new-2", later)], &none, later)
            .await
            .unwrap();
        assert_eq!(counts(&store), (2, 2));
    }
}
