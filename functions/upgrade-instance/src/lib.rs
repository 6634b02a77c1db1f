//! `upgradeInstance` (spec callbacks §6.6): an upgrade order on an unchanged instance. Recorded here
//! (idempotent per instanceId, orderId, orderLineId); the worker reads the new spec from the
//! marketplace and tells the provisioner.

use koogallery::{
    CallbackError,
    services::{Services, change_instance, run_callback},
    wire::{Reply, UpgradeInstanceRequest},
};

pub async fn handle(svc: &Services, body: &serde_json::Value) -> Reply {
    run_callback("upgradeInstance", body, |req| upgrade_instance(svc, req)).await
}

pub async fn upgrade_instance(
    svc: &Services,
    req: UpgradeInstanceRequest,
) -> Result<Reply, CallbackError> {
    let now = svc.clock.now();
    change_instance(svc, &req.instance_id, |i| {
        i.upgrade(&req.order_id, &req.order_line_id, now)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use koogallery::{
        ResultCode,
        memory::TestBed,
        ports::{InstanceStore, Job},
    };
    use serde_json::json;

    #[tokio::test]
    async fn upgrade_is_recorded_once_and_queued_for_the_worker() {
        let bed = TestBed::default_keys();
        bed.seed("i1", true).await;
        let body = json!({"activity":"upgradeInstance","instanceId":"i1","orderId":"UP1","orderLineId":"UP1-000001"});
        assert_eq!(
            handle(&bed.services, &body).await.result_code,
            ResultCode::Success
        );
        assert_eq!(
            handle(&bed.services, &body).await.result_code,
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
        let r = handle(
            &bed.services,
            &json!({"activity":"upgradeInstance","instanceId":"x","orderId":"U","orderLineId":"L"}),
        )
        .await;
        assert_eq!(r.result_code, ResultCode::InstanceNotFound);
        let r = handle(
            &bed.services,
            &json!({"activity":"upgradeInstance","instanceId":"x","orderId":"U"}),
        )
        .await;
        assert_eq!(r.result_code, ResultCode::InvalidParameter);
    }
}
