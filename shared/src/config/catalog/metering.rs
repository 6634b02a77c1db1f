//! The metering settings (docs/protocol/openapi.md §3): how often usage is pushed, the grace after
//! an hour, the horizon warning, package quotas and prices.

use super::{Setting, operator};

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
