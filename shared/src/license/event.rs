//! What the vendor hears of a license code (docs/protocol/openapi.md §6; docs/protocol/decisions.md
//! §21): one event per real change, numbered per code. Events are stored in the same write as the
//! change until delivered, and the vendor's webhook event embeds them, so their serde form is a
//! versioned contract: `shared/tests/fixtures/license_events_v1.json` pins it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{LicenseStatus, RenewScene};

/// A numbered event of one code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LicenseEvent {
    /// Position in the code's event sequence, from 1: a vendor applies an event only if its `seq`
    /// is above the last one it applied (delivery is at least once).
    pub seq: u64,
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub body: LicenseEventBody,
}

/// Version 1 of the event bodies: `event` names it, the other fields are camelCase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "event",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum LicenseEventBody {
    /// A legacy `getLicense`: this service issued the code.
    Issued {
        order_id: String,
        product_id: String,
        customer_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expire_time: Option<DateTime<Utc>>,
    },
    /// The vendor's software activated the code for the first time.
    Activated {
        client_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        product_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        order_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expire_time: Option<DateTime<Utc>>,
    },
    /// `refreshLicenseCode` / legacy `refreshLicense`: the new expiry.
    Renewed {
        order_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        order_line_id: Option<String>,
        scene: RenewScene,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        product_id: Option<String>,
        expire_time: DateTime<Utc>,
    },
    /// Frozen: keep the buyer's data for the freeze period.
    Frozen,
    Unfrozen,
    /// Final: the vendor may delete what the code held.
    Released {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        order_id: Option<String>,
    },
    /// KooGallery's query changed what is known: the status or the expiry.
    Checked {
        status: LicenseStatus,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expire_time: Option<DateTime<Utc>>,
    },
}

impl LicenseEventBody {
    /// The event's name, as on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Issued { .. } => "issued",
            Self::Activated { .. } => "activated",
            Self::Renewed { .. } => "renewed",
            Self::Frozen => "frozen",
            Self::Unfrozen => "unfrozen",
            Self::Released { .. } => "released",
            Self::Checked { .. } => "checked",
        }
    }
}
