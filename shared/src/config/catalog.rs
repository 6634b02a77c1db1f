//! Every setting the service reads, defined once: its variable, its default written as a user
//! would write it, its range and what it does. The readers in this folder take a [`Setting`], so
//! a default lives here and nowhere else (the `Default` impls read an empty environment); the
//! README's settings table is held to this list by `tests/docs.rs`, and a command-line `--help`
//! can be built from it, and so is the server's environment file ([`env_template`], `make dist`). The settings are defined by family, one file each under `catalog/`, and
//! named here: `catalog::NAME` and [`ALL`].

mod callbacks;
mod edge;
mod env_file;
mod license;
mod local;
mod logs;
mod marketplace;
mod metering;
mod provisioner;
mod secrets;
mod sso;
mod template;
mod worker;

pub use callbacks::{CREDENTIAL_ENCRYPTION, USAGE_DASHBOARD_URL};
pub use edge::{DISPATCH_DEADLINE_MS, KIT_MAX_BODY_BYTES, MAX_BODY_BYTES, TIMESTAMP_WINDOW_SECS};
pub use env_file::{FAMILIES, Family, SERVER_VALUES, env_template};
pub use license::{
    LICENSE_CLIENT_KEY, LICENSE_OFFLINE_DAYS, LICENSE_SIGNING_KEY, LICENSE_SIGNING_KEY_PREVIOUS,
};
pub use local::{
    ADMIN_API_URL, BACKEND, DATA_DIR, LISTEN, MAX_CONNECTIONS, PORT, QUEUE, SHUTDOWN_GRACE_SECS,
    TABLE, TLS_CERT, TLS_KEY,
};
pub use logs::{EXCHANGE_LOG_DAYS, LOG_FORMAT, METRICS_NAMESPACE, RUST_LOG};
pub use marketplace::{MARKETPLACE, OPENAPI_FALLBACK_URL, OPENAPI_TIMEOUT_SECS, OPENAPI_URL};
pub use metering::{
    PACKAGE_QUOTAS, PRICING, USAGE_GRACE_SECS, USAGE_HORIZON_WARNING_DAYS, USAGE_PUSH_EVERY_SECS,
};
pub use provisioner::{
    ADMIN_URL, ADMIN_USER, FRONTEND_URL, PROVISIONER, STATIC_MEMO, WEBHOOK_EVENT_VERSION,
    WEBHOOK_TIMEOUT_SECS, WEBHOOK_URL,
};
pub use secrets::{
    ACCESS_KEY, ACCESS_KEY_PREVIOUS, ADMIN_TOKEN, AK, CREDENTIALS_KEY, KIT_KEY, KIT_KEY_PREVIOUS,
    KIT_RSA_KEY, SK, USAGE_KEY, V1_KEY, V1_KEY_PREVIOUS, WEBHOOK_SECRET,
};
pub use sso::{OIDC_CLIENTS, SSO_APP_ID, SSO_ISSUER, SSO_UNIFIED_LOGIN_URL};
pub use template::{
    CALLBACK_KEYS_SECRET_ID, CREDENTIALS_KEY_ID, DLQ_URL, KIT_RSA_SECRET_ID, LICENSE_SECRET_ID,
    OPENAPI_SECRET_ID, QUEUE_URL, USAGE_DLQ_URL, USAGE_KEY_SECRET_ID, USAGE_QUEUE_URL,
    WEBHOOK_SECRET_ID,
};
pub use worker::{
    JOBS_MAX_RECEIVE_COUNT, JOBS_RETENTION_SECS, NOTICE_DEADLINE_SECS, PROVISIONING_DEADLINE_SECS,
    RECONCILE_EVERY_SECS, RECONCILE_GRACE_SECS, WORKER_BACKOFF_MAX_SECS, WORKER_BACKOFF_SECS,
    WORKER_CLAIM_SECS, WORKER_MAX_ATTEMPTS, WORKER_TIMEOUT_SECS,
};

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
    &SSO_ISSUER,
    &SSO_APP_ID,
    &SSO_UNIFIED_LOGIN_URL,
    &OIDC_CLIENTS,
    &LOG_FORMAT,
    &RUST_LOG,
    &METRICS_NAMESPACE,
    &EXCHANGE_LOG_DAYS,
    &PORT,
    &LISTEN,
    &TLS_CERT,
    &TLS_KEY,
    &MAX_CONNECTIONS,
    &SHUTDOWN_GRACE_SECS,
    &DATA_DIR,
    &BACKEND,
    &TABLE,
    &QUEUE,
    &ADMIN_API_URL,
    &ACCESS_KEY,
    &ACCESS_KEY_PREVIOUS,
    &KIT_KEY,
    &KIT_KEY_PREVIOUS,
    &V1_KEY,
    &V1_KEY_PREVIOUS,
    &KIT_RSA_KEY,
    &CREDENTIALS_KEY,
    &ADMIN_TOKEN,
    &WEBHOOK_SECRET,
    &AK,
    &SK,
    &USAGE_KEY,
    &LICENSE_CLIENT_KEY,
    &LICENSE_SIGNING_KEY,
    &LICENSE_SIGNING_KEY_PREVIOUS,
    &LICENSE_OFFLINE_DAYS,
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
    &LICENSE_SECRET_ID,
];
