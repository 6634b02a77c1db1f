//! The license service's settings (docs/protocol/openapi.md §5): the key the vendor's software
//! signs its requests with, the key that signs license tokens, how long a token holds offline.

use super::{Setting, operator, secret};

pub const LICENSE_CLIENT_KEY: Setting = secret(
    "KOOGALLERY_LICENSE_CLIENT_KEY",
    "the per-product key the vendor's software signs /license requests with (unset: the routes answer 503)",
);
pub const LICENSE_SIGNING_KEY: Setting = secret(
    "KOOGALLERY_LICENSE_SIGNING_KEY",
    "base64 of the 32-byte Ed25519 secret that signs license tokens (unset: license-signing.key in the data directory)",
);
pub const LICENSE_SIGNING_KEY_PREVIOUS: Setting = secret(
    "KOOGALLERY_LICENSE_SIGNING_KEY_PREVIOUS",
    "the token signing key before a rotation, still published at /license/keys",
);
pub const LICENSE_OFFLINE_DAYS: Setting = operator(
    "KOOGALLERY_LICENSE_OFFLINE_DAYS",
    Some("7"),
    "how long a license token may be relied on offline (1 to 90 days)",
);
