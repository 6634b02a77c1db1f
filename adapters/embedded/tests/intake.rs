//! newInstance on the embedded store: the record, its order line, its history and its
//! provisioning job are one durable commit, and the worker hears of the job at once.

use std::{sync::Arc, time::Duration};

use koogallery::{
    ResultCode,
    callbacks::{Dispatcher, InProcessDispatcher, Resources, registry},
    clock::{Clock, SystemClock},
    config::Config,
    jobs::{Job, consume::Receive},
    security::KeyUsed,
};
use koogallery_embedded::{EmbeddedConsumer, EmbeddedStore};
use serde_json::json;

struct Host {
    _dir: tempfile::TempDir,
    store: Arc<EmbeddedStore>,
    consumer: Arc<EmbeddedConsumer>,
    dispatcher: InProcessDispatcher,
}

/// The callbacks wired as the local host wires them: the store as the intake.
fn host() -> Host {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path().join("k.redb")).unwrap());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let consumer = Arc::new(EmbeddedConsumer::new(store.queue(), clock.clone()));
    let config = Config::with_keys("intake-key", "intake-kit-key");
    let resources = Resources::from_config(store.clone(), consumer.clone(), clock, &config)
        .with_order_notices(store.clone())
        .with_intake(store.clone());
    let dispatcher =
        InProcessDispatcher::build(&koogallery::testing::with_kit(resources.clone())).unwrap();
    Host {
        _dir: dir,
        store,
        consumer,
        dispatcher,
    }
}

async fn new_instance(h: &Host, order: &str, business_id: &str) -> koogallery::protocol::Reply {
    let body = json!({"activity":"newInstance","orderId":order,
        "orderLineId":format!("{order}-000001"),"businessId":business_id});
    let callback = registry::by_activity("newInstance").unwrap();
    h.dispatcher
        .dispatch(callback, &body, KeyUsed::Current)
        .await
}

#[tokio::test]
async fn a_new_instance_is_exactly_one_durable_commit_and_a_repeat_none() {
    let h = host();
    for n in 0..5 {
        let before = h.store.durable_commits();
        let r = new_instance(&h, &format!("CSONE{n}"), &format!("one-{n}")).await;
        assert_eq!(r.result_code, ResultCode::Processing, "{}", r.result_msg);
        assert_eq!(
            h.store.durable_commits() - before,
            1,
            "record, order line, history and job in one commit"
        );
    }
    let before = h.store.durable_commits();
    let r = new_instance(&h, "CSONE0", "one-other").await;
    assert_eq!(r.field::<String>("instanceId").as_deref(), Some("one-0"));
    assert_eq!(h.store.durable_commits(), before, "a repeat writes nothing");

    // Each order line's job is queued once, and the record says so.
    let mut jobs = Vec::new();
    while let Some(m) = h
        .consumer
        .receive(10, Duration::from_secs(30))
        .await
        .unwrap()
        .pop()
    {
        jobs.push(serde_json::from_str::<Job>(&m.body).unwrap());
    }
    let expected: Vec<Job> = (0..5)
        .map(|n| Job::Provision {
            instance_id: format!("one-{n}").into(),
        })
        .collect();
    assert_eq!(jobs, expected);
    use koogallery::instance::InstanceStore;
    assert!(
        h.store
            .get("one-3")
            .await
            .unwrap()
            .unwrap()
            .provisioning
            .enqueued
    );
}

/// The job is written by the store, not the queue: the waiting worker must still wake at once
/// rather than at its next idle poll (500 ms).
///
/// Tokio's clock is paused, so the measure is load-proof: it only moves when every task waits on a
/// timer and no blocking task (redb's fsync'd commits run on the blocking pool) is running. The
/// receive parks first (the 50 ms sleep ends only once it waits), the commit wakes it at 50 ms, and
/// only the idle poll could end it at 500 ms or later, however slow the disk.
#[tokio::test(start_paused = true)]
async fn a_waiting_worker_wakes_for_a_job_queued_with_its_instance() {
    const PARKED_FOR: Duration = Duration::from_millis(50);
    const IDLE_POLL: Duration = Duration::from_millis(500);
    let h = host();
    let consumer = h.consumer.clone();
    // Nothing queued: this receive waits for a wake-up or its idle poll.
    let waiting = tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        let got = consumer.receive(10, Duration::from_secs(30)).await.unwrap();
        (got.is_empty(), started.elapsed())
    });
    tokio::time::sleep(PARKED_FOR).await;
    let r = new_instance(&h, "CSWAKE", "wake-1").await;
    assert_eq!(r.result_code, ResultCode::Processing, "{}", r.result_msg);
    let (empty, waited) = waiting.await.unwrap();
    assert!(empty, "the waiting receive returns to look again");
    assert!(
        waited >= PARKED_FOR,
        "it waited for the commit rather than returning at once: waited {waited:?}"
    );
    assert!(
        waited < IDLE_POLL,
        "woken by the commit, not by the idle poll: waited {waited:?}"
    );
}
