//! `refreshLicenseCode` (docs/protocol/openapi.md §6.1; docs/protocol/decisions.md §21): a renewal
//! (or a renewal period refunded) sets the code's expiry; idempotent per (license, orderId, scene).
//! The legacy `refreshLicense` (V1 GET, §6.4) arrives here translated.

use async_trait::async_trait;

use super::{Callback, CallbackError, Resources, license_sync::LicenseSync};
use crate::{
    config::ConfigError,
    license::{LicenseChange, RenewScene},
    protocol::{Reply, license::RefreshLicenseCodeRequest, time::parse_compact},
    security::KeyUsed,
};

pub struct RefreshLicenseCode(LicenseSync);

#[async_trait]
impl Callback for RefreshLicenseCode {
    type Request = RefreshLicenseCodeRequest;

    fn from_resources(r: &Resources) -> Result<Self, ConfigError> {
        LicenseSync::from_resources(r).map(Self)
    }

    async fn handle(
        &self,
        req: RefreshLicenseCodeRequest,
        _key: KeyUsed,
    ) -> Result<Reply, CallbackError> {
        // Both validated by the request.
        let (Some(scene), Some(expire_time)) = (
            RenewScene::parse(&req.scene),
            parse_compact(req.expire_time.trim()),
        ) else {
            return Err(CallbackError::InvalidParameter(
                "scene or expireTime is invalid".into(),
            ));
        };
        let change = LicenseChange::Renew {
            order_id: req.order_id.trim().to_owned(),
            order_line_id: req.order_line_id,
            scene,
            product_id: req.product_id,
            expire_time,
        };
        self.0.apply(&req.license, change).await
    }

    /// docs/protocol/decisions.md §7: success, nothing stored.
    async fn handle_debug(&self, _req: RefreshLicenseCodeRequest, _key: KeyUsed) -> Reply {
        Reply::success()
    }
}
