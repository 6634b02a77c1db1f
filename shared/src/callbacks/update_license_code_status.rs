//! `updateLicenseCodeStatus` (docs/protocol/openapi.md §6.2; docs/protocol/decisions.md §21):
//! FREEZE or UNFREEZE; a status the code already has is a repeat. The legacy `expireLicense`
//! (V1 GET, §6.4) arrives here translated as a FREEZE.

use async_trait::async_trait;

use super::{Callback, CallbackError, Resources, license_sync::LicenseSync};
use crate::{
    config::ConfigError,
    license::LicenseChange,
    protocol::{Reply, license::UpdateLicenseCodeStatusRequest},
    security::KeyUsed,
};

pub struct UpdateLicenseCodeStatus(LicenseSync);

#[async_trait]
impl Callback for UpdateLicenseCodeStatus {
    type Request = UpdateLicenseCodeStatusRequest;

    fn from_resources(r: &Resources) -> Result<Self, ConfigError> {
        LicenseSync::from_resources(r).map(Self)
    }

    async fn handle(
        &self,
        req: UpdateLicenseCodeStatusRequest,
        _key: KeyUsed,
    ) -> Result<Reply, CallbackError> {
        let change = if req.freeze() {
            LicenseChange::Freeze
        } else {
            LicenseChange::Unfreeze
        };
        self.0.apply(&req.license, change).await
    }

    /// docs/protocol/decisions.md §7: success, nothing stored.
    async fn handle_debug(&self, _req: UpdateLicenseCodeStatusRequest, _key: KeyUsed) -> Reply {
        Reply::success()
    }
}
