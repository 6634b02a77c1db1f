//! The worker's settings: the deadlines of provisioning and of lifecycle notices, its retries and
//! claims, the reconciler, and the jobs queue.

use super::{Setting, operator, retired};

pub const PROVISIONING_DEADLINE_SECS: Setting = operator(
    "KOOGALLERY_PROVISIONING_DEADLINE_SECS",
    Some("21600"),
    "how long after the order provisioning keeps retrying (60 s to 3 days)",
);
pub const NOTICE_DEADLINE_SECS: Setting = operator(
    "KOOGALLERY_NOTICE_DEADLINE_SECS",
    Some("172800"),
    "how long a lifecycle notice is retried before it is dead-lettered (60 s to 3 days)",
);
pub const WORKER_BACKOFF_SECS: Setting = operator(
    "KOOGALLERY_WORKER_BACKOFF_SECS",
    Some("2"),
    "first retry delay; doubles up to the cap, with jitter (at least 1)",
);
pub const WORKER_BACKOFF_MAX_SECS: Setting = operator(
    "KOOGALLERY_WORKER_BACKOFF_MAX_SECS",
    Some("300"),
    "the backoff's cap (at most 43200)",
);
pub const WORKER_CLAIM_SECS: Setting = operator(
    "KOOGALLERY_WORKER_CLAIM_SECS",
    Some("120"),
    "how long one delivery holds an instance (at least 10)",
);
pub const RECONCILE_EVERY_SECS: Setting = operator(
    "KOOGALLERY_RECONCILE_EVERY_SECS",
    Some("300"),
    "the local host's reconciler period",
);
pub const RECONCILE_GRACE_SECS: Setting = operator(
    "KOOGALLERY_RECONCILE_GRACE_SECS",
    Some("60"),
    "extra time before the reconciler counts a job as lost",
);
pub const WORKER_TIMEOUT_SECS: Setting = operator(
    "KOOGALLERY_WORKER_TIMEOUT_SECS",
    None,
    "the worker function's own timeout (the template sets it)",
);
pub const JOBS_MAX_RECEIVE_COUNT: Setting = operator(
    "KOOGALLERY_JOBS_MAX_RECEIVE_COUNT",
    None,
    "the jobs queue's redrive maxReceiveCount (the template sets it)",
);
pub const JOBS_RETENTION_SECS: Setting = operator(
    "KOOGALLERY_JOBS_RETENTION_SECS",
    None,
    "the jobs queue's message retention (the template sets it)",
);
pub const WORKER_MAX_ATTEMPTS: Setting = retired(
    "KOOGALLERY_WORKER_MAX_ATTEMPTS",
    "replaced by KOOGALLERY_PROVISIONING_DEADLINE_SECS",
);
