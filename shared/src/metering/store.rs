//! The usage store port: windows and idempotency keys, written atomically per batch.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{IngestOutcome, UsageReport, UsageWindow, WindowKey, ingest::IngestError};
use crate::storage::StoreError;

/// Why a usage store call failed.
pub type UsageStoreError = StoreError;

/// Usage windows per (instance, hour), with the idempotency keys of the reports applied to them.
#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Applies a checked batch ([`super::ingest::check_batch`], `check_instances`) with
    /// [`super::ingest::apply`], all or nothing, atomically with any concurrent batch or seal: a
    /// report can never be added to a window after it was sealed.
    async fn ingest(
        &self,
        reports: &[UsageReport],
        now: DateTime<Utc>,
    ) -> Result<IngestOutcome, IngestError>;

    /// Unsettled windows (open, or sealed and not yet accepted or rejected) whose hour ended at
    /// or before `ended_by`, oldest first (then by instance), at most `limit`.
    async fn due(
        &self,
        ended_by: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<UsageWindow>, StoreError>;

    /// Writes `window` if its stored version is still `window.version` (then bumps it);
    /// `StoreError::Conflict` when another writer (a batch, another pusher) was first.
    async fn save_window(&self, window: &UsageWindow) -> Result<(), StoreError>;

    /// One window, if any usage was reported for it.
    async fn window(&self, key: &WindowKey) -> Result<Option<UsageWindow>, StoreError>;

    /// Every window of an instance, oldest first (queryInstance's `usageInfo`, reports).
    async fn windows_of(&self, instance_id: &str) -> Result<Vec<UsageWindow>, StoreError>;
}
