//! The legacy `getLicense` (V1 GET, docs/protocol/openapi.md §6.4): this service issues the
//! license code for a purchase and answers it as both `license` and `instanceId`, so the later
//! `refreshLicense`, `expireLicense` and `releaseLicense` (which name the instance) reach the same
//! record. Idempotent per `orderId`: the code is derived from it (UUIDv5), so every repeat, a
//! concurrent one included, answers the same code.

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

/// The code issued for a legacy purchase: `LG` and 32 hex digits of UUIDv5(`orderId`) (34
/// characters: within the 64 of `instanceId` and of a license code, globally unique).
pub fn legacy_code(order_id: &str) -> LicenseCode {
    /// This product's UUIDv5 namespace for legacy license codes (fixed: changing it would change
    /// the codes already issued).
    const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6b6f_6f67_616c_6c65_7279_2d6c_6963_3031);
    let id = uuid::Uuid::new_v5(&NAMESPACE, order_id.trim().as_bytes());
    LicenseCode::parse(&format!(
        "LG{}",
        id.simple().to_string().to_ascii_uppercase()
    ))
    .expect("34 ASCII characters")
}

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
        let code = legacy_code(&req.order_id);
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
        answer(&legacy_code(&format!("debug:{}", req.order_id.trim())))
    }
}
