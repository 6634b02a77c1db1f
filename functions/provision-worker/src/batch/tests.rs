use std::{sync::Mutex, time::Duration};

use koogallery::{
    ResultCode,
    config::{Config, WorkerConfig},
    domain::{Instance, InstanceState},
    memory::{Scripted, ScriptedProvisioner, TestBed},
    ports::{Clock, InstanceStore},
};

use std::sync::Arc;

use koogallery::offline::OfflineMarketplace;

use super::*;

#[derive(Default)]
struct FakeSettle {
    retries: Mutex<Vec<(String, Duration)>>,
    dead: Mutex<Vec<String>>,
    dlq_down: bool,
}

#[async_trait::async_trait]
impl Settle for FakeSettle {
    async fn retry_after(&self, receipt_handle: &str, delay: Duration) -> Result<(), QueueError> {
        self.retries
            .lock()
            .unwrap()
            .push((receipt_handle.to_owned(), delay));
        Ok(())
    }
    async fn dead_letter(&self, body: &str) -> Result<(), QueueError> {
        if self.dlq_down {
            return Err(QueueError("dlq down".into()));
        }
        self.dead.lock().unwrap().push(body.to_owned());
        Ok(())
    }
}

async fn setup(script: Vec<Scripted>) -> (TestBed, Worker) {
    let bed = TestBed::new(Config::with_keys("k", "kk"));
    for id in ["i1", "i2"] {
        let (i, ev) =
            Instance::new_provisioning(&format!("O-{id}"), "L", id, false, bed.clock.now());
        bed.store.create_for_order_line(&i, &[ev]).await.unwrap();
    }
    let worker = Worker {
        store: bed.store.clone(),
        provisioner: Arc::new(ScriptedProvisioner::new(script)),
        marketplace: Arc::new(OfflineMarketplace::new(bed.clock.clone())),
        clock: bed.clock.clone(),
        config: WorkerConfig {
            max_attempts: 3,
            ..WorkerConfig::default()
        },
    };
    (bed, worker)
}

fn msg(id: &str, body: &str, attempt: u32) -> Message {
    Message {
        message_id: id.into(),
        receipt_handle: format!("rh-{id}"),
        body: body.into(),
        attempt,
    }
}

fn provision(id: &str) -> String {
    serde_json::to_string(&Job::Provision {
        instance_id: id.into(),
    })
    .unwrap()
}

#[tokio::test]
async fn only_failed_messages_are_reported_and_retries_get_their_backoff() {
    let (bed, worker) = setup(vec![Scripted::Succeed, Scripted::Transient]).await;
    let settle = FakeSettle::default();
    let keep = process_batch(
        &worker,
        &settle,
        vec![
            msg("m1", &provision("i1"), 1),
            msg("m2", &provision("i2"), 2),
        ],
    )
    .await;
    assert_eq!(keep, ["m2"]);
    assert_eq!(
        *settle.retries.lock().unwrap(),
        [("rh-m2".to_owned(), Duration::from_secs(4))]
    );
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
async fn last_attempt_dead_letters_explicitly_and_fails_the_order() {
    let (bed, worker) = setup(vec![Scripted::Transient]).await;
    let settle = FakeSettle::default();
    let keep = process_batch(&worker, &settle, vec![msg("m1", &provision("i1"), 3)]).await;
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
    let (_bed, worker) = setup(vec![]).await;
    let settle = FakeSettle::default();
    assert!(
        process_batch(&worker, &settle, vec![msg("m1", "{garbage", 1)])
            .await
            .is_empty()
    );
    assert_eq!(*settle.dead.lock().unwrap(), ["{garbage"]);
    let down = FakeSettle {
        dlq_down: true,
        ..FakeSettle::default()
    };
    assert_eq!(
        process_batch(&worker, &down, vec![msg("m1", "{garbage", 1)]).await,
        ["m1"]
    );
}
