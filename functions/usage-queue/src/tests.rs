//! The usage queue's routing on an emulated queue: what is acknowledged, retried, and moved to the
//! usage dead-letter queue with its reason.

use std::sync::{
    Mutex,
    atomic::{AtomicBool, Ordering},
};

use async_trait::async_trait;
use chrono::{DateTime, Duration as Span, Utc};
use koogallery::{
    instance::{Instance, InstanceStore as _},
    jobs::QueueError,
    metering::{PackageQuotas, PackageUsage, UsageReport, UsageWindow, WindowKey, window_start},
    storage::StoreError,
    testing::{ManualClock, MemoryStore, RecordedMetrics},
};
use serde_json::json;

use super::*;

/// An emulated SQS queue and its dead-letter queue, as the Lambda event source settles them.
#[derive(Default)]
struct Queues {
    acked: Mutex<Vec<String>>,
    retried: Mutex<Vec<(String, Duration)>>,
    /// (body, reason) of each dead letter.
    dead: Mutex<Vec<(String, String)>>,
    dlq_down: AtomicBool,
}

#[async_trait]
impl Settle for Queues {
    async fn ack(&self, m: &QueueMessage) -> Result<(), QueueError> {
        self.acked.lock().unwrap().push(m.message_id.clone());
        Ok(())
    }
    async fn retry_after(&self, m: &QueueMessage, delay: Duration) -> Result<(), QueueError> {
        self.retried
            .lock()
            .unwrap()
            .push((m.message_id.clone(), delay));
        Ok(())
    }
    async fn dead_letter(&self, m: &QueueMessage, reason: &str) -> Result<(), QueueError> {
        if self.dlq_down.load(Ordering::SeqCst) {
            return Err(QueueError::Unavailable("the DLQ is unreachable".into()));
        }
        self.dead
            .lock()
            .unwrap()
            .push((m.body.clone(), reason.to_owned()));
        Ok(())
    }
}

/// The memory store, whose usage writes can be made to fail as a throttled table does.
struct Flaky {
    store: Arc<MemoryStore>,
    down: AtomicBool,
}

#[async_trait]
impl UsageStore for Flaky {
    async fn ingest(
        &self,
        reports: &[UsageReport],
        quotas: &PackageQuotas,
        now: DateTime<Utc>,
    ) -> Result<IngestOutcome, IngestError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("throttled".into()).into());
        }
        self.store.ingest(reports, quotas, now).await
    }
    async fn due(
        &self,
        ended_by: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<UsageWindow>, StoreError> {
        self.store.due(ended_by, limit).await
    }
    async fn save_window(&self, window: &UsageWindow) -> Result<(), StoreError> {
        self.store.save_window(window).await
    }
    async fn window(&self, key: &WindowKey) -> Result<Option<UsageWindow>, StoreError> {
        self.store.window(key).await
    }
    async fn windows_of(&self, instance_id: &str) -> Result<Vec<UsageWindow>, StoreError> {
        self.store.windows_of(instance_id).await
    }
    async fn package(&self, id: &str) -> Result<Option<PackageUsage>, StoreError> {
        self.store.package(id).await
    }
    async fn usage_totals(
        &self,
        ids: &[&str],
    ) -> Result<Vec<koogallery::metering::UsageTotal>, StoreError> {
        self.store.usage_totals(ids).await
    }
    async fn claim_push(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.store.claim_push(holder, now, until).await
    }
    async fn release_push(&self, holder: &str) -> Result<(), StoreError> {
        self.store.release_push(holder).await
    }
}

struct Bed {
    store: Arc<MemoryStore>,
    flaky: Arc<Flaky>,
    clock: Arc<ManualClock>,
    metrics: Arc<RecordedMetrics>,
    queue: QueuedUsage,
    queues: Queues,
}

async fn bed() -> Bed {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::at(Utc::now()));
    let (instance, event) =
        Instance::new_provisioning(&"O-1".into(), &"O-1-1".into(), "biz-1", false, clock.now());
    store
        .create_for_order_line(&instance, &[event])
        .await
        .unwrap();
    clock.advance(Span::minutes(1));
    let flaky = Arc::new(Flaky {
        store: store.clone(),
        down: AtomicBool::new(false),
    });
    let metrics = Arc::new(RecordedMetrics::default());
    let queue = QueuedUsage {
        instances: store.clone(),
        usage: flaky.clone(),
        jobs: Arc::new(koogallery::testing::MemoryQueue::new()),
        quotas: Arc::new(PackageQuotaList::default()),
        clock: clock.clone(),
        metrics: metrics.clone(),
    };
    Bed {
        store,
        flaky,
        clock,
        metrics,
        queue,
        queues: Queues::default(),
    }
}

fn body(b: &Bed, instance: &str, key: &str) -> String {
    json!({"records": [{
        "instanceId": instance,
        "quantity": "2",
        "occurredAt": b.clock.now().to_rfc3339(),
        "idempotencyKey": key,
    }]})
    .to_string()
}

fn message(id: &str, body: &str, attempt: u32) -> QueueMessage {
    QueueMessage::new(id, format!("rh-{id}"), body, Some(&attempt.to_string()))
}

async fn total(b: &Bed, instance: &str) -> String {
    b.store
        .window(&WindowKey {
            instance_id: instance.into(),
            start: window_start(b.clock.now()),
            package: None,
        })
        .await
        .unwrap()
        .map(|w| w.total.to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn good_batches_are_acked_refused_ones_dead_lettered_with_their_reason() {
    let b = bed().await;
    let good = body(&b, "biz-1", "e-1");
    let unknown = body(&b, "nobody", "e-2");
    let empty = r#"{"records":[]}"#;
    let keep = settle_batch(
        &b.queue,
        &b.queues,
        vec![
            message("m-good", &good, 1),
            message("m-unknown", &unknown, 1),
            message("m-garbage", "{not json", 1),
            message("m-empty", empty, 1),
            message("m-repeat", &good, 1),
        ],
    )
    .await;
    assert!(keep.is_empty(), "nothing stays on the queue: {keep:?}");
    assert_eq!(*b.queues.acked.lock().unwrap(), ["m-good", "m-repeat"]);
    assert_eq!(total(&b, "biz-1").await, "2", "the repeat applied once");
    let dead = b.queues.dead.lock().unwrap().clone();
    assert_eq!(dead.len(), 3);
    // The body unchanged, the reason beside it.
    assert_eq!(dead[0].0, unknown);
    assert!(
        dead[0].1.contains("report 0") && dead[0].1.contains("nobody"),
        "{dead:?}"
    );
    assert_eq!(dead[1].0, "{not json");
    assert!(dead[1].1.starts_with("not a usage batch"), "{dead:?}");
    assert_eq!(dead[2].1, "the batch has no reports");
    assert_eq!(b.metrics.count(&Metric::UsageBatchRefused), 3);
    assert_eq!(
        b.metrics.count(&Metric::UsageRejected),
        0,
        "no record was refused"
    );
    assert!(b.queues.retried.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_store_outage_leaves_the_batch_on_the_queue_with_a_backoff_until_it_passes() {
    let b = bed().await;
    let good = body(&b, "biz-1", "e-1");
    b.flaky.down.store(true, Ordering::SeqCst);
    let keep = settle_batch(
        &b.queue,
        &b.queues,
        vec![message("m-1", &good, 3), message("m-2", "[]", 1)],
    )
    .await;
    assert_eq!(
        keep,
        ["m-1"],
        "retried; the refused one still dead-lettered"
    );
    assert_eq!(
        *b.queues.retried.lock().unwrap(),
        [("m-1".to_owned(), Duration::from_secs(8))]
    );
    assert_eq!(b.queues.dead.lock().unwrap().len(), 1);
    assert_eq!(total(&b, "biz-1").await, "");
    // The next delivery, once the table is back.
    b.flaky.down.store(false, Ordering::SeqCst);
    let keep = settle_batch(&b.queue, &b.queues, vec![message("m-1", &good, 4)]).await;
    assert!(keep.is_empty());
    assert_eq!(total(&b, "biz-1").await, "2");
    assert_eq!(b.metrics.count(&Metric::UsageBatchRefused), 1);
}

#[tokio::test]
async fn a_refused_batch_stays_when_the_dead_letter_queue_is_unreachable() {
    let b = bed().await;
    b.queues.dlq_down.store(true, Ordering::SeqCst);
    let keep = settle_batch(&b.queue, &b.queues, vec![message("m-1", "{}", 1)]).await;
    // Left for the redrive policy: never acknowledged without reaching the DLQ.
    assert_eq!(keep, ["m-1"]);
    assert!(b.queues.acked.lock().unwrap().is_empty());
}

#[test]
fn the_backoff_doubles_from_two_seconds_up_to_a_minute() {
    let delays: Vec<u64> = (0..9).map(|a| backoff(a).as_secs()).collect();
    assert_eq!(delays, [2, 2, 4, 8, 16, 32, 60, 60, 60]);
}

#[test]
fn reasons_are_kept_short() {
    let long = "x".repeat(1000);
    let s = short(&long);
    assert_eq!(s.chars().count(), MAX_REASON_CHARS + 1);
    assert!(s.ends_with('…'));
    assert_eq!(short("brief"), "brief");
}
