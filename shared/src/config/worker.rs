//! The provisioning worker's retry policy: deadlines, backoff, claims, and the bound that keeps a
//! job inside the worker's own timeout.

use std::time::Duration;

use rand::Rng;

use super::{ConfigError, Env};

/// Tries of one webhook call within a job delivery, and the pause before each retry
/// (`first`, `2 × first`, …): the webhook provisioner's own fast retries.
pub const WEBHOOK_TRIES: u32 = 3;
pub const WEBHOOK_FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// Calls to the vendor one job delivery may make: a provisioning call and one notice, or two
/// notices. The worker's timeout must cover them (see [`WorkerSettings::check_timeout`]).
pub const CALLS_PER_DELIVERY: u32 = 2;

/// Retry policy of the provisioning worker.
#[derive(Debug, Clone, Copy)]
pub struct WorkerSettings {
    /// How long after the order provisioning may keep retrying before the order fails (`000005`,
    /// KooGallery refunds). KooGallery itself retries newInstance for 3 h and polls queryInstance.
    pub provisioning_deadline: Duration,
    /// How long the oldest undelivered notice is retried before its job is dead-lettered (alarm).
    pub notice_deadline: Duration,
    /// First retry delay; doubles per delivery up to `backoff_max`, with jitter.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How long one delivery holds the right to provision an instance or drain its outbox.
    pub claim_duration: Duration,
    /// How often the local host runs the reconciler (on AWS: the template's schedule).
    pub reconcile_every: Duration,
    /// How long past its longest backoff and claim an instance may go untouched before the
    /// reconciler counts its job as lost (room for a queue backlog).
    pub reconcile_grace: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            provisioning_deadline: Duration::from_secs(6 * 3600),
            notice_deadline: Duration::from_secs(48 * 3600),
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(300),
            claim_duration: Duration::from_secs(120),
            reconcile_every: Duration::from_secs(300),
            reconcile_grace: Duration::from_secs(60),
        }
    }
}

impl WorkerSettings {
    /// The capped exponential delay before delivery `attempt + 1`, after `attempt` (1-based).
    pub fn backoff_ceiling(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(31));
        self.backoff_base
            .saturating_mul(factor)
            .min(self.backoff_max)
    }

    /// The delay actually used: "equal jitter", between half the ceiling and the ceiling, so the
    /// retries of many jobs failed by one outage do not all return at once.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self.backoff_ceiling(attempt);
        let half = ceiling / 2;
        let spread = (ceiling - half).as_millis() as u64;
        half + Duration::from_millis(rand::rng().random_range(0..=spread))
    }

    /// Reads:
    /// - `KOOGALLERY_PROVISIONING_DEADLINE_SECS` (default 21600 = 6 h; 60 s to 3 days),
    /// - `KOOGALLERY_NOTICE_DEADLINE_SECS` (default 172800 = 48 h; 60 s to 3 days: the jobs queue
    ///   keeps a message 4 days),
    /// - `KOOGALLERY_WORKER_BACKOFF_SECS` (first delay, default 2, ≥ 1),
    /// - `KOOGALLERY_WORKER_BACKOFF_MAX_SECS` (cap, default 300; at most 43200, SQS's longest
    ///   visibility timeout),
    /// - `KOOGALLERY_RECONCILE_EVERY_SECS` (the local host's reconciler period, default 300),
    /// - `KOOGALLERY_WORKER_CLAIM_SECS` (how long a delivery holds an instance, default 120, ≥ 10;
    ///   after a crash the next delivery waits this long),
    /// - `KOOGALLERY_RECONCILE_GRACE_SECS` (default 60: see [`WorkerSettings::reconcile_grace`]).
    ///
    /// `KOOGALLERY_WORKER_MAX_ATTEMPTS` (earlier releases) is refused with a pointer to the deadline
    /// that replaced it, rather than silently ignored.
    pub fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        if env.get("KOOGALLERY_WORKER_MAX_ATTEMPTS").is_some() {
            return Err(ConfigError::invalid(
                "KOOGALLERY_WORKER_MAX_ATTEMPTS",
                "no longer used: provisioning retries until KOOGALLERY_PROVISIONING_DEADLINE_SECS after the order; remove it",
            ));
        }
        let defaults = Self::default();
        let three_days = 3 * 24 * 3600;
        let settings = Self {
            provisioning_deadline: env.secs(
                "KOOGALLERY_PROVISIONING_DEADLINE_SECS",
                defaults.provisioning_deadline.as_secs(),
                60,
            )?,
            notice_deadline: env.secs(
                "KOOGALLERY_NOTICE_DEADLINE_SECS",
                defaults.notice_deadline.as_secs(),
                60,
            )?,
            backoff_base: env.secs(
                "KOOGALLERY_WORKER_BACKOFF_SECS",
                defaults.backoff_base.as_secs(),
                1,
            )?,
            backoff_max: env.secs(
                "KOOGALLERY_WORKER_BACKOFF_MAX_SECS",
                defaults.backoff_max.as_secs(),
                1,
            )?,
            reconcile_every: env.secs(
                "KOOGALLERY_RECONCILE_EVERY_SECS",
                defaults.reconcile_every.as_secs(),
                1,
            )?,
            claim_duration: env.secs(
                "KOOGALLERY_WORKER_CLAIM_SECS",
                defaults.claim_duration.as_secs(),
                10,
            )?,
            reconcile_grace: env.secs(
                "KOOGALLERY_RECONCILE_GRACE_SECS",
                defaults.reconcile_grace.as_secs(),
                1,
            )?,
        };
        for (name, value) in [
            (
                "KOOGALLERY_PROVISIONING_DEADLINE_SECS",
                settings.provisioning_deadline,
            ),
            ("KOOGALLERY_NOTICE_DEADLINE_SECS", settings.notice_deadline),
        ] {
            if value.as_secs() > three_days {
                return Err(ConfigError::invalid(
                    name,
                    format!("at most {three_days} s (the jobs queue keeps a job 4 days)"),
                ));
            }
        }
        if settings.backoff_max.as_secs() > 43_200 {
            return Err(ConfigError::invalid(
                "KOOGALLERY_WORKER_BACKOFF_MAX_SECS",
                "at most 43200 s (SQS's longest visibility timeout)",
            ));
        }
        if settings.backoff_max < settings.backoff_base {
            return Err(ConfigError::invalid(
                "KOOGALLERY_WORKER_BACKOFF_MAX_SECS",
                "must not be below KOOGALLERY_WORKER_BACKOFF_SECS",
            ));
        }
        Ok(settings)
    }

    /// The claim lease as a time span (the settings keep it as a `Duration`).
    pub fn claim_lease(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.claim_duration).unwrap_or(chrono::Duration::days(1))
    }

    /// The longest one webhook call can take: every try times out, with the pauses between.
    pub fn longest_webhook_call(webhook_timeout: Duration) -> Duration {
        let pauses: Duration = (1..WEBHOOK_TRIES)
            .map(|k| WEBHOOK_FIRST_BACKOFF * 2u32.pow(k - 1))
            .sum();
        webhook_timeout * WEBHOOK_TRIES + pauses
    }

    /// A delivery must end inside the worker's timeout (`KOOGALLERY_WORKER_TIMEOUT_SECS`, the
    /// Lambda function's own) and inside its claim, or a second delivery could start while the
    /// first still runs: `CALLS_PER_DELIVERY` of the longest webhook call plus a margin for the
    /// store.
    pub fn check_timeout(
        &self,
        webhook_timeout: Duration,
        worker_timeout: Option<Duration>,
    ) -> Result<(), ConfigError> {
        let needed = Self::longest_webhook_call(webhook_timeout) * CALLS_PER_DELIVERY
            + Duration::from_secs(5);
        if let Some(limit) = worker_timeout
            && needed > limit
        {
            return Err(ConfigError::invalid(
                "KOOGALLERY_WEBHOOK_TIMEOUT_SECS",
                format!(
                    "a job delivery can take {} s ({CALLS_PER_DELIVERY} calls x {WEBHOOK_TRIES} tries x the timeout, plus pauses), more than the worker's timeout of {} s (KOOGALLERY_WORKER_TIMEOUT_SECS); lower the webhook timeout or raise the function's",
                    needed.as_secs(),
                    limit.as_secs()
                ),
            ));
        }
        if needed > self.claim_duration {
            return Err(ConfigError::invalid(
                "KOOGALLERY_WEBHOOK_TIMEOUT_SECS",
                format!(
                    "a job delivery can take {} s, longer than a claim lasts ({} s)",
                    needed.as_secs(),
                    self.claim_duration.as_secs()
                ),
            ));
        }
        Ok(())
    }
}
