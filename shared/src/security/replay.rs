//! The nonce replay guard (docs/protocol/callbacks.md §3.1, docs/protocol/decisions.md §1): each
//! request `nonce` is remembered for at least twice the timestamp window and a reused one is
//! refused with `000001`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::storage::StoreError;

/// Where nonces are remembered (the memory, embedded and DynamoDB stores implement it).
#[async_trait]
pub trait NonceStore: Send + Sync {
    /// Remembers `nonce` until `expires_at`. Returns false if it is already remembered and
    /// unexpired.
    async fn remember(
        &self,
        nonce: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}
