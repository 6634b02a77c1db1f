//! `changeInstanceCheck` (docs/protocol/callbacks.md §6.7): may the instance change to
//! `productInfo` at renewal? `000000` allows it. With no usage figures to compare yet, every change
//! of a live instance is allowed; an unknown or released instance is `000003`, a failed one
//! `000005`. Nothing is written.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Callback, CallbackError, Resources};
use crate::{
    config::ConfigError,
    instance::{Change, DomainError, InstanceState, InstanceStore},
    protocol::{Reply, v2_basic::ChangeInstanceCheckRequest},
    security::KeyUsed,
};

pub struct ChangeInstanceCheck {
    store: Arc<dyn InstanceStore>,
}

#[async_trait]
impl Callback for ChangeInstanceCheck {
    type Request = ChangeInstanceCheckRequest;

    fn from_resources(r: &Resources) -> Result<Self, ConfigError> {
        Ok(Self {
            store: r.store.clone(),
        })
    }

    async fn handle(
        &self,
        req: ChangeInstanceCheckRequest,
        _key: KeyUsed,
    ) -> Result<Reply, CallbackError> {
        let instance = self
            .store
            .get(&req.instance_id)
            .await
            .map_err(DomainError::from)?
            .ok_or_else(|| DomainError::NotFound(req.instance_id.clone().into()))?;
        instance.ensure_not_released()?;
        if instance.state == InstanceState::Failed {
            return Err(DomainError::ProvisioningFailed {
                instance_id: req.instance_id,
                change: Change::RenewalChange,
            }
            .into());
        }
        tracing::info!(
            instance_id = %req.instance_id,
            products = req.product_info.len(),
            product_id = ?req.product_info.first().and_then(|p| p.product_id.as_deref()),
            sku_code = ?req.product_info.first().and_then(|p| p.sku_code.as_deref()),
            "renewal change allowed"
        );
        Ok(Reply::success())
    }

    /// docs/protocol/decisions.md §7: a debug check reads nothing and allows the change.
    async fn handle_debug(&self, _req: ChangeInstanceCheckRequest, _key: KeyUsed) -> Reply {
        Reply::success()
    }
}

#[cfg(test)]
mod tests {
    use crate::{
        ResultCode,
        instance::{Instance, InstanceStore},
        testing::TestBed,
    };
    use serde_json::json;

    #[tokio::test]
    async fn live_instance_may_change_unknown_may_not() {
        let bed = TestBed::default_keys();
        let body = json!({"activity":"changeInstanceCheck","instanceId":"i1",
                          "productInfo":{"productId":"P2","skuCode":"S2","linearValue":10}});
        assert_eq!(
            bed.call("changeInstanceCheck", &body).await.result_code,
            ResultCode::InstanceNotFound
        );
        let (i, ev) =
            Instance::new_provisioning(&"O".into(), &"O-1".into(), "i1", false, chrono::Utc::now());
        bed.store.create_for_order_line(&i, &[ev]).await.unwrap();
        assert_eq!(
            bed.call("changeInstanceCheck", &body).await.result_code,
            ResultCode::Success
        );
        // docs/protocol/decisions.md §11 (revised): an absent productInfo is accepted; one that
        // cannot be a product is still refused.
        let no_product = json!({"activity":"changeInstanceCheck","instanceId":"i1"});
        assert_eq!(
            bed.call("changeInstanceCheck", &no_product)
                .await
                .result_code,
            ResultCode::Success
        );
        let bad_product =
            json!({"activity":"changeInstanceCheck","instanceId":"i1","productInfo":42});
        assert_eq!(
            bed.call("changeInstanceCheck", &bad_product)
                .await
                .result_code,
            ResultCode::InvalidParameter
        );
        assert_eq!(
            bed.store.events("i1").await.unwrap().len(),
            1,
            "a check writes nothing"
        );
    }
}
