//! The provisioning worker's retry policy.

use std::time::Duration;

use super::{ConfigError, Env};

/// Retry policy of the provisioning worker.
#[derive(Debug, Clone, Copy)]
pub struct WorkerSettings {
    /// Deliveries of one job before it is dead-lettered (and the instance marked failed).
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How long one delivery holds the right to provision an instance.
    pub claim_duration: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(300),
            claim_duration: Duration::from_secs(120),
        }
    }
}

impl WorkerSettings {
    /// Delay before delivery `attempt + 1`, after `attempt` (1-based) failed: exponential, capped.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.backoff_base
            .saturating_mul(factor)
            .min(self.backoff_max)
    }
}

impl WorkerSettings {
    /// `KOOGALLERY_WORKER_MAX_ATTEMPTS` (≥ 1) and `KOOGALLERY_WORKER_BACKOFF_SECS` (≥ 1).
    pub fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        Ok(Self {
            max_attempts: env.number("KOOGALLERY_WORKER_MAX_ATTEMPTS", defaults.max_attempts, 1)?,
            backoff_base: env.secs(
                "KOOGALLERY_WORKER_BACKOFF_SECS",
                defaults.backoff_base.as_secs(),
                1,
            )?,
            ..defaults
        })
    }

    /// The claim lease as a time span (the settings keep it as a `Duration`). `claim_duration` is a
    /// fixed two minutes, which always converts; the cap only keeps the conversion total.
    pub fn claim_lease(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.claim_duration).unwrap_or(chrono::Duration::days(1))
    }
}
