//! `releaseInstance` (spec callbacks §6.5): the end of an instance. A repeat is success and does
//! nothing again. The record and its history stay (released), so late repeats still answer `000000`.

use koogallery::{
    CallbackError,
    domain::Outcome,
    services::{Services, change_instance, run_callback},
    wire::{ReleaseInstanceRequest, Reply},
};

pub async fn handle(svc: &Services, body: &serde_json::Value) -> Reply {
    run_callback("releaseInstance", body, |req| release_instance(svc, req)).await
}

pub async fn release_instance(
    svc: &Services,
    req: ReleaseInstanceRequest,
) -> Result<Reply, CallbackError> {
    let now = svc.clock.now();
    change_instance(
        svc,
        &req.instance_id,
        |i| -> Result<Outcome, CallbackError> { Ok(i.release(req.order_id.clone(), now)) },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use koogallery::{
        ResultCode,
        domain::InstanceState,
        memory::TestBed,
        ports::{InstanceStore, Job},
    };
    use serde_json::json;

    #[tokio::test]
    async fn release_then_repeat_is_success_and_notifies_once() {
        let bed = TestBed::default_keys();
        bed.seed("i1", true).await;
        let body = json!({"activity":"releaseInstance","instanceId":"i1","orderId":"U1"});
        assert_eq!(
            handle(&bed.services, &body).await.result_code,
            ResultCode::Success
        );
        assert_eq!(
            bed.store.get_instance("i1").await.state,
            InstanceState::Released
        );
        let jobs = bed.queue.take_all();
        assert_eq!(
            jobs,
            vec![Job::Notify {
                instance_id: "i1".into(),
                seq: 2
            }]
        );
        assert_eq!(
            handle(&bed.services, &body).await.result_code,
            ResultCode::Success
        );
        assert_eq!(bed.store.events("i1").await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn unknown_instance_is_000003() {
        let bed = TestBed::default_keys();
        let r = handle(
            &bed.services,
            &json!({"activity":"releaseInstance","instanceId":"nope"}),
        )
        .await;
        assert_eq!(r.result_code, ResultCode::InstanceNotFound);
    }
}
