//! One batch of usage reports in one write transaction: read what the batch touches, let
//! [`ingest::apply`] add the reports to it, and write back what changed, each record one version
//! higher, with the batch's idempotency keys. Nothing is written when the batch is refused.

use chrono::{DateTime, Utc};
use koogallery::metering::{
    IngestError, IngestOutcome, PackageQuotas, UsageReport,
    ingest::{self, Applied, Loaded},
    record,
};
use redb::ReadableTable;

use super::{corrupt, load_totals, load_window, put_window};
use crate::{
    Fault, USAGE_KEY_EXPIRY, USAGE_KEYS, USAGE_PACKAGES, USAGE_TOTALS, USAGE_WINDOWS, Write, millis,
};

/// Ingests `reports` in `txn` and commits it; a refused batch is `Ok(Err(_))`, with nothing
/// written.
pub(super) fn ingest_in(
    txn: Write<'_>,
    reports: &[UsageReport],
    quotas: &PackageQuotas,
    now: DateTime<Utc>,
) -> Result<Result<IngestOutcome, IngestError>, Fault> {
    let mut loaded = load(&txn, reports, quotas)?;
    let applied = match ingest::apply(reports, quotas, &mut loaded, now) {
        Ok(a) => a,
        // Nothing written: dropping the transaction aborts it.
        Err(refused) => return Ok(Err(refused)),
    };
    put_windows(&txn, &applied, &mut loaded)?;
    put_totals(&txn, &applied, &mut loaded)?;
    put_packages(&txn, &applied, &mut loaded)?;
    put_keys(&txn, &applied, now)?;
    txn.commit()?;
    Ok(Ok(applied.outcome))
}

/// Every stored window, idempotency key and package the batch touches, and the usage total of
/// every instance it names.
fn load(txn: &Write<'_>, reports: &[UsageReport], quotas: &PackageQuotas) -> Result<Loaded, Fault> {
    let (window_keys, keys, packages) = ingest::touched(reports, quotas);
    let mut loaded = Loaded::default();
    let table = txn.open_table(USAGE_WINDOWS)?;
    for key in window_keys {
        if let Some(w) = load_window(&table, &key.series(), millis(key.start))? {
            loaded.windows.insert(key, w);
        }
    }
    let table = txn.open_table(USAGE_KEYS)?;
    for k in keys {
        if let Some(v) = table.get(k.as_str())? {
            let rec = record::decode_key(v.value()).map_err(corrupt)?;
            loaded.keys.insert(k, rec);
        }
    }
    let table = txn.open_table(USAGE_PACKAGES)?;
    for p in packages {
        if let Some(v) = table.get(p.as_str())? {
            let usage = record::decode_package(v.value()).map_err(corrupt)?;
            loaded.packages.insert(p, usage);
        }
    }
    let table = txn.open_table(USAGE_TOTALS)?;
    for t in load_totals(&table, ingest::instances_of(reports))? {
        loaded.totals.insert(t.instance_id.clone(), t);
    }
    Ok(loaded)
}

/// The windows the batch created or added to, with the unsettled index in step.
fn put_windows(txn: &Write<'_>, applied: &Applied, loaded: &mut Loaded) -> Result<(), Fault> {
    for key in &applied.changed {
        if let Some(w) = loaded.windows.get_mut(key) {
            w.version += 1;
            put_window(txn, w)?;
        }
    }
    Ok(())
}

/// The usage totals of the instances whose windows changed: in the same transaction as those
/// windows, so a total never disagrees with the windows it sums.
fn put_totals(txn: &Write<'_>, applied: &Applied, loaded: &mut Loaded) -> Result<(), Fault> {
    let mut table = txn.open_table(USAGE_TOTALS)?;
    for id in &applied.changed_totals {
        if let Some(t) = loaded.totals.get_mut(id) {
            t.version += 1;
            let bytes = record::encode_total(t).map_err(corrupt)?;
            table.insert(id.as_str(), bytes.as_slice())?;
        }
    }
    Ok(())
}

/// The packages whose quota the batch used.
fn put_packages(txn: &Write<'_>, applied: &Applied, loaded: &mut Loaded) -> Result<(), Fault> {
    let mut table = txn.open_table(USAGE_PACKAGES)?;
    for id in &applied.changed_packages {
        if let Some(p) = loaded.packages.get_mut(id) {
            p.version += 1;
            let bytes = record::encode_package(p).map_err(corrupt)?;
            table.insert(id.as_str(), bytes.as_slice())?;
        }
    }
    Ok(())
}

/// The batch's new idempotency keys, each indexed by when its retention ends, and the purge of
/// keys past theirs.
fn put_keys(txn: &Write<'_>, applied: &Applied, now: DateTime<Utc>) -> Result<(), Fault> {
    let mut keys = txn.open_table(USAGE_KEYS)?;
    let mut expiry = txn.open_table(USAGE_KEY_EXPIRY)?;
    for (k, rec) in &applied.new_keys {
        let bytes: Vec<u8> = record::encode_key(rec).map_err(corrupt)?;
        keys.insert(k.as_str(), bytes.as_slice())?;
        expiry.insert((millis(rec.keep_until()), k.as_str()), ())?;
    }
    // The keys past their retention, as many as the batch adds and a few more, so purging
    // keeps pace with ingestion (ingest's module docs: a repeat of one is refused as too old
    // before any key is read).
    let purge = applied.new_keys.len() + ingest::KEY_PURGE_BATCH;
    crate::purge_expired(&mut expiry, &mut keys, millis(now), purge)?;
    Ok(())
}
