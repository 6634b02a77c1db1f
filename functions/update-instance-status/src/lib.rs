//! `updateInstanceStatus` (spec callbacks §6.4): FREEZE / UNFREEZE, idempotent. Frozen keeps all data
//! (the ≤ 15-day freeze period, callbacks §1).

use koogallery::{
    CallbackError,
    services::{Services, change_instance, run_callback},
    wire::{Reply, StatusAction, UpdateInstanceStatusRequest},
};

pub async fn handle(svc: &Services, body: &serde_json::Value) -> Reply {
    run_callback("updateInstanceStatus", body, |req| {
        update_instance_status(svc, req)
    })
    .await
}

pub async fn update_instance_status(
    svc: &Services,
    req: UpdateInstanceStatusRequest,
) -> Result<Reply, CallbackError> {
    let now = svc.clock.now();
    change_instance(svc, &req.instance_id, |i| match req.status {
        StatusAction::Freeze => i.freeze(now),
        StatusAction::Unfreeze => i.unfreeze(now),
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use koogallery::{
        ResultCode,
        domain::{Instance, InstanceState, Outcome},
        memory::TestBed,
        ports::InstanceStore,
        wire::AppInfo,
    };
    use serde_json::json;

    async fn seed(bed: &TestBed, active: bool) {
        let now = chrono::Utc::now();
        let (mut i, ev) = Instance::new_provisioning("O", "O-1", "i1", false, now);
        let mut evs = vec![ev];
        if active {
            let app = AppInfo {
                front_end_url: "https://a".into(),
                admin_url: None,
                user_name: None,
                password: None,
                memo: None,
            };
            let Outcome::Changed(e) = i.activate(app, now).unwrap() else {
                panic!()
            };
            evs.push(e);
        }
        bed.store.create_for_order_line(&i, &evs).await.unwrap();
    }

    fn body(status: &str) -> serde_json::Value {
        json!({"activity":"updateInstanceStatus","instanceId":"i1","status":status})
    }

    #[tokio::test]
    async fn freeze_and_unfreeze_are_idempotent() {
        let bed = TestBed::default_keys();
        seed(&bed, true).await;
        for (status, state) in [
            ("FREEZE", InstanceState::Frozen),
            ("FREEZE", InstanceState::Frozen),
            ("UNFREEZE", InstanceState::Active),
            ("UNFREEZE", InstanceState::Active),
        ] {
            let r = handle(&bed.services, &body(status)).await;
            assert_eq!(
                r.result_code,
                ResultCode::Success,
                "{status}: {}",
                r.result_msg
            );
            assert_eq!(bed.store.get_instance("i1").await.state, state);
        }
        let kinds: Vec<String> = bed
            .store
            .events("i1")
            .await
            .unwrap()
            .iter()
            .map(|e| e.kind.name().to_owned())
            .collect();
        assert_eq!(kinds, ["created", "provisioned", "frozen", "unfrozen"]);
    }

    #[tokio::test]
    async fn errors_unknown_bad_status_and_still_provisioning() {
        let bed = TestBed::default_keys();
        assert_eq!(
            handle(&bed.services, &body("FREEZE")).await.result_code,
            ResultCode::InstanceNotFound
        );
        seed(&bed, false).await;
        assert_eq!(
            handle(&bed.services, &body("PAUSE")).await.result_code,
            ResultCode::InvalidParameter
        );
        let r = handle(&bed.services, &body("FREEZE")).await;
        assert_eq!(
            r.result_code,
            ResultCode::InternalError,
            "retryable: provisioning is not finished"
        );
        assert_eq!(
            bed.store.get_instance("i1").await.state,
            InstanceState::Provisioning
        );
    }
}
