//! KooGallery's License open API as the vendor calls it (docs/protocol/openapi.md §5: activate,
//! query, software usage statistics; §4: string / file-stream upload), as a port: the open-API
//! adapter (`koogallery-openapi`) signs with the seller's AK/SK; tests use
//! `testing::license::ScriptedLicenseMarketplace`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{LicenseCode, SoftwareUsage};
use crate::failure::Detail;

/// A code's state as KooGallery reports it (`status`, docs/protocol/openapi.md §5.1, §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteStatus {
    Alive,
    Expired,
    Released,
    /// A status this release does not know: kept, changes nothing (be liberal).
    Other(String),
}

impl RemoteStatus {
    pub fn parse(s: &str) -> Self {
        match s.trim() {
            "ALIVE" => Self::Alive,
            "EXPIRED" => Self::Expired,
            "RELEASED" => Self::Released,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// What activation (`license_code_info`, parsed twice) or the query (`LicenseInfo`) says of a code.
/// Unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenseInfo {
    pub status: RemoteStatus,
    pub expire_time: Option<DateTime<Utc>>,
    pub product_id: Option<String>,
    pub order_id: Option<String>,
    pub amount: Option<u64>,
    pub activate_time: Option<DateTime<Utc>>,
}

/// What a string / file-stream upload delivers (docs/protocol/openapi.md §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upload {
    /// `type=CHARACTERS`: at most 1024 characters.
    Characters(String),
    /// `type=FILE`: the file, sent with its SHA-256.
    File { name: String, bytes: Vec<u8> },
}

/// The answer to a usage-statistics call: the codes KooGallery refused, with its words.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageReport {
    pub refused: Vec<(LicenseCode, String)>,
}

/// Why a License open-API call failed (docs/protocol/openapi.md §5.4, §8). Several failures come
/// with HTTP 200: the `error_code` decides.
#[derive(Debug, thiserror::Error)]
pub enum LicenseApiError {
    /// `92020005`: KooGallery knows no such code. Nothing is cached.
    #[error("license code does not exist (92020005)")]
    NotFound,
    /// `92020004`: the buyer has not received the code yet; may succeed later.
    #[error("license code not yet delivered to the buyer (92020004)")]
    NotYetDelivered,
    /// `92020002` or a 400: the request is wrong; retrying will not help.
    #[error("KooGallery refused the request as invalid: {0}")]
    Invalid(#[source] Detail),
    /// `92020001` with 403, APIG auth errors: our AK/SK; retried, logged loudly.
    #[error("KooGallery refused our credentials: {0}")]
    Unauthorized(#[source] Detail),
    /// Network, throttling, 5xx, `92020001` with 500: retry.
    #[error("KooGallery License API unavailable: {0}")]
    Unavailable(#[source] Detail),
}

impl LicenseApiError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::NotYetDelivered | Self::Unauthorized(_) | Self::Unavailable(_)
        )
    }
}

/// KooGallery's License open API (docs/protocol/openapi.md §5, §4).
#[async_trait]
pub trait LicenseMarketplace: Send + Sync {
    /// Activates one code (v1 `license/activate`); `real_effect_time` is when it took effect.
    async fn activate(
        &self,
        code: &LicenseCode,
        real_effect_time: Option<DateTime<Utc>>,
    ) -> Result<LicenseInfo, LicenseApiError>;

    /// Activates up to 100 codes at once (v2 `license/activate`); one answer per code, in order.
    async fn activate_batch(
        &self,
        codes: &[LicenseCode],
        real_effect_time: Option<DateTime<Utc>>,
    ) -> Result<Vec<(LicenseCode, Result<LicenseInfo, LicenseApiError>)>, LicenseApiError>;

    /// Queries a code (v1 `license/heartbeat`), the authoritative status and expiry.
    async fn query(&self, code: &LicenseCode) -> Result<LicenseInfo, LicenseApiError>;

    /// Reports a day's software usage (`v2/license/software-usage-info`, at most 100 codes).
    async fn report_usage(&self, usage: &[SoftwareUsage]) -> Result<UsageReport, LicenseApiError>;

    /// Delivers a string or a file for marketplace event `event_id` (docs/protocol/openapi.md §4).
    async fn upload(&self, event_id: &str, upload: &Upload) -> Result<(), LicenseApiError>;
}

/// KooGallery's License API where no AK/SK is configured: every call says so (retryable, so the
/// software is told to try later). Legacy codes, which KooGallery's API does not know, still work.
pub struct NotConfigured;

fn not_configured() -> LicenseApiError {
    LicenseApiError::Unavailable(Detail::new(
        "KooGallery's open API is not configured (the seller's AK/SK)",
    ))
}

#[async_trait]
impl LicenseMarketplace for NotConfigured {
    async fn activate(
        &self,
        _: &LicenseCode,
        _: Option<DateTime<Utc>>,
    ) -> Result<LicenseInfo, LicenseApiError> {
        Err(not_configured())
    }
    async fn activate_batch(
        &self,
        _: &[LicenseCode],
        _: Option<DateTime<Utc>>,
    ) -> Result<Vec<(LicenseCode, Result<LicenseInfo, LicenseApiError>)>, LicenseApiError> {
        Err(not_configured())
    }
    async fn query(&self, _: &LicenseCode) -> Result<LicenseInfo, LicenseApiError> {
        Err(not_configured())
    }
    async fn report_usage(&self, _: &[SoftwareUsage]) -> Result<UsageReport, LicenseApiError> {
        Err(not_configured())
    }
    async fn upload(&self, _: &str, _: &Upload) -> Result<(), LicenseApiError> {
        Err(not_configured())
    }
}
