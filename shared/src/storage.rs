//! The failure every storage port shares (instances, nonces, usage, the directory): whether
//! retrying can help decides the result code, the SQS batch-item failure and the dead-letter path.

pub use crate::failure::Detail;

/// A storage port failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost a race; the caller reloads and tries again.
    #[error("write conflict: the record changed concurrently")]
    Conflict,
    /// The store could not be reached or timed out: worth retrying.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] Detail),
    /// A stored record cannot be decoded: retrying will not help.
    #[error("stored record is corrupt: {0}")]
    Corrupt(#[source] Detail),
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Corrupt(_))
    }
}
