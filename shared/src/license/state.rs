//! A license code's state machine (docs/protocol/openapi.md §5, §6; docs/protocol/decisions.md
//! §21): active, frozen, expired, released (final), with the idempotency rules of the callbacks —
//! a renewal once per (orderId, scene), a status change that is already the state is a repeat, a
//! release after a release is a repeat — and the event each real change produces.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{LicenseCode, LicenseEvent, LicenseEventBody, LicenseInfo, RemoteStatus};

/// Where a code comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Origin {
    /// Issued by KooGallery (License 2.0): activated and queried on KooGallery's open API
    /// (docs/protocol/openapi.md §5).
    Marketplace,
    /// Issued by this service on a legacy `getLicense` (docs/protocol/openapi.md §6.4): the code is
    /// also the instance ID KooGallery names it by; KooGallery's open API does not know it.
    Legacy,
}

/// What a code allows, as far as this service knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LicenseStatus {
    Active,
    /// `updateLicenseCodeStatus` FREEZE (or a legacy `expireLicense`): the vendor keeps the
    /// buyer's data for the 15-day freeze period (docs/protocol/openapi.md §6.2).
    Frozen,
    /// KooGallery's query answered `EXPIRED`.
    Expired,
    /// Final (docs/protocol/openapi.md §6.3).
    Released,
}

impl LicenseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Frozen => "FROZEN",
            Self::Expired => "EXPIRED",
            Self::Released => "RELEASED",
        }
    }
}

/// The first activation of a code by the vendor's software.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Activation {
    pub at: DateTime<Utc>,
    /// The client ID the software sent on that first call.
    pub client_id: String,
}

/// One license code and what is known of it. Stored whole, versioned (optimistic concurrency);
/// the serde form is a versioned contract (`shared/tests/fixtures/license_record_v1.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct License {
    pub schema: u32,
    pub code: LicenseCode,
    pub origin: Origin,
    pub status: LicenseStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation: Option<Activation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_id: Option<String>,
    /// The purchase order, where known (activation's answer, a legacy `getLicense`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// Quantity-type pricing attribute (`amount`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<u64>,
    /// `None`: no expiry known (perpetual, or not yet told).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_time: Option<DateTime<Utc>>,
    /// When KooGallery's query was last asked about the code (at most daily).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<DateTime<Utc>>,
    /// Idempotency keys of the changes applied (renewals per orderId and scene).
    #[serde(default)]
    pub applied: BTreeSet<String>,
    /// A debug record (`testFlag` 1, docs/protocol/decisions.md §7): never a real buyer's.
    pub test: bool,
    /// Events not yet delivered to the vendor, in `seq` order.
    #[serde(default)]
    pub pending: Vec<LicenseEvent>,
    pub next_seq: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Bumped by every write; a write expects the version it read.
    pub version: u64,
}

/// The schema this release writes.
pub const SCHEMA: u32 = 1;

/// A renewal scene of `refreshLicenseCode` (docs/protocol/openapi.md §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RenewScene {
    Renewal,
    UnsubscribeRenewalPeriod,
}

impl RenewScene {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "RENEWAL" => Some(Self::Renewal),
            "UNSUBSCRIBE_RENEWAL_PERIOD" => Some(Self::UnsubscribeRenewalPeriod),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Renewal => "RENEWAL",
            Self::UnsubscribeRenewalPeriod => "UNSUBSCRIBE_RENEWAL_PERIOD",
        }
    }
}

/// What can happen to a code.
#[derive(Debug, Clone, PartialEq)]
pub enum LicenseChange {
    /// `refreshLicenseCode` (or a legacy `refreshLicense`): the expiry becomes `expire_time`.
    Renew {
        order_id: String,
        order_line_id: Option<String>,
        scene: RenewScene,
        product_id: Option<String>,
        expire_time: DateTime<Utc>,
    },
    /// `updateLicenseCodeStatus` FREEZE, or a legacy `expireLicense`.
    Freeze,
    /// `updateLicenseCodeStatus` UNFREEZE.
    Unfreeze,
    /// `releaseLicenseCode` (or a legacy `releaseLicense`): final.
    Release { order_id: Option<String> },
    /// The vendor's software activated the code (once), with KooGallery's answer if it has one.
    Activate {
        client_id: String,
        info: Option<LicenseInfo>,
    },
    /// KooGallery's query answered `info`.
    Checked { info: LicenseInfo },
}

/// Why a change cannot apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LicenseError {
    #[error("license {0} has been released")]
    Released(String),
}

impl License {
    /// A code seen for the first time (a callback naming it, an activation, a legacy issue).
    pub fn new(code: LicenseCode, origin: Origin, test: bool, now: DateTime<Utc>) -> Self {
        Self {
            schema: SCHEMA,
            code,
            origin,
            status: LicenseStatus::Active,
            activation: None,
            product_id: None,
            order_id: None,
            customer_id: None,
            amount: None,
            expire_time: None,
            checked_at: None,
            applied: BTreeSet::new(),
            test,
            pending: Vec::new(),
            next_seq: 1,
            created_at: now,
            updated_at: now,
            version: 0,
        }
    }

    /// The status the vendor's software is told at `now`: an expiry in the past reads as expired
    /// even before KooGallery says so.
    pub fn status_at(&self, now: DateTime<Utc>) -> LicenseStatus {
        match self.status {
            LicenseStatus::Active if self.expire_time.is_some_and(|e| e <= now) => {
                LicenseStatus::Expired
            }
            s => s,
        }
    }

    /// Whether the software may run on this code at `now`.
    pub fn usable_at(&self, now: DateTime<Utc>) -> bool {
        self.status_at(now) == LicenseStatus::Active
    }

    /// Applies `change`; `Ok(true)` when it changed the record (and queued its event), `Ok(false)`
    /// for a repeat.
    ///
    /// # Errors
    /// [`LicenseError::Released`] for an activation of a released code; callbacks on a released code
    /// are repeats (release is final, and KooGallery must not retry them for an hour).
    pub fn apply(
        &mut self,
        change: LicenseChange,
        now: DateTime<Utc>,
    ) -> Result<bool, LicenseError> {
        let released = self.status == LicenseStatus::Released;
        let body = match change {
            LicenseChange::Renew {
                order_id,
                order_line_id,
                scene,
                product_id,
                expire_time,
            } => {
                let key = format!("renew/{order_id}/{}", scene.as_str());
                if released || self.applied.contains(&key) {
                    return Ok(false);
                }
                self.applied.insert(key);
                self.expire_time = Some(expire_time);
                if product_id.is_some() {
                    self.product_id.clone_from(&product_id);
                }
                // A renewal of an expired code makes it usable again; a frozen License 2.0 code
                // waits for its UNFREEZE (docs/protocol/openapi.md §6.2). The legacy family has no
                // unfreeze (§6.4: its expireLicense freezes), so there the renewal lifts it.
                if self.status == LicenseStatus::Expired
                    || (self.status == LicenseStatus::Frozen && self.origin == Origin::Legacy)
                {
                    self.status = LicenseStatus::Active;
                }
                LicenseEventBody::Renewed {
                    order_id,
                    order_line_id,
                    scene,
                    product_id,
                    expire_time,
                }
            }
            LicenseChange::Freeze => {
                if released || self.status == LicenseStatus::Frozen {
                    return Ok(false);
                }
                self.status = LicenseStatus::Frozen;
                LicenseEventBody::Frozen
            }
            LicenseChange::Unfreeze => {
                if released || self.status != LicenseStatus::Frozen {
                    return Ok(false);
                }
                self.status = LicenseStatus::Active;
                LicenseEventBody::Unfrozen
            }
            LicenseChange::Release { order_id } => {
                if released {
                    return Ok(false);
                }
                self.status = LicenseStatus::Released;
                LicenseEventBody::Released { order_id }
            }
            LicenseChange::Activate { client_id, info } => {
                if released {
                    return Err(LicenseError::Released(self.code.masked()));
                }
                if self.activation.is_some() {
                    return Ok(false);
                }
                self.activation = Some(Activation {
                    at: now,
                    client_id: client_id.clone(),
                });
                // The activation's expiry is an estimate: the first check still asks the query.
                if let Some(info) = &info {
                    self.take_info(info);
                }
                LicenseEventBody::Activated {
                    client_id,
                    product_id: self.product_id.clone(),
                    order_id: self.order_id.clone(),
                    expire_time: self.expire_time,
                }
            }
            LicenseChange::Checked { info } => {
                if released {
                    return Ok(false);
                }
                let before = (self.status, self.expire_time);
                self.take_info(&info);
                self.checked_at = Some(now);
                if (self.status, self.expire_time) == before {
                    // Only the time of the check moved: a write, no event.
                    self.touch(now);
                    return Ok(true);
                }
                LicenseEventBody::Checked {
                    status: self.status,
                    expire_time: self.expire_time,
                }
            }
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending.push(LicenseEvent { seq, at: now, body });
        self.touch(now);
        Ok(true)
    }

    /// What KooGallery's activation or query said. Its expiry is authoritative (the activation's
    /// is an estimate that the query corrects); `ALIVE` does not lift a freeze (the query has no
    /// frozen state); `RELEASED` is final.
    fn take_info(&mut self, info: &LicenseInfo) {
        if let Some(p) = &info.product_id {
            self.product_id = Some(p.clone());
        }
        if let Some(o) = &info.order_id {
            self.order_id = Some(o.clone());
        }
        if info.amount.is_some() {
            self.amount = info.amount;
        }
        if info.expire_time.is_some() {
            self.expire_time = info.expire_time;
        }
        match info.status {
            RemoteStatus::Released => self.status = LicenseStatus::Released,
            RemoteStatus::Expired if self.status == LicenseStatus::Active => {
                self.status = LicenseStatus::Expired;
            }
            RemoteStatus::Alive if self.status == LicenseStatus::Expired => {
                self.status = LicenseStatus::Active;
            }
            _ => {}
        }
    }

    fn touch(&mut self, now: DateTime<Utc>) {
        self.updated_at = now;
    }

    /// Drops the delivered events up to `seq`.
    pub fn delivered(&mut self, seq: u64) -> bool {
        let before = self.pending.len();
        self.pending.retain(|e| e.seq > seq);
        self.pending.len() != before
    }
}

/// What a legacy `getLicense` tells of the purchase (docs/protocol/openapi.md §6.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyPurchase {
    pub order_id: String,
    pub product_id: String,
    pub customer_id: String,
    pub amount: Option<u64>,
    pub expire_time: Option<DateTime<Utc>>,
}

impl License {
    /// The code this service issues on a legacy `getLicense`, with its `issued` event.
    pub fn issue_legacy(
        code: LicenseCode,
        purchase: LegacyPurchase,
        test: bool,
        now: DateTime<Utc>,
    ) -> Self {
        let mut l = Self::new(code, Origin::Legacy, test, now);
        l.order_id = Some(purchase.order_id.clone());
        l.product_id = Some(purchase.product_id.clone());
        l.customer_id = Some(purchase.customer_id.clone());
        l.amount = purchase.amount;
        l.expire_time = purchase.expire_time;
        l.pending.push(LicenseEvent {
            seq: 1,
            at: now,
            body: LicenseEventBody::Issued {
                order_id: purchase.order_id,
                product_id: purchase.product_id,
                customer_id: purchase.customer_id,
                expire_time: purchase.expire_time,
            },
        });
        l.next_seq = 2;
        l
    }
}
