//! The edge's settings (docs/protocol/callbacks.md §3.1, docs/protocol/decisions.md §1): the
//! timestamp window, how long nonces are remembered, the largest body accepted.

use chrono::Duration;

use super::{ConfigError, Env, catalog};

/// The Kit body limit's floor (docs/protocol/decisions.md §18: at least 2 MiB): a 500-user authSync
/// at the documented field maxima is about 0.6 MB; allOrgSync is unbounded.
pub const MIN_KIT_MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// The Kit body limit's ceiling: on AWS the edge invokes the callback's function with the body,
/// and a synchronous Lambda invocation carries at most 6 MB (API Gateway takes 10 MB).
pub const MAX_KIT_MAX_BODY_BYTES: usize = 5 * 1024 * 1024;
/// The dispatch deadline's ceiling: KooGallery waits 5 s, so it always gets a signed answer, never
/// the gateway's bare 5xx.
pub const MAX_DISPATCH_DEADLINE_MS: u64 = 4500;
/// Nonces are remembered for this many timestamp windows: at least two
/// (docs/protocol/decisions.md §1).
const NONCE_WINDOWS: i32 = 5;

#[derive(Debug, Clone, Copy)]
pub struct EdgeSettings {
    /// Accepted clock skew of a request `timestamp`, both ways (docs/protocol/decisions.md §1).
    pub timestamp_window: Duration,
    /// How long nonces are remembered.
    pub nonce_ttl: Duration,
    /// Largest basic-interface body: V2 bodies are a few hundred bytes.
    pub max_body_bytes: usize,
    /// The Kit family's own body limit (docs/protocol/decisions.md §18).
    pub kit_max_body_bytes: usize,
    /// How long a callback may take before the edge answers a signed, retryable `000005` itself.
    pub dispatch_deadline: std::time::Duration,
    /// The key size tried first on V1's encrypted buyer fields (docs/protocol/decisions.md §20).
    pub v1_encryption: crate::security::credential_cipher::EncryptType,
}

impl Default for EdgeSettings {
    fn default() -> Self {
        Self::read(&Env::empty()).expect("the catalog's defaults are valid")
    }
}

impl EdgeSettings {
    /// `KOOGALLERY_TIMESTAMP_WINDOW_SECS` (1 s to 1 h), `KOOGALLERY_MAX_BODY_BYTES`,
    /// `KOOGALLERY_KIT_MAX_BODY_BYTES` (2 MiB to 5 MiB) and `KOOGALLERY_DISPATCH_DEADLINE_MS`
    /// (100 to 4500).
    pub fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let window = &catalog::TIMESTAMP_WINDOW_SECS;
        let secs: i64 = env.number(window, 1)?;
        if secs > 3600 {
            return Err(ConfigError::invalid(
                window.name,
                format!("at most 3600 seconds, got {secs}"),
            ));
        }
        let kit_body = &catalog::KIT_MAX_BODY_BYTES;
        let kit_max_body_bytes = env.number(kit_body, MIN_KIT_MAX_BODY_BYTES)?;
        if kit_max_body_bytes > MAX_KIT_MAX_BODY_BYTES {
            return Err(ConfigError::invalid(
                kit_body.name,
                format!(
                    "at most {MAX_KIT_MAX_BODY_BYTES} bytes (a Lambda invocation's payload), got {kit_max_body_bytes}"
                ),
            ));
        }
        let deadline = &catalog::DISPATCH_DEADLINE_MS;
        let deadline_ms: u64 = env.number(deadline, 100)?;
        if deadline_ms > MAX_DISPATCH_DEADLINE_MS {
            return Err(ConfigError::invalid(
                deadline.name,
                format!(
                    "at most {MAX_DISPATCH_DEADLINE_MS} ms (KooGallery waits 5 s), got {deadline_ms}"
                ),
            ));
        }
        let timestamp_window = Duration::seconds(secs);
        Ok(Self {
            timestamp_window,
            nonce_ttl: timestamp_window * NONCE_WINDOWS,
            max_body_bytes: env.number(&catalog::MAX_BODY_BYTES, 1024)?,
            kit_max_body_bytes,
            dispatch_deadline: std::time::Duration::from_millis(deadline_ms),
            v1_encryption: super::callbacks::credential_encryption(env)?.unwrap_or_default(),
        })
    }
}
