//! How usage is pushed (issue 9, spec openapi §3): the pass interval, the grace after each hour,
//! and how early the horizon alarm speaks.

use std::time::Duration;

use super::{ConfigError, Env};
use crate::metering::push::PushSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeteringSettings {
    /// How often the local host runs a push pass (on AWS: the schedule's rate).
    pub push_every: Duration,
    pub push: PushSettings,
}

impl Default for MeteringSettings {
    fn default() -> Self {
        Self {
            push_every: Duration::from_secs(60),
            push: PushSettings::default(),
        }
    }
}

impl MeteringSettings {
    /// `KOOGALLERY_USAGE_PUSH_EVERY_SECS` (default 60), `KOOGALLERY_USAGE_GRACE_SECS` (default
    /// 300: an hour's reports may arrive until 5 minutes past it; at most 3600, since KooGallery
    /// bills an hour at minute 15 of the next and wants it within 2 hours at worst) and
    /// `KOOGALLERY_USAGE_HORIZON_WARNING_DAYS` (default 3, 1 to 20).
    pub fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let grace = env.number("KOOGALLERY_USAGE_GRACE_SECS", 300i64, 0)?;
        if grace > 3600 {
            return Err(ConfigError::invalid(
                "KOOGALLERY_USAGE_GRACE_SECS",
                "at most 3600: KooGallery wants an hour's usage within minutes of its end",
            ));
        }
        let warning = env.number("KOOGALLERY_USAGE_HORIZON_WARNING_DAYS", 3i64, 1)?;
        if warning > 20 {
            return Err(ConfigError::invalid(
                "KOOGALLERY_USAGE_HORIZON_WARNING_DAYS",
                "at most 20: the horizon is 21 days",
            ));
        }
        Ok(Self {
            push_every: env.secs("KOOGALLERY_USAGE_PUSH_EVERY_SECS", 60, 1)?,
            push: PushSettings {
                grace: chrono::Duration::seconds(grace),
                horizon_warning: chrono::Duration::days(warning),
            },
        })
    }
}
