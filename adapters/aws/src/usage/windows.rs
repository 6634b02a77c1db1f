//! Usage windows: their items (the due-index attributes while unsettled), the reads of an
//! instance's windows, and the saves (module docs, Saves).

use koogallery::failure::Detail;
use std::collections::HashMap;

use koogallery::{
    StoreError,
    metering::{UsageStore, UsageWindow, record},
};

use super::{DynamoUsageStore, SAVE_CONCURRENCY, holds::wall_ms, keys::*};
use crate::dynamo::{
    attr::{Item, json_text, n, number_attr, s, string_attr},
    keys::{DATA, PK, SK, VERSION},
    sdk::{BatchWrite, MAX_UNPROCESSED_RETRIES, put_request},
};

/// The window item; `w.version` is stored as given. The due-index attributes only while the
/// window is unsettled.
pub(super) fn window_item(w: &UsageWindow) -> Result<Item, StoreError> {
    let key = w.key();
    let (pk, sk) = window_key(&key)?;
    let mut item = HashMap::from([
        (PK.to_owned(), s(pk)),
        (SK.to_owned(), s(sk)),
        (VERSION.to_owned(), n(w.version)),
        (DATA.to_owned(), s(json_text(record::encode_window(w)?)?)),
        (USAGE.to_owned(), s(usage_of(w))),
    ]);
    if w.is_unsettled() {
        item.insert(DUE.to_owned(), s(DUE_PARTITION));
        item.insert(DUE_AT.to_owned(), s(due_at(w.end(), &key.series())?));
    }
    Ok(item)
}

/// A window back from its item; `version` from the attribute, and the item's keys must be the
/// window's own.
pub(super) fn decode_window_item(item: &Item) -> Result<UsageWindow, StoreError> {
    let pk = string_attr(item, PK).map_err(|m| StoreError::Corrupt(m.into()))?;
    let sk = string_attr(item, SK).map_err(|m| StoreError::Corrupt(m.into()))?;
    let corrupt =
        |m: String| StoreError::Corrupt(format!("usage window item {pk}/{sk}: {m}").into());
    let data = string_attr(item, DATA).map_err(corrupt)?;
    let version: u64 = number_attr(item, VERSION).map_err(corrupt)?;
    let mut w = record::decode_window(data.as_bytes()).map_err(|e| corrupt(e.to_string()))?;
    if window_key(&w.key())? != (pk.to_owned(), sk.to_owned()) {
        return Err(corrupt(format!(
            "data holds the window of {} at {} instead",
            w.instance_id, w.start
        )));
    }
    w.version = version;
    Ok(w)
}

/// What a window adds up to, as its item's `usage` attribute: total, reports, and when the first
/// and the last were applied (Unix millis). A save is conditioned on it being unchanged.
pub fn usage_of(w: &UsageWindow) -> String {
    format!(
        "{}/{}/{}/{}",
        w.total.normalize(),
        w.reports,
        w.first_reported_at.timestamp_millis(),
        w.last_reported_at.timestamp_millis()
    )
}

impl DynamoUsageStore {
    /// For tests and benchmarks: puts `windows` as they are and touches no usage total, as a
    /// release from before totals left a table (`BatchWriteItem`s of 25, [`SAVE_CONCURRENCY`] at a
    /// time, unprocessed items retried).
    pub async fn put_windows_without_totals(
        &self,
        windows: &[UsageWindow],
    ) -> Result<(), StoreError> {
        let puts = windows
            .iter()
            .map(|w| put_request(window_item(w)?))
            .collect::<Result<Vec<_>, _>>()?;
        let how = BatchWrite {
            in_flight: SAVE_CONCURRENCY,
            retries: MAX_UNPROCESSED_RETRIES,
        };
        self.table.batch_write(puts, how, "usage windows").await
    }

    /// An instance's windows whose sort key starts with `prefix` (strongly consistent, every
    /// page), sorted by (start, package) as the other stores sort them.
    pub(super) async fn query_windows(
        &self,
        instance_id: &str,
        prefix: String,
    ) -> Result<Vec<UsageWindow>, StoreError> {
        let query = self.table.query_prefix(&usage_pk(instance_id), &prefix);
        let what = format!("Query (usage windows of {instance_id})");
        let mut out = self
            .table
            .query_all(query, None, &what)
            .await?
            .iter()
            .map(decode_window_item)
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| (a.start, &a.package).cmp(&(b.start, &b.package)));
        Ok(out)
    }

    /// The windows of each of `instance_ids`, [`SAVE_CONCURRENCY`] queries at a time.
    pub(super) async fn windows_of_many(
        &self,
        instance_ids: Vec<String>,
    ) -> Result<Vec<(String, Vec<UsageWindow>)>, StoreError> {
        let mut out = Vec::with_capacity(instance_ids.len());
        let mut calls = tokio::task::JoinSet::new();
        let mut todo = instance_ids.into_iter();
        loop {
            while calls.len() < SAVE_CONCURRENCY {
                let Some(id) = todo.next() else { break };
                let store = self.clone();
                calls.spawn(async move {
                    let windows = store.windows_of(&id).await;
                    (id, windows)
                });
            }
            let Some(done) = calls.join_next().await else {
                break;
            };
            let (id, windows) = done
                .map_err(|e| StoreError::Unavailable(Detail::caused_by("Query task failed", e)))?;
            out.push((id, windows?));
        }
        Ok(out)
    }

    pub(super) async fn save_one(&self, window: &UsageWindow) -> Result<(), StoreError> {
        let mut next = window.clone();
        next.version += 1;
        let put = self
            .table
            .put_item()
            .set_item(Some(window_item(&next)?))
            .condition_expression(
                "#v = :expected AND (attribute_not_exists(#u) OR #u = :usage) \
                 AND (attribute_not_exists(#hu) OR #hu < :now)",
            )
            .expression_attribute_names("#v", VERSION)
            .expression_attribute_names("#u", USAGE)
            .expression_attribute_names("#hu", HOLD_UNTIL)
            .expression_attribute_values(":expected", n(window.version))
            .expression_attribute_values(":usage", s(usage_of(window)))
            .expression_attribute_values(":now", n(wall_ms()));
        let what = format!(
            "PutItem (save usage window {} at {})",
            window.instance_id, window.start
        );
        match self.table.put_if(put, &what).await? {
            true => Ok(()),
            false => Err(StoreError::Conflict),
        }
    }

    /// Each window its own conditional `PutItem` (a transaction would make one stale copy fail
    /// them all, and costs twice the write units), [`SAVE_CONCURRENCY`] of them in flight.
    pub(super) async fn save_each(&self, windows: &[UsageWindow]) -> Result<Vec<bool>, StoreError> {
        let mut saved = vec![false; windows.len()];
        let mut calls = tokio::task::JoinSet::new();
        let mut next = 0;
        loop {
            while calls.len() < SAVE_CONCURRENCY && next < windows.len() {
                let (store, window, index) = (self.clone(), windows[next].clone(), next);
                calls.spawn(async move { (index, store.save_one(&window).await) });
                next += 1;
            }
            let Some(done) = calls.join_next().await else {
                break;
            };
            let (index, result) = done.map_err(|e| {
                StoreError::Unavailable(Detail::caused_by("PutItem task failed", e))
            })?;
            match result {
                Ok(()) => saved[index] = true,
                Err(StoreError::Conflict) => {}
                // The saves still in flight are dropped; what was saved stays (the pusher reads
                // the windows again next round).
                Err(e) => return Err(e),
            }
        }
        Ok(saved)
    }
}
