//! The exchange log ([`ExchangeLog`], docs/operations.md) in a redb file of its own, beside the
//! store file (`exchanges.redb` in the data directory): its writes never wait for the store's
//! writer, which KooGallery's calls use, and it can be deleted without touching an order.
//!
//! | table                  | key                     | value                                     |
//! |------------------------|-------------------------|-------------------------------------------|
//! | `exchanges`            | exchange id (sorts by time) | the record (`koogallery::exchange::record`, `v` 1) |
//! | `exchanges_by_instance`| (instanceId, id)        | `()`                                      |
//! | `exchanges_by_order`   | (orderId, id)           | `()`                                      |
//! | `exchanges_expiry`     | (expires_at ms, id)     | `()`, for the purge                       |
//!
//! Each append is one commit, and removes up to [`PURGE_PER_APPEND`] exchanges that expired by the
//! newest one's time, so the file stays at about the retention's worth. A commit is durable (an
//! fsync) when it is small or [`DURABLE_EVERY`] has passed since the last durable one, and else
//! not (redb writes it with the next durable commit): under load the log costs one fsync a second,
//! never the store's disk time, and a crash loses at most that second of it. Dropping the last
//! handle makes everything durable.

use std::{path::Path, sync::Arc};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use koogallery::{
    StoreError,
    exchange::{Exchange, ExchangeFilter, ExchangeLog, ExchangeQuery, record},
};
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::{Db, Fault, millis, open_file, run_blocking};

const EXCHANGES: TableDefinition<&str, &[u8]> = TableDefinition::new("exchanges");
const BY_INSTANCE: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("exchanges_by_instance");
const BY_ORDER: TableDefinition<(&str, &str), ()> = TableDefinition::new("exchanges_by_order");
const EXPIRY: TableDefinition<(i64, &str), ()> = TableDefinition::new("exchanges_expiry");

/// Expired exchanges removed by one append, at most.
pub const PURGE_PER_APPEND: usize = 512;
/// The longest a batch stays not yet durable.
pub const DURABLE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// A batch this small is made durable at once (low traffic: the fsync costs nothing there).
pub const SMALL_BATCH: usize = 16;

/// The file and when its last durable commit was.
struct LogFile {
    db: Arc<Db>,
    last_durable: std::sync::Mutex<std::time::Instant>,
}

impl Drop for LogFile {
    /// The commits not yet durable become so (an empty durable commit persists them).
    fn drop(&mut self) {
        if let Ok(txn) = self.db.begin_write()
            && let Err(e) = txn.commit()
        {
            tracing::warn!(error = %e, "the exchange log's last commits may not be on disk");
        }
    }
}

/// The exchange log's own file; cheap to clone.
#[derive(Clone)]
pub struct EmbeddedExchangeLog {
    file: Arc<LogFile>,
}

impl std::fmt::Debug for EmbeddedExchangeLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedExchangeLog")
            .finish_non_exhaustive()
    }
}

impl EmbeddedExchangeLog {
    /// The file name in the data directory.
    pub const FILE: &'static str = "exchanges.redb";

    /// Opens (or creates, owner-only) the log file at `path`, with its tables.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let owned = path.to_owned();
        let db = open_file(path, Box::new(move || Database::create(&owned)))?;
        let txn = db.begin_write()?;
        {
            txn.open_table(EXCHANGES).map_err(Fault::from)?;
            txn.open_table(BY_INSTANCE).map_err(Fault::from)?;
            txn.open_table(BY_ORDER).map_err(Fault::from)?;
            txn.open_table(EXPIRY).map_err(Fault::from)?;
        }
        txn.commit().map_err(Fault::from)?;
        Ok(Self {
            file: Arc::new(LogFile {
                db: Arc::new(db),
                last_durable: std::sync::Mutex::new(std::time::Instant::now()),
            }),
        })
    }

    /// Whether this batch's commit must be durable (and if so, counts it as the last durable).
    fn durable_now(&self, batch: usize) -> bool {
        let mut last = self
            .file
            .last_durable
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let due = batch <= SMALL_BATCH || last.elapsed() >= DURABLE_EVERY;
        if due {
            *last = std::time::Instant::now();
        }
        due
    }

    /// Exchanges kept (expired ones not yet purged included).
    pub fn len(&self) -> Result<u64, StoreError> {
        let read = self.file.db.begin_read()?;
        let table = read.open_table(EXCHANGES).map_err(Fault::from)?;
        Ok(table.len().map_err(Fault::from)?)
    }

    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }
}

#[async_trait]
impl ExchangeLog for EmbeddedExchangeLog {
    async fn append(&self, exchanges: &[Exchange]) -> Result<(), StoreError> {
        let Some(newest) = exchanges.iter().map(|e| e.at).max() else {
            return Ok(());
        };
        let encoded: Vec<_> = exchanges
            .iter()
            .map(|e| {
                (
                    e.id.clone(),
                    e.instance_id.clone(),
                    e.order_id.clone(),
                    millis(e.expires_at),
                    record::encode(e),
                )
            })
            .collect();
        let durable = self.durable_now(encoded.len());
        Ok(run_blocking(self.file.db.clone(), move |db| {
            let mut txn = db.begin_write()?;
            if !durable {
                txn.set_durability(redb::Durability::None).map_err(|e| {
                    Fault::Db(redb::Error::from(redb::StorageError::from(
                        std::io::Error::other(e.to_string()),
                    )))
                })?;
            }
            {
                let mut table = txn.open_table(EXCHANGES)?;
                let mut by_instance = txn.open_table(BY_INSTANCE)?;
                let mut by_order = txn.open_table(BY_ORDER)?;
                let mut expiry = txn.open_table(EXPIRY)?;
                for (id, instance, order, expires, bytes) in &encoded {
                    if table.get(id.as_str())?.is_some() {
                        continue;
                    }
                    table.insert(id.as_str(), bytes.as_slice())?;
                    if let Some(i) = instance {
                        by_instance.insert((i.as_str(), id.as_str()), ())?;
                    }
                    if let Some(o) = order {
                        by_order.insert((o.as_str(), id.as_str()), ())?;
                    }
                    expiry.insert((*expires, id.as_str()), ())?;
                }
                purge(
                    &mut table,
                    &mut by_instance,
                    &mut by_order,
                    &mut expiry,
                    millis(newest),
                )?;
            }
            txn.commit()?;
            Ok(())
        })
        .await?)
    }

    async fn find(
        &self,
        query: &ExchangeQuery,
        now: DateTime<Utc>,
    ) -> Result<Vec<Exchange>, StoreError> {
        let query = query.clone();
        Ok(run_blocking(self.file.db.clone(), move |db| {
            let read = db.begin_read()?;
            let table = read.open_table(EXCHANGES)?;
            let limit = query.bounded_limit();
            let mut found = Vec::with_capacity(limit.min(64));
            let mut keep = |bytes: &[u8]| -> Result<bool, Fault> {
                let e = record::decode(bytes).map_err(|e| Fault::Corrupt(e.to_string()))?;
                if e.expires_at > now {
                    found.push(e);
                }
                Ok(found.len() < limit)
            };
            let before = query.before.as_deref();
            match &query.filter {
                ExchangeFilter::All => {
                    let range = match before {
                        Some(b) => table.range(..b)?,
                        None => table.range::<&str>(..)?,
                    };
                    for entry in range.rev() {
                        if !keep(entry?.1.value())? {
                            break;
                        }
                    }
                }
                ExchangeFilter::Instance(key) | ExchangeFilter::Order(key) => {
                    let index = read.open_table(match &query.filter {
                        ExchangeFilter::Instance(_) => BY_INSTANCE,
                        _ => BY_ORDER,
                    })?;
                    // (key, "") sorts before every id of `key`; `before` ends the range.
                    let range = match before {
                        Some(b) => index.range((key.as_str(), "")..(key.as_str(), b))?,
                        None => index.range((key.as_str(), "")..)?,
                    };
                    for entry in range.rev() {
                        let (k, _) = entry?;
                        let (owner, id) = k.value();
                        if owner != key.as_str() {
                            continue;
                        }
                        if let Some(bytes) = table.get(id)?
                            && !keep(bytes.value())?
                        {
                            break;
                        }
                    }
                }
            }
            Ok(found)
        })
        .await?)
    }
}

/// Removes up to [`PURGE_PER_APPEND`] exchanges that expired at or before `now_ms`, with their
/// index entries.
fn purge(
    table: &mut redb::Table<&'static str, &'static [u8]>,
    by_instance: &mut redb::Table<(&'static str, &'static str), ()>,
    by_order: &mut redb::Table<(&'static str, &'static str), ()>,
    expiry: &mut redb::Table<(i64, &'static str), ()>,
    now_ms: i64,
) -> Result<(), Fault> {
    let expired: Vec<(i64, String)> = expiry
        .range(..(now_ms.saturating_add(1), ""))?
        .take(PURGE_PER_APPEND)
        .map(|r| r.map(|(k, _)| (k.value().0, k.value().1.to_owned())))
        .collect::<Result<_, _>>()?;
    for (at, id) in &expired {
        expiry.remove((*at, id.as_str()))?;
        let Some(bytes) = table.remove(id.as_str())? else {
            continue;
        };
        // A record that no longer decodes still goes; its index entries may stay behind
        // (they point at nothing and are skipped).
        if let Ok(e) = record::decode(bytes.value()) {
            if let Some(i) = &e.instance_id {
                by_instance.remove((i.as_str(), id.as_str()))?;
            }
            if let Some(o) = &e.order_id {
                by_order.remove((o.as_str(), id.as_str()))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use koogallery::testing::contract::exchange_log_contract;

    #[tokio::test]
    async fn the_embedded_log_passes_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedExchangeLog::open(dir.path().join(EmbeddedExchangeLog::FILE)).unwrap();
        exchange_log_contract(Arc::new(log)).await;
    }

    /// What expired is removed by later appends, index entries with it; the rest stays.
    #[tokio::test]
    async fn appends_purge_what_expired() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedExchangeLog::open(dir.path().join("x.redb")).unwrap();
        let t0 = koogallery::protocol::time::parse_compact("20260101000000").unwrap();
        let make = |secs: i64, keep_secs: i64| {
            let at = t0 + chrono::Duration::seconds(secs);
            Exchange {
                id: koogallery::exchange::new_id(at),
                at,
                direction: koogallery::exchange::Direction::Inbound,
                family: "v2_basic".into(),
                activity: "queryInstance".into(),
                instance_id: Some("i-1".into()),
                order_id: Some("CS1".into()),
                tenant_id: None,
                request: serde_json::Value::Null,
                response: serde_json::Value::Null,
                result_code: None,
                http_status: None,
                latency_ms: 0.0,
                key: None,
                attempt: None,
                test: false,
                expires_at: at + chrono::Duration::seconds(keep_secs),
                error: None,
            }
        };
        log.append(&[make(0, 10), make(1, 10), make(2, 100)])
            .await
            .unwrap();
        assert_eq!(log.len().unwrap(), 3);
        log.append(&[make(50, 100)]).await.unwrap();
        assert_eq!(log.len().unwrap(), 2, "the two expired by t0+50s are gone");
        let q = ExchangeQuery::newest(ExchangeFilter::Instance("i-1".into()), 10);
        let now = t0 + chrono::Duration::seconds(60);
        assert_eq!(log.find(&q, now).await.unwrap().len(), 2);
        let read = log.file.db.begin_read().unwrap();
        assert_eq!(read.open_table(BY_INSTANCE).unwrap().len().unwrap(), 2);
        assert_eq!(read.open_table(BY_ORDER).unwrap().len().unwrap(), 2);
        assert_eq!(read.open_table(EXPIRY).unwrap().len().unwrap(), 2);
    }
}
