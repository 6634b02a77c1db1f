//! The port that keeps license codes and their daily usage (memory, embedded redb, DynamoDB;
//! `testing::license::license_store_contract` holds every adapter to the same behaviour).

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use super::{DailyUsage, License, LicenseChange, LicenseCode, LicenseError};
use crate::storage::StoreError;

/// Keeps license codes (one versioned record each) and their daily usage.
#[async_trait]
pub trait LicenseStore: Send + Sync {
    async fn get(&self, code: &LicenseCode) -> Result<Option<License>, StoreError>;

    /// Writes `license` whole if the stored record's version is `license.version - 1` (no record
    /// when `license.version` is 1); otherwise [`StoreError::Conflict`].
    async fn put(&self, license: &License) -> Result<(), StoreError>;

    /// Records that `client_id` used `code` on `day` (idempotent).
    async fn record_use(
        &self,
        code: &LicenseCode,
        day: NaiveDate,
        client_id: &str,
    ) -> Result<(), StoreError>;

    /// Usage of days before `before` not yet reported, oldest day first, at most `limit` entries.
    async fn usage_due(
        &self,
        before: NaiveDate,
        limit: usize,
    ) -> Result<Vec<DailyUsage>, StoreError>;

    /// Marks a code's day reported: it is never due again.
    async fn usage_reported(&self, code: &LicenseCode, day: NaiveDate) -> Result<(), StoreError>;
}

/// Why [`mutate_license`] did not apply a change.
#[derive(Debug, thiserror::Error)]
pub enum MutateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Refused(#[from] LicenseError),
    /// No record, and none was to be created.
    #[error("license code not known")]
    NotFound,
}

impl MutateError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Store(e) if e.is_retryable())
    }
}

/// Reads `code` (or starts it with `new` when it has no record), applies `change`, and writes it
/// if it changed, retrying lost races. Returns the record as stored and whether it changed.
pub async fn mutate_license(
    store: &dyn LicenseStore,
    code: &LicenseCode,
    new: Option<&(dyn Fn() -> License + Send + Sync)>,
    change: LicenseChange,
    now: DateTime<Utc>,
) -> Result<(License, bool), MutateError> {
    const ATTEMPTS: usize = 8;
    let mut last = StoreError::Conflict;
    for _ in 0..ATTEMPTS {
        let mut license = match (store.get(code).await?, new) {
            (Some(l), _) => l,
            (None, Some(new)) => new(),
            (None, None) => return Err(MutateError::NotFound),
        };
        let fresh = license.version == 0;
        let changed = license.apply(change.clone(), now)?;
        if !changed && !fresh {
            return Ok((license, false));
        }
        license.version += 1;
        match store.put(&license).await {
            Ok(()) => return Ok((license, changed)),
            Err(StoreError::Conflict) => last = StoreError::Conflict,
            Err(e) => return Err(e.into()),
        }
    }
    Err(last.into())
}

/// Drops the events up to `seq` from `code`'s record once the vendor has them, retrying lost
/// races. A record that is gone, or has no such events, is left alone.
pub async fn events_delivered(
    store: &dyn LicenseStore,
    code: &LicenseCode,
    seq: u64,
) -> Result<(), StoreError> {
    for _ in 0..8 {
        let Some(mut license) = store.get(code).await? else {
            return Ok(());
        };
        if !license.delivered(seq) {
            return Ok(());
        }
        license.version += 1;
        match store.put(&license).await {
            Err(StoreError::Conflict) => continue,
            other => return other,
        }
    }
    Err(StoreError::Conflict)
}
