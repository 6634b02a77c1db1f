//! The order behind an instance, as KooGallery's Query Order describes it
//! (docs/protocol/openapi.md §2), and the port through which the worker reads it
//! ([`MarketplaceClient`]). [`offline`] answers without calling KooGallery until the real client is
//! configured.

use crate::failure::Detail;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

mod id;
pub mod notice;
pub mod offline;

pub use id::{OrderId, OrderLineId};

/// Billing mode of an order line (Query Order `chargingMode`, docs/protocol/openapi.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChargingMode {
    Period,
    OneTime,
    OnDemand,
    OnDemandPkg,
}

/// What the worker learns about the order from the marketplace (Query Order,
/// docs/protocol/openapi.md §2).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrderDetails {
    pub order_type: Option<String>,
    pub charging_mode: Option<ChargingMode>,
    pub period_type: Option<String>,
    pub period_number: Option<u32>,
    pub product_id: Option<String>,
    pub sku_code: Option<String>,
    pub product_name: Option<String>,
    /// Linear attribute quantity (users, Mbps, …).
    pub quantity: Option<f64>,
    pub expire_time: Option<DateTime<Utc>>,
    pub customer_id: Option<String>,
    pub customer_name: Option<String>,
    /// Extension parameters (`name`/`value`) of the order and the line.
    pub extend_params: Vec<(String, String)>,
    /// Synthesised by the offline marketplace client, not read from KooGallery.
    pub offline: bool,
    /// Who bought it, where the call said (V1 newInstance carries it; V2 orders do not).
    pub buyer: BuyerContact,
    /// Carried by a V1 call (docs/protocol/callbacks.md §11): Query Order is never asked about it.
    pub v1: bool,
}

/// The buyer's user and contact fields of a V1 newInstance (docs/protocol/callbacks.md §11), the
/// phone and e-mail decrypted. Personal data: kept with the order for the vendor, never logged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuyerContact {
    /// The IAM sub-user, if the buyer was one.
    pub user_id: Option<String>,
    pub user_name: Option<String>,
    pub mobile_phone: Option<String>,
    pub email: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MarketplaceError {
    /// KooGallery knows no such order (or line): retrying will not help.
    #[error("order not found: {0}")]
    NotFound(#[source] Detail),
    /// Network, throttling or server errors: retry.
    #[error("marketplace unavailable: {0}")]
    Unavailable(#[source] Detail),
    /// The marketplace refused our credentials (a wrong AK/SK, no permission): retried, because
    /// the order is good, and logged loudly until the setup is fixed.
    #[error("marketplace refused our credentials: {0}")]
    Misconfigured(#[source] Detail),
}

impl MarketplaceError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Misconfigured(_))
    }
}

/// Calls KooGallery's open APIs (Query Order today; usage push and License later).
#[async_trait]
pub trait MarketplaceClient: Send + Sync {
    async fn query_order(
        &self,
        order_id: &OrderId,
        order_line_id: &OrderLineId,
    ) -> Result<OrderDetails, MarketplaceError>;
}
