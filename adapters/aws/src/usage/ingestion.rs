//! [`UsageStore::ingest`](koogallery::metering::UsageStore::ingest) (module docs, Ingestion):
//! read what a batch touches, validate and apply it, hold and write, and try again from the top
//! while a concurrent writer wins.

use koogallery::failure::Detail;
use std::{collections::HashSet, sync::atomic::Ordering};

use chrono::{DateTime, Utc};
use koogallery::{
    StoreError,
    metering::{
        IngestError, IngestOutcome, PackageQuotas, PackageUsage, UsageReport, UsageTotal,
        UsageWindow, WindowKey,
        ingest::{self, Loaded},
        record,
    },
};

use super::{
    DynamoUsageStore, HOLD_FOR, HOLD_MARGIN, MAX_INGEST_ATTEMPTS,
    chunks::{Chunk, Planned, group},
    faults::PauseAt,
    holds::{Hold, millis_of, wall_ms},
    items::decode_record_item,
    keys::*,
    windows::decode_window_item,
};
use crate::dynamo::{
    attr::{Item, key_of, string_attr},
    keys::{DATA, PK, SK},
    sdk::{backoff, lost_to_a_writer, reason_codes, request_token},
};

/// How a batch's writes ended.
enum Written {
    All,
    /// A transaction lost to a concurrent writer or a hold (its cancellation codes).
    Contended(String),
}

/// What one attempt at a batch came to.
enum Attempt {
    Done(IngestOutcome),
    /// Lost to a concurrent writer: read and apply again.
    Contended(String),
}

/// What one call to [`UsageStore::ingest`] did so far, across its attempts.
pub(super) struct Progress {
    /// The batch's token: its holds, and its own hold passes every hold check.
    pub(super) token: String,
    /// Committed transactions.
    pub(super) committed: u64,
    /// The idempotency keys they stored.
    pub(super) own: HashSet<String>,
    /// Items this call holds, as (`pk`, `sk`): dropped when the call ends.
    pub(super) held: HashSet<(String, String)>,
    pub(super) fault: Option<u64>,
    pub(super) pause: Option<PauseAt>,
}

impl DynamoUsageStore {
    /// Reads, validates, holds and writes the batch, from the top again while a concurrent
    /// writer wins (module docs, Ingestion).
    pub(super) async fn ingest_batch(
        &self,
        reports: &[UsageReport],
        quotas: &PackageQuotas,
        now: DateTime<Utc>,
    ) -> Result<IngestOutcome, IngestError> {
        let (fault, pause) = self.take_faults();
        let mut progress = Progress {
            token: request_token(),
            committed: 0,
            own: HashSet::new(),
            held: HashSet::new(),
            fault,
            pause,
        };
        let mut attempt = 0;
        let result = loop {
            match self.attempt(reports, quotas, now, &mut progress).await {
                Ok(Attempt::Done(outcome)) => break Ok(outcome),
                Ok(Attempt::Contended(codes)) => {
                    self.ingests.contended.fetch_add(1, Ordering::Relaxed);
                    attempt += 1;
                    if attempt >= MAX_INGEST_ATTEMPTS {
                        tracing::warn!(attempt, codes, "usage batch still contended; giving up");
                        break Err(IngestError::Store(StoreError::Conflict));
                    }
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => break Err(e),
            }
        };
        // Whatever ended the call, the holds it still has go (each item's last write dropped its
        // own: after a whole batch there is none left).
        self.release_holds(&mut progress).await;
        result
    }

    /// What the batch touches, as stored (`version` from the attribute), and the usage total of
    /// every instance it names; a total not stored (a table from before totals) is built from the
    /// instance's windows, and named in the second set (its write is a creation).
    async fn load(
        &self,
        reports: &[UsageReport],
        quotas: &PackageQuotas,
    ) -> Result<(Loaded, HashSet<String>), StoreError> {
        let instances = ingest::instances_of(reports);
        let request = load_keys(reports, quotas, &instances)?;
        let mut loaded = Loaded::default();
        for item in self.batch_get(request).await? {
            add_loaded(&mut loaded, &item)?;
        }
        let missing: Vec<String> = instances
            .into_iter()
            .filter(|i| !loaded.totals.contains_key(i))
            .collect();
        let mut built = HashSet::with_capacity(missing.len());
        for (id, queried) in self.windows_of_many(missing).await? {
            // The batch's windows as just read win over the query's copies; what changed between
            // the two reads fails the total's creation (its condition) and is read again.
            let mut all: std::collections::BTreeMap<WindowKey, UsageWindow> =
                queried.into_iter().map(|w| (w.key(), w)).collect();
            for (key, w) in loaded.windows.iter().filter(|(k, _)| k.instance_id == id) {
                all.insert(key.clone(), w.clone());
            }
            let all: Vec<UsageWindow> = all.into_values().collect();
            if let Some(total) = UsageTotal::of_windows(&id, &all) {
                loaded.totals.insert(id.clone(), total);
            }
            built.insert(id);
        }
        Ok((loaded, built))
    }

    /// One attempt at a batch: read, validate and apply the whole of it, hold what it will write
    /// when that takes several transactions, write.
    async fn attempt(
        &self,
        reports: &[UsageReport],
        quotas: &PackageQuotas,
        now: DateTime<Utc>,
        progress: &mut Progress,
    ) -> Result<Attempt, IngestError> {
        let (loaded, built) = self.load(reports, quotas).await?;
        let mut whole = loaded.clone();
        let applied = ingest::apply(reports, quotas, &mut whole, now)?;
        let outcome = credit_own(applied.outcome.clone(), reports, &progress.own);
        if applied.new_keys.is_empty() {
            return Ok(Attempt::Done(outcome));
        }
        let groups = group(reports, quotas, &applied);
        let hold = (groups.len() > 1).then(|| Hold {
            token: progress.token.clone(),
            until_ms: wall_ms().saturating_add(millis_of(HOLD_FOR)),
        });
        if let Some(hold) = &hold
            && !self
                .take_holds(&loaded, &built, &applied, hold, progress)
                .await?
        {
            // Written since it was read: let go, and read again (where it may now be refused,
            // with nothing written).
            self.release_holds(progress).await;
            return Ok(Attempt::Contended("a hold was refused".into()));
        }
        let chunks = self.build(
            groups,
            Planned {
                quotas,
                loaded: &loaded,
                built: &built,
                applied: &applied,
                whole: &whole,
                now,
                token: &progress.token,
                hold: hold.as_ref(),
            },
        )?;
        Ok(match self.write(chunks, hold.as_ref(), progress).await? {
            Written::All => Attempt::Done(outcome),
            Written::Contended(codes) => Attempt::Contended(codes),
        })
    }

    /// Sends the chunks in order; with a hold, none within [`HOLD_MARGIN`] of its end.
    async fn write(
        &self,
        chunks: Vec<Chunk>,
        hold: Option<&Hold>,
        progress: &mut Progress,
    ) -> Result<Written, StoreError> {
        let total = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            before_sending(i, total, hold, progress).await?;
            let what = format!("TransactWriteItems (usage batch, {} of {total})", i + 1);
            let sent = self
                .table
                .transact(chunk.items, Some(request_token()), &what);
            let Some(reasons) = sent.await? else {
                progress.committed += 1;
                progress.own.extend(chunk.keys);
                progress.held.extend(chunk.held);
                for key in &chunk.released {
                    progress.held.remove(key);
                }
                continue;
            };
            return match lost_to_a_writer(&reasons) {
                true => Ok(Written::Contended(reason_codes(&reasons))),
                false => Err(StoreError::Unavailable(
                    format!(
                        "usage batch: transaction {} of {total} cancelled ({})",
                        i + 1,
                        reason_codes(&reasons)
                    )
                    .into(),
                )),
            };
        }
        Ok(Written::All)
    }
}

/// The keys of what the batch touches and of the usage total of each of its `instances`.
fn load_keys(
    reports: &[UsageReport],
    quotas: &PackageQuotas,
    instances: &[String],
) -> Result<Vec<Item>, StoreError> {
    let (windows, keys, packages) = ingest::touched(reports, quotas);
    let mut request =
        Vec::with_capacity(windows.len() + keys.len() + packages.len() + instances.len());
    for w in &windows {
        let (pk, sk) = window_key(w)?;
        request.push(key_of(pk, sk));
    }
    request.extend(keys.iter().map(|k| key_of(key_pk(k), KEY_SK)));
    request.extend(packages.iter().map(|p| key_of(package_pk(p), PACKAGE_SK)));
    request.extend(instances.iter().map(|i| key_of(usage_pk(i), TOTAL_SK)));
    Ok(request)
}

/// Files an item read into what was loaded, by its kind.
fn add_loaded(loaded: &mut Loaded, item: &Item) -> Result<(), StoreError> {
    let pk = string_attr(item, PK).map_err(|m| StoreError::Corrupt(m.into()))?;
    let sk = string_attr(item, SK).map_err(|m| StoreError::Corrupt(m.into()))?;
    if let Some(key) = pk.strip_prefix(KEY_PK_PREFIX) {
        let data = string_attr(item, DATA).map_err(|m| {
            StoreError::Corrupt(Detail::caused_by(format!("usage key item {pk}"), m))
        })?;
        loaded
            .keys
            .insert(key.to_owned(), record::decode_key(data.as_bytes())?);
    } else if pk.starts_with(PACKAGE_PK_PREFIX) {
        if let Some(p) = decode_record_item::<PackageUsage>(item)? {
            loaded.packages.insert(p.package_instance_id.clone(), p);
        }
    } else if sk == TOTAL_SK {
        if let Some(t) = decode_record_item::<UsageTotal>(item)? {
            loaded.totals.insert(t.instance_id.clone(), t);
        }
    } else {
        let w = decode_window_item(item)?;
        loaded.windows.insert(w.key(), w);
    }
    Ok(())
}

/// What stops, or pauses, the batch before its transaction `i` of `total`: an injected fault
/// or pause (tests), or holds that end too soon to send it.
async fn before_sending(
    i: usize,
    total: usize,
    hold: Option<&Hold>,
    progress: &mut Progress,
) -> Result<(), StoreError> {
    let committed = progress.committed;
    if progress.fault == Some(committed) {
        return Err(StoreError::Unavailable(format!(
            "injected fault: usage batch stopped after {committed} transactions ({i} of {total} in this attempt)"
        ).into()));
    }
    if let Some(pause) = progress.pause.take_if(|p| p.after == committed) {
        let _ = pause.reached.send(());
        let _ = pause.resume.await;
    }
    if let Some(hold) = hold
        && wall_ms().saturating_add(millis_of(HOLD_MARGIN)) >= hold.until_ms
    {
        return Err(StoreError::Unavailable(format!(
            "usage batch: its holds end in under {} s; stopped before transaction {} of {total} (send it again)",
            HOLD_MARGIN.as_secs(),
            i + 1
        ).into()));
    }
    Ok(())
}

/// Counts, in the outcome of a read-again attempt, the reports whose keys this call stored in an
/// earlier attempt as applied (the attempt saw them as duplicates).
pub(super) fn credit_own(
    mut outcome: IngestOutcome,
    reports: &[UsageReport],
    own: &HashSet<String>,
) -> IngestOutcome {
    if own.is_empty() {
        return outcome;
    }
    let mut credited = HashSet::new();
    for r in reports {
        let key = r.idempotency_key.as_str();
        if own.contains(key) && credited.insert(key) {
            outcome.applied += 1;
            outcome.duplicates = outcome.duplicates.saturating_sub(1);
        }
    }
    outcome
}
