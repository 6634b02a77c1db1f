//! The keys and passwords: locally from the environment, on AWS from Secrets Manager only
//! (the callback keys, the Kit RSA key, the credentials key, the webhook secret, the open API's
//! AK/SK, the usage key).

use super::{Setting, secret};

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
pub const V1_KEY: Setting = secret(
    "KOOGALLERY_V1_KEY",
    "the V1 GET interface's key, if it differs from the basic key (unset: the basic key)",
);
pub const V1_KEY_PREVIOUS: Setting = secret(
    "KOOGALLERY_V1_KEY_PREVIOUS",
    "the V1 key before a rotation, still accepted",
);
pub const KIT_RSA_KEY: Setting = secret(
    "KOOGALLERY_KIT_RSA_KEY",
    "PEM of the RSA private key (3072 bits or more) for applicationSync's clientSecret",
);
pub const CREDENTIALS_KEY: Setting = secret(
    "KOOGALLERY_CREDENTIALS_KEY",
    "base64 of 32 bytes sealing stored passwords (unset: credentials.key in the data directory)",
);
pub const ADMIN_TOKEN: Setting = secret(
    "KOOGALLERY_ADMIN_TOKEN",
    "the local host's admin API bearer token, POST /admin/backup (unset: admin-token in the data directory)",
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
