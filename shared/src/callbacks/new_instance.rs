//! `newInstance` (spec callbacks §6.1): record the order line, enqueue provisioning, answer at once.
//!
//! Idempotent per (`orderId`, `orderLineId`): the instanceId is the first call's `businessId`
//! (Decisions §6); every repeat, concurrent ones included, gets that same ID and no second provisioning.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Callback, CallbackError, Resources};
use crate::{
    ResultCode,
    clock::Clock,
    config::ConfigError,
    instance::{
        AccessInfo, CreateOutcome, Instance, InstanceState, InstanceStore, Outcome, mutate,
    },
    jobs::{Job, JobQueue},
    protocol::{Reply, v2_basic::NewInstanceRequest},
};

pub struct NewInstance {
    store: Arc<dyn InstanceStore>,
    queue: Arc<dyn JobQueue>,
    clock: Arc<dyn Clock>,
    /// `frontEndUrl` template of debug records (Decisions §7).
    debug_front_end_url: String,
}

#[async_trait]
impl Callback for NewInstance {
    type Request = NewInstanceRequest;

    fn from_resources(r: &Resources) -> Result<Self, ConfigError> {
        Ok(Self {
            store: r.store.clone(),
            queue: r.queue()?,
            clock: r.clock.clone(),
            debug_front_end_url: r.settings.debug_front_end_url.clone(),
        })
    }

    async fn handle(&self, req: NewInstanceRequest) -> Result<Reply, CallbackError> {
        let now = self.clock.now();
        let (mut instance, created) = Instance::new_provisioning(
            &req.order_id,
            &req.order_line_id,
            &req.business_id,
            req.test_flag,
            now,
        );
        let mut events = vec![created];
        if req.test_flag {
            // Decisions §7: a debug call gets a stable instanceId and plausible appInfo, and nothing is
            // created outside the table, so the record is complete at once and no job is queued.
            if let Outcome::Changed(ev) =
                instance.activate(self.debug_access(&instance.instance_id), now)?
            {
                events.push(ev);
            }
        }
        let instance = match self
            .store
            .create_for_order_line(&instance, &events)
            .await
            .map_err(crate::instance::DomainError::from)?
        {
            CreateOutcome::Created => {
                if !instance.test {
                    self.enqueue_provisioning(&instance.instance_id).await?;
                }
                instance
            }
            CreateOutcome::Existing(existing) => {
                // A repeat whose first call could not enqueue (queue outage) enqueues now. Two such
                // repeats may both enqueue; the worker's claim lets only one delivery provision.
                if existing.state == InstanceState::Provisioning
                    && !existing.provisioning.enqueued
                    && !existing.test
                {
                    self.enqueue_provisioning(&existing.instance_id).await?;
                }
                if req.test_flag && existing.test && existing.state == InstanceState::Released {
                    let (restarted, _) = mutate(self.store.as_ref(), &existing.instance_id, |i| {
                        Ok(i.restart_debug(&req.business_id, now))
                    })
                    .await?;
                    restarted
                } else {
                    *existing
                }
            }
        };
        Ok(reply_for(&instance))
    }
}

impl NewInstance {
    async fn enqueue_provisioning(&self, instance_id: &str) -> Result<(), CallbackError> {
        // On failure the record stays with `enqueued == false` and the answer is a retryable 000005:
        // KooGallery calls again (hourly, for 3 h; callbacks §5) and that repeat enqueues.
        self.queue
            .enqueue(&Job::Provision {
                instance_id: instance_id.to_owned(),
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

    /// Plausible access information for a debug record, built like the static provisioner's.
    fn debug_access(&self, instance_id: &str) -> AccessInfo {
        AccessInfo {
            front_end_url: self
                .debug_front_end_url
                .replace("{instanceId}", instance_id),
            admin_url: None,
            user_name: Some("debug-admin".into()),
            password: Some("Debug-Only-Not-A-Real-Account-1".into()),
            memo: Some("debug call (testFlag=1): no resources were created".into()),
        }
    }
}

/// `000004` while provisioning, `000000` once ready, the failure's own code after a permanent failure.
fn reply_for(instance: &Instance) -> Reply {
    let reply = match (&instance.state, &instance.failure) {
        (InstanceState::Provisioning, _) => {
            Reply::new(ResultCode::Processing, "instance is being provisioned")
        }
        (InstanceState::Failed, Some(f)) => Reply::new(f.code, f.message.clone()),
        (InstanceState::Failed, None) => Reply::code(ResultCode::InternalError),
        // A repeat for an order line already released still names its instance: the creation succeeded once.
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
        let stored = bed.store.get_instance("biz-t").await;
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
        crate::instance::mutate(bed.store.as_ref(), "biz-d1", |i| {
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
            bed.store.get_instance("biz-d1").await.state,
            InstanceState::Active
        );
        assert!(bed.queue.is_empty(), "still nothing outside the table");
    }

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
        let r = bed.call("newInstance", &b).await;
        assert_eq!(r.field::<String>("instanceId").as_deref(), Some("biz-r1"));
        assert_eq!(
            bed.store.get_instance("biz-r1").await.state,
            InstanceState::Released
        );
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
