//! `changeInstanceCheck` (spec callbacks §6.7): may the instance change to `productInfo` at renewal?
//! `000000` allows it. With no usage figures to compare yet, every change of a live instance is
//! allowed; an unknown or released instance is `000003`, a failed one `000005`. Nothing is written.

use koogallery::{
    CallbackError, ResultCode,
    domain::InstanceState,
    services::{Services, run_callback},
    wire::{ChangeInstanceCheckRequest, Reply},
};

pub async fn handle(svc: &Services, body: &serde_json::Value) -> Reply {
    run_callback("changeInstanceCheck", body, |req| {
        change_instance_check(svc, req)
    })
    .await
}

pub async fn change_instance_check(
    svc: &Services,
    req: ChangeInstanceCheckRequest,
) -> Result<Reply, CallbackError> {
    let instance = svc
        .store
        .get(&req.instance_id)
        .await?
        .ok_or_else(|| CallbackError::InstanceNotFound(req.instance_id.clone()))?;
    match instance.state {
        InstanceState::Released => Err(CallbackError::InstanceNotFound(format!(
            "{} (released)",
            req.instance_id
        ))),
        InstanceState::Failed => Err(CallbackError::Rejected {
            code: ResultCode::InternalError,
            message: format!(
                "instance {} failed to provision; it cannot change",
                req.instance_id
            ),
        }),
        InstanceState::Provisioning | InstanceState::Active | InstanceState::Frozen => {
            tracing::info!(
                instance_id = %req.instance_id,
                product_id = ?req.product_info.product_id,
                sku_code = ?req.product_info.sku_code,
                "renewal change allowed"
            );
            Ok(Reply::success())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use koogallery::{domain::Instance, memory::TestBed, ports::InstanceStore};
    use serde_json::json;

    #[tokio::test]
    async fn live_instance_may_change_unknown_may_not() {
        let bed = TestBed::default_keys();
        let body = json!({"activity":"changeInstanceCheck","instanceId":"i1",
                          "productInfo":{"productId":"P2","skuCode":"S2","linearValue":10}});
        assert_eq!(
            handle(&bed.services, &body).await.result_code,
            ResultCode::InstanceNotFound
        );
        let (i, ev) = Instance::new_provisioning("O", "O-1", "i1", false, chrono::Utc::now());
        bed.store.create_for_order_line(&i, &[ev]).await.unwrap();
        assert_eq!(
            handle(&bed.services, &body).await.result_code,
            ResultCode::Success
        );
        let no_product = json!({"activity":"changeInstanceCheck","instanceId":"i1"});
        assert_eq!(
            handle(&bed.services, &no_product).await.result_code,
            ResultCode::InvalidParameter
        );
        assert_eq!(
            bed.store.events("i1").await.unwrap().len(),
            1,
            "a check writes nothing"
        );
    }
}
