//! Errors that know whether they are retryable: that one fact decides the result code, the SQS
//! batch-item failure and the dead-letter path.

use crate::{ResultCode, wire::Reply};

/// A storage port failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost a race; the caller reloads and tries again.
    #[error("write conflict: the record changed concurrently")]
    Conflict,
    /// The store could not be reached or timed out: worth retrying.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A stored record cannot be decoded: retrying will not help.
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Corrupt(_))
    }
}

/// A job-queue port failure; always worth retrying.
#[derive(Debug, thiserror::Error)]
#[error("job queue unavailable: {0}")]
pub struct QueueError(pub String);

/// Why a callback could not do what KooGallery asked. Each maps to one result code.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("{0}")]
    InvalidParameter(String),
    #[error("instance {0} does not exist")]
    InstanceNotFound(String),
    /// The request is valid but cannot be applied in the instance's state (e.g. freezing while provisioning).
    #[error("{0}")]
    NotNow(String),
    /// A definitive business answer with its own code (e.g. `000100` no capacity).
    #[error("{message}")]
    Rejected { code: ResultCode, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl CallbackError {
    /// True when KooGallery's own retry (hourly, for hours; callbacks §5) may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::InvalidParameter(_) | Self::InstanceNotFound(_) | Self::Rejected { .. } => false,
            Self::NotNow(_) | Self::Queue(_) => true,
            Self::Store(e) => e.is_retryable(),
        }
    }

    pub fn result_code(&self) -> ResultCode {
        match self {
            Self::InvalidParameter(_) => ResultCode::InvalidParameter,
            Self::InstanceNotFound(_) => ResultCode::InstanceNotFound,
            Self::Rejected { code, .. } => *code,
            Self::NotNow(_) | Self::Store(_) | Self::Queue(_) => ResultCode::InternalError,
        }
    }

    /// The reply KooGallery sees. Infrastructure details stay in the logs, not in `resultMsg`.
    pub fn to_reply(&self) -> Reply {
        match self {
            Self::Store(_) | Self::Queue(_) => Reply::new(
                ResultCode::InternalError,
                "temporary internal error; please retry",
            ),
            other => Reply::new(other.result_code(), other.to_string()),
        }
    }
}
