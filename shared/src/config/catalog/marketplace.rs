//! The marketplace's settings: which client reaches KooGallery's open API (docs/protocol/openapi.md
//! §0–§2, §8), its primary and fallback hosts and its timeout.

use super::{Setting, operator};

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
