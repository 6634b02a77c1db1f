//! [`ExchangeLog`] on the table (docs/operations.md, "What KooGallery sent"): every exchange kept
//! under up to three partitions (four for an action), one per way it is found, with the semantics of
//! `koogallery::testing::MemoryExchangeLog` (held to `exchange_log_contract`).
//!
//! # Items
//!
//! | item              | `pk`                             | `sk`          | other attributes |
//! |-------------------|----------------------------------|---------------|------------------|
//! | by instance       | `XLOG#I#{instanceId}`            | exchange id   | `data` (S, the record, `koogallery::exchange::record` `v` 1), `ttl` (N) |
//! | by order          | `XLOG#O#{orderId}`               | exchange id   | as above |
//! | by time           | `XLOG#T#{yyyymmdd}#{shard}`      | exchange id   | as above |
//! | an action         | `XLOG#A`                         | exchange id   | as above: operators' actions and reconciler passes (a few a day, and a pass per schedule) |
//!
//! - The exchange id (`{ms:013}-{random}`) sorts by time, so a partition queried backwards
//!   (`ScanIndexForward = false`, `sk < before`) answers newest first. The day of the time
//!   partition is the UTC day of the id's milliseconds (of `at` for an id not of that form), so
//!   every id below `before` is in `before`'s day or an earlier one.
//! - The time partitions of a day are [`TIME_SHARDS`], by a hash of the exchange id, so no one
//!   partition takes every call's write (DynamoDB's per-partition throughput).
//! - IDs in keys have `%` and `#` percent-escaped ([`escape_component`]), as order lines do.
//! - `ttl` (the table's time to live) is `expires_at` in Unix seconds, rounded up. TTL deletion
//!   lags (up to days), so reads also check `expires_at` in the record: a query filters on
//!   `ttl` (an expression attribute name: `ttl` is a reserved word) and every record decoded is
//!   checked against `now` exactly.
//! - The record is written whole under each partition (no second read to answer a page): an
//!   exchange costs up to three items' write units, each `ceil(size / 1 KB)` (the bodies are cut
//!   at 64 KB each by the redaction, well under DynamoDB's 400 KB item).
//!
//! # Appends
//!
//! Appending an id that is kept must change nothing (the contract appends the same id again
//! with another result and expects the first kept), so each item is a `PutItem` conditioned on
//! `attribute_not_exists(pk)`; a failed condition is success (that item is kept already).
//! `BatchWriteItem` takes no conditions. A `TransactWriteItems` per exchange would be one call
//! instead of three but costs twice the write units, and is all-or-nothing: a retried exchange
//! whose items are partly written would fail its condition as a whole, where independent puts
//! write exactly the items that are missing. So an append is one `PutItem` per item (one to three
//! per exchange: 1 WCU each per KB, the same as an unconditional put), [`IN_FLIGHT`] at once: an
//! edge invocation's one exchange is one round trip. Any other failure fails the append, which
//! the recorder retries whole (what was written is not written twice).
//!
//! # Reads
//!
//! - By instance or order: the partition queried backwards from `before`, page after page, until
//!   `limit` unexpired exchanges are found or it ends.
//! - By time: the day partitions from `before`'s day (or `now`'s) backwards, the shards of a day
//!   queried at once and merged newest first, until `limit` or the horizon: a record of a day
//!   that ended more than the retention ([`DynamoExchangeLog::with_retention`], at most
//!   [`MAX_RETENTION_DAYS`]) before `now` has expired, so no older day is read. An empty log's
//!   page reads every day of the horizon (8 queries a day).
//!
//! Reads are strongly consistent.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use futures_util::{StreamExt, TryStreamExt, stream};
use koogallery::{
    StoreError,
    exchange::{
        Exchange, ExchangeFilter, ExchangeLog, ExchangeQuery, ExchangeRecorder, Kept,
        MAX_RETENTION_DAYS, RecorderTask, id_millis, record,
    },
    failure::Detail,
};

use super::{
    DynamoStore,
    attr::{Item, json_text, n, s, string_attr},
    keys::{DATA, PK, SK, TTL, escape_component, ttl_secs},
    sdk::Table,
};

/// How many time partitions a day is spread over.
pub const TIME_SHARDS: u8 = 8;
/// The partition of operators' actions and reconciler passes.
pub const ACTIONS_PK: &str = "XLOG#A";
/// Conditional puts of one append in flight at once.
pub const IN_FLIGHT: usize = 16;
/// Prefix of every partition of the exchange log (the edge's `dynamodb:LeadingKeys`).
pub const XLOG_PK_PREFIX: &str = "XLOG#";

/// `XLOG#I#{instanceId}`.
pub fn instance_pk(instance_id: &str) -> String {
    format!("XLOG#I#{}", escape_component(instance_id))
}

/// `XLOG#O#{orderId}`.
pub fn order_pk(order_id: &str) -> String {
    format!("XLOG#O#{}", escape_component(order_id))
}

/// `XLOG#T#{yyyymmdd}#{shard}`.
pub fn time_pk(day: NaiveDate, shard: u8) -> String {
    format!("XLOG#T#{}#{shard}", day.format("%Y%m%d"))
}

/// The time shard of an exchange id, `0` to `7`.
pub fn time_shard(id: &str) -> u8 {
    use sha2::Digest;
    sha2::Sha256::digest(id.as_bytes())[0] % TIME_SHARDS
}

fn day_of_millis(ms: i64) -> Option<NaiveDate> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.date_naive())
}

/// The day whose time partitions hold `e`.
pub fn day_of(e: &Kept) -> NaiveDate {
    id_millis(&e.id)
        .and_then(day_of_millis)
        .unwrap_or_else(|| e.at.date_naive())
}

/// The exchange log on the instance store's table; cheap to clone.
#[derive(Debug, Clone)]
pub struct DynamoExchangeLog {
    table: Table,
    /// How far back a page by time reads: no record older than this is unexpired.
    horizon: Duration,
}

impl From<&DynamoStore> for DynamoExchangeLog {
    /// The exchange log on the instance store's table.
    fn from(store: &DynamoStore) -> Self {
        Self::new(store.client().clone(), store.table())
    }
}

impl DynamoExchangeLog {
    /// The log on `store`'s table, kept for `retention` (`KOOGALLERY_EXCHANGE_LOG_DAYS`), and a
    /// recorder appending to it with its writer (for the caller to run): the one place the
    /// retention is given to both the log's reads and the recorder's expiries.
    pub fn recording(
        store: &DynamoStore,
        retention: Duration,
    ) -> (std::sync::Arc<Self>, ExchangeRecorder, RecorderTask) {
        let log = std::sync::Arc::new(Self::from(store).with_retention(retention));
        let (recorder, writer) = ExchangeRecorder::start(log.clone(), retention);
        (log, recorder, writer)
    }

    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            table: Table::new(client, table),
            horizon: Duration::days(MAX_RETENTION_DAYS),
        }
    }

    /// Pages by time read back `retention` only (at most [`MAX_RETENTION_DAYS`], the default):
    /// the log's `KOOGALLERY_EXCHANGE_LOG_DAYS`. Exchanges kept under a longer retention before
    /// it was shortened are still found by instance and by order, not by time.
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.horizon = retention.clamp(Duration::zero(), Duration::days(MAX_RETENTION_DAYS));
        self
    }

    /// The items of `e`: the time partition's, then the instance's and the order's if it has them.
    fn items(e: &Kept) -> Result<Vec<Item>, StoreError> {
        let data = json_text(e.record.clone())?;
        let ttl = ttl_secs(e.expires_at.timestamp_millis());
        let mut pks = vec![time_pk(day_of(e), time_shard(&e.id))];
        pks.extend(e.instance_id.as_deref().map(instance_pk));
        pks.extend(e.order_id.as_deref().map(order_pk));
        if e.action {
            pks.push(ACTIONS_PK.to_owned());
        }
        Ok(pks
            .into_iter()
            .map(|pk| {
                HashMap::from([
                    (PK.to_owned(), s(pk)),
                    (SK.to_owned(), s(&e.id)),
                    (DATA.to_owned(), s(data.clone())),
                    (TTL.to_owned(), n(ttl)),
                ])
            })
            .collect())
    }

    /// Puts `item` unless its key is kept already.
    async fn put_new(&self, item: Item) -> Result<(), StoreError> {
        let put = self
            .table
            .put_item()
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK);
        // Written or kept already: either way the item is there.
        self.table
            .put_if(put, "PutItem (append exchange)")
            .await
            .map(|_| ())
    }

    /// The newest `want` unexpired exchanges of partition `pk` below `before`, newest first.
    async fn newest_in(
        &self,
        pk: &str,
        before: Option<&str>,
        want: usize,
        now: DateTime<Utc>,
    ) -> Result<Vec<Exchange>, StoreError> {
        let mut query = self
            .table
            .query()
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":pk", s(pk))
            // `ttl` is `expires_at` rounded up to the second: at or after now's second while
            // unexpired. The record's `expires_at` decides (below).
            .expression_attribute_values(":now", n(now.timestamp_millis().div_euclid(1000)))
            .filter_expression("#ttl >= :now")
            .scan_index_forward(false)
            .consistent_read(true);
        query = match before {
            Some(b) => query
                .key_condition_expression("#pk = :pk AND #sk < :before")
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":before", s(b)),
            None => query.key_condition_expression("#pk = :pk"),
        };
        let what = "Query (exchange log)";
        let mut found = Vec::new();
        let mut start = None;
        loop {
            // Ask for a little more than is wanted: a few may have expired since the filter.
            let page = query
                .clone()
                .limit(i32::try_from(want - found.len() + 1).unwrap_or(i32::MAX));
            let (items, next) = self.table.query_page(page, start, what).await?;
            for item in &items {
                let e = decode(item)?;
                if e.expires_at > now {
                    found.push(e);
                    if found.len() == want {
                        return Ok(found);
                    }
                }
            }
            match next {
                Some(key) => start = Some(key),
                None => return Ok(found),
            }
        }
    }

    /// A page by time: the days from `before`'s backwards, each day's shards at once.
    async fn newest_by_time(
        &self,
        before: Option<&str>,
        want: usize,
        now: DateTime<Utc>,
    ) -> Result<Vec<Exchange>, StoreError> {
        // Nothing is kept for later than tomorrow (an id from a clock a little ahead of `now`'s
        // at midnight); a `before` further ahead starts there.
        let latest = now.date_naive().succ_opt().unwrap_or(NaiveDate::MAX);
        let mut day = before
            .and_then(id_millis)
            .and_then(day_of_millis)
            .map_or(latest, |d| d.min(latest));
        let oldest = (now - self.horizon - Duration::days(1)).date_naive();
        let mut found: Vec<Exchange> = Vec::with_capacity(want.min(64));
        while found.len() < want && day >= oldest {
            let left = want - found.len();
            let shards: Vec<Vec<Exchange>> = stream::iter(0..TIME_SHARDS)
                .map(|shard| {
                    let pk = time_pk(day, shard);
                    async move { self.newest_in(&pk, before, left, now).await }
                })
                .buffer_unordered(usize::from(TIME_SHARDS))
                .try_collect()
                .await?;
            let mut merged: Vec<Exchange> = shards.into_iter().flatten().collect();
            merged.sort_by(|a, b| b.id.cmp(&a.id));
            merged.truncate(left);
            found.extend(merged);
            let Some(previous) = day.pred_opt() else {
                break;
            };
            day = previous;
        }
        Ok(found)
    }
}

/// An exchange back from its item.
fn decode(item: &Item) -> Result<Exchange, StoreError> {
    let what = || {
        format!(
            "exchange item {}/{}",
            string_attr(item, PK).unwrap_or("?"),
            string_attr(item, SK).unwrap_or("?")
        )
    };
    let data =
        string_attr(item, DATA).map_err(|m| StoreError::Corrupt(Detail::caused_by(what(), m)))?;
    record::decode(data.as_bytes()).map_err(|e| StoreError::Corrupt(Detail::caused_by(what(), e)))
}

#[async_trait]
impl ExchangeLog for DynamoExchangeLog {
    async fn append(&self, exchanges: &[Kept]) -> Result<(), StoreError> {
        let mut items = Vec::with_capacity(exchanges.len() * 3);
        for e in exchanges {
            items.extend(Self::items(e)?);
        }
        stream::iter(items)
            .map(|item| self.put_new(item))
            .buffer_unordered(IN_FLIGHT)
            .try_collect::<()>()
            .await
    }

    async fn find(
        &self,
        query: &ExchangeQuery,
        now: DateTime<Utc>,
    ) -> Result<Vec<Exchange>, StoreError> {
        let want = query.bounded_limit();
        let before = query.before.as_deref();
        match &query.filter {
            ExchangeFilter::All => self.newest_by_time(before, want, now).await,
            ExchangeFilter::Instance(id) => {
                self.newest_in(&instance_pk(id), before, want, now).await
            }
            ExchangeFilter::Order(id) => self.newest_in(&order_pk(id), before, want, now).await,
            ExchangeFilter::Actions => self.newest_in(ACTIONS_PK, before, want, now).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_escape_ids_and_shard_days() {
        assert_eq!(instance_pk("i-1"), "XLOG#I#i-1");
        assert_eq!(order_pk("CS#1%"), "XLOG#O#CS%231%25");
        let day = NaiveDate::from_ymd_opt(2026, 3, 9).unwrap();
        assert_eq!(time_pk(day, 7), "XLOG#T#20260309#7");
        let id = koogallery::exchange::new_id(Utc::now());
        assert_eq!(time_shard(&id), time_shard(&id));
        assert!(time_shard(&id) < TIME_SHARDS);
        let shards: std::collections::BTreeSet<u8> = (0..200)
            .map(|i| time_shard(&format!("0000000000000-{i:016x}")))
            .collect();
        assert_eq!(
            shards.len(),
            usize::from(TIME_SHARDS),
            "every shard is used"
        );
        for pk in [instance_pk("x"), order_pk("y"), time_pk(day, 0)] {
            assert!(pk.starts_with(XLOG_PK_PREFIX));
        }
    }

    #[test]
    fn an_exchange_is_filed_under_the_day_of_its_id() {
        let at = koogallery::protocol::time::parse_compact("20260309235959").unwrap();
        assert_eq!(
            id_millis("1773100799000-00000000000000ff"),
            Some(1773100799000)
        );
        assert_eq!(id_millis("not-an-id"), None);
        assert_eq!(id_millis("1773100799000"), None);
        let id = koogallery::exchange::new_id(at);
        assert_eq!(
            id_millis(&id).and_then(day_of_millis),
            Some(at.date_naive())
        );
    }
}
