//! Why the instance domain refused or could not apply a change. No callback or job concept here:
//! the callbacks map these once to KooGallery result codes (`crate::callbacks::CallbackError`), the
//! worker once to retry or dead-letter. Retryable or not is decided here, by the error's own kind.

use super::InstanceId;
use super::InstanceState;
use crate::storage::StoreError;

/// A change that a failed instance cannot take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Unfreeze,
    Upgrade,
    RenewalChange,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Unfreeze => "be unfrozen",
            Self::Upgrade => "be upgraded",
            Self::RenewalChange => "change",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("instance {0} does not exist")]
    NotFound(InstanceId),
    /// Released instances are gone for KooGallery (docs/protocol/callbacks.md §6.5).
    #[error("instance {0} has been released")]
    Released(InstanceId),
    /// The change is valid but must wait (e.g. freezing while still provisioning): retry later.
    #[error("instance {instance_id} is {state}; cannot {action} yet, retry later")]
    NotYet {
        instance_id: InstanceId,
        state: InstanceState,
        action: &'static str,
    },
    /// Another delivery holds the claim (to provision, or to drain the outbox) until `until`:
    /// retry then. Waiting is not a failure and spends no attempt.
    #[error("instance {instance_id} is held by another delivery until {until}")]
    Claimed {
        instance_id: String,
        until: chrono::DateTime<chrono::Utc>,
    },
    /// The instance never got its resources, so this change can never apply.
    #[error("instance {instance_id} failed to provision; it cannot {change}")]
    ProvisioningFailed { instance_id: String, change: Change },
    /// A change that the lifecycle forbids (a bug or a race lost for good, not bad input).
    #[error("instance {instance_id} is {state}; cannot {action}")]
    Invariant {
        instance_id: String,
        state: InstanceState,
        action: &'static str,
    },
    #[error("instance store: {0}")]
    Store(#[from] StoreError),
}

impl DomainError {
    /// True when the same request later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::NotYet { .. } | Self::Claimed { .. } => true,
            Self::Store(e) => e.is_retryable(),
            Self::NotFound(_)
            | Self::Released(_)
            | Self::ProvisioningFailed { .. }
            | Self::Invariant { .. } => false,
        }
    }
}
