//! The provisioner's settings: which provisioner creates the vendor's resources, the URLs and memo
//! it answers newInstance with, and the vendor's webhook it notifies.

use super::{Setting, operator, retired};

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
