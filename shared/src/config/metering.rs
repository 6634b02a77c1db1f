//! How usage is pushed and priced (docs/protocol/openapi.md §3 and §3.2): the pass interval, the
//! grace after each hour, how early the horizon alarm speaks, the quotas of stop-when-used-up
//! package SKUs and the pricing per SKU for bill estimates.

use std::time::Duration;

use super::{ConfigError, Env, Setting, catalog};
use crate::metering::{package::PackageQuotaList, pricing::PriceList, push::PushSettings};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeteringSettings {
    /// How often the local host runs a push pass (on AWS: the schedule's rate).
    pub push_every: Duration,
    pub push: PushSettings,
    /// `KOOGALLERY_PACKAGE_QUOTAS`: SKU code → quota per unit.
    pub package_quotas: PackageQuotaList,
    /// `KOOGALLERY_PRICING`: SKU code → pricing model, for bill estimates.
    pub pricing: PriceList,
}

impl Default for MeteringSettings {
    fn default() -> Self {
        Self::read(&Env::empty()).expect("the catalog's defaults are valid")
    }
}

/// A JSON setting given inline (starting with `{`) or as the path of a file holding it.
fn json_setting(env: &Env<'_>, setting: &Setting) -> Result<Option<String>, ConfigError> {
    let name = setting.name;
    let Some(value) = env.get(setting) else {
        return Ok(None);
    };
    let value = value.trim();
    if value.starts_with('{') {
        return Ok(Some(value.to_owned()));
    }
    std::fs::read_to_string(value).map(Some).map_err(|e| {
        ConfigError::invalid(
            name,
            format!("neither inline JSON nor a readable file {value}: {e}"),
        )
    })
}

impl MeteringSettings {
    /// `KOOGALLERY_USAGE_PUSH_EVERY_SECS` (default 60), `KOOGALLERY_USAGE_GRACE_SECS` (default
    /// 300: an hour's reports may arrive until 5 minutes past it; at most 3600, since KooGallery
    /// bills an hour at minute 15 of the next and wants it within 2 hours at worst) and
    /// `KOOGALLERY_USAGE_HORIZON_WARNING_DAYS` (default 3, 1 to 20); `KOOGALLERY_PACKAGE_QUOTAS`
    /// and `KOOGALLERY_PRICING` (JSON, inline or a file's path; checked here, so a typo stops
    /// the start rather than a bill).
    pub fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let grace = env.number(&catalog::USAGE_GRACE_SECS, 0i64)?;
        if grace > 3600 {
            return Err(ConfigError::invalid(
                catalog::USAGE_GRACE_SECS.name,
                "at most 3600: KooGallery wants an hour's usage within minutes of its end",
            ));
        }
        let warning = env.number(&catalog::USAGE_HORIZON_WARNING_DAYS, 1i64)?;
        if warning > 20 {
            return Err(ConfigError::invalid(
                catalog::USAGE_HORIZON_WARNING_DAYS.name,
                "at most 20: the horizon is 21 days",
            ));
        }
        let package_quotas = match json_setting(env, &catalog::PACKAGE_QUOTAS)? {
            Some(json) => PackageQuotaList::from_json(&json)
                .map_err(|e| ConfigError::invalid(catalog::PACKAGE_QUOTAS.name, e))?,
            None => PackageQuotaList::default(),
        };
        let pricing = match json_setting(env, &catalog::PRICING)? {
            Some(json) => PriceList::from_json(&json)
                .map_err(|e| ConfigError::invalid(catalog::PRICING.name, e))?,
            None => PriceList::default(),
        };
        Ok(Self {
            package_quotas,
            pricing,
            push_every: env.secs(&catalog::USAGE_PUSH_EVERY_SECS, 1)?,
            push: PushSettings {
                grace: chrono::Duration::seconds(grace),
                horizon_warning: chrono::Duration::days(warning),
            },
        })
    }
}
