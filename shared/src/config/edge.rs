//! The edge's settings (spec callbacks §3.1, Decisions §1): the timestamp window, how long nonces
//! are remembered, the largest body accepted.

use chrono::Duration;

use super::{ConfigError, Env};

/// Accepted clock skew of a request `timestamp`, both ways (Decisions §1).
pub const DEFAULT_TIMESTAMP_WINDOW_SECS: u64 = 60;
/// Largest request body accepted. V2 bodies are a few hundred bytes; Kit user lists (≤ 500 users) fit too.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;
/// Nonces are remembered for this many timestamp windows: at least two (Decisions §1).
const NONCE_WINDOWS: i32 = 5;

/// How long the edge waits for a callback before answering a signed, retryable `000005`: below
/// KooGallery's 5 s, so KooGallery always gets a signed answer, never the gateway's bare 5xx.
pub const DEFAULT_DISPATCH_DEADLINE_MS: u64 = 4000;

#[derive(Debug, Clone, Copy)]
pub struct EdgeSettings {
    pub timestamp_window: Duration,
    /// How long nonces are remembered.
    pub nonce_ttl: Duration,
    pub max_body_bytes: usize,
    /// How long a callback may take before the edge answers `000005` itself.
    pub dispatch_deadline: std::time::Duration,
}

impl Default for EdgeSettings {
    fn default() -> Self {
        Self::with_window(Duration::seconds(DEFAULT_TIMESTAMP_WINDOW_SECS as i64))
    }
}

impl EdgeSettings {
    fn with_window(timestamp_window: Duration) -> Self {
        Self {
            timestamp_window,
            nonce_ttl: timestamp_window * NONCE_WINDOWS,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            dispatch_deadline: std::time::Duration::from_millis(DEFAULT_DISPATCH_DEADLINE_MS),
        }
    }

    /// `KOOGALLERY_TIMESTAMP_WINDOW_SECS` (1 s to 1 h), `KOOGALLERY_MAX_BODY_BYTES` and
    /// `KOOGALLERY_DISPATCH_DEADLINE_MS` (100 to 4500).
    pub fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        const WINDOW: &str = "KOOGALLERY_TIMESTAMP_WINDOW_SECS";
        let secs: i64 = env.number(WINDOW, DEFAULT_TIMESTAMP_WINDOW_SECS as i64, 1)?;
        if secs > 3600 {
            return Err(ConfigError::invalid(
                WINDOW,
                format!("at most 3600 seconds, got {secs}"),
            ));
        }
        Ok(Self {
            max_body_bytes: env.number(
                "KOOGALLERY_MAX_BODY_BYTES",
                DEFAULT_MAX_BODY_BYTES,
                1024,
            )?,
            ..Self::with_window(Duration::seconds(secs))
        })
    }
}
