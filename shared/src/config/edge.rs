//! The edge's settings (spec callbacks §3.1, Decisions §1): the timestamp window, how long nonces
//! are remembered, the largest body accepted.

use chrono::Duration;

use super::{ConfigError, Env};

/// Accepted clock skew of a request `timestamp`, both ways (Decisions §1).
pub const DEFAULT_TIMESTAMP_WINDOW_SECS: u64 = 60;
/// Largest basic-interface request body accepted: V2 bodies are a few hundred bytes.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;
/// Largest Kit request body accepted by default (Decisions §18: at least 2 MiB): a 500-user
/// authSync at the documented field maxima is about 0.6 MB; allOrgSync is unbounded.
pub const DEFAULT_KIT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// The Kit body limit's ceiling: on AWS the edge invokes the callback's function with the body,
/// and a synchronous Lambda invocation carries at most 6 MB (API Gateway takes 10 MB).
pub const MAX_KIT_MAX_BODY_BYTES: usize = 5 * 1024 * 1024;
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
    /// The Kit family's own body limit (Decisions §18).
    pub kit_max_body_bytes: usize,
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
            kit_max_body_bytes: DEFAULT_KIT_MAX_BODY_BYTES,
            dispatch_deadline: std::time::Duration::from_millis(DEFAULT_DISPATCH_DEADLINE_MS),
        }
    }

    /// `KOOGALLERY_TIMESTAMP_WINDOW_SECS` (1 s to 1 h), `KOOGALLERY_MAX_BODY_BYTES`,
    /// `KOOGALLERY_KIT_MAX_BODY_BYTES` (2 MiB to 5 MiB) and `KOOGALLERY_DISPATCH_DEADLINE_MS`
    /// (100 to 4500).
    pub fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        const WINDOW: &str = "KOOGALLERY_TIMESTAMP_WINDOW_SECS";
        let secs: i64 = env.number(WINDOW, DEFAULT_TIMESTAMP_WINDOW_SECS as i64, 1)?;
        if secs > 3600 {
            return Err(ConfigError::invalid(
                WINDOW,
                format!("at most 3600 seconds, got {secs}"),
            ));
        }
        const KIT_BODY: &str = "KOOGALLERY_KIT_MAX_BODY_BYTES";
        let kit_max_body_bytes =
            env.number(KIT_BODY, DEFAULT_KIT_MAX_BODY_BYTES, 2 * 1024 * 1024)?;
        if kit_max_body_bytes > MAX_KIT_MAX_BODY_BYTES {
            return Err(ConfigError::invalid(
                KIT_BODY,
                format!(
                    "at most {MAX_KIT_MAX_BODY_BYTES} bytes (a Lambda invocation's payload), got {kit_max_body_bytes}"
                ),
            ));
        }
        const DEADLINE: &str = "KOOGALLERY_DISPATCH_DEADLINE_MS";
        let deadline_ms: u64 = env.number(DEADLINE, DEFAULT_DISPATCH_DEADLINE_MS, 100)?;
        if deadline_ms > 4500 {
            return Err(ConfigError::invalid(
                DEADLINE,
                format!("at most 4500 ms (KooGallery waits 5 s), got {deadline_ms}"),
            ));
        }
        Ok(Self {
            max_body_bytes: env.number(
                "KOOGALLERY_MAX_BODY_BYTES",
                DEFAULT_MAX_BODY_BYTES,
                1024,
            )?,
            kit_max_body_bytes,
            dispatch_deadline: std::time::Duration::from_millis(deadline_ms),
            ..Self::with_window(Duration::seconds(secs))
        })
    }
}
