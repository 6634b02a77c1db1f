//! The local host's settings: its port, data directory, backend, table and queue.

use super::{Setting, operator};

pub const PORT: Setting = operator("PORT", Some("8080"), "the local host's port (on 127.0.0.1)");
pub const LISTEN: Setting = operator(
    "KOOGALLERY_LISTEN",
    None,
    "the address the host listens on, e.g. 0.0.0.0:8080 on a server (unset: 127.0.0.1 and PORT)",
);
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
pub const TLS_CERT: Setting = operator(
    "KOOGALLERY_TLS_CERT",
    None,
    "a PEM certificate chain: the host serves HTTPS (TLS 1.2/1.3) with it, reloaded on SIGHUP (unset: plain HTTP)",
);
pub const TLS_KEY: Setting = operator(
    "KOOGALLERY_TLS_KEY",
    None,
    "the PEM private key of KOOGALLERY_TLS_CERT (set both or neither)",
);
pub const MAX_CONNECTIONS: Setting = operator(
    "KOOGALLERY_MAX_CONNECTIONS",
    Some("1024"),
    "connections the host keeps open at once; more wait in the kernel's backlog",
);
pub const SHUTDOWN_GRACE_SECS: Setting = operator(
    "KOOGALLERY_SHUTDOWN_GRACE_SECS",
    Some("20"),
    "on SIGTERM, how long the worker may take to finish its job before the host exits anyway",
);
pub const ADMIN_API_URL: Setting = operator(
    "KOOGALLERY_ADMIN_API_URL",
    None,
    "where koogallery-admin reaches the host (unset: http://127.0.0.1 and PORT)",
);
