//! The License callbacks' requests (License 2.0: docs/protocol/openapi.md §6.1–§6.3; the legacy
//! `getLicense`: §6.4; docs/protocol/decisions.md §21). Lenient like the basic interfaces (unknown
//! fields ignored, `testFlag` as string or number); the values the callbacks act on are checked
//! here, each naming its field (`000002`).

use serde::Deserialize;

use super::request::{CallbackRequest, MAX_ID_LEN, require, test_flag};

/// The License 2.0 activities on `POST /produce`, and the legacy `getLicense` (V1 GET).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LicenseActivity {
    RefreshLicenseCode,
    UpdateLicenseCodeStatus,
    ReleaseLicenseCode,
    GetLicense,
}

impl LicenseActivity {
    pub const ALL: [Self; 4] = [
        Self::RefreshLicenseCode,
        Self::UpdateLicenseCodeStatus,
        Self::ReleaseLicenseCode,
        Self::GetLicense,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RefreshLicenseCode => "refreshLicenseCode",
            Self::UpdateLicenseCodeStatus => "updateLicenseCodeStatus",
            Self::ReleaseLicenseCode => "releaseLicenseCode",
            Self::GetLicense => "getLicense",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// The longest license code (docs/protocol/openapi.md §6: `license`, 64).
const MAX_LICENSE_LEN: usize = 64;

/// `refreshLicenseCode` (docs/protocol/openapi.md §6.1): renewal, or a renewal period refunded.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshLicenseCodeRequest {
    #[serde(default)]
    pub license: String,
    /// `RENEWAL` or `UNSUBSCRIBE_RENEWAL_PERIOD`; checked in `validate` so the message names it.
    #[serde(default)]
    pub scene: String,
    #[serde(default)]
    pub order_id: String,
    /// Mandatory in the table; not needed to apply the renewal (be liberal).
    #[serde(default)]
    pub order_line_id: Option<String>,
    #[serde(default)]
    pub product_id: Option<String>,
    /// `yyyyMMddHHmmss` UTC (17 digits accepted too, docs/protocol/decisions.md §10).
    #[serde(default)]
    pub expire_time: String,
    #[serde(default, deserialize_with = "test_flag")]
    pub test_flag: bool,
}

impl CallbackRequest for RefreshLicenseCodeRequest {
    fn validate(&self) -> Result<(), String> {
        require("license", &self.license, MAX_LICENSE_LEN)?;
        require("orderId", &self.order_id, MAX_ID_LEN)?;
        if !matches!(self.scene.trim(), "RENEWAL" | "UNSUBSCRIBE_RENEWAL_PERIOD") {
            return Err(format!(
                "scene {:?} is not RENEWAL or UNSUBSCRIBE_RENEWAL_PERIOD",
                self.scene.chars().take(64).collect::<String>()
            ));
        }
        if super::time::parse_compact(self.expire_time.trim()).is_none() {
            return Err(format!(
                "expireTime {:?} is not yyyyMMddHHmmss",
                self.expire_time.chars().take(32).collect::<String>()
            ));
        }
        Ok(())
    }
    fn is_test(&self) -> bool {
        self.test_flag
    }
}

/// `updateLicenseCodeStatus` (docs/protocol/openapi.md §6.2): FREEZE or UNFREEZE.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateLicenseCodeStatusRequest {
    #[serde(default)]
    pub license: String,
    #[serde(default)]
    pub status: String,
    #[serde(default, deserialize_with = "test_flag")]
    pub test_flag: bool,
}

impl UpdateLicenseCodeStatusRequest {
    /// True for FREEZE, false for UNFREEZE (validated).
    pub fn freeze(&self) -> bool {
        self.status.trim() == "FREEZE"
    }
}

impl CallbackRequest for UpdateLicenseCodeStatusRequest {
    fn validate(&self) -> Result<(), String> {
        require("license", &self.license, MAX_LICENSE_LEN)?;
        if !matches!(self.status.trim(), "FREEZE" | "UNFREEZE") {
            return Err(format!(
                "status {:?} is not FREEZE or UNFREEZE",
                self.status.chars().take(64).collect::<String>()
            ));
        }
        Ok(())
    }
    fn is_test(&self) -> bool {
        self.test_flag
    }
}

/// `releaseLicenseCode` (docs/protocol/openapi.md §6.3): final.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseLicenseCodeRequest {
    #[serde(default)]
    pub license: String,
    #[serde(default)]
    pub order_id: Option<String>,
    #[serde(default, deserialize_with = "test_flag")]
    pub test_flag: bool,
}

impl CallbackRequest for ReleaseLicenseCodeRequest {
    fn validate(&self) -> Result<(), String> {
        require("license", &self.license, MAX_LICENSE_LEN)
    }
    fn is_test(&self) -> bool {
        self.test_flag
    }
}

/// The legacy `getLicense` (docs/protocol/openapi.md §6.4), as translated from its GET parameters.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetLicenseRequest {
    /// The code to issue, derived by the V1 translation (`protocol::v1::legacy_license_code`).
    #[serde(default)]
    pub license: String,
    #[serde(default)]
    pub order_id: String,
    #[serde(default)]
    pub business_id: String,
    #[serde(default)]
    pub product_id: String,
    #[serde(default)]
    pub customer_id: String,
    #[serde(default)]
    pub expire_time: Option<String>,
    #[serde(default)]
    pub amount: Option<String>,
    #[serde(default, deserialize_with = "test_flag")]
    pub test_flag: bool,
}

impl CallbackRequest for GetLicenseRequest {
    fn validate(&self) -> Result<(), String> {
        require("license", &self.license, MAX_LICENSE_LEN)?;
        require("orderId", &self.order_id, MAX_ID_LEN)?;
        require("businessId", &self.business_id, MAX_ID_LEN)?;
        require("productId", &self.product_id, MAX_ID_LEN)?;
        require("customerId", &self.customer_id, 100)?;
        if let Some(e) = self
            .expire_time
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
            && super::time::parse_compact(e).is_none()
        {
            return Err(format!("expireTime {e:?} is not yyyyMMddHHmmss"));
        }
        if let Some(a) = self
            .amount
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
            && a.parse::<u64>().is_err()
        {
            return Err(format!("amount {a:?} is not a whole number"));
        }
        Ok(())
    }
    fn is_test(&self) -> bool {
        self.test_flag
    }
}
