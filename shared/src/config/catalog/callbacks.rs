//! The callbacks' settings: how credentials are encrypted in queryInstance's answer
//! (docs/protocol/callbacks.md §6.2) and the usage dashboard it links to.

use super::{Setting, operator};

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
