//! `releaseInstance` (docs/protocol/callbacks.md §6.5): the end of an instance. A repeat is success
//! and does nothing again. The record and its history stay (released), so late repeats still answer
//! `000000`.

use async_trait::async_trait;

use super::{Callback, CallbackError, InstanceChanger, Resources};
use crate::{
    config::ConfigError,
    order::OrderId,
    protocol::{Reply, v2_basic::ReleaseInstanceRequest},
    security::KeyUsed,
};

pub struct ReleaseInstance(InstanceChanger);

#[async_trait]
impl Callback for ReleaseInstance {
    type Request = ReleaseInstanceRequest;

    fn from_resources(r: &Resources) -> Result<Self, ConfigError> {
        InstanceChanger::from_resources(r).map(Self)
    }

    async fn handle(
        &self,
        req: ReleaseInstanceRequest,
        _key: KeyUsed,
    ) -> Result<Reply, CallbackError> {
        self.0
            .change(&req.instance_id, |i, now| {
                Ok(i.release(req.order_id.clone().map(OrderId::new), now))
            })
            .await
    }

    /// docs/protocol/decisions.md §7: releases the debug record, if any; never a real one. Always
    /// `000000`.
    async fn handle_debug(&self, req: ReleaseInstanceRequest, _key: KeyUsed) -> Reply {
        self.0
            .change_debug(&req.instance_id, |i, now| {
                Ok(i.release(req.order_id.clone().map(OrderId::new), now))
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use crate::{
        ResultCode, instance::InstanceState, instance::InstanceStore, jobs::Job, testing::TestBed,
    };
    use serde_json::json;

    #[tokio::test]
    async fn release_then_repeat_is_success_and_notifies_once() {
        let bed = TestBed::default_keys();
        bed.seed("i1", true).await;
        let body = json!({"activity":"releaseInstance","instanceId":"i1","orderId":"U1"});
        assert_eq!(
            bed.call("releaseInstance", &body).await.result_code,
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
            bed.call("releaseInstance", &body).await.result_code,
            ResultCode::Success
        );
        assert_eq!(bed.store.events("i1").await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn unknown_instance_is_000003() {
        let bed = TestBed::default_keys();
        let r = bed
            .call(
                "releaseInstance",
                &json!({"activity":"releaseInstance","instanceId":"nope"}),
            )
            .await;
        assert_eq!(r.result_code, ResultCode::InstanceNotFound);
    }
}
