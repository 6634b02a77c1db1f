use std::sync::Mutex;

use koogallery::{
    clock::Clock,
    config::Config,
    instance::{CreateOutcome, InstanceState, InstanceStore},
    jobs::Job,
    metrics::Metric,
    order::offline::OfflineMarketplace,
    testing::{RecordedMetrics, Scripted, ScriptedProvisioner, TestBed},
};

use super::*;
use koogallery::{
    instance::{Instance, mutate},
    provisioning::{LifecycleNotice, ProvisionRequest},
};

struct Bed {
    bed: TestBed,
    worker: Worker,
    provisioner: Arc<ScriptedProvisioner>,
    metrics: Arc<RecordedMetrics>,
}

fn bed(script: Vec<Scripted>) -> Bed {
    let bed = TestBed::new(Config::with_keys("k", "kk"));
    let provisioner = Arc::new(ScriptedProvisioner::new(script));
    let metrics = Arc::new(RecordedMetrics::default());
    let worker = Worker {
        store: bed.store.clone(),
        provisioner: provisioner.clone(),
        marketplace: Arc::new(OfflineMarketplace::new(bed.clock.clone())),
        clock: bed.clock.clone(),
        config: WorkerSettings::default(),
        credential_encryption: None,
        metrics: metrics.clone(),
        sealer: bed.sealer.clone(),
        notices: bed.store.clone(),
        directory: Some(bed.directory.clone()),
        sessions: None,
        licenses: None,
    };
    Bed {
        bed,
        worker,
        provisioner,
        metrics,
    }
}

async fn order(b: &Bed, id: &str) {
    let (i, ev) = Instance::new_provisioning(
        &format!("CS-{id}").into(),
        &format!("CS-{id}-000001").into(),
        id,
        false,
        b.bed.clock.now(),
    );
    assert_eq!(
        b.bed.store.create_for_order_line(&i, &[ev]).await.unwrap(),
        CreateOutcome::Created
    );
}

fn delivery(id: &str, attempt: u32) -> JobDelivery {
    JobDelivery {
        job: Job::Provision {
            instance_id: id.into(),
        },
        attempt,
        delivery_id: format!("msg-{id}"),
    }
}

#[tokio::test]
async fn provisioning_activates_with_order_details_and_history() {
    let b = bed(vec![]);
    order(&b, "i1").await;
    let d = delivery("i1", 1);
    let r = b.worker.process(&d).await;
    assert_eq!(r.as_ref().unwrap(), &JobOutcome::Provisioned);
    assert_eq!(b.worker.disposition(&d, &r), Disposition::Ack);
    let i = b.bed.store.get_instance("i1").await;
    assert_eq!(i.state, InstanceState::Active);
    assert!(i.order.as_ref().unwrap().offline);
    assert!(i.expire_time.is_some(), "expiry comes from the order");
    assert!(i.provisioning.claim.is_none());
    // The vendor's password is stored sealed, never plain.
    let Some(koogallery::instance::Credential::Sealed(sealed)) =
        i.access.as_ref().unwrap().password.clone()
    else {
        panic!("the password is stored plain");
    };
    assert!(!sealed.contains("scripted-Password-1"));
    use koogallery::security::at_rest::CredentialSealer;
    assert_eq!(
        b.bed.sealer.open(&i.instance_id, &sealed).await.unwrap(),
        "scripted-Password-1"
    );
    assert!(
        b.bed
            .sealer
            .open("another-instance", &sealed)
            .await
            .is_err(),
        "sealed for its own instance only"
    );
    let kinds: Vec<&str> = b
        .bed
        .store
        .events("i1")
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind.name())
        .collect();
    assert_eq!(kinds, ["created", "provisioning_started", "provisioned"]);
}

#[tokio::test]
async fn a_redelivered_job_does_not_provision_twice() {
    let b = bed(vec![]);
    order(&b, "i1").await;
    b.worker.process(&delivery("i1", 1)).await.unwrap();
    let again = JobDelivery {
        delivery_id: "another-message".into(),
        ..delivery("i1", 1)
    };
    assert_eq!(
        b.worker.process(&again).await.unwrap(),
        JobOutcome::AlreadyDone
    );
    assert_eq!(b.provisioner.provision_calls(), 1);
}

/// Another delivery's live claim defers the job (no attempt spent, nothing
/// failed, not even past the deadline), and two copies of one SQS message (same MessageId) do not
/// share a claim.
#[tokio::test]
async fn a_second_delivery_defers_without_spending_anything_and_never_fails_the_holders_order() {
    let b = bed(vec![]);
    order(&b, "i1").await;
    let now = b.bed.clock.now();
    // A copy of the very same message is provisioning: its token starts with the same MessageId.
    mutate(b.bed.store.as_ref(), "i1", |i| {
        i.claim_provisioning("msg-i1#first-copy", now, chrono::Duration::minutes(2))
    })
    .await
    .unwrap();
    let d = delivery("i1", 1);
    let r = b.worker.process(&d).await;
    assert_eq!(
        r.as_ref().unwrap(),
        &JobOutcome::Deferred(Duration::from_secs(120))
    );
    assert_eq!(
        b.worker.disposition(&d, &r),
        Disposition::RetryAfter(Duration::from_secs(120))
    );
    assert_eq!(b.provisioner.provision_calls(), 0);
    // Far past the provisioning deadline, still only deferred: the holder may be about to succeed.
    b.bed.clock.advance(chrono::Duration::hours(7));
    let later = b.bed.clock.now();
    mutate(b.bed.store.as_ref(), "i1", |i| {
        i.provisioning.claim.as_mut().unwrap().until = later + chrono::Duration::minutes(1);
        Ok(koogallery::instance::Outcome::Quiet)
    })
    .await
    .unwrap();
    let late = JobDelivery {
        attempt: 900,
        ..delivery("i1", 1)
    };
    assert!(matches!(
        b.worker.process(&late).await.unwrap(),
        JobOutcome::Deferred(_)
    ));
    let i = b.bed.store.get_instance("i1").await;
    assert_eq!(i.state, InstanceState::Provisioning);
    assert_eq!(i.provisioning.attempts, 1, "a deferral is not an attempt");
    // Once the claim expires (the holder crashed), the other takes over; past the deadline a
    // success still provisions: the deadline only ends the retries of failures.
    b.bed.clock.advance(chrono::Duration::minutes(2));
    assert_eq!(
        b.worker.process(&late).await.unwrap(),
        JobOutcome::Provisioned
    );
    assert_eq!(b.provisioner.provision_calls(), 1);
}

/// An outage far longer than a minute (here hours, forty failed deliveries)
/// only delays provisioning; the backoff grows, is capped and jittered, and the order is never
/// failed before its deadline.
#[tokio::test]
async fn a_long_outage_backs_off_capped_and_jittered_and_provisions_when_the_vendor_returns() {
    let b = bed(vec![Scripted::Transient; 40]);
    order(&b, "i1").await;
    let cap = b.worker.config.backoff_max;
    let mut delays = Vec::new();
    for attempt in 1..=40 {
        let d = delivery("i1", attempt);
        let r = b.worker.process(&d).await;
        let Disposition::RetryAfter(delay) = b.worker.disposition(&d, &r) else {
            panic!("attempt {attempt}: {r:?}");
        };
        let ceiling = b.worker.config.backoff_ceiling(attempt);
        assert!(
            delay >= ceiling / 2 && delay <= ceiling,
            "{delay:?} vs {ceiling:?}"
        );
        assert!(delay <= cap);
        delays.push(delay);
        b.bed
            .clock
            .advance(chrono::Duration::from_std(delay).unwrap());
        assert_eq!(
            b.bed.store.get_instance("i1").await.state,
            InstanceState::Provisioning
        );
    }
    let elapsed = b.bed.clock.now() - b.bed.store.get_instance("i1").await.created_at;
    assert!(elapsed > chrono::Duration::hours(1), "{elapsed}");
    assert!(
        delays[30..].iter().any(|d| *d < cap),
        "jittered below the cap"
    );
    assert!(
        delays[30..].iter().all(|d| *d >= cap / 2),
        "capped, not collapsing"
    );
    let d = delivery("i1", 41);
    assert_eq!(b.worker.process(&d).await.unwrap(), JobOutcome::Provisioned);
    assert_eq!(b.metrics.count(&Metric::ProvisioningRetries), 40);
}

/// Only at the deadline, measured from the order, does a failing provisioning
/// fail the order (`000005`); the job is dead-lettered, and the vendor, who may have created
/// something on a call that seemed to fail, hears `released`.
#[tokio::test]
async fn at_the_deadline_the_order_fails_the_job_dead_letters_and_the_vendor_hears_released() {
    let b = bed(vec![Scripted::Transient, Scripted::Transient]);
    order(&b, "i1").await;
    let d1 = delivery("i1", 1);
    let r1 = b.worker.process(&d1).await;
    assert!(matches!(
        b.worker.disposition(&d1, &r1),
        Disposition::RetryAfter(_)
    ));
    b.bed
        .clock
        .advance(chrono::Duration::from_std(b.worker.config.provisioning_deadline).unwrap());
    let d2 = delivery("i1", 2);
    let r2 = b.worker.process(&d2).await;
    let Disposition::DeadLetter(reason) = b.worker.disposition(&d2, &r2) else {
        panic!("{r2:?}");
    };
    assert!(reason.contains("deadline"), "{reason}");
    let i = b.bed.store.get_instance("i1").await;
    assert_eq!(i.state, InstanceState::Failed);
    assert_eq!(i.failure.unwrap().code, ResultCode::InternalError);
    assert_eq!(b.metrics.count(&Metric::ProvisioningDeadlinePassed), 1);
    let notices = b.provisioner.notices.lock().unwrap().clone();
    assert_eq!(
        notices.len(),
        1,
        "the release notice went out in the same delivery"
    );
    assert_eq!(notices[0].event.kind.name(), "provisioning_failed");
    assert!(notices[0].event.kind.is_final_notice());
    assert!(i.outbox.pending.is_empty());
}

/// A 401/403/404 from the vendor's endpoint is not a refusal: it retries, and
/// every occurrence is a metric the template alarms on.
#[tokio::test]
async fn a_misconfigured_webhook_keeps_retrying_and_raises_the_alarm_metric() {
    let b = bed(vec![Scripted::Misconfigured; 3]);
    order(&b, "i1").await;
    for attempt in 1..=3 {
        let d = delivery("i1", attempt);
        let r = b.worker.process(&d).await;
        assert!(
            matches!(b.worker.disposition(&d, &r), Disposition::RetryAfter(_)),
            "{r:?}"
        );
    }
    assert_eq!(b.metrics.count(&Metric::ProvisionerMisconfigured), 3);
    assert_eq!(
        b.bed.store.get_instance("i1").await.state,
        InstanceState::Provisioning
    );
    assert_eq!(
        b.worker.process(&delivery("i1", 4)).await.unwrap(),
        JobOutcome::Provisioned
    );
}

#[tokio::test]
async fn a_vendor_refusal_fails_the_instance_with_its_code_without_retry() {
    let b = bed(vec![Scripted::Reject(ResultCode::SoldOut)]);
    order(&b, "i1").await;
    let d = delivery("i1", 1);
    let r = b.worker.process(&d).await;
    assert_eq!(
        r.as_ref().unwrap(),
        &JobOutcome::ProvisioningRefused(ResultCode::SoldOut)
    );
    assert_eq!(b.worker.disposition(&d, &r), Disposition::Ack);
    let i = b.bed.store.get_instance("i1").await;
    assert_eq!(
        (i.state, i.failure.unwrap().code),
        (InstanceState::Failed, ResultCode::SoldOut)
    );
}

#[tokio::test]
async fn unknown_instance_is_a_permanent_error() {
    let b = bed(vec![]);
    let d = delivery("ghost", 1);
    let r = b.worker.process(&d).await;
    assert!(matches!(
        b.worker.disposition(&d, &r),
        Disposition::DeadLetter(_)
    ));
}

fn notify_delivery(id: &str, attempt: u32) -> JobDelivery {
    JobDelivery {
        job: Job::Notify {
            instance_id: id.into(),
            seq: 0,
        },
        attempt,
        delivery_id: format!("notify-{id}"),
    }
}

fn heard(b: &Bed) -> Vec<(String, InstanceState)> {
    b.provisioner
        .notices
        .lock()
        .unwrap()
        .iter()
        .map(|n| (n.event.kind.name().to_owned(), n.event.to))
        .collect()
}

/// An active instance frozen, unfrozen and released by KooGallery: three notices in its outbox.
async fn frozen_unfrozen_released(b: &Bed, id: &str) {
    order(b, id).await;
    b.worker.process(&delivery(id, 1)).await.unwrap();
    let now = b.bed.clock.now();
    mutate(b.bed.store.as_ref(), id, |i| i.freeze(now))
        .await
        .unwrap();
    mutate(b.bed.store.as_ref(), id, |i| i.unfreeze(now))
        .await
        .unwrap();
    mutate(b.bed.store.as_ref(), id, |i| Ok(i.release(None, now)))
        .await
        .unwrap();
    assert_eq!(b.bed.store.get_instance(id).await.outbox.pending.len(), 3);
}

#[tokio::test]
async fn lifecycle_notices_are_delivered_once_and_leave_the_outbox() {
    let b = bed(vec![]);
    order(&b, "i1").await;
    b.worker.process(&delivery("i1", 1)).await.unwrap();
    let now = b.bed.clock.now();
    mutate(b.bed.store.as_ref(), "i1", |i| {
        i.upgrade(&"UP1".into(), &"UP1-000001".into(), now)
    })
    .await
    .unwrap();
    let d = notify_delivery("i1", 1);
    assert_eq!(b.worker.process(&d).await.unwrap(), JobOutcome::Notified(1));
    assert_eq!(b.worker.process(&d).await.unwrap(), JobOutcome::AlreadyDone);
    assert_eq!(heard(&b), [("upgraded".to_owned(), InstanceState::Active)]);
    assert!(
        b.bed
            .store
            .get_instance("i1")
            .await
            .outbox
            .pending
            .is_empty()
    );
}

/// The vendor hears `frozen`, `unfrozen`, `released` in that order, each with
/// the state that event produced, even when the first fails once and jobs arrive in any order;
/// one delivery makes at most its budget of calls and the next continues.
#[tokio::test]
async fn notices_arrive_in_seq_order_with_their_own_state_even_after_a_failure() {
    let b = bed(vec![Scripted::Succeed, Scripted::Transient]);
    frozen_unfrozen_released(&b, "i1").await;
    let d = notify_delivery("i1", 1);
    let r = b.worker.process(&d).await;
    assert!(
        matches!(b.worker.disposition(&d, &r), Disposition::RetryAfter(_)),
        "{r:?}"
    );
    assert!(heard(&b).is_empty(), "nothing overtakes the failed notice");
    // A second job for the same instance delivers from the head, two calls per delivery.
    assert_eq!(
        b.worker.process(&notify_delivery("i1", 2)).await.unwrap(),
        JobOutcome::Deferred(Duration::from_secs(1))
    );
    assert_eq!(
        b.worker.process(&notify_delivery("i1", 3)).await.unwrap(),
        JobOutcome::Notified(1)
    );
    assert_eq!(
        heard(&b),
        [
            ("frozen".to_owned(), InstanceState::Frozen),
            ("unfrozen".to_owned(), InstanceState::Active),
            ("released".to_owned(), InstanceState::Released),
        ]
    );
    let i = b.bed.store.get_instance("i1").await;
    assert!(i.outbox.pending.is_empty() && i.outbox.claim.is_none());
    assert_eq!(
        b.worker.process(&notify_delivery("i1", 4)).await.unwrap(),
        JobOutcome::AlreadyDone
    );
}

/// While one delivery drains an outbox, another waits for it rather than
/// sending a later notice first.
#[tokio::test]
async fn one_drainer_at_a_time() {
    let b = bed(vec![]);
    frozen_unfrozen_released(&b, "i1").await;
    let now = b.bed.clock.now();
    mutate(b.bed.store.as_ref(), "i1", |i| {
        i.claim_outbox("someone-else", now, chrono::Duration::minutes(2))
    })
    .await
    .unwrap();
    assert_eq!(
        b.worker.process(&notify_delivery("i1", 1)).await.unwrap(),
        JobOutcome::Deferred(Duration::from_secs(120))
    );
    assert!(heard(&b).is_empty());
}

/// A notice is retried until its deadline, not for a minute; then its job is
/// dead-lettered with an alarm, the outbox parked, and a redrive resumes delivery.
#[tokio::test]
async fn a_notice_retries_until_its_deadline_then_dead_letters_and_a_redrive_resumes() {
    let mut script = vec![Scripted::Succeed];
    script.extend(vec![Scripted::Transient; 30]);
    let b = bed(script);
    frozen_unfrozen_released(&b, "i1").await;
    let deadline = chrono::Duration::from_std(b.worker.config.notice_deadline).unwrap();
    let mut attempt = 0;
    let reason = loop {
        attempt += 1;
        let d = notify_delivery("i1", attempt);
        let r = b.worker.process(&d).await;
        match b.worker.disposition(&d, &r) {
            Disposition::RetryAfter(delay) => {
                assert!(
                    b.bed.clock.now() - b.bed.store.get_instance("i1").await.updated_at
                        < deadline + chrono::Duration::minutes(10)
                );
                b.bed
                    .clock
                    .advance(chrono::Duration::from_std(delay).unwrap().max(deadline / 8));
            }
            Disposition::DeadLetter(reason) => break reason,
            Disposition::Ack => panic!("delivered during the outage"),
        }
    };
    assert!(attempt > 8, "retried through the deadline: {attempt}");
    assert!(reason.contains("deadline"), "{reason}");
    assert_eq!(b.metrics.count(&Metric::NoticeDeadlinePassed), 1);
    let i = b.bed.store.get_instance("i1").await;
    assert!(i.outbox.parked);
    assert_eq!(i.outbox.pending.len(), 3, "nothing dropped");
    // The vendor is back; the operator redrives the dead letter.
    let mut script_left = 30 - attempt as usize;
    while script_left > 0 {
        // Burn the rest of the scripted outage directly on the provisioner.
        let _ = b
            .provisioner
            .notify(&LifecycleNotice {
                instance: i.clone(),
                event: b.bed.store.events("i1").await.unwrap()[0].clone(),
            })
            .await;
        script_left -= 1;
    }
    b.provisioner.notices.lock().unwrap().clear();
    let redrive = notify_delivery("i1", 1);
    assert_eq!(
        b.worker.process(&redrive).await.unwrap(),
        JobOutcome::Deferred(Duration::from_secs(1))
    );
    assert_eq!(
        b.worker.process(&redrive).await.unwrap(),
        JobOutcome::Notified(1)
    );
    let names: Vec<String> = heard(&b).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["frozen", "unfrozen", "released"]);
    assert!(!b.bed.store.get_instance("i1").await.outbox.parked);
}

/// A provision call that failed on our side (a timeout) may have succeeded at
/// the vendor; a release afterwards is still sent, and it is the last thing the vendor hears.
#[tokio::test]
async fn a_release_after_a_provision_call_that_seemed_to_fail_is_sent() {
    let b = bed(vec![Scripted::Transient]);
    order(&b, "i1").await;
    let d = delivery("i1", 1);
    let r = b.worker.process(&d).await;
    assert!(matches!(
        b.worker.disposition(&d, &r),
        Disposition::RetryAfter(_)
    ));
    let now = b.bed.clock.now();
    mutate(b.bed.store.as_ref(), "i1", |i| Ok(i.release(None, now)))
        .await
        .unwrap();
    assert_eq!(
        b.worker.process(&notify_delivery("i1", 1)).await.unwrap(),
        JobOutcome::Notified(1)
    );
    assert_eq!(
        heard(&b),
        [("released".to_owned(), InstanceState::Released)]
    );
    // The provisioning retry finds the instance released and provisions nothing.
    assert_eq!(
        b.worker.process(&delivery("i1", 2)).await.unwrap(),
        JobOutcome::AlreadyDone
    );
    assert_eq!(b.provisioner.provision_calls(), 1);
}

/// A notice waits while provisioning is in flight: the vendor hears `provision` first.
#[tokio::test]
async fn no_notice_overtakes_provisioning() {
    let b = bed(vec![Scripted::Transient]);
    order(&b, "i1").await;
    b.worker.process(&delivery("i1", 1)).await.unwrap_err();
    let now = b.bed.clock.now();
    mutate(b.bed.store.as_ref(), "i1", |i| {
        i.refresh(
            koogallery::instance::RefreshScene::Renewal,
            &"R1".into(),
            None,
            None,
            now + chrono::Duration::days(30),
            now,
        )
    })
    .await
    .unwrap();
    assert_eq!(
        b.worker.process(&notify_delivery("i1", 1)).await.unwrap(),
        JobOutcome::Deferred(b.worker.config.backoff_max),
        "the provisioning job will drain it; look again after the longest backoff"
    );
    assert!(heard(&b).is_empty());
    assert_eq!(
        b.worker.process(&delivery("i1", 2)).await.unwrap(),
        JobOutcome::Provisioned
    );
    assert_eq!(
        heard(&b),
        [("refreshed".to_owned(), InstanceState::Provisioning)]
    );
}

/// Releases the instance while "provisioning" it, as KooGallery would if the buyer unsubscribed at once.
struct ReleasedMidway {
    store: Arc<dyn InstanceStore>,
    notices: Mutex<Vec<LifecycleNotice>>,
}

#[async_trait::async_trait]
impl Provisioner for ReleasedMidway {
    async fn provision(
        &self,
        request: &ProvisionRequest,
    ) -> Result<koogallery::instance::AccessInfo, ProvisionError> {
        mutate(self.store.as_ref(), &request.instance_id, |i| {
            Ok(i.release(None, chrono::Utc::now()))
        })
        .await
        .expect("release during provisioning");
        Ok(koogallery::testing::sample_access(&request.instance_id))
    }

    async fn notify(&self, notice: &LifecycleNotice) -> Result<(), ProvisionError> {
        self.notices.lock().unwrap().push(notice.clone());
        Ok(())
    }
}

#[tokio::test]
async fn resources_created_for_an_instance_released_meanwhile_are_released_too() {
    let b = bed(vec![]);
    order(&b, "i1").await;
    let provisioner = Arc::new(ReleasedMidway {
        store: b.bed.store.clone(),
        notices: Mutex::default(),
    });
    let worker = Worker {
        provisioner: provisioner.clone(),
        ..b.worker
    };
    let d = delivery("i1", 1);
    let r = worker.process(&d).await;
    assert_eq!(r.as_ref().unwrap(), &JobOutcome::AlreadyDone);
    assert_eq!(worker.disposition(&d, &r), Disposition::Ack);
    assert_eq!(
        b.bed.store.get_instance("i1").await.state,
        InstanceState::Released,
        "never activated"
    );
    let notices = provisioner.notices.lock().unwrap().clone();
    assert_eq!(notices.len(), 1, "the vendor hears about the release");
    assert_eq!(notices[0].event.kind.name(), "released");
    assert!(
        b.bed
            .store
            .get_instance("i1")
            .await
            .provisioning
            .claim
            .is_none(),
        "the claim ended with the call"
    );
}

/// A vendor whose answer carries a 100-character password.
struct LongPassword;

#[async_trait::async_trait]
impl Provisioner for LongPassword {
    async fn provision(
        &self,
        request: &ProvisionRequest,
    ) -> Result<koogallery::instance::AccessInfo, ProvisionError> {
        Ok(koogallery::instance::AccessInfo {
            password: Some("p".repeat(100).into()),
            ..koogallery::testing::sample_access(&request.instance_id)
        })
    }

    async fn notify(&self, _notice: &LifecycleNotice) -> Result<(), ProvisionError> {
        Ok(())
    }
}

/// An appInfo KooGallery cannot take refuses the order at provisioning time,
/// with a clear message, instead of being stored and failing every queryInstance poll.
#[tokio::test]
async fn an_app_info_over_koogallerys_limits_refuses_the_order_when_the_vendor_answers() {
    use koogallery::security::credential_cipher::EncryptType;
    for (encryption, refused) in [(None, false), (Some(EncryptType::Aes256), true)] {
        let b = bed(vec![]);
        order(&b, "long-1").await;
        let worker = Worker {
            provisioner: Arc::new(LongPassword),
            ..b.worker
        }
        .with_credential_encryption(encryption);
        let outcome = worker.process(&delivery("long-1", 1)).await.unwrap();
        let stored = b.bed.store.get_instance("long-1").await;
        if refused {
            assert_eq!(
                outcome,
                JobOutcome::ProvisioningRefused(koogallery::ResultCode::InternalError)
            );
            assert_eq!(stored.state, InstanceState::Failed);
            let message = stored.failure.unwrap().message;
            assert!(
                message.contains("password") && message.contains("128"),
                "{message}"
            );
        } else {
            assert_eq!(outcome, JobOutcome::Provisioned, "100 plain characters fit");
            assert_eq!(stored.state, InstanceState::Active);
        }
    }
}

/// Answers every order with a SKU and quantity of its own, and records what was asked.
#[derive(Default)]
struct RecordingMarketplace(Mutex<Vec<(String, String)>>);

#[async_trait::async_trait]
impl koogallery::order::MarketplaceClient for RecordingMarketplace {
    async fn query_order(
        &self,
        order_id: &koogallery::order::OrderId,
        order_line_id: &koogallery::order::OrderLineId,
    ) -> Result<koogallery::order::OrderDetails, koogallery::order::MarketplaceError> {
        self.0
            .lock()
            .unwrap()
            .push((order_id.to_string(), order_line_id.to_string()));
        Ok(koogallery::order::OrderDetails {
            sku_code: Some(format!("sku-of-{order_id}")),
            quantity: Some(99.0),
            ..Default::default()
        })
    }
}

/// A trial turned paid (and a renewal that changes the spec) reads its order again, the line
/// KooGallery named; the instance keeps the new SKU and quantity and the vendor's notice carries
/// them.
#[tokio::test]
async fn a_trial_turned_paid_reads_its_order_again_before_the_vendor_hears() {
    let b = bed(vec![]);
    order(&b, "t1").await;
    let marketplace = Arc::new(RecordingMarketplace::default());
    let worker = Worker {
        marketplace: marketplace.clone(),
        ..b.worker
    };
    worker.process(&delivery("t1", 1)).await.unwrap();
    let now = b.bed.clock.now();
    mutate(b.bed.store.as_ref(), "t1", |i| {
        i.refresh(
            koogallery::instance::RefreshScene::TrialToFormal,
            &"FORMAL1".into(),
            Some(&"FORMAL1-000002".into()),
            None,
            now + chrono::Duration::days(365),
            now,
        )
    })
    .await
    .unwrap();
    assert_eq!(
        worker.process(&notify_delivery("t1", 1)).await.unwrap(),
        JobOutcome::Notified(1)
    );
    assert!(
        marketplace
            .0
            .lock()
            .unwrap()
            .contains(&("FORMAL1".to_owned(), "FORMAL1-000002".to_owned())),
        "the refresh's own line, not the order's first"
    );
    let stored = b.bed.store.get_instance("t1").await.order.unwrap();
    assert_eq!(stored.sku_code.as_deref(), Some("sku-of-FORMAL1"));
    let notices = b.provisioner.notices.lock().unwrap().clone();
    assert_eq!(
        notices[0].instance.order.as_ref().unwrap().quantity,
        Some(99.0)
    );
}

fn order_notice_delivery(order_id: &str, attempt: u32) -> JobDelivery {
    JobDelivery {
        job: Job::OrderNotice {
            order_id: order_id.into(),
            order_line_id: format!("{order_id}-000001").into(),
        },
        attempt,
        delivery_id: format!("order-{order_id}"),
    }
}

/// A paid order line is read once through Query Order, kept on its notice, and told to
/// the vendor once, retried through an outage; a repeat after that does nothing.
#[tokio::test]
async fn a_paid_order_line_is_read_kept_and_told_once_through_an_outage() {
    use koogallery::order::notice::{OrderNotice, OrderNoticeStore};
    let b = bed(vec![Scripted::Transient]);
    let received = OrderNotice::received(
        &"MOCKONETIMENEW".into(),
        &"MOCKONETIMENEW-000001".into(),
        b.bed.clock.now(),
    );
    assert!(b.bed.store.record_notice(&received).await.unwrap());
    let first = order_notice_delivery("MOCKONETIMENEW", 1);
    let r = b.worker.process(&first).await;
    assert!(
        matches!(b.worker.disposition(&first, &r), Disposition::RetryAfter(_)),
        "{r:?}"
    );
    let kept = b
        .bed
        .store
        .notice(&"MOCKONETIMENEW".into(), &"MOCKONETIMENEW-000001".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        kept.order.as_ref().unwrap().charging_mode,
        Some(koogallery::order::ChargingMode::OneTime),
        "the order read is kept across the retry"
    );
    assert!(kept.delivered_at.is_none());
    assert_eq!(
        b.worker
            .process(&order_notice_delivery("MOCKONETIMENEW", 2))
            .await
            .unwrap(),
        JobOutcome::Notified(1)
    );
    assert_eq!(
        b.worker
            .process(&order_notice_delivery("MOCKONETIMENEW", 3))
            .await
            .unwrap(),
        JobOutcome::AlreadyDone
    );
    let paid = b.provisioner.paid.lock().unwrap().clone();
    assert_eq!(paid.len(), 1);
    assert_eq!(paid[0].order_line_id, "MOCKONETIMENEW-000001");
    // A job for a line never recorded is a bug, not an outage: dead-lettered.
    let ghost = order_notice_delivery("CSGHOST", 1);
    let r = b.worker.process(&ghost).await;
    assert!(matches!(
        b.worker.disposition(&ghost, &r),
        Disposition::DeadLetter(_)
    ));
}

/// Records the directory events it hears; fails transiently on `fail_seq` once, refuses `refuse_seq`.
struct DirectoryListener {
    heard: Mutex<Vec<u64>>,
    fail_seq: Mutex<Option<u64>>,
    refuse_seq: u64,
}

#[async_trait::async_trait]
impl Provisioner for DirectoryListener {
    async fn provision(
        &self,
        _: &koogallery::provisioning::ProvisionRequest,
    ) -> Result<koogallery::instance::AccessInfo, ProvisionError> {
        Err(ProvisionError::Transient("not in this test".into()))
    }
    async fn notify(&self, _: &LifecycleNotice) -> Result<(), ProvisionError> {
        Ok(())
    }
    async fn directory_changed(
        &self,
        notice: &koogallery::provisioning::DirectoryNotice,
    ) -> Result<(), ProvisionError> {
        let seq = notice.event.seq;
        if self
            .fail_seq
            .lock()
            .unwrap()
            .take_if(|s| *s == seq)
            .is_some()
        {
            return Err(ProvisionError::Transient("vendor down".into()));
        }
        self.heard.lock().unwrap().push(seq);
        if seq == self.refuse_seq {
            return Err(ProvisionError::Rejected {
                code: koogallery::ResultCode::InvalidParameter,
                message: "no".into(),
            });
        }
        Ok(())
    }
}

#[tokio::test]
async fn directory_events_reach_the_vendor_in_order_once_each_and_survive_a_failure() {
    use koogallery::directory::{DirectoryChange, TenantDirectory, TenantKey};
    let b = bed(vec![]);
    let key = TenantKey::new("i-1", "t-1");
    for code in ["a", "b", "c", "d"] {
        let change = DirectoryChange::DeleteDepartment {
            org_code: code.into(),
        };
        b.bed
            .directory
            .apply(&key, &change, chrono::Utc::now())
            .await
            .unwrap();
    }
    let listener = Arc::new(DirectoryListener {
        heard: Mutex::default(),
        fail_seq: Mutex::new(Some(3)),
        refuse_seq: 2,
    });
    let worker = Worker {
        provisioner: listener.clone(),
        ..b.worker
    };
    let d = JobDelivery {
        job: Job::DirectoryNotice {
            instance_id: "i-1".into(),
            tenant_id: "t-1".into(),
        },
        attempt: 1,
        delivery_id: "msg-dir".into(),
    };
    // 1 delivered, 2 refused (final): the delivery's call budget is spent, it comes back.
    let r = worker.process(&d).await;
    assert!(matches!(r, Ok(JobOutcome::Deferred(_))), "{r:?}");
    assert_eq!(*listener.heard.lock().unwrap(), [1, 2]);
    // 3 fails: the pass stops there, and is retried.
    let r = worker.process(&d).await;
    assert!(r.as_ref().is_err_and(|e| e.is_retryable()), "{r:?}");
    assert!(matches!(
        worker.disposition(&d, &r),
        Disposition::RetryAfter(_)
    ));
    let r = worker.process(&d).await.unwrap();
    assert_eq!(r, JobOutcome::Notified(2));
    assert_eq!(
        *listener.heard.lock().unwrap(),
        [1, 2, 3, 4],
        "in order, none twice"
    );
    assert_eq!(worker.process(&d).await.unwrap(), JobOutcome::AlreadyDone);
    // A worker without a directory dead-letters the job: a wiring error, named.
    let bare = Worker {
        directory: None,
        sessions: None,
        licenses: None,
        ..worker
    };
    let r = bare.process(&d).await;
    assert!(matches!(
        bare.disposition(&d, &r),
        Disposition::DeadLetter(_)
    ));
}
