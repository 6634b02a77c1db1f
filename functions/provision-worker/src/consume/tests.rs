use std::{sync::Mutex, time::Duration};

use koogallery::{
    ResultCode,
    clock::Clock,
    config::{Config, WorkerSettings},
    instance::{Instance, InstanceState, InstanceStore},
    jobs::QueueError,
    order::offline::OfflineMarketplace,
    testing::{Scripted, ScriptedProvisioner, TestBed},
};

use std::sync::Arc;

use super::*;

#[derive(Default)]
struct FakeSettle {
    retries: Mutex<Vec<(String, Duration)>>,
    dead: Mutex<Vec<String>>,
    dlq_down: bool,
}

#[async_trait::async_trait]
impl Settle for FakeSettle {
    async fn ack(&self, _m: &QueueMessage) -> Result<(), QueueError> {
        Ok(())
    }
    async fn retry_after(&self, m: &QueueMessage, delay: Duration) -> Result<(), QueueError> {
        self.retries
            .lock()
            .unwrap()
            .push((m.receipt.clone(), delay));
        Ok(())
    }
    async fn dead_letter(&self, m: &QueueMessage, _reason: &str) -> Result<(), QueueError> {
        if self.dlq_down {
            return Err(QueueError::Unavailable("dlq down".into()));
        }
        self.dead.lock().unwrap().push(m.body.clone());
        Ok(())
    }
}

async fn setup(script: Vec<Scripted>, provisioning_deadline: Duration) -> (TestBed, Worker) {
    let bed = TestBed::new(Config::with_keys("k", "kk"));
    for id in ["i1", "i2"] {
        let (i, ev) = Instance::new_provisioning(
            &format!("O-{id}").into(),
            &"L".into(),
            id,
            false,
            bed.clock.now(),
        );
        bed.store.create_for_order_line(&i, &[ev]).await.unwrap();
    }
    let worker = Worker {
        store: bed.store.clone(),
        provisioner: Arc::new(ScriptedProvisioner::new(script)),
        marketplace: Arc::new(OfflineMarketplace::new(bed.clock.clone())),
        clock: bed.clock.clone(),
        config: WorkerSettings {
            provisioning_deadline,
            ..WorkerSettings::default()
        },
        credential_encryption: None,
        metrics: Arc::new(koogallery::metrics::NoMetrics),
        sealer: bed.sealer.clone(),
        notices: bed.store.clone(),
        directory: Some(bed.directory.clone()),
        sessions: None,
        licenses: None,
    };
    (bed, worker)
}

const HOURS: Duration = Duration::from_secs(6 * 3600);

fn msg(id: &str, body: &str, attempt: u32) -> QueueMessage {
    QueueMessage::new(id, format!("rh-{id}"), body, Some(&attempt.to_string()))
}

fn provision(id: &str) -> String {
    serde_json::to_string(&Job::Provision {
        instance_id: id.into(),
    })
    .unwrap()
}

#[tokio::test]
async fn only_failed_messages_are_reported_and_retries_get_their_backoff() {
    let (bed, worker) = setup(vec![Scripted::Succeed, Scripted::Transient], HOURS).await;
    let settle = FakeSettle::default();
    let keep = settle_batch(
        &worker,
        &settle,
        vec![
            msg("m1", &provision("i1"), 1),
            msg("m2", &provision("i2"), 2),
        ],
    )
    .await;
    assert_eq!(keep, ["m2"]);
    let retries = settle.retries.lock().unwrap().clone();
    assert_eq!(retries.len(), 1);
    assert_eq!(retries[0].0, "rh-m2");
    // The second delivery's backoff: 4 s, jittered down to no less than half.
    assert!((Duration::from_secs(2)..=Duration::from_secs(4)).contains(&retries[0].1));
    assert_eq!(
        bed.store.get_instance("i1").await.state,
        InstanceState::Active
    );
    assert_eq!(
        bed.store.get_instance("i2").await.state,
        InstanceState::Provisioning
    );
}

#[tokio::test]
async fn a_failure_at_the_deadline_dead_letters_explicitly_and_fails_the_order() {
    let (bed, worker) = setup(vec![Scripted::Transient], Duration::ZERO).await;
    let settle = FakeSettle::default();
    let keep = settle_batch(&worker, &settle, vec![msg("m1", &provision("i1"), 3)]).await;
    assert!(keep.is_empty(), "acked: it is in the DLQ now");
    assert_eq!(settle.dead.lock().unwrap().len(), 1);
    let i = bed.store.get_instance("i1").await;
    assert_eq!(
        (i.state, i.failure.unwrap().code),
        (InstanceState::Failed, ResultCode::InternalError)
    );
}

#[tokio::test]
async fn unreadable_bodies_go_to_the_dlq_and_stay_if_it_is_down() {
    let (_bed, worker) = setup(vec![], HOURS).await;
    let settle = FakeSettle::default();
    assert!(
        settle_batch(&worker, &settle, vec![msg("m1", "{garbage", 1)])
            .await
            .is_empty()
    );
    assert_eq!(*settle.dead.lock().unwrap(), ["{garbage"]);
    let down = FakeSettle {
        dlq_down: true,
        ..FakeSettle::default()
    };
    assert_eq!(
        settle_batch(&worker, &down, vec![msg("m1", "{garbage", 1)]).await,
        ["m1"]
    );
}
