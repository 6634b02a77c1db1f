//! An instance's history: who did what, when, and the state before and after
//! (docs/protocol/callbacks.md §6; the lifecycle notices the vendor hears are the events
//! [`EventKind::is_lifecycle_notice`] picks).

use chrono::{DateTime, Utc};

use super::InstanceState;
pub use crate::refresh_scene::RefreshScene;
use crate::{
    ResultCode,
    order::{OrderId, OrderLineId},
};

/// Who caused a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A KooGallery callback.
    KooGallery { activity: String },
    /// The provisioning worker.
    Worker,
    /// Usage ingestion (a package's quota used up).
    Metering,
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    Created {
        business_id: String,
    },
    ProvisioningStarted {
        attempt: u32,
    },
    Provisioned,
    ProvisioningFailed {
        code: ResultCode,
        message: String,
    },
    Refreshed {
        scene: RefreshScene,
        order_id: OrderId,
        /// The refresh's order line; `None` when the call named none (a V1 call, or an event
        /// stored before it was kept).
        order_line_id: Option<OrderLineId>,
        expire_time: DateTime<Utc>,
        product_id: Option<String>,
    },
    Frozen,
    Unfrozen,
    Upgraded {
        order_id: OrderId,
        order_line_id: OrderLineId,
    },
    Released {
        order_id: Option<OrderId>,
    },
    /// A debug newInstance replayed a released debug instance (the daily probes replay whole
    /// cases).
    DebugRestarted {
        business_id: String,
    },
    /// A stop-when-used-up package's quota is used up (docs/protocol/openapi.md §3.2): the vendor
    /// stops the service it pays for. The state does not change: KooGallery ends the package
    /// itself.
    QuotaExhausted {
        quota: rust_decimal::Decimal,
    },
}

impl EventKind {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Created { .. } => "created",
            Self::ProvisioningStarted { .. } => "provisioning_started",
            Self::Provisioned => "provisioned",
            Self::ProvisioningFailed { .. } => "provisioning_failed",
            Self::Refreshed { .. } => "refreshed",
            Self::Frozen => "frozen",
            Self::Unfrozen => "unfrozen",
            Self::Upgraded { .. } => "upgraded",
            Self::Released { .. } => "released",
            Self::DebugRestarted { .. } => "debug_restarted",
            Self::QuotaExhausted { .. } => "quota_exhausted",
        }
    }

    /// Events the vendor's systems hear about through the provisioner's `notify`, once it has (or
    /// may have) created the instance. A provisioning failure is one only after a provision call:
    /// the vendor hears it as `released`, to remove whatever the call may have created.
    pub fn is_lifecycle_notice(&self) -> bool {
        matches!(
            self,
            Self::Refreshed { .. }
                | Self::Frozen
                | Self::Unfrozen
                | Self::Upgraded { .. }
                | Self::Released { .. }
                | Self::ProvisioningFailed { .. }
                | Self::QuotaExhausted { .. }
        )
    }

    /// After this notice the vendor hears nothing more about the instance.
    pub fn is_final_notice(&self) -> bool {
        matches!(
            self,
            Self::Released { .. } | Self::ProvisioningFailed { .. }
        )
    }
}

/// One entry of an instance's history: who, what, when, and the state before and after.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceEvent {
    pub instance_id: String,
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub kind: EventKind,
    pub from: Option<InstanceState>,
    pub to: InstanceState,
    /// Caused by a debug call (`testFlag=1`).
    pub test: bool,
}
