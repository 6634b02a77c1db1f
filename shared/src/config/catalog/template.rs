//! The settings the SAM template sets on AWS: the queues, the KMS key and the secrets' IDs.

use super::{Setting, template};

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
pub const LICENSE_SECRET_ID: Setting = template(
    "KOOGALLERY_LICENSE_SECRET_ID",
    "the secret with the license service's keys",
);
pub const KIT_RSA_SECRET_ID: Setting = template(
    "KOOGALLERY_KIT_RSA_SECRET_ID",
    "the secret with the Kit RSA private key",
);
