//! The usage queue against the AWS emulator: real SQS queues (the usage queue redriving to its
//! dead-letter queue) and the DynamoDB table, settled as the function settles them.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use koogallery::{
    clock::{Clock, SystemClock},
    instance::{Instance, InstanceStore},
    jobs::consume::QueueMessage,
    metering::{UsageStore, WindowKey, package::PackageQuotaList, window_start},
    metrics::Metric,
    testing::RecordedMetrics,
};
use koogallery_aws::{
    DynamoStore, DynamoUsageStore, SqsConsumer, SqsQueue,
    bootstrap::{ensure_queues, ensure_table},
    sqs::REASON_ATTRIBUTE,
};
use serde_json::json;
use usage_queue::{QueuedUsage, settle_batch};

const PATIENCE: Duration = Duration::from_secs(15);
const LONG: Duration = Duration::from_secs(60);

/// The SDK configuration for the emulator; refuses to run anywhere else.
async fn emulator() -> aws_config::SdkConfig {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok_and(|v| !v.trim().is_empty()),
        "AWS_ENDPOINT_URL is not set: these tests need the emulator \
         (eval \"$(bash scripts/emulator.sh start)\")"
    );
    koogallery_aws::sdk_config().await
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

struct Bed {
    sqs: aws_sdk_sqs::Client,
    queue: SqsQueue,
    /// The jobs queue (a used-up package's notice).
    jobs: SqsQueue,
    dlq_url: String,
    store: Arc<DynamoStore>,
    usage: Arc<DynamoUsageStore>,
    metrics: Arc<RecordedMetrics>,
}

impl Bed {
    async fn new() -> Self {
        let config = emulator().await;
        let dynamo = aws_sdk_dynamodb::Client::new(&config);
        let table = unique("usage-queue");
        ensure_table(&dynamo, &table).await.unwrap();
        let sqs = aws_sdk_sqs::Client::new(&config);
        let (url, dlq_url) = ensure_queues(&sqs, &unique("usage"), 3).await.unwrap();
        let (jobs_url, _) = ensure_queues(&sqs, &unique("jobs"), 3).await.unwrap();
        let store = Arc::new(DynamoStore::new(dynamo, table));
        let usage = Arc::new(DynamoUsageStore::from(store.as_ref()));
        // An instance created ten minutes ago, to report usage for.
        let (instance, event) = Instance::new_provisioning(
            &"O-1".into(),
            &"O-1-1".into(),
            "biz-1",
            false,
            Utc::now() - chrono::Duration::minutes(10),
        );
        store
            .create_for_order_line(&instance, &[event])
            .await
            .unwrap();
        Self {
            queue: SqsQueue::new(sqs.clone(), url),
            jobs: SqsQueue::new(sqs.clone(), jobs_url),
            sqs,
            dlq_url,
            store,
            usage,
            metrics: Arc::new(RecordedMetrics::default()),
        }
    }

    fn usage_queue(&self, usage: Arc<dyn UsageStore>) -> QueuedUsage {
        QueuedUsage {
            instances: self.store.clone(),
            usage,
            jobs: Arc::new(self.jobs.clone()),
            quotas: Arc::new(PackageQuotaList::from_json(r#"{"sku-pkg":"5"}"#).unwrap()),
            clock: Arc::new(SystemClock),
            metrics: self.metrics.clone(),
        }
    }

    /// As a poller settles (on Lambda the event source deletes what is acknowledged).
    fn consumer(&self) -> SqsConsumer {
        SqsConsumer {
            queue: self.queue.clone(),
            dlq_url: self.dlq_url.clone(),
            delete_on_ack: true,
        }
    }

    async fn send(&self, body: &str) {
        self.sqs
            .send_message()
            .queue_url(self.queue.queue_url())
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    /// Receives until `n` messages are in hand.
    async fn receive(&self, n: usize) -> Vec<QueueMessage> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut got = Vec::new();
        while got.len() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} of {n} messages delivered",
                got.len()
            );
            got.extend(self.queue.receive(10, Duration::ZERO, LONG).await.unwrap());
        }
        got
    }

    /// Every dead letter: (body, reason).
    async fn dead_letters(&self, n: usize) -> Vec<(String, String)> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut got = Vec::new();
        while got.len() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "dead letters: {got:?}"
            );
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.dlq_url)
                .max_number_of_messages(10)
                .visibility_timeout(60)
                .message_attribute_names("All")
                .send()
                .await
                .unwrap();
            for m in out.messages() {
                let reason = m
                    .message_attributes()
                    .and_then(|a| a.get(REASON_ATTRIBUTE))
                    .and_then(|v| v.string_value())
                    .unwrap_or_default();
                got.push((m.body().unwrap_or_default().to_owned(), reason.to_owned()));
            }
        }
        got.sort();
        got
    }

    /// What the dead-letter queue holds right now.
    async fn dead_letters_now(&self) -> Vec<String> {
        self.sqs
            .receive_message()
            .queue_url(&self.dlq_url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap()
            .messages()
            .iter()
            .filter_map(|m| m.body().map(str::to_owned))
            .collect()
    }

    async fn total(&self) -> Option<String> {
        self.usage
            .window(&WindowKey {
                instance_id: "biz-1".into(),
                start: window_start(SystemClock.now()),
                package: None,
            })
            .await
            .unwrap()
            .map(|w| w.total.to_string())
    }
}

fn batch(instance: &str, key: &str) -> String {
    json!({"records": [{
        "instanceId": instance,
        "quantity": "3",
        "occurredAt": Utc::now().to_rfc3339(),
        "idempotencyKey": key,
    }]})
    .to_string()
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn batches_are_ingested_and_refused_ones_dead_lettered_with_their_reason() {
    let b = Bed::new().await;
    let good = batch("biz-1", &unique("e"));
    let unknown = batch("nobody", &unique("e"));
    for body in [good.as_str(), unknown.as_str(), "{oops"] {
        b.send(body).await;
    }
    let messages = b.receive(3).await;
    let keep = settle_batch(&b.usage_queue(b.usage.clone()), &b.consumer(), messages).await;
    assert!(keep.is_empty(), "{keep:?}");
    assert_eq!(b.total().await.as_deref(), Some("3"));
    let dead = b.dead_letters(2).await;
    // Sorted by body: `{"records"…` before `{oops`.
    assert_eq!(dead[0].0, unknown, "the body unchanged");
    assert!(dead[0].1.contains("nobody"), "{dead:?}");
    assert_eq!(dead[1].0, "{oops");
    assert!(dead[1].1.starts_with("not a usage batch"), "{dead:?}");
    assert_eq!(b.metrics.count(&Metric::UsageBatchRefused), 2);
    // Nothing left on the usage queue: the good one deleted, the refused ones moved.
    let left = b.queue.receive(10, Duration::ZERO, LONG).await.unwrap();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn a_batch_the_table_cannot_take_stays_and_comes_back_after_its_backoff() {
    let b = Bed::new().await;
    let good = batch("biz-1", &unique("e"));
    b.send(&good).await;
    // The usage store on a table that is not there: every write fails, retryably.
    let broken = Arc::new(DynamoUsageStore::new(
        b.store.client().clone(),
        unique("missing"),
    ));
    let first = b.receive(1).await;
    let id = first[0].message_id.clone();
    let keep = settle_batch(&b.usage_queue(broken), &b.consumer(), first).await;
    assert_eq!(keep, std::slice::from_ref(&id));
    // Hidden for the first backoff (2 s), not the minute it was received with.
    let again = b.receive(1).await;
    assert_eq!(again[0].message_id, id);
    assert_eq!(again[0].attempt, 2);
    assert!(b.dead_letters_now().await.is_empty());
    // Taken once the table answers.
    let keep = settle_batch(&b.usage_queue(b.usage.clone()), &b.consumer(), again).await;
    assert!(keep.is_empty());
    assert_eq!(b.total().await.as_deref(), Some("3"));
    assert_eq!(b.metrics.count(&Metric::UsageBatchRefused), 0);
}

/// A batch that uses up a stop-when-used-up package queues the drain of the package's outbox on
/// the jobs queue: the worker tells the vendor `quotaExhausted` at once, not the reconciler's
/// next pass.
#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn a_used_up_package_queues_its_notice_on_the_jobs_queue() {
    use koogallery::{
        instance::mutate,
        jobs::Job,
        order::{ChargingMode, OrderDetails},
    };
    let b = Bed::new().await;
    let created = Utc::now() - chrono::Duration::minutes(10);
    let (mut package, event) =
        Instance::new_provisioning(&"O-2".into(), &"O-2-1".into(), "pkg-1", false, created);
    package.order = Some(OrderDetails {
        charging_mode: Some(ChargingMode::OnDemandPkg),
        sku_code: Some("sku-pkg".into()),
        ..OrderDetails::default()
    });
    b.store
        .create_for_order_line(&package, &[event])
        .await
        .unwrap();
    mutate(b.store.as_ref(), "pkg-1", |i| {
        i.activate(koogallery::testing::sample_access("pkg-1"), created)
    })
    .await
    .unwrap();
    let body = json!({"records": [{
        "instanceId": "biz-1", "quantity": "5", "occurredAt": Utc::now().to_rfc3339(),
        "idempotencyKey": unique("e"), "packageInstanceId": "pkg-1",
    }]})
    .to_string();
    b.send(&body).await;
    let keep = settle_batch(
        &b.usage_queue(b.usage.clone()),
        &b.consumer(),
        b.receive(1).await,
    )
    .await;
    assert!(keep.is_empty(), "{keep:?}");
    let seq = *b
        .store
        .get("pkg-1")
        .await
        .unwrap()
        .unwrap()
        .outbox
        .pending
        .last()
        .expect("quotaExhausted is pending");
    let jobs = b
        .jobs
        .receive(10, Duration::from_secs(1), LONG)
        .await
        .unwrap();
    let jobs: Vec<Job> = jobs
        .iter()
        .map(|m| serde_json::from_str(&m.body).unwrap())
        .collect();
    assert_eq!(
        jobs,
        [Job::Notify {
            instance_id: "pkg-1".into(),
            seq
        }]
    );
}
