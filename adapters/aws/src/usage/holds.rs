//! A batch's holds (module docs, Ingestion 5): taken on what it validated before its first
//! transaction, dropped by each item's last write or, best effort, when the call ends.

use koogallery::failure::Detail;
use std::collections::HashSet;

use chrono::Utc;
use koogallery::{
    StoreError,
    metering::ingest::{Applied, Loaded},
};

use super::{
    DynamoUsageStore, SAVE_CONCURRENCY, ingestion::Progress, items::record_item, keys::*,
    windows::window_item,
};
use crate::dynamo::{
    attr::{Item, key_of, key_pair, n, number_attr, s, string_attr},
    keys::VERSION,
    sdk::Condition,
};

/// A batch's hold on what it validated (module docs, Ingestion 5).
#[derive(Debug, Clone)]
pub(super) struct Hold {
    pub(super) token: String,
    pub(super) until_ms: i64,
}

/// `item` with `hold` on it.
pub(super) fn with_hold(mut item: Item, hold: &Hold) -> Item {
    item.insert(HOLD.to_owned(), s(hold.token.clone()));
    item.insert(HOLD_UNTIL.to_owned(), n(hold.until_ms));
    item
}

/// This host's clock, Unix millis: what holds are measured in.
pub(super) fn wall_ms() -> i64 {
    Utc::now().timestamp_millis()
}

pub(super) fn millis_of(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The conditions on a batch's holds, on top of the version a write expects.
pub(super) trait HoldConditions {
    /// No live hold but `token`'s, if any (`now_ms`: this host's clock).
    fn and_free(self, now_ms: i64, token: &str) -> Self;
    /// Held by `token`.
    fn and_mine(self, token: &str) -> Self;
}

impl HoldConditions for Condition {
    fn and_free(self, now_ms: i64, token: &str) -> Self {
        self.and("(attribute_not_exists(#hu) OR #hu < :now OR #h = :me)")
            .name("#h", HOLD)
            .name("#hu", HOLD_UNTIL)
            .value(":now", n(now_ms))
            .value(":me", s(token))
    }

    fn and_mine(self, token: &str) -> Self {
        self.and("#h = :me").name("#h", HOLD).value(":me", s(token))
    }
}

impl DynamoUsageStore {
    /// Holds every total, package and existing window the batch will write, each on the version
    /// it was validated at (module docs, Ingestion 5). `false` when one was written since (or
    /// is held by another batch); the holds taken are in `progress.held` either way.
    pub(super) async fn take_holds(
        &self,
        loaded: &Loaded,
        built: &HashSet<String>,
        applied: &Applied,
        hold: &Hold,
        progress: &mut Progress,
    ) -> Result<bool, StoreError> {
        let puts = hold_puts(loaded, built, applied)?;
        let now = wall_ms();
        let mut calls = tokio::task::JoinSet::new();
        let mut todo = puts.into_iter();
        let mut all = true;
        loop {
            while calls.len() < SAVE_CONCURRENCY {
                let Some((item, version)) = todo.next() else {
                    break;
                };
                let (table, hold) = (self.table.clone(), hold.clone());
                calls.spawn(async move {
                    let key = key_pair(&item);
                    let put = table.put_item().set_item(Some(with_hold(item, &hold)));
                    let put = Condition::on_version(version)
                        .and_free(now, &hold.token)
                        .put_item(put);
                    (
                        key,
                        table.put_if(put, "PutItem (hold for a usage batch)").await,
                    )
                });
            }
            let Some(done) = calls.join_next().await else {
                break;
            };
            let (key, result) = done.map_err(|e| {
                StoreError::Unavailable(Detail::caused_by("PutItem task failed", e))
            })?;
            match result {
                Ok(true) => {
                    progress.held.insert(key);
                }
                Ok(false) => all = false,
                // The holds in flight finish or not; `progress.held` lists those known taken, and
                // the rest lapse.
                Err(e) => return Err(e),
            }
        }
        Ok(all)
    }

    /// Drops this call's holds that are still on: each held item put back without its hold, on
    /// the condition that it is still this call's and unchanged. Best effort: a hold not dropped
    /// lapses after [`HOLD_FOR`].
    pub(super) async fn release_holds(&self, progress: &mut Progress) {
        let held: Vec<Item> = progress
            .held
            .drain()
            .map(|(pk, sk)| key_of(pk, sk))
            .collect();
        if held.is_empty() {
            return;
        }
        let items = match self.batch_get(held).await {
            Ok(items) => items,
            Err(e) => {
                tracing::warn!(error = %e, "could not read a usage batch's holds to drop them; they lapse");
                return;
            }
        };
        let mut calls = tokio::task::JoinSet::new();
        let mut todo = items
            .into_iter()
            .filter(|item| string_attr(item, HOLD).ok() == Some(progress.token.as_str()));
        loop {
            while calls.len() < SAVE_CONCURRENCY {
                let Some(mut item) = todo.next() else { break };
                let (table, token) = (self.table.clone(), progress.token.clone());
                calls.spawn(async move {
                    let version = number_attr::<u64>(&item, VERSION).ok();
                    item.remove(HOLD);
                    item.remove(HOLD_UNTIL);
                    let put = table.put_item().set_item(Some(item));
                    let put = Condition::on_version(version)
                        .and_mine(&token)
                        .put_item(put);
                    table
                        .put_if(put, "PutItem (drop a usage batch's hold)")
                        .await
                });
            }
            let Some(done) = calls.join_next().await else {
                break;
            };
            if let Ok(Err(e)) = done {
                tracing::warn!(error = %e, "could not drop a usage batch's hold; it lapses");
            }
        }
    }
}

/// Every total, package and existing window the batch will write, as loaded, with the
/// version it was loaded at (`None`: not stored, so held by a hold-only item).
fn hold_puts(
    loaded: &Loaded,
    built: &HashSet<String>,
    applied: &Applied,
) -> Result<Vec<(Item, Option<u64>)>, StoreError> {
    let mut puts: Vec<(Item, Option<u64>)> = Vec::new();
    for id in &applied.changed_totals {
        puts.push(
            match loaded.totals.get(id).filter(|_| !built.contains(id)) {
                Some(t) => (record_item(t)?, Some(t.version)),
                None => (key_of(usage_pk(id), TOTAL_SK), None),
            },
        );
    }
    for id in &applied.changed_packages {
        puts.push(match loaded.packages.get(id) {
            Some(p) => (record_item(p)?, Some(p.version)),
            None => (key_of(package_pk(id), PACKAGE_SK), None),
        });
    }
    for key in &applied.changed {
        if let Some(w) = loaded.windows.get(key) {
            puts.push((window_item(w)?, Some(w.version)));
        }
    }
    Ok(puts)
}
