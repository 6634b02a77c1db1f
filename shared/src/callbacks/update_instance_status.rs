//! `updateInstanceStatus` (docs/protocol/callbacks.md §6.4): FREEZE / UNFREEZE, idempotent. Frozen
//! keeps all data (the ≤ 15-day freeze period, docs/protocol/callbacks.md §1).

use async_trait::async_trait;

use super::{Callback, CallbackError, InstanceChanger, Resources};
use crate::{
    config::ConfigError,
    protocol::{
        Reply,
        v2_basic::{StatusAction, UpdateInstanceStatusRequest},
    },
    security::KeyUsed,
};

pub struct UpdateInstanceStatus(InstanceChanger);

#[async_trait]
impl Callback for UpdateInstanceStatus {
    type Request = UpdateInstanceStatusRequest;

    fn from_resources(r: &Resources) -> Result<Self, ConfigError> {
        InstanceChanger::from_resources(r).map(Self)
    }

    async fn handle(
        &self,
        req: UpdateInstanceStatusRequest,
        _key: KeyUsed,
    ) -> Result<Reply, CallbackError> {
        self.0
            .change(&req.instance_id, |i, now| match req.status {
                StatusAction::Freeze => i.freeze(now),
                StatusAction::Unfreeze => i.unfreeze(now),
            })
            .await
    }

    /// docs/protocol/decisions.md §7: freezes or unfreezes the debug record, if any; never a real
    /// one. Always `000000`.
    async fn handle_debug(&self, req: UpdateInstanceStatusRequest, _key: KeyUsed) -> Reply {
        self.0
            .change_debug(&req.instance_id, |i, now| match req.status {
                StatusAction::Freeze => i.freeze(now),
                StatusAction::Unfreeze => i.unfreeze(now),
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use crate::{ResultCode, instance::InstanceState, instance::InstanceStore, testing::TestBed};
    use serde_json::json;

    async fn seed(bed: &TestBed, active: bool) {
        bed.seed("i1", active).await;
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
            let r = bed.call("updateInstanceStatus", &body(status)).await;
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
            bed.call("updateInstanceStatus", &body("FREEZE"))
                .await
                .result_code,
            ResultCode::InstanceNotFound
        );
        seed(&bed, false).await;
        assert_eq!(
            bed.call("updateInstanceStatus", &body("PAUSE"))
                .await
                .result_code,
            ResultCode::InvalidParameter
        );
        let r = bed.call("updateInstanceStatus", &body("FREEZE")).await;
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
