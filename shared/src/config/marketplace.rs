//! How the worker reads orders (`KOOGALLERY_MARKETPLACE`, docs/protocol/openapi.md §0, §2): through
//! KooGallery's open API, or offline (orders synthesised, every answer marked and logged so).

use std::time::Duration;

use super::{ConfigError, Env, catalog};

/// The longest `KOOGALLERY_OPENAPI_TIMEOUT_SECS`: a call on both hosts then takes at most 20 s,
/// which the worker's delivery and the usage push's scheduled pass (55 s) can hold.
pub const MAX_OPENAPI_TIMEOUT_SECS: u64 = 10;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum MarketplaceSettings {
    /// Orders are made up (plausible, honouring the documented `MOCK…` IDs); provision events say
    /// `"offline": true`.
    #[default]
    Offline,
    /// Query Order on KooGallery, signed with the AK/SK of the secrets bundle. Both hosts are
    /// checked URLs: `https://`, or `http://` on a loopback host only.
    OpenApi {
        primary: url::Url,
        fallback: Option<url::Url>,
        timeout: Duration,
    },
}

/// What decides an unset `KOOGALLERY_MARKETPLACE`: whether the process holds the open API's
/// AK/SK, and whether it may then quietly run offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenApiAccess {
    /// The AK/SK are configured.
    pub held: bool,
    /// Locally, no AK/SK means offline. On AWS a function that calls the open API refuses the
    /// silent default: a real deployment must not provision from made-up orders by accident.
    pub offline_by_default: bool,
}

impl OpenApiAccess {
    /// A process that may run offline, and holds no AK/SK (defaults, tests).
    pub const NONE: Self = Self {
        held: false,
        offline_by_default: true,
    };
}

impl MarketplaceSettings {
    /// `KOOGALLERY_MARKETPLACE` is `openapi` or `offline`; unset, as [`OpenApiAccess`] decides.
    /// `KOOGALLERY_OPENAPI_URL` (the international site is `https://mkt-intl.myhuaweicloud.com`),
    /// `KOOGALLERY_OPENAPI_FALLBACK_URL` (`none` for no fallback),
    /// `KOOGALLERY_OPENAPI_TIMEOUT_SECS` (per request on one host, at most
    /// [`MAX_OPENAPI_TIMEOUT_SECS`]).
    pub fn read(env: &Env<'_>, keys: OpenApiAccess) -> Result<Self, ConfigError> {
        let choice = &catalog::MARKETPLACE;
        let mode = match env.get(choice) {
            Some(_) => env.choice(choice, &["openapi", "offline"])?,
            None if keys.held => "openapi",
            None if !keys.offline_by_default => {
                return Err(ConfigError::invalid(
                    choice.name,
                    "no open API AK/SK (\"ak\"/\"sk\" in the open API secret, KOOGALLERY_OPENAPI_SECRET_ID): put them there, or set offline explicitly to provision from made-up orders",
                ));
            }
            None => "offline",
        };
        if mode == "offline" {
            return Ok(Self::Offline);
        }
        if !keys.held {
            return Err(ConfigError::invalid(
                catalog::AK.name,
                "KOOGALLERY_MARKETPLACE=openapi needs the AK/SK (locally KOOGALLERY_AK and KOOGALLERY_SK; on AWS \"ak\"/\"sk\" in the open API secret, KOOGALLERY_OPENAPI_SECRET_ID)",
            ));
        }
        let fallback = match env.text(&catalog::OPENAPI_FALLBACK_URL) {
            Some(v) if v.eq_ignore_ascii_case("none") => None,
            Some(v) => Some(base_url(catalog::OPENAPI_FALLBACK_URL.name, &v)?),
            None => None,
        };
        let timeout_setting = &catalog::OPENAPI_TIMEOUT_SECS;
        let timeout = env.secs(timeout_setting, 1)?;
        if timeout.as_secs() > MAX_OPENAPI_TIMEOUT_SECS {
            return Err(ConfigError::invalid(
                timeout_setting.name,
                format!(
                    "at most {MAX_OPENAPI_TIMEOUT_SECS} s, got {} (a call may wait that long on each host)",
                    timeout.as_secs()
                ),
            ));
        }
        let primary = env.text(&catalog::OPENAPI_URL).unwrap_or_default();
        Ok(Self::OpenApi {
            primary: base_url(catalog::OPENAPI_URL.name, &primary)?,
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

/// A base URL of KooGallery's open API: `https://`, or `http://` on a loopback host only (the
/// simulator).
pub fn base_url(name: &'static str, text: &str) -> Result<url::Url, ConfigError> {
    let url = url::Url::parse(text.trim())
        .map_err(|e| ConfigError::invalid(name, format!("not a URL ({e}): {text:?}")))?;
    let loopback = matches!(
        url.host_str(),
        Some("127.0.0.1" | "localhost" | "[::1]" | "::1")
    );
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        "http" => Err(ConfigError::invalid(
            name,
            "plain http is allowed only for a loopback host; KooGallery is https",
        )),
        other => Err(ConfigError::invalid(
            name,
            format!("unsupported scheme {other}"),
        )),
    }
}
