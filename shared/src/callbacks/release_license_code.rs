//! `releaseLicenseCode` (docs/protocol/openapi.md §6.3; docs/protocol/decisions.md §21): final;
//! every later change of the code is a repeat. The legacy `releaseLicense` (V1 GET, §6.4) arrives
//! here translated.

use async_trait::async_trait;

use super::{Callback, CallbackError, Resources, license_sync::LicenseSync};
use crate::{
    config::ConfigError,
    license::LicenseChange,
    protocol::{Reply, license::ReleaseLicenseCodeRequest},
    security::KeyUsed,
};

pub struct ReleaseLicenseCode(LicenseSync);

#[async_trait]
impl Callback for ReleaseLicenseCode {
    type Request = ReleaseLicenseCodeRequest;

    fn from_resources(r: &Resources) -> Result<Self, ConfigError> {
        LicenseSync::from_resources(r).map(Self)
    }

    async fn handle(
        &self,
        req: ReleaseLicenseCodeRequest,
        _key: KeyUsed,
    ) -> Result<Reply, CallbackError> {
        let order_id = req
            .order_id
            .map(|o| o.trim().to_owned())
            .filter(|o| !o.is_empty());
        self.0
            .apply(&req.license, LicenseChange::Release { order_id })
            .await
    }

    /// docs/protocol/decisions.md §7: success, nothing stored.
    async fn handle_debug(&self, _req: ReleaseLicenseCodeRequest, _key: KeyUsed) -> Reply {
        Reply::success()
    }
}
