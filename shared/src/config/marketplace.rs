//! How the worker reads orders (`KOOGALLERY_MARKETPLACE`, spec openapi §0, §2): through
//! KooGallery's open API, or offline (orders synthesised, every answer marked and logged so).

use std::time::Duration;

use super::{ConfigError, Env};
use crate::protocol::openapi::{DEFAULT_FALLBACK_URL, DEFAULT_PRIMARY_URL};

/// The longest `KOOGALLERY_OPENAPI_TIMEOUT_SECS`: a call on both hosts then takes at most 20 s,
/// which the worker's delivery and the usage push's scheduled pass (55 s) can hold.
pub const MAX_OPENAPI_TIMEOUT_SECS: u64 = 10;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum MarketplaceSettings {
    /// Orders are made up (plausible, honouring the documented `MOCK…` IDs); provision events say
    /// `"offline": true`.
    #[default]
    Offline,
    /// Query Order on KooGallery, signed with the AK/SK of the secrets bundle.
    OpenApi {
        primary: String,
        fallback: Option<String>,
        timeout: Duration,
    },
}

impl MarketplaceSettings {
    /// `KOOGALLERY_MARKETPLACE` is `openapi` or `offline`. Unset, it is `openapi` when an AK/SK
    /// is configured (`has_keys`) and `offline` otherwise; `require_choice` (on AWS) refuses the
    /// silent offline default: a real deployment must not provision from made-up orders by accident.
    /// `KOOGALLERY_OPENAPI_URL` (default `https://mkt.myhuaweicloud.com`; the international site is
    /// `https://mkt-intl.myhuaweicloud.com`), `KOOGALLERY_OPENAPI_FALLBACK_URL` (default
    /// `https://mkt.myhuaweicloud.cn`; `none` for no fallback), `KOOGALLERY_OPENAPI_TIMEOUT_SECS`
    /// (per request on one host, default 5, at most [`MAX_OPENAPI_TIMEOUT_SECS`]).
    pub fn read(env: &Env<'_>, has_keys: bool, require_choice: bool) -> Result<Self, ConfigError> {
        let mode = match env.get("KOOGALLERY_MARKETPLACE") {
            Some(_) => env.choice("KOOGALLERY_MARKETPLACE", "openapi", &["openapi", "offline"])?,
            None if has_keys => "openapi",
            None if require_choice => {
                return Err(ConfigError::invalid(
                    "KOOGALLERY_MARKETPLACE",
                    "no open API AK/SK (\"ak\"/\"sk\" in the open API secret, KOOGALLERY_OPENAPI_SECRET_ID): put them there, or set offline explicitly to provision from made-up orders",
                ));
            }
            None => "offline",
        };
        if mode == "offline" {
            return Ok(Self::Offline);
        }
        if !has_keys {
            return Err(ConfigError::invalid(
                "KOOGALLERY_AK",
                "KOOGALLERY_MARKETPLACE=openapi needs the AK/SK (locally KOOGALLERY_AK and KOOGALLERY_SK; on AWS \"ak\"/\"sk\" in the open API secret, KOOGALLERY_OPENAPI_SECRET_ID)",
            ));
        }
        let fallback = match env.get("KOOGALLERY_OPENAPI_FALLBACK_URL") {
            Some(v) if v.eq_ignore_ascii_case("none") => None,
            Some(v) => Some(v),
            None => Some(DEFAULT_FALLBACK_URL.to_owned()),
        };
        let timeout = env.secs("KOOGALLERY_OPENAPI_TIMEOUT_SECS", 5, 1)?;
        if timeout.as_secs() > MAX_OPENAPI_TIMEOUT_SECS {
            return Err(ConfigError::invalid(
                "KOOGALLERY_OPENAPI_TIMEOUT_SECS",
                format!(
                    "at most {MAX_OPENAPI_TIMEOUT_SECS} s, got {} (a call may wait that long on each host)",
                    timeout.as_secs()
                ),
            ));
        }
        Ok(Self::OpenApi {
            primary: env
                .get("KOOGALLERY_OPENAPI_URL")
                .unwrap_or_else(|| DEFAULT_PRIMARY_URL.to_owned()),
            fallback,
            timeout,
        })
    }

    /// The longest one call to the open API can take: the timeout on the primary host, then on
    /// the fallback. Nothing when offline.
    pub fn longest_call(&self) -> Duration {
        match self {
            Self::Offline => Duration::ZERO,
            Self::OpenApi {
                fallback, timeout, ..
            } => *timeout * (1 + u32::from(fallback.is_some())),
        }
    }
}
