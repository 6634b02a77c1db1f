//! The legacy `getLicense` (V1 GET, docs/protocol/openapi.md §6.4): this service issues the
//! license code for a purchase and answers it as both `license` and `instanceId`, so the later
//! `refreshLicense`, `expireLicense` and `releaseLicense` (which name the instance) reach the same
//! record. Idempotent per `orderId`: the V1 translation derives the code from it with the V1 key
//! (`protocol::v1::legacy_license_code`), so every repeat, a concurrent one included, answers the
//! same code.

use async_trait::async_trait;

use super::{Callback, CallbackError, Resources, license_sync::LicenseSync};
use crate::{
    config::ConfigError,
    license::{LegacyPurchase, License, LicenseCode},
    protocol::{Reply, license::GetLicenseRequest, time::parse_compact},
    security::KeyUsed,
    storage::StoreError,
};

pub struct GetLicense(LicenseSync);

fn answer(code: &LicenseCode) -> Reply {
    Reply::success()
        .with("instanceId", code.as_str())
        .with("license", code.as_str())
}

#[async_trait]
impl Callback for GetLicense {
    type Request = GetLicenseRequest;

    fn from_resources(r: &Resources) -> Result<Self, ConfigError> {
        LicenseSync::from_resources(r).map(Self)
    }

    async fn handle(&self, req: GetLicenseRequest, _key: KeyUsed) -> Result<Reply, CallbackError> {
        let code = LicenseCode::parse(&req.license).map_err(CallbackError::InvalidParameter)?;
        let store = self.0.licenses.as_ref();
        let existing = store
            .get(&code)
            .await
            .map_err(|e| CallbackError::License(e.into()))?;
        let license = match existing {
            Some(l) => l,
            None => {
                let opt =
                    |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
                let purchase = LegacyPurchase {
                    order_id: req.order_id.trim().to_owned(),
                    product_id: req.product_id.trim().to_owned(),
                    customer_id: req.customer_id.trim().to_owned(),
                    amount: opt(req.amount).and_then(|a| a.parse().ok()),
                    expire_time: opt(req.expire_time).and_then(|t| parse_compact(&t)),
                };
                let mut l =
                    License::issue_legacy(code.clone(), purchase, false, self.0.clock.now());
                l.version = 1;
                match store.put(&l).await {
                    Ok(()) => l,
                    // A concurrent first call issued it: answer what it stored.
                    Err(StoreError::Conflict) => store
                        .get(&code)
                        .await
                        .map_err(|e| CallbackError::License(e.into()))?
                        .ok_or_else(|| CallbackError::License(StoreError::Conflict.into()))?,
                    Err(e) => return Err(CallbackError::License(e.into())),
                }
            }
        };
        self.0.notify(&license).await?;
        Ok(answer(&license.code))
    }

    /// docs/protocol/decisions.md §7: a stable code, nothing stored.
    async fn handle_debug(&self, req: GetLicenseRequest, _key: KeyUsed) -> Reply {
        match LicenseCode::parse(&req.license) {
            Ok(code) => answer(&code),
            Err(msg) => Reply::new(crate::ResultCode::InvalidParameter, msg),
        }
    }
}
