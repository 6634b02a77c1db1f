//! The usage store port: windows and idempotency keys, written atomically per batch.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    IngestOutcome, PackageQuotas, PackageUsage, UsageReport, UsageTotal, UsageWindow, WindowKey,
    ingest::IngestError,
};
use crate::storage::StoreError;

/// Why a usage store call failed.
pub type UsageStoreError = StoreError;

/// Usage windows per (instance, hour[, package]), with the idempotency keys of the reports applied
/// to them, what was used of each package, and each instance's [`UsageTotal`].
///
/// The running sums are written with what they sum, in the same transaction: a package's usage
/// with its reports, an instance's total with its windows. Only ingestion changes what a window
/// adds up to; a save never does. So at every commit an instance's total is the sum of its
/// windows (`usage_store_contract` holds every store to it).
#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Applies a checked batch ([`super::ingest::check_batch`], `check_instances`, which gives
    /// `quotas`) with [`super::ingest::apply`] to what [`super::ingest::touched`] names, atomically
    /// with any concurrent batch or seal: a report can never be added to a window after it was
    /// sealed, nor a package used beyond its quota. All or nothing where the store can write the
    /// batch in one transaction; a store that cannot (DynamoDB: 100 items per transaction) must
    /// keep each report's key, window and package in one transaction, so that a retried batch
    /// applies each report exactly once.
    async fn ingest(
        &self,
        reports: &[UsageReport],
        quotas: &PackageQuotas,
        now: DateTime<Utc>,
    ) -> Result<IngestOutcome, IngestError>;

    /// Unsettled windows (open, or sealed and not yet accepted or rejected) whose hour ended at
    /// or before `ended_by`, oldest first (then by instance), at most `limit`; fewer than
    /// `limit` are every one the store holds.
    async fn due(
        &self,
        ended_by: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<UsageWindow>, StoreError>;

    /// Writes `window` if its stored version is still `window.version` (then bumps it);
    /// `StoreError::Conflict` when another writer (a batch, another pusher) was first, and when
    /// the save would change what the window adds up to ([`UsageWindow::same_usage`]: only
    /// ingestion does, with the instance's total).
    async fn save_window(&self, window: &UsageWindow) -> Result<(), StoreError>;

    /// Saves several windows as [`UsageStore::save_window`] does, each with its own
    /// compare-and-set: `true` where saved (its version bumped), `false` where another writer
    /// was first. A store that can should write them in one transaction (the push seals and
    /// settles up to 1000 windows at a time); by default, one at a time.
    async fn save_windows(&self, windows: &[UsageWindow]) -> Result<Vec<bool>, StoreError> {
        let mut saved = Vec::with_capacity(windows.len());
        for w in windows {
            saved.push(match self.save_window(w).await {
                Ok(()) => true,
                Err(StoreError::Conflict) => false,
                Err(e) => return Err(e),
            });
        }
        Ok(saved)
    }

    /// One window, if any usage was reported for it.
    async fn window(&self, key: &WindowKey) -> Result<Option<UsageWindow>, StoreError>;

    /// Every window of an instance (its own and its packages'), oldest first (queryInstance's
    /// `usageInfo`, bill estimates).
    async fn windows_of(&self, instance_id: &str) -> Result<Vec<UsageWindow>, StoreError>;

    /// An instance's windows of one hour (its own and its packages'). Stores may index this;
    /// by default it filters [`UsageStore::windows_of`].
    async fn windows_at(
        &self,
        instance_id: &str,
        start: DateTime<Utc>,
    ) -> Result<Vec<UsageWindow>, StoreError> {
        let mut all = self.windows_of(instance_id).await?;
        all.retain(|w| w.start == start);
        Ok(all)
    }

    /// What was used of a package, if it was ever named in a report.
    async fn package(&self, package_instance_id: &str) -> Result<Option<PackageUsage>, StoreError>;

    /// The usage totals of `instance_ids` (queryInstance's `usageInfo`: up to 100 at a time),
    /// in no particular order; an instance with no usage has none. A bounded number of reads
    /// per instance, however many windows it has, made concurrently where the store can. A
    /// store holding windows written before totals were kept answers what their sum is all the
    /// same (it built the totals when it was opened, or sums those windows until a batch writes
    /// the total: each store says which).
    async fn usage_totals(&self, instance_ids: &[&str]) -> Result<Vec<UsageTotal>, StoreError>;

    /// One instance's usage total ([`UsageStore::usage_totals`]).
    async fn usage_total(&self, instance_id: &str) -> Result<Option<UsageTotal>, StoreError> {
        Ok(self.usage_totals(&[instance_id]).await?.pop())
    }

    /// Claims the push for `holder` until `until`: granted when no claim is held, the one held
    /// expired at or before `now`, or `holder` holds it (an extension). One push pass at a time
    /// is what keeps a package record's begin offset unique in its hour (see
    /// [`super::UsageWindow::seal_package`]), and spares KooGallery duplicate pushes. A store
    /// whose file only one process can open may keep the claim in that process's memory.
    async fn claim_push(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Gives up `holder`'s claim; a claim another holder took since is left alone.
    async fn release_push(&self, holder: &str) -> Result<(), StoreError>;
}

/// The push claim as held: who holds it, and until when (see [`UsageStore::claim_push`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushClaim {
    pub holder: String,
    pub until: DateTime<Utc>,
}

impl PushClaim {
    /// Applies a claim of `holder` until `until` at `now` to what is held (`current`): true, and
    /// `current` replaced, when it is granted ([`UsageStore::claim_push`]'s rule).
    pub fn claim(
        current: &mut Option<PushClaim>,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> bool {
        let free = match current {
            None => true,
            Some(held) => held.until <= now || held.holder == holder,
        };
        if free {
            *current = Some(PushClaim {
                holder: holder.to_owned(),
                until,
            });
        }
        free
    }

    /// Applies a release by `holder` to what is held.
    pub fn release(current: &mut Option<PushClaim>, holder: &str) {
        if current.as_ref().is_some_and(|held| held.holder == holder) {
            *current = None;
        }
    }
}
