//! `newInstance` (spec callbacks §6.1): record the order line, enqueue provisioning, answer at once.
//!
//! Idempotent per (`orderId`, `orderLineId`): the instanceId is the first call's `businessId`
//! (Decisions §6); every repeat, concurrent ones included, gets that same ID and no second provisioning.

use koogallery::{
    CallbackError, ResultCode,
    domain::{Instance, InstanceState, Outcome, mutate},
    ports::{CreateOutcome, Job},
    services::{Services, run_callback},
    wire::{AppInfo, NewInstanceRequest, Reply},
};

pub async fn handle(svc: &Services, body: &serde_json::Value) -> Reply {
    run_callback("newInstance", body, |req| new_instance(svc, req)).await
}

pub async fn new_instance(svc: &Services, req: NewInstanceRequest) -> Result<Reply, CallbackError> {
    let now = svc.clock.now();
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
            instance.activate(debug_app_info(svc, &instance.instance_id), now)?
        {
            events.push(ev);
        }
    }
    let instance = match svc.store.create_for_order_line(&instance, &events).await? {
        CreateOutcome::Created => {
            if !instance.test {
                enqueue_provisioning(svc, &instance.instance_id).await?;
            }
            instance
        }
        CreateOutcome::Existing(existing) => {
            // A repeat whose first call could not enqueue (queue outage) enqueues now. Two such repeats
            // may both enqueue; the worker's claim lets only one delivery provision.
            if existing.state == InstanceState::Provisioning
                && !existing.provisioning.enqueued
                && !existing.test
            {
                enqueue_provisioning(svc, &existing.instance_id).await?;
            }
            if req.test_flag && existing.test && existing.state == InstanceState::Released {
                let (restarted, _) = mutate(svc.store.as_ref(), &existing.instance_id, |i| {
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

async fn enqueue_provisioning(svc: &Services, instance_id: &str) -> Result<(), CallbackError> {
    // On failure the record stays with `enqueued == false` and the answer is a retryable 000005:
    // KooGallery calls again (hourly, for 3 h; callbacks §5) and that repeat enqueues.
    svc.queue
        .enqueue(&Job::Provision {
            instance_id: instance_id.to_owned(),
        })
        .await?;
    let marked = mutate(svc.store.as_ref(), instance_id, |i| {
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

/// Plausible access information for a debug record, built like the static provisioner's.
fn debug_app_info(svc: &Services, instance_id: &str) -> AppInfo {
    let template = match &svc.config.provisioner {
        koogallery::config::ProvisionerConfig::Static { front_end_url, .. } => {
            front_end_url.as_str()
        }
        koogallery::config::ProvisionerConfig::Webhook { .. } => {
            "https://debug.example.com/{instanceId}"
        }
    };
    AppInfo {
        front_end_url: template.replace("{instanceId}", instance_id),
        admin_url: None,
        user_name: Some("debug-admin".into()),
        password: Some("Debug-Only-Not-A-Real-Account-1".into()),
        memo: Some("debug call (testFlag=1): no resources were created".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use koogallery::memory::TestBed;
    use serde_json::json;

    fn body(order: &str, business: &str) -> serde_json::Value {
        json!({"activity":"newInstance","orderId":order,"orderLineId":format!("{order}-000001"),"businessId":business})
    }

    #[tokio::test]
    async fn first_call_answers_processing_with_business_id_and_queues_one_job() {
        let bed = TestBed::default_keys();
        let r = handle(&bed.services, &body("CS1", "biz-1")).await;
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
        handle(&bed.services, &body("CS1", "biz-1")).await;
        let r = handle(&bed.services, &body("CS1", "biz-2")).await;
        assert_eq!(r.result_code, ResultCode::Processing);
        assert_eq!(r.field::<String>("instanceId").as_deref(), Some("biz-1"));
        assert_eq!(bed.queue.len(), 1);
    }

    #[tokio::test]
    async fn concurrent_duplicates_create_one_instance() {
        let bed = TestBed::default_keys();
        let mut tasks = Vec::new();
        for i in 0..16 {
            let svc = bed.services.clone();
            tasks.push(tokio::spawn(async move {
                handle(&svc, &body("CS9", &format!("biz-{i}"))).await
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
        let r = handle(&bed.services, &body("CS2", "biz-a")).await;
        assert_eq!(r.result_code, ResultCode::InternalError);
        assert!(bed.queue.is_empty());
        let r = handle(&bed.services, &body("CS2", "biz-b")).await;
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
        let r = handle(&bed.services, &b).await;
        assert_eq!(r.result_code, ResultCode::Success);
        assert_eq!(r.field::<String>("instanceId").as_deref(), Some("biz-t"));
        assert!(bed.queue.is_empty());
        let stored = bed.store.get_instance("biz-t").await;
        assert!(stored.test);
        assert_eq!(stored.state, InstanceState::Active);
        let again = handle(&bed.services, &b).await;
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
        handle(&bed.services, &b).await;
        koogallery::domain::mutate(bed.store.as_ref(), "biz-d1", |i| {
            Ok(i.release(None, chrono::Utc::now()))
        })
        .await
        .unwrap();
        // The next day's probe: same order line, new businessId.
        b["businessId"] = json!("biz-d2");
        let r = handle(&bed.services, &b).await;
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
        handle(&bed.services, &body("CS6", "biz-r1")).await;
        koogallery::domain::mutate(bed.store.as_ref(), "biz-r1", |i| {
            Ok(i.release(None, chrono::Utc::now()))
        })
        .await
        .unwrap();
        let mut b = body("CS6", "biz-r2");
        b["testFlag"] = json!("1");
        let r = handle(&bed.services, &b).await;
        assert_eq!(r.field::<String>("instanceId").as_deref(), Some("biz-r1"));
        assert_eq!(
            bed.store.get_instance("biz-r1").await.state,
            InstanceState::Released
        );
    }

    #[tokio::test]
    async fn missing_fields_get_000002_and_write_nothing() {
        let bed = TestBed::default_keys();
        let r = handle(
            &bed.services,
            &json!({"activity":"newInstance","orderId":"CS4","businessId":"b"}),
        )
        .await;
        assert_eq!(r.result_code, ResultCode::InvalidParameter);
        assert!(r.result_msg.contains("orderLineId"), "{}", r.result_msg);
        assert!(bed.store.get_instance_opt("b").await.is_none());
        assert!(bed.queue.is_empty());
    }
}
