//! Every setting the service reads, defined once: its variable, its default written as a user
//! would write it, its range and what it does. The readers in this folder take a [`Setting`], so
//! a default lives here and nowhere else (the `Default` impls read an empty environment); the
//! README's settings table is held to this list by `tests/docs.rs`, and a command-line `--help`
//! can be built from it.

/// Who sets a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The operator (README, "Settings").
    Operator,
    /// A key or password: locally from the environment, on AWS only from Secrets Manager.
    Secret,
    /// The SAM template, on AWS (docs/deploy.md); a process that needs one refuses to start
    /// without it.
    Template,
    /// Read only to refuse it: a setting of an earlier release whose meaning is gone.
    Retired,
}

/// One environment variable.
#[derive(Debug, PartialEq, Eq)]
pub struct Setting {
    pub name: &'static str,
    /// The value when unset, as a user would write it; `None`: unset means "none" or "required".
    pub default: Option<&'static str>,
    pub origin: Origin,
    /// One line for `--help`; the README says more.
    pub help: &'static str,
}

const fn operator(
    name: &'static str,
    default: Option<&'static str>,
    help: &'static str,
) -> Setting {
    Setting {
        name,
        default,
        origin: Origin::Operator,
        help,
    }
}

const fn secret(name: &'static str, help: &'static str) -> Setting {
    Setting {
        name,
        default: None,
        origin: Origin::Secret,
        help,
    }
}

const fn template(name: &'static str, help: &'static str) -> Setting {
    Setting {
        name,
        default: None,
        origin: Origin::Template,
        help,
    }
}

const fn retired(name: &'static str, help: &'static str) -> Setting {
    Setting {
        name,
        default: None,
        origin: Origin::Retired,
        help,
    }
}

// The edge.
pub const TIMESTAMP_WINDOW_SECS: Setting = operator(
    "KOOGALLERY_TIMESTAMP_WINDOW_SECS",
    Some("60"),
    "accepted clock skew of a request timestamp, both ways (1 to 3600)",
);
pub const MAX_BODY_BYTES: Setting = operator(
    "KOOGALLERY_MAX_BODY_BYTES",
    Some("262144"),
    "largest basic-interface body; larger ones get 000002 (at least 1024)",
);
pub const KIT_MAX_BODY_BYTES: Setting = operator(
    "KOOGALLERY_KIT_MAX_BODY_BYTES",
    Some("4194304"),
    "largest Kit sync body (2 MiB to 5 MiB)",
);
pub const DISPATCH_DEADLINE_MS: Setting = operator(
    "KOOGALLERY_DISPATCH_DEADLINE_MS",
    Some("4000"),
    "how long the edge waits for a callback before answering a signed 000005 (100 to 4500)",
);

// The callbacks.
pub const CREDENTIAL_ENCRYPTION: Setting = operator(
    "KOOGALLERY_CREDENTIAL_ENCRYPTION",
    Some("none"),
    "none, aes256 or aes128: encrypt userName/password in queryInstance",
);
pub const USAGE_DASHBOARD_URL: Setting = operator(
    "KOOGALLERY_USAGE_DASHBOARD_URL",
    None,
    "queryInstance's usageInfo.dashboardUrl; {instanceId} is filled in",
);

// The provisioner.
pub const PROVISIONER: Setting = operator(
    "KOOGALLERY_PROVISIONER",
    Some("static"),
    "static (the same application for every buyer) or webhook (your service decides)",
);
pub const FRONTEND_URL: Setting = operator(
    "KOOGALLERY_FRONTEND_URL",
    Some("https://app.example.com/{instanceId}"),
    "static: the buyer's URL; {instanceId} is filled in",
);
pub const ADMIN_URL: Setting = operator(
    "KOOGALLERY_ADMIN_URL",
    None,
    "static: the admin URL, same template rule",
);
pub const STATIC_MEMO: Setting = operator(
    "KOOGALLERY_STATIC_MEMO",
    Some(
        "请打开上面的地址，用您的邮箱注册账号后登录。Open the address above and sign up with your e-mail to log in.",
    ),
    "static: appInfo.memo, how the buyer gets in (at most 1024 characters)",
);
pub const ADMIN_USER: Setting = retired(
    "KOOGALLERY_ADMIN_USER",
    "the static provisioner hands out no account",
);
pub const WEBHOOK_URL: Setting = operator(
    "KOOGALLERY_WEBHOOK_URL",
    None,
    "webhook: where provisioning and lifecycle events are POSTed (required)",
);
pub const WEBHOOK_TIMEOUT_SECS: Setting = operator(
    "KOOGALLERY_WEBHOOK_TIMEOUT_SECS",
    Some("10"),
    "webhook: per try (at least 1)",
);

pub const WEBHOOK_EVENT_VERSION: Setting = operator(
    "KOOGALLERY_WEBHOOK_EVENT_VERSION",
    Some("2"),
    "webhook: the event contract sent (2; 1 for a receiver written for version 1, which gets no quotaExhausted, order or directory events)",
);

// The worker.
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

// The marketplace (KooGallery's open API).
pub const MARKETPLACE: Setting = operator(
    "KOOGALLERY_MARKETPLACE",
    None,
    "openapi or offline; unset: openapi with an AK/SK, else offline (on AWS it must be chosen)",
);
pub const OPENAPI_URL: Setting = operator(
    "KOOGALLERY_OPENAPI_URL",
    Some("https://mkt.myhuaweicloud.com"),
    "the open API's host (http:// only for a loopback host)",
);
pub const OPENAPI_FALLBACK_URL: Setting = operator(
    "KOOGALLERY_OPENAPI_FALLBACK_URL",
    Some("https://mkt.myhuaweicloud.cn"),
    "the host retried when the first is down; none for no fallback",
);
pub const OPENAPI_TIMEOUT_SECS: Setting = operator(
    "KOOGALLERY_OPENAPI_TIMEOUT_SECS",
    Some("5"),
    "per open API request on one host (1 to 10)",
);

// Metering.
pub const USAGE_PUSH_EVERY_SECS: Setting = operator(
    "KOOGALLERY_USAGE_PUSH_EVERY_SECS",
    Some("60"),
    "how often the local host pushes closed usage hours",
);
pub const USAGE_GRACE_SECS: Setting = operator(
    "KOOGALLERY_USAGE_GRACE_SECS",
    Some("300"),
    "how long after its hour a window still takes reports (0 to 3600)",
);
pub const USAGE_HORIZON_WARNING_DAYS: Setting = operator(
    "KOOGALLERY_USAGE_HORIZON_WARNING_DAYS",
    Some("3"),
    "unpushed windows this close to the 21-day horizon raise UsageNearHorizon (1 to 20)",
);
pub const PACKAGE_QUOTAS: Setting = operator(
    "KOOGALLERY_PACKAGE_QUOTAS",
    None,
    "stop-when-used-up package SKUs: JSON (inline or a file's path), SKU code to a unit's quota",
);
pub const PRICING: Setting = operator(
    "KOOGALLERY_PRICING",
    None,
    "bill estimates: JSON (inline or a file's path), SKU code to its pricing model",
);

// Logs and metrics.
pub const LOG_FORMAT: Setting = operator(
    "KOOGALLERY_LOG_FORMAT",
    Some("text"),
    "text or json (JSON lines; always json on Lambda)",
);
pub const RUST_LOG: Setting = operator(
    "RUST_LOG",
    Some("info"),
    "log filter directives; one that does not parse stops start-up",
);
pub const METRICS_NAMESPACE: Setting = operator(
    "KOOGALLERY_METRICS_NAMESPACE",
    Some("KooGallery"),
    "CloudWatch namespace of the EMF metric lines",
);

// The local host.
pub const PORT: Setting = operator("PORT", Some("8080"), "the local host's port (on 127.0.0.1)");
pub const DATA_DIR: Setting = operator(
    "KOOGALLERY_DATA_DIR",
    Some(".data"),
    "where the local host keeps its store and key files",
);
pub const BACKEND: Setting = operator(
    "KOOGALLERY_BACKEND",
    Some("embedded"),
    "embedded, or aws (DynamoDB/SQS at AWS_ENDPOINT_URL)",
);
pub const TABLE: Setting = operator(
    "KOOGALLERY_TABLE",
    Some("koogallery-local"),
    "the DynamoDB table (the aws backend; on Lambda the template sets it)",
);
pub const QUEUE: Setting = operator(
    "KOOGALLERY_QUEUE",
    Some("koogallery-jobs"),
    "the jobs queue's name (the aws backend)",
);

// Keys: locally from the environment; on AWS from Secrets Manager only.
pub const ACCESS_KEY: Setting = secret(
    "KOOGALLERY_ACCESS_KEY",
    "the basic interfaces' key (unset: a development key, with a warning)",
);
pub const ACCESS_KEY_PREVIOUS: Setting = secret(
    "KOOGALLERY_ACCESS_KEY_PREVIOUS",
    "the basic key before a rotation, still accepted",
);
pub const KIT_KEY: Setting = secret(
    "KOOGALLERY_KIT_KEY",
    "the Kit syncs' key (unset: a development key, with a warning)",
);
pub const KIT_KEY_PREVIOUS: Setting = secret(
    "KOOGALLERY_KIT_KEY_PREVIOUS",
    "the Kit key before a rotation, still accepted",
);
pub const KIT_RSA_KEY: Setting = secret(
    "KOOGALLERY_KIT_RSA_KEY",
    "PEM of the RSA private key (3072 bits or more) for applicationSync's clientSecret",
);
pub const CREDENTIALS_KEY: Setting = secret(
    "KOOGALLERY_CREDENTIALS_KEY",
    "base64 of 32 bytes sealing stored passwords (unset: credentials.key in the data directory)",
);
pub const WEBHOOK_SECRET: Setting = secret(
    "KOOGALLERY_WEBHOOK_SECRET",
    "webhook: signs each event (required)",
);
pub const AK: Setting = secret(
    "KOOGALLERY_AK",
    "the open API's access key (with KOOGALLERY_SK; both or neither)",
);
pub const SK: Setting = secret(
    "KOOGALLERY_SK",
    "the open API's secret key (with KOOGALLERY_AK)",
);
pub const USAGE_KEY: Setting = secret(
    "KOOGALLERY_USAGE_KEY",
    "the key the vendor's application signs usage reports with",
);

// Set by the SAM template.
pub const QUEUE_URL: Setting = template("KOOGALLERY_QUEUE_URL", "the jobs queue");
pub const DLQ_URL: Setting = template("KOOGALLERY_DLQ_URL", "the jobs dead-letter queue");
pub const USAGE_QUEUE_URL: Setting = template("KOOGALLERY_USAGE_QUEUE_URL", "the usage queue");
pub const USAGE_DLQ_URL: Setting =
    template("KOOGALLERY_USAGE_DLQ_URL", "the usage dead-letter queue");
pub const CREDENTIALS_KEY_ID: Setting = template(
    "KOOGALLERY_CREDENTIALS_KEY_ID",
    "the KMS key sealing stored passwords",
);
pub const CALLBACK_KEYS_SECRET_ID: Setting = template(
    "KOOGALLERY_CALLBACK_KEYS_SECRET_ID",
    "the secret with the callback keys",
);
pub const OPENAPI_SECRET_ID: Setting = template(
    "KOOGALLERY_OPENAPI_SECRET_ID",
    "the secret with the open API's AK/SK",
);
pub const WEBHOOK_SECRET_ID: Setting = template(
    "KOOGALLERY_WEBHOOK_SECRET_ID",
    "the secret with the webhook's signing secret",
);
pub const USAGE_KEY_SECRET_ID: Setting = template(
    "KOOGALLERY_USAGE_KEY_SECRET_ID",
    "the secret with the usage key",
);
pub const KIT_RSA_SECRET_ID: Setting = template(
    "KOOGALLERY_KIT_RSA_SECRET_ID",
    "the secret with the Kit RSA private key",
);

/// Every setting above; the per-callback `KOOGALLERY_FN_<NAME>` variables the template gives the
/// edge are derived from the registry (`Registration::function_env_var`).
pub const ALL: &[&Setting] = &[
    &TIMESTAMP_WINDOW_SECS,
    &MAX_BODY_BYTES,
    &KIT_MAX_BODY_BYTES,
    &DISPATCH_DEADLINE_MS,
    &CREDENTIAL_ENCRYPTION,
    &USAGE_DASHBOARD_URL,
    &PROVISIONER,
    &FRONTEND_URL,
    &ADMIN_URL,
    &STATIC_MEMO,
    &ADMIN_USER,
    &WEBHOOK_URL,
    &WEBHOOK_TIMEOUT_SECS,
    &WEBHOOK_EVENT_VERSION,
    &PROVISIONING_DEADLINE_SECS,
    &NOTICE_DEADLINE_SECS,
    &WORKER_BACKOFF_SECS,
    &WORKER_BACKOFF_MAX_SECS,
    &WORKER_CLAIM_SECS,
    &RECONCILE_EVERY_SECS,
    &RECONCILE_GRACE_SECS,
    &WORKER_TIMEOUT_SECS,
    &JOBS_MAX_RECEIVE_COUNT,
    &JOBS_RETENTION_SECS,
    &WORKER_MAX_ATTEMPTS,
    &MARKETPLACE,
    &OPENAPI_URL,
    &OPENAPI_FALLBACK_URL,
    &OPENAPI_TIMEOUT_SECS,
    &USAGE_PUSH_EVERY_SECS,
    &USAGE_GRACE_SECS,
    &USAGE_HORIZON_WARNING_DAYS,
    &PACKAGE_QUOTAS,
    &PRICING,
    &LOG_FORMAT,
    &RUST_LOG,
    &METRICS_NAMESPACE,
    &PORT,
    &DATA_DIR,
    &BACKEND,
    &TABLE,
    &QUEUE,
    &ACCESS_KEY,
    &ACCESS_KEY_PREVIOUS,
    &KIT_KEY,
    &KIT_KEY_PREVIOUS,
    &KIT_RSA_KEY,
    &CREDENTIALS_KEY,
    &WEBHOOK_SECRET,
    &AK,
    &SK,
    &USAGE_KEY,
    &QUEUE_URL,
    &DLQ_URL,
    &USAGE_QUEUE_URL,
    &USAGE_DLQ_URL,
    &CREDENTIALS_KEY_ID,
    &CALLBACK_KEYS_SECRET_ID,
    &OPENAPI_SECRET_ID,
    &WEBHOOK_SECRET_ID,
    &USAGE_KEY_SECRET_ID,
    &KIT_RSA_SECRET_ID,
];
