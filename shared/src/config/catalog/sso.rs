//! Single sign-on's settings (docs/protocol/callbacks.md §10; docs/protocol/decisions.md §19):
//! the provider's public address, the app credential, KooGallery's unified login, and the OIDC
//! clients file.

use super::{Setting, operator};

pub const SSO_ISSUER: Setting = operator(
    "KOOGALLERY_SSO_ISSUER",
    None,
    "the public https:// origin of the OIDC provider (unset: SSO off); the login address is {issuer}/sso/callback",
);
pub const SSO_APP_ID: Setting = operator(
    "KOOGALLERY_SSO_APP_ID",
    None,
    "the app credential's app ID (unified login's appId, applicationSync's appId); required with SSO",
);
pub const SSO_UNIFIED_LOGIN_URL: Setting = operator(
    "KOOGALLERY_SSO_UNIFIED_LOGIN_URL",
    Some("https://macroverse.huaweicloud.com/unified-login/#/portal-login?ind=UNOP&appId={appId}"),
    "KooGallery's unified login; {appId} is filled in",
);
pub const OIDC_CLIENTS: Setting = operator(
    "KOOGALLERY_OIDC_CLIENTS",
    None,
    "a JSON file of OIDC clients loaded at start (default: oidc-clients.json in the data directory)",
);
