//! A batch over one transaction, cut into chunks (module docs, Ingestion 4): the groups of
//! reports, and each group's transaction at the values the chunks before it leave.

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::types::TransactWriteItem;
use chrono::{DateTime, Utc};
use koogallery::{
    StoreError,
    metering::{
        IngestError, PackageQuotas, PackageUsage, UsageReport, UsageWindow, WindowKey,
        ingest::{self, Applied, Loaded},
        record,
    },
};

use super::{
    DynamoUsageStore,
    holds::{Hold, HoldConditions, wall_ms, with_hold},
    items::{RecordItem, record_item},
    keys::*,
    windows::window_item,
};
use crate::dynamo::{
    attr::{Item, json_text, key_pair, n, s},
    keys::{DATA, PK, SK, TTL},
    sdk::{Condition, MAX_TRANSACTION_ITEMS, Table},
};

/// A chunk of a batch's writes: one transaction.
pub(super) struct Chunk {
    pub(super) items: Vec<TransactWriteItem>,
    /// The idempotency keys it stores.
    pub(super) keys: Vec<String>,
    /// The items it leaves held (written with the hold: the batch writes them again later), and
    /// those it puts without the hold, as (`pk`, `sk`).
    pub(super) held: Vec<(String, String)>,
    pub(super) released: Vec<(String, String)>,
}

/// What [`DynamoUsageStore::build`] plans the chunks from.
pub(super) struct Planned<'a> {
    pub(super) quotas: &'a PackageQuotas,
    /// What was read, and which of its totals were built (not stored).
    pub(super) loaded: &'a Loaded,
    pub(super) built: &'a HashSet<String>,
    /// What [`ingest::apply`] made of the whole batch.
    pub(super) applied: &'a Applied,
    pub(super) whole: &'a Loaded,
    pub(super) now: DateTime<Utc>,
    pub(super) token: &'a str,
    /// The batch's hold on what it writes (several transactions).
    pub(super) hold: Option<&'a Hold>,
}

/// The reports a batch applies (the first report of each new key), in the groups its
/// transactions write: one group when it fits one transaction, else grouped by package and
/// window and cut at 100 items (a key, and each window, package and total the first time the
/// group names it).
pub(super) fn group(
    reports: &[UsageReport],
    quotas: &PackageQuotas,
    applied: &Applied,
) -> Vec<Vec<UsageReport>> {
    let mut fresh: HashSet<&str> = applied.new_keys.iter().map(|(k, _)| k.as_str()).collect();
    let mut todo: Vec<&UsageReport> = reports
        .iter()
        .filter(|r| fresh.remove(r.idempotency_key.as_str()))
        .collect();
    let items = applied.new_keys.len()
        + applied.changed.len()
        + applied.changed_packages.len()
        + applied.changed_totals.len();
    if items <= MAX_TRANSACTION_ITEMS {
        return vec![todo.into_iter().cloned().collect()];
    }
    // Stable: a window's reports keep their order.
    todo.sort_by_cached_key(|r| (r.package_instance_id.clone(), r.window(quotas)));
    let mut groups = Vec::new();
    let mut group: Vec<UsageReport> = Vec::new();
    let mut windows = HashSet::new();
    let mut packages = HashSet::new();
    let mut instances = HashSet::new();
    for r in todo {
        let window = r.window(quotas);
        let cost = |windows: &HashSet<WindowKey>,
                    packages: &HashSet<String>,
                    instances: &HashSet<String>| {
            1 + usize::from(!windows.contains(&window))
                + usize::from(
                    r.package_instance_id
                        .as_ref()
                        .is_some_and(|p| !packages.contains(p)),
                )
                + usize::from(!instances.contains(&r.instance_id))
        };
        let items = group.len() + windows.len() + packages.len() + instances.len();
        if items + cost(&windows, &packages, &instances) > MAX_TRANSACTION_ITEMS {
            groups.push(std::mem::take(&mut group));
            windows.clear();
            packages.clear();
            instances.clear();
        }
        windows.insert(window);
        if let Some(p) = &r.package_instance_id {
            packages.insert(p.clone());
        }
        instances.insert(r.instance_id.clone());
        group.push(r.clone());
    }
    groups.push(group);
    groups
}

impl DynamoUsageStore {
    /// The batch's writes, cut into transactions of at most 100 items (see the module docs), in
    /// the groups [`group`] made.
    pub(super) fn build(
        &self,
        groups: Vec<Vec<UsageReport>>,
        p: Planned<'_>,
    ) -> Result<Vec<Chunk>, IngestError> {
        let mut chunker = Chunker::new(&self.table, &groups, p);
        let mut chunks = Vec::with_capacity(groups.len());
        for (i, group) in groups.into_iter().enumerate() {
            chunks.push(chunker.chunk(i, group)?);
        }
        chunker.adds_up()?;
        Ok(chunks)
    }
}

/// A chunk that cannot be: the chunks differ from the batch.
fn internal(what: &str) -> IngestError {
    IngestError::Store(StoreError::Corrupt(
        format!("usage batch: {what} (a bug: the chunks differ from the batch)").into(),
    ))
}

/// The last chunk writing each window, package and total: it drops the hold.
#[derive(Default)]
struct LastWrites {
    window: HashMap<WindowKey, usize>,
    package: HashMap<String, usize>,
    total: HashMap<String, usize>,
}

/// Builds a batch's chunks one group after the other, each on what the chunks before it leave.
struct Chunker<'a> {
    table: &'a Table,
    p: Planned<'a>,
    now_ms: i64,
    last: LastWrites,
    /// What the chunks so far leave.
    state: Loaded,
    /// What the chunks so far leave stored (the rest is written on `attribute_not_exists`).
    stored_windows: HashSet<WindowKey>,
    stored_packages: HashSet<String>,
    stored_totals: HashSet<String>,
}

impl<'a> Chunker<'a> {
    fn new(table: &'a Table, groups: &[Vec<UsageReport>], p: Planned<'a>) -> Self {
        let mut last = LastWrites::default();
        for (i, group) in groups.iter().enumerate() {
            for r in group {
                last.window.insert(r.window(p.quotas), i);
                if let Some(pkg) = &r.package_instance_id {
                    last.package.insert(pkg.clone(), i);
                }
                last.total.insert(r.instance_id.clone(), i);
            }
        }
        Self {
            table,
            now_ms: wall_ms(),
            last,
            state: p.loaded.clone(),
            stored_windows: p.loaded.windows.keys().cloned().collect(),
            stored_packages: p.loaded.packages.keys().cloned().collect(),
            stored_totals: p
                .loaded
                .totals
                .keys()
                .filter(|id| !p.built.contains(*id))
                .cloned()
                .collect(),
            p,
        }
    }

    /// Group `i`'s transaction: its windows, packages, totals and keys.
    fn chunk(&mut self, i: usize, group: Vec<UsageReport>) -> Result<Chunk, IngestError> {
        let a = ingest::apply(&group, self.p.quotas, &mut self.state, self.p.now)?;
        if a.outcome.applied != group.len() {
            return Err(internal("a chunk applied fewer reports than planned"));
        }
        let mut chunk = Chunk {
            items: Vec::with_capacity(MAX_TRANSACTION_ITEMS),
            keys: Vec::with_capacity(a.new_keys.len()),
            held: Vec::new(),
            released: Vec::new(),
        };
        for key in &a.changed {
            let w = self
                .state
                .windows
                .get_mut(key)
                .ok_or_else(|| internal("a changed window is missing"))?;
            let condition = match self.stored_windows.contains(key) {
                true => Condition::on_version(Some(w.version)),
                false => Condition::absent(),
            };
            w.version += 1;
            let item = window_item(w)?;
            let keep = self.last.window.get(key).is_some_and(|&l| l > i);
            self.push(&mut chunk, item, condition, keep)?;
            self.stored_windows.insert(key.clone());
        }
        for id in &a.changed_packages {
            let packages = (&mut self.state.packages, &mut self.stored_packages);
            let (item, stored) = next_version(packages, id, "package")?;
            let keep = self.last.package.get(id).is_some_and(|&l| l > i);
            let condition = self.holding(Condition::on_version(stored));
            self.push(&mut chunk, item, condition, keep)?;
        }
        for id in &a.changed_totals {
            let totals = (&mut self.state.totals, &mut self.stored_totals);
            let (item, stored) = next_version(totals, id, "total")?;
            let keep = self.last.total.get(id).is_some_and(|&l| l > i);
            let condition = self.holding(Condition::on_version(stored));
            self.push(&mut chunk, item, condition, keep)?;
        }
        for (key, rec) in &a.new_keys {
            let item = HashMap::from([
                (PK.to_owned(), s(key_pk(key))),
                (SK.to_owned(), s(KEY_SK)),
                (DATA.to_owned(), s(json_text(record::encode_key(rec)?)?)),
                // DynamoDB deletes it once its retention is over (ingest's module docs).
                (TTL.to_owned(), n(rec.keep_until().timestamp())),
            ]);
            chunk
                .items
                .push(self.table.tx_put(item, Some(Condition::absent()))?);
            chunk.keys.push(key.clone());
        }
        self.state.keys.extend(a.new_keys);
        Ok(chunk)
    }

    /// Adds `item` to the chunk on `condition`; `keep`: written again by a later chunk, so it
    /// stays held until then.
    fn push(
        &self,
        chunk: &mut Chunk,
        item: Item,
        condition: Condition,
        keep: bool,
    ) -> Result<(), StoreError> {
        let key = key_pair(&item);
        let item = match (keep, self.p.hold) {
            (true, Some(hold)) => {
                chunk.held.push(key);
                with_hold(item, hold)
            }
            _ => {
                chunk.released.push(key);
                item
            }
        };
        chunk.items.push(self.table.tx_put(item, Some(condition))?);
        Ok(())
    }

    /// Totals and packages: on their version, and held by this batch (several transactions) or
    /// by none but it (one).
    fn holding(&self, c: Condition) -> Condition {
        if self.p.hold.is_some() {
            c.and_mine(self.p.token)
        } else {
            c.and_free(self.now_ms, self.p.token)
        }
    }

    /// The chunks must add up to what the whole batch makes (versions aside).
    fn adds_up(&self) -> Result<(), IngestError> {
        let (state, whole) = (&self.state, self.p.whole);
        let applied = self.p.applied;
        same(&applied.changed, "window", |k| {
            let unversioned = |w: &UsageWindow| UsageWindow {
                version: 0,
                ..w.clone()
            };
            Some(unversioned(state.windows.get(k)?) == unversioned(whole.windows.get(k)?))
        })?;
        same(&applied.changed_packages, "package", |id| {
            let unversioned = |p: &PackageUsage| PackageUsage {
                version: 0,
                ..p.clone()
            };
            Some(unversioned(state.packages.get(id)?) == unversioned(whole.packages.get(id)?))
        })?;
        same(&applied.changed_totals, "total", |id| {
            Some(state.totals.get(id)?.same_sums(whole.totals.get(id)?))
        })
    }
}

/// Record `id` (a package's usage, a total) at its next version, and noted as stored: its item,
/// and the version it is stored at (`None`: not yet, its write creates it).
fn next_version<T: RecordItem>(
    (records, stored): (&mut HashMap<String, T>, &mut HashSet<String>),
    id: &str,
    what: &str,
) -> Result<(Item, Option<u64>), IngestError> {
    let record = records
        .get_mut(id)
        .ok_or_else(|| internal(&format!("a changed {what} is missing")))?;
    let version = record.version();
    let was = stored.contains(id).then_some(version);
    record.set_version(version + 1);
    stored.insert(id.to_owned());
    Ok((record_item(record)?, was))
}

/// Each of `keys` is the same (`Some(true)`) in the chunks and in the whole batch; `None`: one
/// side lacks it. `what` names it in the error.
fn same<'k, K: 'k>(
    keys: impl IntoIterator<Item = &'k K>,
    what: &str,
    alike: impl Fn(&K) -> Option<bool>,
) -> Result<(), IngestError> {
    for key in keys {
        match alike(key) {
            None => return Err(internal(&format!("a {what} is missing"))),
            Some(false) => return Err(internal(&format!("a {what} adds up differently"))),
            Some(true) => {}
        }
    }
    Ok(())
}
