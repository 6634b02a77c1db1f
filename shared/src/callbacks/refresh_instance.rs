//! `refreshInstance` (docs/protocol/callbacks.md §6.3): renewal, trial→formal, renewal
//! cancellation, change on renewal. Sets the expiry to the absolute `expireTime`; idempotent per
//! (instanceId, orderId, scene).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Callback, CallbackError, InstanceChanger, Resources};
use crate::{
    config::ConfigError,
    instance::{DomainError, Instance, InstanceState, Outcome, RefreshScene},
    order::{OrderId, OrderLineId},
    protocol::{Reply, time::parse_compact, v2_basic::RefreshInstanceRequest},
    security::KeyUsed,
};

pub struct RefreshInstance(InstanceChanger);

#[async_trait]
impl Callback for RefreshInstance {
    type Request = RefreshInstanceRequest;

    fn from_resources(r: &Resources) -> Result<Self, ConfigError> {
        InstanceChanger::from_resources(r).map(Self)
    }

    async fn handle(
        &self,
        req: RefreshInstanceRequest,
        _key: KeyUsed,
    ) -> Result<Reply, CallbackError> {
        let change = requested_change(&req).ok_or_else(|| {
            CallbackError::InvalidParameter(format!(
                "expireTime {:?} is not a time",
                req.expire_time
            ))
        })?;
        let reply = self.0.change(&req.instance_id, change).await?;
        // V1 has no unfreeze for period products (its instanceStatus is for on-demand and
        // packages, docs/protocol/callbacks.md §11): a renewal of an instance that expireInstance
        // froze lifts the freeze. A refunded renewal period does not.
        if req.v1.is_some() && req.scene != RefreshScene::UnsubscribeRenewalPeriod {
            return self
                .0
                .change(&req.instance_id, |i, now| match i.state {
                    InstanceState::Frozen => i.unfreeze(now),
                    _ => Ok(Outcome::Unchanged),
                })
                .await;
        }
        Ok(reply)
    }

    /// docs/protocol/decisions.md §7: sets the debug record's expiry, if there is one; never a real
    /// one's. Always `000000`.
    async fn handle_debug(&self, req: RefreshInstanceRequest, _key: KeyUsed) -> Reply {
        match requested_change(&req) {
            Some(change) => self.0.change_debug(&req.instance_id, change).await,
            // Not reached: the request's validation refuses an expireTime that does not parse.
            None => Reply::success(),
        }
    }
}

/// The change a refresh asks of an instance; `None` when its expireTime is not a time.
fn requested_change(
    req: &RefreshInstanceRequest,
) -> Option<impl FnMut(&mut Instance, DateTime<Utc>) -> Result<Outcome, DomainError> + Send + '_> {
    let expire_time = parse_compact(req.expire_time.trim())?;
    if let RefreshScene::Other(name) = &req.scene {
        // docs/protocol/decisions.md §11: set the expiry anyway; refusing could get a renewed
        // customer released.
        tracing::warn!(scene = %name, "unknown refreshInstance scene; expiry set as for a renewal");
    }
    let scene = req.scene.clone();
    let order_line_id = req
        .order_line_id
        .as_deref()
        .filter(|l| !l.is_empty())
        .map(OrderLineId::from);
    Some(move |i: &mut Instance, now| {
        i.refresh(
            scene.clone(),
            &OrderId::from(&req.order_id),
            order_line_id.as_ref(),
            req.product_id.clone(),
            expire_time,
            now,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ResultCode, jobs::Job, testing::TestBed};
    use serde_json::json;

    async fn active(bed: &TestBed) {
        bed.seed("i1", true).await;
    }

    fn body(scene: &str, order: &str, expire: &str) -> serde_json::Value {
        json!({"activity":"refreshInstance","instanceId":"i1","orderId":order,"orderLineId":format!("{order}-1"),
               "scene":scene,"expireTime":expire})
    }

    #[tokio::test]
    async fn every_scene_sets_the_expiry_and_repeats_are_success_without_new_history() {
        let bed = TestBed::default_keys();
        active(&bed).await;
        let cases = [
            ("TRIAL_TO_FORMAL", "F1", "20270101000000"),
            ("RENEWAL", "R1", "20280101000000"),
            ("UNSUBSCRIBE_RENEWAL_PERIOD", "R1", "20270101000000"),
            ("RENEWAL_CHANGE", "C1", "20290101000000123"),
        ];
        for (scene, order, exp) in cases {
            let r = bed.call("refreshInstance", &body(scene, order, exp)).await;
            assert_eq!(
                r.result_code,
                ResultCode::Success,
                "{scene}: {}",
                r.result_msg
            );
            let i = bed.store.get_instance("i1").await;
            assert_eq!(i.expire_time, parse_compact(exp), "{scene}");
        }
        let events_before = crate::instance::InstanceStore::events(bed.store.as_ref(), "i1")
            .await
            .unwrap()
            .len();
        let r = bed
            .call("refreshInstance", &body("RENEWAL", "R1", "20280101000000"))
            .await;
        assert_eq!(r.result_code, ResultCode::Success);
        let events_after = crate::instance::InstanceStore::events(bed.store.as_ref(), "i1")
            .await
            .unwrap()
            .len();
        assert_eq!(events_before, events_after, "a repeat records nothing");
        // One notice per change for the vendor's systems.
        let notices = bed
            .queue
            .take_all()
            .into_iter()
            .filter(|j| matches!(j, Job::Notify { .. }))
            .count();
        assert!(notices >= 4);
    }

    /// The history keeps the order line KooGallery named (the worker reads that line of a
    /// changed order); a call that names none keeps none.
    #[tokio::test]
    async fn the_refresh_keeps_its_order_line() {
        let bed = TestBed::default_keys();
        active(&bed).await;
        let named = body("TRIAL_TO_FORMAL", "F1", "20270101000000");
        let mut unnamed = body("RENEWAL", "R1", "20280101000000");
        unnamed.as_object_mut().unwrap().remove("orderLineId");
        for b in [&named, &unnamed] {
            assert_eq!(
                bed.call("refreshInstance", b).await.result_code,
                ResultCode::Success
            );
        }
        let lines: Vec<_> = crate::instance::InstanceStore::events(bed.store.as_ref(), "i1")
            .await
            .unwrap()
            .into_iter()
            .filter_map(|e| match e.kind {
                crate::instance::EventKind::Refreshed { order_line_id, .. } => Some(order_line_id),
                _ => None,
            })
            .collect();
        assert_eq!(lines, [Some("F1-1".into()), None]);
    }

    #[tokio::test]
    async fn unknown_instance_is_000003_and_bad_time_000002() {
        let bed = TestBed::default_keys();
        let r = bed
            .call("refreshInstance", &body("RENEWAL", "R1", "20280101000000"))
            .await;
        assert_eq!(r.result_code, ResultCode::InstanceNotFound);
        active(&bed).await;
        let r = bed
            .call("refreshInstance", &body("RENEWAL", "R1", "2028-01-01"))
            .await;
        assert_eq!(r.result_code, ResultCode::InvalidParameter);
        let r = bed
            .call("refreshInstance", &body("", "R1", "20280101000000"))
            .await;
        assert_eq!(r.result_code, ResultCode::InvalidParameter);
    }

    /// docs/protocol/decisions.md §11: a scene KooGallery added since still
    /// sets the expiry, idempotently, and the history keeps its name.
    #[tokio::test]
    async fn an_unknown_scene_still_sets_the_expiry() {
        let bed = TestBed::default_keys();
        active(&bed).await;
        let b = body("RENEWAL_PLUS", "R9", "20310101000000");
        assert_eq!(
            bed.call("refreshInstance", &b).await.result_code,
            ResultCode::Success
        );
        assert_eq!(
            bed.store.get_instance("i1").await.expire_time,
            parse_compact("20310101000000")
        );
        assert_eq!(
            bed.call("refreshInstance", &b).await.result_code,
            ResultCode::Success
        );
        let events = crate::instance::InstanceStore::events(bed.store.as_ref(), "i1")
            .await
            .unwrap();
        let refreshed: Vec<_> = events
            .iter()
            .filter(|e| e.kind.name() == "refreshed")
            .collect();
        assert_eq!(refreshed.len(), 1, "a repeat records nothing");
        assert!(matches!(
            &refreshed[0].kind,
            crate::instance::EventKind::Refreshed { scene, .. } if scene.as_str() == "RENEWAL_PLUS"
        ));
    }

    /// A V1 renewal of an instance expireInstance froze lifts the freeze (V1 period products get
    /// no unfreeze); a V2 renewal does not (updateInstanceStatus UNFREEZE does that).
    #[tokio::test]
    async fn a_v1_renewal_lifts_the_freeze_of_expiry_and_a_v2_one_does_not() {
        for (v1, expect) in [
            (true, InstanceState::Active),
            (false, InstanceState::Frozen),
        ] {
            let bed = TestBed::default_keys();
            active(&bed).await;
            let freeze =
                json!({"activity":"updateInstanceStatus","instanceId":"i1","status":"FREEZE"});
            assert_eq!(
                bed.call("updateInstanceStatus", &freeze).await.result_code,
                ResultCode::Success
            );
            let mut renew = json!({"activity":"refreshInstance","instanceId":"i1","orderId":"R1",
                "scene":"RENEWAL","expireTime":"20991231000000"});
            if v1 {
                renew["v1"] = json!({});
            }
            assert_eq!(
                bed.call("refreshInstance", &renew).await.result_code,
                ResultCode::Success
            );
            let i = crate::instance::InstanceStore::get(bed.store.as_ref(), "i1")
                .await
                .unwrap()
                .unwrap();
            assert_eq!(i.state, expect, "v1 = {v1}");
        }
    }
}
