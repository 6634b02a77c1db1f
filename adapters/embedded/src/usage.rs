//! [`UsageStore`] over redb: usage windows, the index of unsettled ones, and idempotency keys, in
//! the same file as the instances. A batch is one write transaction (one durable commit), and redb
//! runs one writer at a time, so a batch and a seal never interleave.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use koogallery::{
    StoreError,
    metering::{
        IngestError, IngestOutcome, UsageReport, UsageStore, UsageWindow, WINDOW, WindowKey,
        ingest, record,
    },
};
use redb::{ReadableDatabase, ReadableTable};

use crate::{EmbeddedStore, Fault, USAGE_DUE, USAGE_KEYS, USAGE_WINDOWS, Write, millis};

fn corrupt(e: StoreError) -> Fault {
    Fault::Corrupt(e.to_string())
}

fn load_window(
    table: &impl ReadableTable<(&'static str, i64), &'static [u8]>,
    instance_id: &str,
    start_ms: i64,
) -> Result<Option<UsageWindow>, Fault> {
    table
        .get((instance_id, start_ms))?
        .map(|b| record::decode_window(b.value()).map_err(corrupt))
        .transpose()
}

/// Writes `w` as stored (its version as given) and keeps the unsettled index in step.
fn put_window(txn: &Write<'_>, w: &UsageWindow) -> Result<(), Fault> {
    let bytes = record::encode_window(w).map_err(corrupt)?;
    let start_ms = millis(w.start);
    txn.open_table(USAGE_WINDOWS)?
        .insert((w.instance_id.as_str(), start_ms), bytes.as_slice())?;
    let mut due = txn.open_table(USAGE_DUE)?;
    let index = (millis(w.end()), w.instance_id.as_str());
    if w.is_unsettled() {
        due.insert(index, ())?;
    } else {
        due.remove(index)?;
    }
    Ok(())
}

fn ingest_in(
    txn: Write<'_>,
    reports: &[UsageReport],
    now: DateTime<Utc>,
) -> Result<Result<IngestOutcome, IngestError>, Fault> {
    let mut windows = HashMap::new();
    let mut known = HashMap::new();
    {
        let table = txn.open_table(USAGE_WINDOWS)?;
        let keys = txn.open_table(USAGE_KEYS)?;
        for r in reports {
            let key = r.window();
            if !windows.contains_key(&key)
                && let Some(w) = load_window(&table, &key.instance_id, millis(key.start))?
            {
                windows.insert(key, w);
            }
            if let Some(k) = keys.get(r.idempotency_key.as_str())? {
                known.insert(
                    r.idempotency_key.clone(),
                    record::decode_key(k.value()).map_err(corrupt)?,
                );
            }
        }
    }
    let applied = match ingest::apply(reports, &mut windows, &known, now) {
        Ok(a) => a,
        // Nothing written: dropping the transaction aborts it.
        Err(refused) => return Ok(Err(refused)),
    };
    for key in &applied.changed {
        if let Some(w) = windows.get_mut(key) {
            w.version += 1;
            put_window(&txn, w)?;
        }
    }
    {
        let mut keys = txn.open_table(USAGE_KEYS)?;
        for (k, rec) in &applied.new_keys {
            let bytes: Vec<u8> = record::encode_key(rec).map_err(corrupt)?;
            keys.insert(k.as_str(), bytes.as_slice())?;
        }
    }
    txn.commit()?;
    Ok(Ok(applied.outcome))
}

#[async_trait]
impl UsageStore for EmbeddedStore {
    async fn ingest(
        &self,
        reports: &[UsageReport],
        now: DateTime<Utc>,
    ) -> Result<IngestOutcome, IngestError> {
        let reports = reports.to_vec();
        self.blocking(move |db| ingest_in(db.begin_write()?, &reports, now))
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
                    let (end_ms, instance) = k.value();
                    let start_ms = end_ms - WINDOW.num_milliseconds();
                    match load_window(&table, instance, start_ms)? {
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
                    load_window(&table, &window.instance_id, millis(window.start))?
                };
                match stored {
                    Some(s) if s.version == window.version => {}
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

    async fn window(&self, key: &WindowKey) -> Result<Option<UsageWindow>, StoreError> {
        let (id, start_ms) = (key.instance_id.clone(), millis(key.start));
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
                let mut out = Vec::new();
                for entry in table.range((id.as_str(), i64::MIN)..=(id.as_str(), i64::MAX))? {
                    let (_, v) = entry?;
                    out.push(record::decode_window(v.value()).map_err(corrupt)?);
                }
                Ok(out)
            })
            .await?)
    }
}
