//! `refreshInstance` request (docs/protocol/callbacks.md §6.3).

use serde::{Deserialize, Deserializer};

use super::{CallbackRequest, MAX_ID_LEN, require, test_flag};

/// `refreshInstance` scenes (docs/protocol/callbacks.md §6.3). A scene this release does not know
/// is kept by name: it still sets the expiry (docs/protocol/decisions.md §11), since refusing it
/// could get a renewed customer released.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RefreshScene {
    TrialToFormal,
    Renewal,
    UnsubscribeRenewalPeriod,
    RenewalChange,
    Other(String),
}

impl RefreshScene {
    pub fn as_str(&self) -> &str {
        match self {
            Self::TrialToFormal => "TRIAL_TO_FORMAL",
            Self::Renewal => "RENEWAL",
            Self::UnsubscribeRenewalPeriod => "UNSUBSCRIBE_RENEWAL_PERIOD",
            Self::RenewalChange => "RENEWAL_CHANGE",
            Self::Other(name) => name,
        }
    }

    pub fn parse(name: &str) -> Self {
        match name.trim() {
            "TRIAL_TO_FORMAL" => Self::TrialToFormal,
            "RENEWAL" => Self::Renewal,
            "UNSUBSCRIBE_RENEWAL_PERIOD" => Self::UnsubscribeRenewalPeriod,
            "RENEWAL_CHANGE" => Self::RenewalChange,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl<'de> Deserialize<'de> for RefreshScene {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::parse(&String::deserialize(d)?))
    }
}

/// `refreshInstance` (docs/protocol/callbacks.md §6.3): renewal, trial→formal, renewal
/// cancellation, change on renewal.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshInstanceRequest {
    pub instance_id: String,
    pub order_id: String,
    /// Mandatory in the table; accepted when absent (be liberal) since nothing here depends on it.
    #[serde(default)]
    pub order_line_id: Option<String>,
    pub scene: RefreshScene,
    #[serde(default)]
    pub product_id: Option<String>,
    /// New expiry, UTC, 14 or 17 digits (docs/protocol/decisions.md §10).
    pub expire_time: String,
    #[serde(default, deserialize_with = "test_flag")]
    pub test_flag: bool,
}

impl CallbackRequest for RefreshInstanceRequest {
    fn validate(&self) -> Result<(), String> {
        require("instanceId", &self.instance_id, MAX_ID_LEN)?;
        require("orderId", &self.order_id, MAX_ID_LEN)?;
        require("scene", self.scene.as_str(), MAX_ID_LEN)?;
        if crate::protocol::time::parse_compact(self.expire_time.trim()).is_none() {
            return Err(format!(
                "expireTime {:?} is not yyyyMMddHHmmss or yyyyMMddHHmmssSSS",
                self.expire_time
            ));
        }
        Ok(())
    }
    fn is_test(&self) -> bool {
        self.test_flag
    }
}
