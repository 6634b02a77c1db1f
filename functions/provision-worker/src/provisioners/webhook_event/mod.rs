//! The event POSTed to the vendor's webhook: a versioned contract with the vendor's own systems,
//! independent of the domain types, so a rename in the domain cannot silently break a vendor's
//! integration. `tests/golden/webhook_*.json` pins it and the README shows the same JSON.
//!
//! Version 2 (sent unless `KOOGALLERY_WEBHOOK_EVENT_VERSION=1`): camelCase; `version`, `event`, `eventId` (stable across our retries: the vendor's
//! idempotency key), `seq` (the instance history position the event reports: `provision` carries
//! the creation's, 0; a lifecycle notice its own), `state` (the instance's state as a result of
//! this event, not its state when sent), `expireTime` and `order` when known, and `detail` for the
//! events that carry more (refreshed, upgraded, released, quotaExhausted). The top-level
//! `expireTime` and `order` are the instance's as known when the event is sent; `detail` holds what
//! the event itself set (a refresh's own expiry, an upgrade's own order). Times are RFC 3339 UTC.
//! Events: `provision`, the lifecycle notices (`refreshed`, `frozen`, `unfrozen`, `upgraded`,
//! `released`, `quotaExhausted`), `order` (a paid order line) and the tenant directory's events.
//!
//! Version 1 is the same JSON with `"version": 1` and fewer events: `provision` and the first five
//! lifecycle notices, a refresh's `detail` without its `orderLineId`. `quotaExhausted`, `order`
//! and the directory events came later, and a receiver written for version 1 may refuse an event
//! it does not know (and be retried until the job is dead-lettered), so a provisioner set to
//! version 1 does not send them: they are logged and count as delivered. Golden files pin both
//! versions.

use chrono::{DateTime, Utc};
use koogallery::{
    instance::{EventKind, InstanceState},
    order::{ChargingMode, OrderDetails},
    provisioning::{LifecycleNotice, OrderPaid, ProvisionRequest},
};
use serde::Serialize;

/// The contract version this release sends unless told otherwise.
pub const WEBHOOK_EVENT_VERSION: u32 = 2;

/// The events contract version 1 has (every other event is version 2's).
const VERSION_1_EVENTS: [&str; 6] = [
    "provision",
    "refreshed",
    "frozen",
    "unfrozen",
    "upgraded",
    "released",
];

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEvent {
    pub version: u32,
    /// `provision`, the lifecycle event (`refreshed`, `frozen`, `unfrozen`, `upgraded`,
    /// `released`, `quotaExhausted`), or `order` (a paid order line, from orderNotify).
    pub event: &'static str,
    pub event_id: String,
    pub seq: u64,
    /// Absent only from `order` events: a paid order line is not (yet) an instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    pub order_id: String,
    pub order_line_id: String,
    /// `provisioning`, `active`, `frozen`, `failed` or `released`.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_time: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<WebhookOrder>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<WebhookDetail>,
}

/// A tenant directory event (the 联营 Kit syncs, docs/protocol/callbacks.md §9), version 1:
/// `version`, `event` (`tenantSynced`, `tenantDeleted`, `appSynced`, `appDeleted`,
/// `usersAuthorized`, `usersRevoked`, `usersDeleted`, `orgSynced`, `orgDeleted`, `orgsReplaced`,
/// and `sessionsEnded` from single sign-on),
/// `eventId` (stable across retries), `seq` (per tenant, from 1: apply an event only if its `seq`
/// is above the last one applied for the tenant; delivery is at least once, in order), `instanceId`
/// (empty for the seller's own app credential), `tenantId`, `at` (when the sync was applied, RFC
/// 3339 UTC), then the event's own fields (the directory's event form, `directory::EventBody`,
/// pinned by the golden files).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryWebhookEvent {
    pub version: u32,
    pub event_id: String,
    pub seq: u64,
    pub instance_id: String,
    pub tenant_id: String,
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub body: koogallery::directory::EventBody,
}

/// A license code event (docs/protocol/openapi.md §6), version 2 and later: `version`, `event`
/// (`issued`, `activated`, `renewed`, `frozen`, `unfrozen`, `released`, `checked`), `eventId`
/// (stable across retries), `seq` (per code, from 1: apply an event only if its `seq` is above the
/// last one applied for the code; delivery is at least once, in order), `license` (the code), `at`,
/// then the event's own fields (`license::LicenseEventBody`, pinned by the golden files).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LicenseWebhookEvent {
    pub version: u32,
    pub event_id: String,
    pub seq: u64,
    pub license: String,
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub body: koogallery::license::LicenseEventBody,
}

impl LicenseWebhookEvent {
    /// The event as contract `version` has it; version 1 has no license events.
    pub fn in_version(mut self, version: u32) -> Option<Self> {
        if version < 2 {
            return None;
        }
        self.version = version;
        Some(self)
    }

    pub fn from_notice(notice: &koogallery::provisioning::LicenseNotice) -> Self {
        Self {
            version: WEBHOOK_EVENT_VERSION,
            event_id: format!("lic:{}:{}", notice.license, notice.event.seq),
            seq: notice.event.seq,
            license: notice.license.to_string(),
            at: notice.event.at,
            body: notice.event.body.clone(),
        }
    }
}

impl WebhookEvent {
    /// The event as contract `version` has it; `None` when that version has no such event.
    pub fn in_version(mut self, version: u32) -> Option<Self> {
        if version < 2 && !VERSION_1_EVENTS.contains(&self.event) {
            return None;
        }
        if version < 2
            && let Some(WebhookDetail::Refreshed { order_line_id, .. }) = &mut self.detail
        {
            // Version 1's refreshed detail is pinned without it.
            *order_line_id = None;
        }
        self.version = version;
        Some(self)
    }
}

impl DirectoryWebhookEvent {
    /// The event as contract `version` has it; version 1 has no directory events.
    pub fn in_version(mut self, version: u32) -> Option<Self> {
        if version < 2 {
            return None;
        }
        self.version = version;
        Some(self)
    }

    pub fn from_notice(notice: &koogallery::provisioning::DirectoryNotice) -> Self {
        Self {
            version: WEBHOOK_EVENT_VERSION,
            event_id: format!(
                "dir:{}:{}:{}",
                notice.tenant.instance_id, notice.tenant.tenant_id, notice.event.seq
            ),
            seq: notice.event.seq,
            instance_id: notice.tenant.instance_id.clone(),
            tenant_id: notice.tenant.tenant_id.clone().into(),
            at: notice.event.at,
            body: notice.event.body.clone(),
        }
    }
}

/// The order as Query Order described it (docs/protocol/openapi.md §2).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookOrder {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_type: Option<String>,
    /// `PERIOD`, `ONE_TIME`, `ON_DEMAND`, `ON_DEMAND_PKG`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub charging_mode: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period_number: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_name: Option<String>,
    /// The linear attribute's quantity (users, Mbps, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantity: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_time: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_name: Option<String>,
    /// The order's and the line's extension parameters, in KooGallery's own `name`/`value` form.
    pub extend_params: Vec<ExtendParam>,
    /// True when the order was synthesised offline instead of read from KooGallery.
    pub offline: bool,
    /// The buyer's user and contact fields, where the order carried them (V1 orders,
    /// docs/protocol/callbacks.md §11); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buyer: Option<WebhookBuyer>,
}

/// The buyer of a V1 order, the phone and e-mail decrypted (docs/protocol/callbacks.md §3.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookBuyer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mobile_phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExtendParam {
    pub name: String,
    pub value: String,
}

/// What a `refreshed`, `upgraded`, `released` or `quotaExhausted` event adds.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged, rename_all_fields = "camelCase")]
pub enum WebhookDetail {
    Refreshed {
        /// `TRIAL_TO_FORMAL`, `RENEWAL`, `UNSUBSCRIBE_RENEWAL_PERIOD`, `RENEWAL_CHANGE`, or a scene
        /// KooGallery added since, by its name.
        scene: String,
        order_id: String,
        /// Absent when KooGallery named no order line (a V1 call).
        #[serde(skip_serializing_if = "Option::is_none")]
        order_line_id: Option<String>,
        expire_time: DateTime<Utc>,
        #[serde(skip_serializing_if = "Option::is_none")]
        product_id: Option<String>,
    },
    Upgraded {
        order_id: String,
        order_line_id: String,
    },
    Released {
        #[serde(skip_serializing_if = "Option::is_none")]
        order_id: Option<String>,
    },
    /// The package's quota (a decimal string, in the on-demand SKU's metering unit).
    QuotaExhausted { quota: String },
}

fn state_name(state: InstanceState) -> &'static str {
    match state {
        InstanceState::Provisioning => "provisioning",
        InstanceState::Active => "active",
        InstanceState::Failed => "failed",
        InstanceState::Frozen => "frozen",
        InstanceState::Released => "released",
    }
}

fn event_name(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::Refreshed { .. } => "refreshed",
        EventKind::Frozen => "frozen",
        EventKind::Unfrozen => "unfrozen",
        EventKind::Upgraded { .. } => "upgraded",
        EventKind::Released { .. } => "released",
        EventKind::QuotaExhausted { .. } => "quotaExhausted",
        // A provision call was made and the order then failed: to the vendor, a release of
        // whatever that call created (`state` says `failed`).
        EventKind::ProvisioningFailed { .. } => "released",
        // Not lifecycle notices; never sent, named for completeness.
        EventKind::Created { .. } => "created",
        EventKind::ProvisioningStarted { .. } => "provisioning_started",
        EventKind::Provisioned => "provisioned",
        EventKind::DebugRestarted { .. } => "debug_restarted",
    }
}

fn charging_mode(mode: ChargingMode) -> &'static str {
    match mode {
        ChargingMode::Period => "PERIOD",
        ChargingMode::OneTime => "ONE_TIME",
        ChargingMode::OnDemand => "ON_DEMAND",
        ChargingMode::OnDemandPkg => "ON_DEMAND_PKG",
    }
}

impl From<&OrderDetails> for WebhookOrder {
    fn from(o: &OrderDetails) -> Self {
        Self {
            order_type: o.order_type.clone(),
            charging_mode: o.charging_mode.map(charging_mode),
            period_type: o.period_type.clone(),
            period_number: o.period_number,
            product_id: o.product_id.clone(),
            sku_code: o.sku_code.clone(),
            product_name: o.product_name.clone(),
            quantity: o.quantity,
            expire_time: o.expire_time,
            customer_id: o.customer_id.clone(),
            customer_name: o.customer_name.clone(),
            extend_params: o
                .extend_params
                .iter()
                .map(|(name, value)| ExtendParam {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
            offline: o.offline,
            buyer: (o.buyer != koogallery::order::BuyerContact::default()).then(|| WebhookBuyer {
                user_id: o.buyer.user_id.clone(),
                user_name: o.buyer.user_name.clone(),
                mobile_phone: o.buyer.mobile_phone.clone(),
                email: o.buyer.email.clone(),
            }),
        }
    }
}

impl WebhookEvent {
    /// A new instance to provision.
    pub fn provision(request: &ProvisionRequest) -> Self {
        Self {
            version: WEBHOOK_EVENT_VERSION,
            event: "provision",
            event_id: format!("{}:provision", request.instance_id),
            seq: 0,
            instance_id: Some(request.instance_id.clone()),
            order_id: request.order_id.clone().into(),
            order_line_id: request.order_line_id.clone().into(),
            state: state_name(InstanceState::Provisioning),
            expire_time: request.order.expire_time,
            order: Some(WebhookOrder::from(&request.order)),
            detail: None,
        }
    }

    /// A paid order line (orderNotify): `state` is `paid`, `order` what Query Order answered, and
    /// `eventId` is `order:<orderId>:<orderLineId>` (the vendor's idempotency key).
    pub fn order(paid: &OrderPaid) -> Self {
        Self {
            version: WEBHOOK_EVENT_VERSION,
            event: "order",
            event_id: format!("order:{}:{}", paid.order_id, paid.order_line_id),
            seq: 0,
            instance_id: None,
            order_id: paid.order_id.clone().into(),
            order_line_id: paid.order_line_id.clone().into(),
            state: "paid",
            expire_time: paid.order.expire_time,
            order: Some(WebhookOrder::from(&paid.order)),
            detail: None,
        }
    }

    /// A lifecycle change: the event's own resulting state, not the instance's state now.
    pub fn notice(notice: &LifecycleNotice) -> Self {
        let (i, e) = (&notice.instance, &notice.event);
        let detail = match &e.kind {
            EventKind::Refreshed {
                scene,
                order_id,
                order_line_id,
                expire_time,
                product_id,
            } => Some(WebhookDetail::Refreshed {
                scene: scene.as_str().to_owned(),
                order_id: order_id.clone().into(),
                order_line_id: order_line_id.clone().map(Into::into),
                expire_time: *expire_time,
                product_id: product_id.clone(),
            }),
            EventKind::Upgraded {
                order_id,
                order_line_id,
            } => Some(WebhookDetail::Upgraded {
                order_id: order_id.clone().into(),
                order_line_id: order_line_id.clone().into(),
            }),
            EventKind::Released { order_id } => Some(WebhookDetail::Released {
                order_id: order_id.clone().map(Into::into),
            }),
            EventKind::ProvisioningFailed { .. } => {
                Some(WebhookDetail::Released { order_id: None })
            }
            EventKind::QuotaExhausted { quota } => Some(WebhookDetail::QuotaExhausted {
                quota: quota.normalize().to_string(),
            }),
            _ => None,
        };
        Self {
            version: WEBHOOK_EVENT_VERSION,
            event: event_name(&e.kind),
            event_id: format!("{}:{}", i.instance_id, e.seq),
            seq: e.seq,
            instance_id: Some(i.instance_id.clone().into()),
            order_id: i.order_id.clone().into(),
            order_line_id: i.order_line_id.clone().into(),
            state: state_name(e.to),
            expire_time: i.expire_time,
            order: i.order.as_ref().map(WebhookOrder::from),
            detail,
        }
    }
}

#[cfg(test)]
mod tests;
