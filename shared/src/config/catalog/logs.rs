//! The settings of logs and metrics: the log format and filter, the metrics namespace.

use super::{Setting, operator};

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
pub const EXCHANGE_LOG_DAYS: Setting = operator(
    "KOOGALLERY_EXCHANGE_LOG_DAYS",
    Some("14"),
    "days the exchange log keeps each call KooGallery made and each call we made (0 = no log; at most 400)",
);
