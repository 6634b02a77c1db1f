//! `upgradeInstance` (docs/protocol/callbacks.md §6.6): an upgrade order on an unchanged instance.
//! Recorded here (idempotent per instanceId, orderId, orderLineId); the worker reads the new spec
//! from the marketplace and tells the provisioner.

use async_trait::async_trait;

use super::{Callback, CallbackError, InstanceChanger, Resources};
use crate::{
    config::ConfigError,
    instance::Outcome,
    order::{OrderId, OrderLineId},
    protocol::{Reply, v2_basic::UpgradeInstanceRequest},
    security::KeyUsed,
};

pub struct UpgradeInstance(InstanceChanger);

#[async_trait]
impl Callback for UpgradeInstance {
    type Request = UpgradeInstanceRequest;

    fn from_resources(r: &Resources) -> Result<Self, ConfigError> {
        InstanceChanger::from_resources(r).map(Self)
    }

    async fn handle(
        &self,
        req: UpgradeInstanceRequest,
        _key: KeyUsed,
    ) -> Result<Reply, CallbackError> {
        // A V1 upgrade names the new spec itself (docs/protocol/callbacks.md §11): it goes on the
        // stored order with the upgrade, since Query Order is never asked about a V1 order.
        let v1_order = req.v1.as_ref().and_then(|v1| v1.order.clone());
        self.0
            .change(&req.instance_id, |i, now| {
                let outcome = i.upgrade(
                    &OrderId::from(&req.order_id),
                    &OrderLineId::from(&req.order_line_id),
                    now,
                )?;
                if let (Outcome::Changed(_), Some(new), Some(order)) =
                    (&outcome, &v1_order, i.order.as_mut())
                {
                    let quantity = new.quantity.as_deref().and_then(|q| q.trim().parse().ok());
                    for (slot, value) in [
                        (&mut order.sku_code, &new.sku_code),
                        (&mut order.product_id, &new.product_id),
                    ] {
                        if value.is_some() {
                            slot.clone_from(value);
                        }
                    }
                    if quantity.is_some() {
                        order.quantity = quantity;
                    }
                    if !new.extend_params.is_empty() {
                        order.extend_params.clone_from(&new.extend_params);
                    }
                }
                Ok(outcome)
            })
            .await
    }

    /// docs/protocol/decisions.md §7: records the upgrade on the debug record, if any; never a real
    /// one. Always `000000`.
    async fn handle_debug(&self, req: UpgradeInstanceRequest, _key: KeyUsed) -> Reply {
        self.0
            .change_debug(&req.instance_id, |i, now| {
                i.upgrade(
                    &OrderId::from(&req.order_id),
                    &OrderLineId::from(&req.order_line_id),
                    now,
                )
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use crate::{ResultCode, instance::InstanceStore, jobs::Job, testing::TestBed};
    use serde_json::json;

    #[tokio::test]
    async fn upgrade_is_recorded_once_and_queued_for_the_worker() {
        let bed = TestBed::default_keys();
        bed.seed("i1", true).await;
        let body = json!({"activity":"upgradeInstance","instanceId":"i1","orderId":"UP1","orderLineId":"UP1-000001"});
        assert_eq!(
            bed.call("upgradeInstance", &body).await.result_code,
            ResultCode::Success
        );
        assert_eq!(
            bed.call("upgradeInstance", &body).await.result_code,
            ResultCode::Success
        );
        let kinds: Vec<String> = bed
            .store
            .events("i1")
            .await
            .unwrap()
            .iter()
            .map(|e| e.kind.name().to_owned())
            .collect();
        assert_eq!(kinds, ["created", "provisioned", "upgraded"]);
        assert!(bed.queue.take_all().contains(&Job::Notify {
            instance_id: "i1".into(),
            seq: 2
        }));
    }

    #[tokio::test]
    async fn unknown_instance_is_000003_and_missing_order_line_000002() {
        let bed = TestBed::default_keys();
        let r = bed.call(
            "upgradeInstance",
            &json!({"activity":"upgradeInstance","instanceId":"x","orderId":"U","orderLineId":"L"}),
        )
        .await;
        assert_eq!(r.result_code, ResultCode::InstanceNotFound);
        let r = bed
            .call(
                "upgradeInstance",
                &json!({"activity":"upgradeInstance","instanceId":"x","orderId":"U"}),
            )
            .await;
        assert_eq!(r.result_code, ResultCode::InvalidParameter);
    }
}
