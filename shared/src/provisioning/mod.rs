//! Provisioning: creating the vendor's resources for a new instance and telling the vendor's
//! systems about every later lifecycle change (the notices of
//! docs/protocol/callbacks.md §6.3–§6.6). The [`Provisioner`] port is implemented by the worker's
//! static and webhook provisioners and by the test fakes.

use crate::failure::Detail;
use async_trait::async_trait;

use crate::{
    ResultCode,
    instance::{AccessInfo, Instance, InstanceEvent},
    order::{OrderDetails, OrderId, OrderLineId},
};

/// What the provisioner needs to create an instance.
#[derive(Debug, Clone, PartialEq)]
pub struct ProvisionRequest {
    pub instance_id: String,
    pub order_id: OrderId,
    pub order_line_id: OrderLineId,
    pub order: OrderDetails,
}

/// A lifecycle change after provisioning, for the vendor's own systems.
#[derive(Debug, Clone, PartialEq)]
pub struct LifecycleNotice {
    pub instance: Instance,
    pub event: InstanceEvent,
}

/// Directory events of one tenant (the Kit syncs, docs/protocol/callbacks.md §9), in `seq` order,
/// for the vendor.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectoryNotice {
    pub tenant: crate::directory::TenantKey,
    pub event: crate::directory::DirectoryEvent,
}

/// An event of one license code (docs/protocol/openapi.md §6), in `seq` order, for the vendor.
#[derive(Debug, Clone, PartialEq)]
pub struct LicenseNotice {
    pub license: crate::license::LicenseCode,
    pub event: crate::license::LicenseEvent,
}

/// A paid order line (an `orderNotify`, docs/protocol/callbacks.md §6.8) as Query Order describes
/// it: for products sold without the SaaS lifecycle (one-time, License, …) this is all the vendor
/// hears.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderPaid {
    pub order_id: OrderId,
    pub order_line_id: OrderLineId,
    pub order: OrderDetails,
}

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The vendor said no for good: the order fails with `code` and KooGallery refunds it.
    #[error("provisioning rejected ({code}): {message}")]
    Rejected { code: ResultCode, message: String },
    /// Could not reach or finish: retry with backoff.
    #[error("provisioning temporarily failed: {0}")]
    Transient(#[source] Detail),
    /// The vendor's endpoint turned us away without a KooGallery answer (HTTP 401, 403, 404: a
    /// WAF, a rotated secret, a wrong path). Not the vendor's "no": retried like an outage, and
    /// alarmed, because it will not heal by itself.
    #[error("provisioner misconfigured: {0}")]
    Misconfigured(#[source] Detail),
}

impl ProvisionError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Transient(_) | Self::Misconfigured(_))
    }
}

/// Creates the vendor's resources for an instance and hears about its later changes.
#[async_trait]
pub trait Provisioner: Send + Sync {
    /// Creates (or, if it exists already, returns) the instance's resources. Must be idempotent per
    /// `instance_id`: a retried job may call it again after a crash.
    async fn provision(&self, request: &ProvisionRequest) -> Result<AccessInfo, ProvisionError>;

    /// A lifecycle change of a provisioned instance. Idempotent per (`instance_id`, `event.seq`).
    async fn notify(&self, notice: &LifecycleNotice) -> Result<(), ProvisionError>;

    /// An order line was paid. Idempotent per (`order_id`, `order_line_id`). A provisioner with
    /// nobody to tell (the static one) lets it pass.
    /// A tenant directory event. Idempotent per (`tenant`, `event.seq`); called in `seq` order. A
    /// provisioner with nobody to tell (the static one) lets it pass: the vendor reads the
    /// directory through the port instead.
    async fn directory_changed(&self, notice: &DirectoryNotice) -> Result<(), ProvisionError> {
        tracing::info!(
            tenant_id = notice.tenant.tenant_id.as_str(),
            seq = notice.event.seq,
            event = notice.event.body.name(),
            "directory changed; this provisioner has nobody to tell"
        );
        Ok(())
    }

    /// A license code's event. Idempotent per (`license`, `event.seq`); called in `seq` order. A
    /// provisioner with nobody to tell lets it pass: the license service answers the software
    /// from the store either way.
    async fn license_changed(&self, notice: &LicenseNotice) -> Result<(), ProvisionError> {
        tracing::info!(
            license = %notice.license.masked(),
            seq = notice.event.seq,
            event = notice.event.body.name(),
            "license changed; this provisioner has nobody to tell"
        );
        Ok(())
    }

    async fn order_paid(&self, paid: &OrderPaid) -> Result<(), ProvisionError> {
        tracing::info!(
            order_id = paid.order_id.as_str(),
            order_line_id = paid.order_line_id.as_str(),
            "order paid; this provisioner has nobody to tell"
        );
        Ok(())
    }
}
