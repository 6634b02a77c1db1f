//! `newInstance` (docs/protocol/callbacks.md §6.1): record the order line, enqueue provisioning,
//! answer at once.
//!
//! Idempotent per (`orderId`, `orderLineId`): the instanceId is the first call's `businessId`, or
//! one derived from the order line when that `businessId` already names another order line's
//! instance (docs/protocol/decisions.md §6); every repeat, concurrent ones included, gets that same
//! ID and no second provisioning. Debug calls (docs/protocol/decisions.md §7) work on debug records
//! only.

use std::sync::Arc;

use async_trait::async_trait;

use chrono::{DateTime, Utc};

use super::{
    Callback, CallbackError, Resources,
    debug::{self, Keyspace},
};
use crate::{
    ResultCode,
    clock::Clock,
    config::ConfigError,
    instance::{
        CreateOutcome, DomainError, EventKind, Instance, InstanceEvent, InstanceState,
        InstanceStore, IntakeError, OrderLineIntake, Outcome, mutate,
    },
    jobs::{Job, JobQueue},
    order::{BuyerContact, ChargingMode, OrderDetails, OrderId, OrderLineId},
    protocol::{Reply, v1::V1Order, v2_basic::NewInstanceRequest},
    security::{KeyRing, KeyUsed, at_rest::CredentialSealer, credential_cipher::EncryptType},
};

pub struct NewInstance {
    store: Arc<dyn InstanceStore>,
    /// The record and its provisioning job in one write (one durable commit on the embedded store).
    intake: Arc<dyn OrderLineIntake>,
    /// Only for a repeat whose first call could not queue its job.
    queue: Arc<dyn JobQueue>,
    clock: Arc<dyn Clock>,
    /// `frontEndUrl` template of debug records (docs/protocol/decisions.md §7).
    debug_front_end_url: String,
    /// V1 answers carry the instance's appInfo once it is ready, credentials encrypted
    /// (docs/protocol/callbacks.md §11); `None` where the process has no callback keys.
    v1_cipher: Option<(EncryptType, KeyRing)>,
    sealer: Option<Arc<dyn CredentialSealer>>,
}

#[async_trait]
impl Callback for NewInstance {
    type Request = NewInstanceRequest;

    fn from_resources(r: &Resources) -> Result<Self, ConfigError> {
        Ok(Self {
            store: r.store.clone(),
            intake: r.intake()?,
            queue: r.queue()?,
            clock: r.clock.clone(),
            debug_front_end_url: r.settings.debug_front_end_url.clone(),
            v1_cipher: super::query_instance::v1_cipher(r),
            sealer: r.sealer.clone(),
        })
    }

    async fn handle(&self, req: NewInstanceRequest, key: KeyUsed) -> Result<Reply, CallbackError> {
        let now = self.clock.now();
        let v1_order = req.v1.as_ref().map(|v1| v1_order(v1.order.as_ref()));
        let (instance, created) = self
            .create(
                &OrderId::from(&req.order_id),
                &OrderLineId::from(&req.order_line_id),
                &req.business_id,
                false,
                v1_order,
                now,
            )
            .await?;
        if !created
            && instance.state == InstanceState::Provisioning
            && !instance.provisioning.enqueued
        {
            // A repeat whose first call could not enqueue (queue outage) enqueues now. Two such
            // repeats may both enqueue; the worker's claim lets only one delivery provision.
            self.enqueue_provisioning(&instance.instance_id).await?;
        }
        if req.v1.is_some() {
            return self.v1_reply(&instance, key).await;
        }
        Ok(reply_for(&instance))
    }

    /// docs/protocol/decisions.md §7: a stable instanceId and plausible appInfo at once, on a debug
    /// record that owns nothing outside the table; no job is queued. A replay of a case whose debug
    /// instance was released restarts it, so the probes' whole sequence passes every day.
    async fn handle_debug(&self, req: NewInstanceRequest, _key: KeyUsed) -> Reply {
        let now = self.clock.now();
        let order_id = OrderId::from(Keyspace::Debug.record_id(&req.order_id));
        let order_line_id = OrderLineId::from(Keyspace::Debug.record_id(&req.order_line_id));
        let instance_id = match self
            .create(&order_id, &order_line_id, &req.business_id, true, None, now)
            .await
        {
            Ok((instance, _)) if instance.state == InstanceState::Released => {
                let restarted = mutate(self.store.as_ref(), &instance.instance_id, |i| {
                    Ok(i.restart_debug(&req.business_id, now))
                })
                .await;
                if let Err(e) = restarted {
                    tracing::warn!(instance_id = %instance.instance_id, error = %e, "debug record not restarted");
                }
                instance.instance_id
            }
            Ok((instance, _)) => instance.instance_id,
            Err(e) => {
                // Still a success for the debugger: the answer needs no record
                // (docs/protocol/decisions.md §7).
                tracing::warn!(error = %e, "debug record not stored");
                Keyspace::Debug.record_id(&req.business_id).into()
            }
        };
        Reply::success().with("instanceId", debug::wire_id(&instance_id))
    }
}

impl NewInstance {
    /// Records the order line with a new instance, or finds the instance it already has (`true`
    /// when this call created it). The instanceId is the first call's `businessId`; if that ID
    /// already names another order line's instance, one derived from the order line instead
    /// (docs/protocol/decisions.md §6), so a reused `businessId` never fails an order. Debug
    /// records (`test`) go to the debug keyspace and are complete at once.
    async fn create(
        &self,
        order_id: &OrderId,
        order_line_id: &OrderLineId,
        business_id: &str,
        test: bool,
        order: Option<OrderDetails>,
        now: DateTime<Utc>,
    ) -> Result<(Instance, bool), CallbackError> {
        let derived = derived_instance_id(order_id, order_line_id);
        for id in [business_id, derived.as_str()] {
            let id = Keyspace::of(test).record_id(id);
            let (mut instance, mut created) =
                Instance::new_provisioning(order_id, order_line_id, &id, test, now);
            // The history keeps the businessId KooGallery sent, whatever ID the instance got.
            created.kind = EventKind::Created {
                business_id: business_id.to_owned(),
            };
            let mut events = vec![created];
            // Written with the record: the intake queues the job in the same unit (or unmarks it
            // when it could not), so no write follows the enqueue.
            instance.provisioning.enqueued = !test;
            // A V1 order comes with the call: the worker never asks Query Order about it.
            if let Some(order) = &order {
                instance.expire_time = order.expire_time;
                instance.order = Some(order.clone());
            }
            if test {
                let access = debug::access(&self.debug_front_end_url, debug::wire_id(&id));
                if let Outcome::Changed(ev) = instance.activate(access, now)? {
                    events.push(ev);
                }
            }
            match self.write(&instance, &events, test).await? {
                CreateOutcome::Created => return Ok((instance, true)),
                CreateOutcome::Existing(existing) => return Ok((*existing, false)),
                CreateOutcome::InstanceIdTaken => tracing::warn!(
                    business_id,
                    order_id = order_id.as_str(),
                    order_line_id = order_line_id.as_str(),
                    instance_id = %id,
                    "the businessId already names another order line's instance; deriving one (docs/protocol/decisions.md §6)"
                ),
            }
        }
        Err(DomainError::Invariant {
            instance_id: business_id.to_owned(),
            state: InstanceState::Provisioning,
            action: "be created: both its businessId and its derived ID are taken",
        }
        .into())
    }

    /// The new record's one write: a debug record alone, any other with its provisioning job.
    async fn write(
        &self,
        instance: &Instance,
        events: &[InstanceEvent],
        test: bool,
    ) -> Result<CreateOutcome, CallbackError> {
        if test {
            return Ok(self
                .store
                .create_for_order_line(instance, events)
                .await
                .map_err(DomainError::from)?);
        }
        let job = Job::Provision {
            instance_id: instance.instance_id.clone(),
        };
        match self.intake.create_and_enqueue(instance, events, &job).await {
            Ok(outcome) => Ok(outcome),
            Err(IntakeError::Store(e)) => Err(DomainError::from(e).into()),
            Err(IntakeError::Queue(e)) => Err(e.into()),
        }
    }

    /// A V1 answer (docs/protocol/callbacks.md §11): as [`reply_for`], with `encryptType` and, once
    /// the instance is ready, its appInfo with the credentials encrypted (V1 has no queryInstance
    /// for period products: this is where the buyer's access reaches KooGallery).
    async fn v1_reply(&self, instance: &Instance, key: KeyUsed) -> Result<Reply, CallbackError> {
        let mut reply = reply_for(instance);
        let Some(cipher) = &self.v1_cipher else {
            return Ok(reply);
        };
        reply = reply.with("encryptType", cipher.0.wire());
        if let (true, Some(access)) = (instance.is_ready(), &instance.access) {
            let app_info = super::query_instance::present(
                &instance.instance_id,
                access,
                key,
                Some(cipher),
                self.sealer.as_deref(),
            )
            .await?;
            reply = reply.with("appInfo", app_info);
        }
        Ok(reply)
    }

    async fn enqueue_provisioning(&self, instance_id: &str) -> Result<(), CallbackError> {
        // On failure the record stays with `enqueued == false` and the answer is a retryable
        // 000005: KooGallery calls again (hourly, for 3 h; docs/protocol/callbacks.md §5) and that
        // repeat enqueues.
        self.queue
            .enqueue(&Job::Provision {
                instance_id: instance_id.to_owned().into(),
            })
            .await?;
        let marked = mutate(self.store.as_ref(), instance_id, |i| {
            if i.provisioning.enqueued {
                return Ok(Outcome::Unchanged);
            }
            i.provisioning.enqueued = true;
            Ok(Outcome::Quiet)
        })
        .await;
        if let Err(e) = marked {
            // The job is queued; the flag only saves a redundant enqueue on a later repeat.
            tracing::warn!(instance_id, error = %e, "could not mark the provisioning job as enqueued");
        }
        Ok(())
    }
}

/// docs/protocol/decisions.md §6: the instanceId of an order line whose `businessId` is taken:
/// UUIDv5 of (`orderId`, `orderLineId`), stable across KooGallery's repeats.
pub fn derived_instance_id(order_id: &OrderId, order_line_id: &OrderLineId) -> String {
    /// This product's UUIDv5 namespace for derived instance IDs (fixed: changing it would change
    /// the IDs of orders already derived).
    const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6b6f_6f67_616c_6c65_7279_2d69_6e73_7431);
    uuid::Uuid::new_v5(
        &NAMESPACE,
        format!("{order_id}\n{order_line_id}").as_bytes(),
    )
    .to_string()
}

/// The order a V1 newInstance describes (docs/protocol/callbacks.md §11, §8.1), as the domain
/// keeps it. Unparsable optional values are dropped (be liberal): the order is still served.
fn v1_order(o: Option<&V1Order>) -> OrderDetails {
    let Some(o) = o else {
        return OrderDetails {
            v1: true,
            ..OrderDetails::default()
        };
    };
    let charging_mode = match o.charging_mode.as_deref().map(str::trim) {
        Some("0") => Some(ChargingMode::OnDemand),
        Some("1") => Some(ChargingMode::Period),
        Some("3") => Some(ChargingMode::OneTime),
        Some("5") => Some(ChargingMode::OnDemandPkg),
        _ => None,
    };
    OrderDetails {
        order_type: Some(if o.trial { "TRIAL" } else { "NEW" }.to_owned()),
        charging_mode,
        period_type: o.period_type.clone(),
        period_number: o
            .period_number
            .as_deref()
            .and_then(|n| n.trim().parse().ok()),
        product_id: o.product_id.clone(),
        sku_code: o.sku_code.clone(),
        product_name: None,
        quantity: o.quantity.as_deref().and_then(|q| q.trim().parse().ok()),
        expire_time: o
            .expire_time
            .as_deref()
            .and_then(|t| crate::protocol::time::parse_compact(t.trim())),
        customer_id: o.customer_id.clone(),
        customer_name: o.customer_name.clone(),
        extend_params: o.extend_params.clone(),
        offline: false,
        buyer: BuyerContact {
            user_id: o.user_id.clone(),
            user_name: o.user_name.clone(),
            mobile_phone: o.mobile_phone.clone(),
            email: o.email.clone(),
        },
        v1: true,
    }
}

/// `000004` while provisioning, `000000` once ready, the failure's own code after a permanent
/// failure.
fn reply_for(instance: &Instance) -> Reply {
    let reply = match (&instance.state, &instance.failure) {
        (InstanceState::Provisioning, _) => {
            Reply::new(ResultCode::Processing, "instance is being provisioned")
        }
        (InstanceState::Failed, Some(f)) => Reply::new(f.code, f.message.clone()),
        (InstanceState::Failed, None) => Reply::code(ResultCode::InternalError),
        // A repeat for an order line already released still names its instance: the creation
        // succeeded once.
        _ => Reply::success(),
    };
    reply.with("instanceId", &instance.instance_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{instance::InstanceState, jobs::Job, testing::TestBed};
    use serde_json::json;

    fn body(order: &str, business: &str) -> serde_json::Value {
        json!({"activity":"newInstance","orderId":order,"orderLineId":format!("{order}-000001"),"businessId":business})
    }

    #[tokio::test]
    async fn first_call_answers_processing_with_business_id_and_queues_one_job() {
        let bed = TestBed::default_keys();
        let r = bed.call("newInstance", &body("CS1", "biz-1")).await;
        assert_eq!(r.result_code, ResultCode::Processing);
        assert_eq!(r.field::<String>("instanceId").as_deref(), Some("biz-1"));
        assert_eq!(
            bed.queue.take_all(),
            vec![Job::Provision {
                instance_id: "biz-1".into()
            }]
        );
        let stored = bed.store.get_instance("biz-1").await;
        assert!(stored.provisioning.enqueued);
        // On AWS: one conditional transaction and one enqueue, no write after it.
        assert_eq!(stored.version, 1, "the mark was written with the record");
    }

    #[tokio::test]
    async fn repeats_get_the_first_instance_id_and_no_second_job() {
        let bed = TestBed::default_keys();
        bed.call("newInstance", &body("CS1", "biz-1")).await;
        let r = bed.call("newInstance", &body("CS1", "biz-2")).await;
        assert_eq!(r.result_code, ResultCode::Processing);
        assert_eq!(r.field::<String>("instanceId").as_deref(), Some("biz-1"));
        assert_eq!(bed.queue.len(), 1);
    }

    #[tokio::test]
    async fn concurrent_duplicates_create_one_instance() {
        let bed = TestBed::default_keys();
        let mut tasks = Vec::new();
        for i in 0..16 {
            let svc = bed.clone();
            tasks.push(tokio::spawn(async move {
                svc.call("newInstance", &body("CS9", &format!("biz-{i}")))
                    .await
            }));
        }
        let mut ids = std::collections::BTreeSet::new();
        for t in tasks {
            let r = t.await.unwrap();
            assert_eq!(r.result_code, ResultCode::Processing);
            ids.insert(r.field::<String>("instanceId").unwrap());
        }
        assert_eq!(ids.len(), 1);
        assert_eq!(bed.queue.len(), 1);
    }

    #[tokio::test]
    async fn queue_outage_answers_retryable_error_and_the_repeat_enqueues() {
        let bed = TestBed::default_keys();
        bed.queue.fail_next_enqueue();
        let r = bed.call("newInstance", &body("CS2", "biz-a")).await;
        assert_eq!(r.result_code, ResultCode::InternalError);
        assert!(bed.queue.is_empty());
        let r = bed.call("newInstance", &body("CS2", "biz-b")).await;
        assert_eq!(r.result_code, ResultCode::Processing);
        assert_eq!(r.field::<String>("instanceId").as_deref(), Some("biz-a"));
        assert_eq!(
            bed.queue.take_all(),
            vec![Job::Provision {
                instance_id: "biz-a".into()
            }]
        );
    }

    #[tokio::test]
    async fn debug_call_is_complete_at_once_and_queues_nothing() {
        let bed = TestBed::default_keys();
        let mut b = body("CS3", "biz-t");
        b["testFlag"] = json!("1");
        let r = bed.call("newInstance", &b).await;
        assert_eq!(r.result_code, ResultCode::Success);
        assert_eq!(r.field::<String>("instanceId").as_deref(), Some("biz-t"));
        assert!(bed.queue.is_empty());
        // Kept in the debug keyspace (docs/protocol/decisions.md §7), never where a real instance
        // could be.
        assert!(bed.store.get_instance_opt("biz-t").await.is_none());
        let stored = bed.store.get_instance("debug:biz-t").await;
        assert!(stored.test);
        assert_eq!(stored.state, InstanceState::Active);
        let again = bed.call("newInstance", &b).await;
        assert_eq!(
            again.field::<String>("instanceId").as_deref(),
            Some("biz-t")
        );
    }

    #[tokio::test]
    async fn a_replayed_debug_case_restarts_its_released_debug_instance() {
        let bed = TestBed::default_keys();
        let mut b = body("CS5", "biz-d1");
        b["testFlag"] = json!("1");
        bed.call("newInstance", &b).await;
        crate::instance::mutate(bed.store.as_ref(), "debug:biz-d1", |i| {
            Ok(i.release(None, chrono::Utc::now()))
        })
        .await
        .unwrap();
        // The next day's probe: same order line, new businessId.
        b["businessId"] = json!("biz-d2");
        let r = bed.call("newInstance", &b).await;
        assert_eq!(r.result_code, ResultCode::Success);
        assert_eq!(r.field::<String>("instanceId").as_deref(), Some("biz-d1"));
        assert_eq!(
            bed.store.get_instance("debug:biz-d1").await.state,
            InstanceState::Active
        );
        assert!(bed.queue.is_empty(), "still nothing outside the table");
    }

    /// docs/protocol/decisions.md §7: a debug call naming a real order line
    /// neither reads nor changes the real record: it gets its own debug instance and a success.
    #[tokio::test]
    async fn a_released_real_instance_is_never_restarted() {
        let bed = TestBed::default_keys();
        bed.call("newInstance", &body("CS6", "biz-r1")).await;
        crate::instance::mutate(bed.store.as_ref(), "biz-r1", |i| {
            Ok(i.release(None, chrono::Utc::now()))
        })
        .await
        .unwrap();
        let mut b = body("CS6", "biz-r2");
        b["testFlag"] = json!("1");
        let before = bed.store.get_instance("biz-r1").await;
        bed.queue.take_all();
        let r = bed.call("newInstance", &b).await;
        assert_eq!(r.result_code, ResultCode::Success);
        assert_eq!(
            r.field::<String>("instanceId").as_deref(),
            Some("biz-r2"),
            "the debug call's own instance, not the real one's"
        );
        assert_eq!(
            bed.store.get_instance("biz-r1").await,
            before,
            "the real record is untouched"
        );
        assert!(bed.queue.is_empty());
    }

    /// docs/protocol/decisions.md §6: a businessId that already names another
    /// order line's instance gets a derived, stable ID instead of a `000005` for ever.
    #[tokio::test]
    async fn a_reused_business_id_gets_a_derived_instance_id() {
        let bed = TestBed::default_keys();
        bed.call("newInstance", &body("CS7", "biz-same")).await;
        let r = bed.call("newInstance", &body("CS8", "biz-same")).await;
        assert_eq!(r.result_code, ResultCode::Processing, "{}", r.result_msg);
        let derived = derived_instance_id(&"CS8".into(), &"CS8-000001".into());
        assert_eq!(r.field::<String>("instanceId"), Some(derived.clone()));
        let again = bed.call("newInstance", &body("CS8", "biz-other")).await;
        assert_eq!(again.field::<String>("instanceId"), Some(derived.clone()));
        assert_eq!(bed.store.get_instance("biz-same").await.order_id, "CS7");
        assert_eq!(bed.store.get_instance(&derived).await.order_id, "CS8");
        assert_eq!(bed.queue.take_all().len(), 2, "each order provisions once");
    }

    #[tokio::test]
    async fn missing_fields_get_000002_and_write_nothing() {
        let bed = TestBed::default_keys();
        let r = bed
            .call(
                "newInstance",
                &json!({"activity":"newInstance","orderId":"CS4","businessId":"b"}),
            )
            .await;
        assert_eq!(r.result_code, ResultCode::InvalidParameter);
        assert!(r.result_msg.contains("orderLineId"), "{}", r.result_msg);
        assert!(bed.store.get_instance_opt("b").await.is_none());
        assert!(bed.queue.is_empty());
    }
}
