//! The provisioning worker's retry policy: deadlines, backoff, claims, and the bounds that keep a
//! delivery inside the worker's own timeout and a job inside what the jobs queue allows it (its
//! receives and its retention).

use std::time::Duration;

use super::{ConfigError, Env, catalog};
use crate::retry::{Backoff, Jitter};

/// Tries of one webhook call within a job delivery, and the pause before each retry
/// (`first`, `2 × first`, …, without jitter: the tries must fit the delivery's budget): the
/// webhook provisioner's own fast retries.
pub const WEBHOOK_TRIES: u32 = 3;
pub const WEBHOOK_BACKOFF: Backoff = Backoff {
    first: Duration::from_millis(250),
    max: Duration::from_secs(10),
    jitter: Jitter::None,
};

/// Calls to the vendor one job delivery may make: a provisioning call and one notice, or two
/// notices; each may be preceded by a Query Order (the order read before provisioning, or again
/// before an upgrade or renewal notice). The worker's timeout must cover them (see
/// [`WorkerSettings::check_timeout`]).
pub const CALLS_PER_DELIVERY: u32 = 2;

/// Time a delivery spends on the store besides its calls, in the timeout check.
const STORE_MARGIN: Duration = Duration::from_secs(5);

/// Receives a job may spend on deferrals that are not retries: another delivery's claim (a
/// duplicate job), a delivery that spent its calls with notices still pending. Each follows or
/// precedes real work, so a job meets few.
pub const DEFERRAL_ALLOWANCE: u64 = 50;

/// SQS's largest redrive `maxReceiveCount` and longest message retention.
pub const SQS_MAX_RECEIVE_COUNT: u32 = 1000;
pub const SQS_MAX_RETENTION_SECS: u64 = 1_209_600;

/// The jobs queue's own limits (on AWS: its redrive `maxReceiveCount` and its message
/// retention), within which every job must end: a job that outlives them reaches the dead-letter
/// queue, or expires, while the worker still means to retry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    pub max_receive_count: u32,
    pub retention: Duration,
}

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
    /// The worker function's own timeout (`KOOGALLERY_WORKER_TIMEOUT_SECS`, set by the template);
    /// `None` locally.
    pub function_timeout: Option<Duration>,
    /// The jobs queue's limits (`KOOGALLERY_JOBS_MAX_RECEIVE_COUNT`,
    /// `KOOGALLERY_JOBS_RETENTION_SECS`, set by the template); `None` locally, where the queue
    /// keeps a job until the worker ends it.
    pub queue_limits: Option<QueueLimits>,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self::read(&Env::empty()).expect("the catalog's defaults are valid")
    }
}

impl WorkerSettings {
    /// The worker's retry policy: from `backoff_base`, doubling up to `backoff_max`, with equal
    /// jitter.
    pub fn retry(&self) -> Backoff {
        Backoff {
            first: self.backoff_base,
            max: self.backoff_max,
            jitter: Jitter::Equal,
        }
    }

    /// The capped exponential delay before delivery `attempt + 1`, after `attempt` (1-based).
    pub fn backoff_ceiling(&self, attempt: u32) -> Duration {
        self.retry().ceiling(attempt)
    }

    /// The delay actually used: between half the ceiling and the ceiling ([`Jitter::Equal`]).
    pub fn backoff(&self, attempt: u32) -> Duration {
        self.retry().delay(attempt)
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
    /// - `KOOGALLERY_RECONCILE_GRACE_SECS` (default 60: see [`WorkerSettings::reconcile_grace`]),
    /// - `KOOGALLERY_WORKER_TIMEOUT_SECS` (the function's timeout; unset locally),
    /// - `KOOGALLERY_JOBS_MAX_RECEIVE_COUNT` and `KOOGALLERY_JOBS_RETENTION_SECS` (the jobs
    ///   queue's limits, both or neither; unset locally): the deadlines and the backoff must fit
    ///   them ([`WorkerSettings::check_queue_limits`]).
    ///
    /// `KOOGALLERY_WORKER_MAX_ATTEMPTS` (earlier releases) is refused with a pointer to the deadline
    /// that replaced it, rather than silently ignored.
    pub fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        if env.get(&catalog::WORKER_MAX_ATTEMPTS).is_some() {
            return Err(ConfigError::invalid(
                catalog::WORKER_MAX_ATTEMPTS.name,
                "no longer used: provisioning retries until KOOGALLERY_PROVISIONING_DEADLINE_SECS after the order; remove it",
            ));
        }
        let three_days = 3 * 24 * 3600;
        let settings = Self {
            provisioning_deadline: env.secs(&catalog::PROVISIONING_DEADLINE_SECS, 60)?,
            notice_deadline: env.secs(&catalog::NOTICE_DEADLINE_SECS, 60)?,
            backoff_base: env.secs(&catalog::WORKER_BACKOFF_SECS, 1)?,
            backoff_max: env.secs(&catalog::WORKER_BACKOFF_MAX_SECS, 1)?,
            reconcile_every: env.secs(&catalog::RECONCILE_EVERY_SECS, 1)?,
            claim_duration: env.secs(&catalog::WORKER_CLAIM_SECS, 10)?,
            reconcile_grace: env.secs(&catalog::RECONCILE_GRACE_SECS, 1)?,
            function_timeout: env.optional_secs(&catalog::WORKER_TIMEOUT_SECS, 1)?,
            queue_limits: QueueLimits::read(env)?,
        };
        for (setting, value) in [
            (
                &catalog::PROVISIONING_DEADLINE_SECS,
                settings.provisioning_deadline,
            ),
            (&catalog::NOTICE_DEADLINE_SECS, settings.notice_deadline),
        ] {
            if value.as_secs() > three_days {
                return Err(ConfigError::invalid(
                    setting.name,
                    format!("at most {three_days} s (3 days)"),
                ));
            }
        }
        if settings.backoff_max.as_secs() > 43_200 {
            return Err(ConfigError::invalid(
                catalog::WORKER_BACKOFF_MAX_SECS.name,
                "at most 43200 s (SQS's longest visibility timeout)",
            ));
        }
        if settings.backoff_max < settings.backoff_base {
            return Err(ConfigError::invalid(
                catalog::WORKER_BACKOFF_MAX_SECS.name,
                "must not be below KOOGALLERY_WORKER_BACKOFF_SECS",
            ));
        }
        if let Some(limits) = settings.queue_limits {
            settings.check_queue_limits(limits)?;
        }
        Ok(settings)
    }

    /// The longest a job retries: a provisioning retried to its deadline (a lifecycle notice job
    /// defers that long too), then a notice retried to its own deadline, which counts from the
    /// notice's first failure.
    pub fn longest_retry(&self) -> Duration {
        self.provisioning_deadline + self.notice_deadline
    }

    /// The most receives a job can take before the worker ends it: its retries at their shortest
    /// delays (equal jitter: half the ceiling; a deferral behind provisioning waits the whole
    /// `backoff_max`) through [`Self::longest_retry`], the delivery that finds the deadline passed,
    /// and [`DEFERRAL_ALLOWANCE`].
    pub fn receives_needed(&self) -> u64 {
        let span = self.longest_retry();
        let mut waited = Duration::ZERO;
        let mut receives: u64 = 0;
        // The doubling part of the backoff, one receive at a time ...
        while waited < span {
            receives += 1;
            let ceiling = self.backoff_ceiling(u32::try_from(receives).unwrap_or(u32::MAX));
            waited += ceiling / 2;
            if ceiling >= self.backoff_max {
                break;
            }
        }
        // ... then the capped part, at half the cap each.
        if waited < span {
            let step = (self.backoff_max / 2).as_millis().max(1);
            receives += (span - waited).as_millis().div_ceil(step) as u64;
        }
        receives + 1 + DEFERRAL_ALLOWANCE
    }

    /// The longest a job's message can live before the worker ends it:
    /// [`Self::longest_retry`], plus, for each of its two deadlines, the longest wait before the
    /// delivery that finds it passed and that delivery's claim.
    pub fn longest_job_life(&self) -> Duration {
        self.longest_retry() + 2 * (self.backoff_max + self.claim_duration)
    }

    /// Every job ends (done, failed at its deadline, dead-lettered by the worker) within the jobs
    /// queue's `limits`: fewer receives than its `maxReceiveCount`, before its retention. Else a
    /// job the worker still retries would reach the dead-letter queue, or expire unseen.
    pub fn check_queue_limits(&self, limits: QueueLimits) -> Result<(), ConfigError> {
        let needed = self.receives_needed();
        if needed > u64::from(limits.max_receive_count) {
            let fix = match self.backoff_max_for(limits.max_receive_count) {
                Some(secs) => format!(
                    "raise KOOGALLERY_WORKER_BACKOFF_MAX_SECS (template: WorkerBackoffMaxSecs) to at least {secs} s, or lower the deadlines"
                ),
                None => "lower the deadlines".to_owned(),
            };
            return Err(ConfigError::invalid(
                catalog::JOBS_MAX_RECEIVE_COUNT.name,
                format!(
                    "a job may retry for {} s (KOOGALLERY_PROVISIONING_DEADLINE_SECS + KOOGALLERY_NOTICE_DEADLINE_SECS); with retries as little as half of KOOGALLERY_WORKER_BACKOFF_MAX_SECS ({} s) apart that takes up to {needed} receives, more than the jobs queue's maxReceiveCount of {} (template: MaxReceiveCount), so a live job would reach the dead-letter queue: {fix}",
                    self.longest_retry().as_secs(),
                    self.backoff_max.as_secs(),
                    limits.max_receive_count,
                ),
            ));
        }
        let life = self.longest_job_life();
        if life >= limits.retention {
            return Err(ConfigError::invalid(
                catalog::JOBS_RETENTION_SECS.name,
                format!(
                    "a job may live {} s (KOOGALLERY_PROVISIONING_DEADLINE_SECS + KOOGALLERY_NOTICE_DEADLINE_SECS, plus twice KOOGALLERY_WORKER_BACKOFF_MAX_SECS and KOOGALLERY_WORKER_CLAIM_SECS), not less than the jobs queue keeps a message ({} s), so a live job would expire unseen: lower the deadlines or the backoff",
                    life.as_secs(),
                    limits.retention.as_secs()
                ),
            ));
        }
        Ok(())
    }

    /// The smallest `backoff_max` (whole seconds, up to SQS's 43200) with which the deadlines fit
    /// `max_receive_count` receives, if any.
    fn backoff_max_for(&self, max_receive_count: u32) -> Option<u64> {
        let fits = |secs: u64| {
            let s = Self {
                backoff_max: Duration::from_secs(secs).max(self.backoff_base),
                ..*self
            };
            s.receives_needed() <= u64::from(max_receive_count)
        };
        let (mut low, mut high) = (self.backoff_max.as_secs(), 43_200);
        if !fits(high) {
            return None;
        }
        // Fewer receives as the cap grows: the smallest cap that fits.
        while low < high {
            let mid = low + (high - low) / 2;
            if fits(mid) {
                high = mid;
            } else {
                low = mid + 1;
            }
        }
        Some(high)
    }

    /// The claim lease as a time span (the settings keep it as a `Duration`).
    pub fn claim_lease(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.claim_duration).unwrap_or(chrono::Duration::days(1))
    }

    /// The longest one webhook call can take: every try times out, with the pauses between.
    pub fn longest_webhook_call(webhook_timeout: Duration) -> Duration {
        webhook_timeout * WEBHOOK_TRIES + WEBHOOK_BACKOFF.total_between(WEBHOOK_TRIES)
    }

    /// A delivery must end inside the worker's timeout ([`Self::function_timeout`], the Lambda
    /// function's own) and inside its claim, or a second delivery could start while the first
    /// still runs: [`CALLS_PER_DELIVERY`] times the longest webhook call (`webhook_timeout`, `None`
    /// when provisioning makes no call) and the longest Query Order before it (`open_api_call`,
    /// [`MarketplaceSettings::longest_call`](super::MarketplaceSettings::longest_call)), plus a
    /// margin for the store.
    pub fn check_timeout(
        &self,
        webhook_timeout: Option<Duration>,
        open_api_call: Duration,
    ) -> Result<(), ConfigError> {
        let webhook_call = webhook_timeout
            .map(Self::longest_webhook_call)
            .unwrap_or_default();
        let needed = (webhook_call + open_api_call) * CALLS_PER_DELIVERY + STORE_MARGIN;
        // Name the setting that weighs most.
        let name = if open_api_call > webhook_call {
            catalog::OPENAPI_TIMEOUT_SECS.name
        } else {
            catalog::WEBHOOK_TIMEOUT_SECS.name
        };
        let made_of = format!(
            "{CALLS_PER_DELIVERY} x (a webhook call of up to {} s: {WEBHOOK_TRIES} tries x KOOGALLERY_WEBHOOK_TIMEOUT_SECS, plus pauses; and a Query Order of up to {} s: KOOGALLERY_OPENAPI_TIMEOUT_SECS on each host), plus {} s for the store",
            webhook_call.as_secs_f64(),
            open_api_call.as_secs(),
            STORE_MARGIN.as_secs()
        );
        if let Some(limit) = self.function_timeout
            && needed > limit
        {
            return Err(ConfigError::invalid(
                name,
                format!(
                    "a job delivery can take {} s ({made_of}), more than the worker's timeout of {} s (KOOGALLERY_WORKER_TIMEOUT_SECS); lower the timeouts or raise the function's",
                    needed.as_secs(),
                    limit.as_secs()
                ),
            ));
        }
        if needed > self.claim_duration {
            return Err(ConfigError::invalid(
                name,
                format!(
                    "a job delivery can take {} s ({made_of}), longer than a claim lasts ({} s, KOOGALLERY_WORKER_CLAIM_SECS)",
                    needed.as_secs(),
                    self.claim_duration.as_secs()
                ),
            ));
        }
        Ok(())
    }
}

impl QueueLimits {
    /// `KOOGALLERY_JOBS_MAX_RECEIVE_COUNT` (1 to 1000) and `KOOGALLERY_JOBS_RETENTION_SECS` (60 to
    /// 1209600), both or neither.
    pub fn read(env: &Env<'_>) -> Result<Option<Self>, ConfigError> {
        let (count, retention) = (
            &catalog::JOBS_MAX_RECEIVE_COUNT,
            &catalog::JOBS_RETENTION_SECS,
        );
        const COUNT: &str = catalog::JOBS_MAX_RECEIVE_COUNT.name;
        const RETENTION: &str = catalog::JOBS_RETENTION_SECS.name;
        match (env.get(count), env.get(retention)) {
            (None, None) => Ok(None),
            (Some(_), None) => Err(ConfigError::invalid(
                RETENTION,
                format!("must be set with {COUNT}"),
            )),
            (None, Some(_)) => Err(ConfigError::invalid(
                COUNT,
                format!("must be set with {RETENTION}"),
            )),
            (Some(_), Some(_)) => {
                let max_receive_count: u32 = env.number(count, 1)?;
                if max_receive_count > SQS_MAX_RECEIVE_COUNT {
                    return Err(ConfigError::invalid(
                        COUNT,
                        format!("at most {SQS_MAX_RECEIVE_COUNT} (SQS's largest)"),
                    ));
                }
                let retention = env.secs(retention, 60)?;
                if retention.as_secs() > SQS_MAX_RETENTION_SECS {
                    return Err(ConfigError::invalid(
                        RETENTION,
                        format!("at most {SQS_MAX_RETENTION_SECS} s (SQS's longest)"),
                    ));
                }
                Ok(Some(Self {
                    max_receive_count,
                    retention,
                }))
            }
        }
    }
}
