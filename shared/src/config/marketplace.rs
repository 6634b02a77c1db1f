//! How the worker reads orders (`KOOGALLERY_MARKETPLACE`, spec openapi §0, §2): through
//! KooGallery's open API, or offline (orders synthesised, every answer marked and logged so).

use std::time::Duration;

use super::{ConfigError, Env};
use crate::protocol::openapi::{DEFAULT_FALLBACK_URL, DEFAULT_PRIMARY_URL};

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
    /// (default 5).
    pub fn read(env: &Env<'_>, has_keys: bool, require_choice: bool) -> Result<Self, ConfigError> {
        let mode = match env.get("KOOGALLERY_MARKETPLACE") {
            Some(_) => env.choice("KOOGALLERY_MARKETPLACE", "openapi", &["openapi", "offline"])?,
            None if has_keys => "openapi",
            None if require_choice => {
                return Err(ConfigError::invalid(
                    "KOOGALLERY_MARKETPLACE",
                    "no open API AK/SK (\"ak\"/\"sk\" in the keys secret): put them there, or set offline explicitly to provision from made-up orders",
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
                "KOOGALLERY_MARKETPLACE=openapi needs the AK/SK (locally KOOGALLERY_AK and KOOGALLERY_SK; on AWS \"ak\"/\"sk\" in the keys secret)",
            ));
        }
        let fallback = match env.get("KOOGALLERY_OPENAPI_FALLBACK_URL") {
            Some(v) if v.eq_ignore_ascii_case("none") => None,
            Some(v) => Some(v),
            None => Some(DEFAULT_FALLBACK_URL.to_owned()),
        };
        Ok(Self::OpenApi {
            primary: env
                .get("KOOGALLERY_OPENAPI_URL")
                .unwrap_or_else(|| DEFAULT_PRIMARY_URL.to_owned()),
            fallback,
            timeout: env.secs("KOOGALLERY_OPENAPI_TIMEOUT_SECS", 5, 1)?,
        })
    }
}
