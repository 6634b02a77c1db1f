//! `SqsQueue` against the emulator: producer port, consumer helpers, redrive to the DLQ.

mod common;

use std::time::Duration;

use tokio::time::Instant;

use aws_sdk_sqs::types::QueueAttributeName;
use common::{emulator_config, eventually, unique};
use koogallery::jobs::consume::QueueMessage;
use koogallery::jobs::{Job, JobQueue};
use koogallery_aws::{SqsQueue, bootstrap::ensure_queues};

/// The job a message carries, or its raw body when it is not one.
fn job_of(m: &QueueMessage) -> Result<Job, String> {
    serde_json::from_str(&m.body).map_err(|_| m.body.clone())
}

const SHORT: Duration = Duration::from_secs(1);
const LONG: Duration = Duration::from_secs(30);
const PATIENCE: Duration = Duration::from_secs(15);
/// The lease of the tests that watch one run out. The first look after it is set is one receive
/// that does not wait (a local round trip, milliseconds), so it falls inside 5 s even on a loaded
/// machine; the tests check that it did.
const LEASE: Duration = Duration::from_secs(5);
/// The emulator times leases on the wall clock, the test on the monotonic one: room for the two
/// to drift over a lease (slewing is at most 0.5 ms/s).
const CLOCKS: Duration = Duration::from_millis(50);

/// A fresh queue and its DLQ, redriving after `max_receive_count` receives.
async fn queues(max_receive_count: u32) -> (SqsQueue, SqsQueue) {
    let config = emulator_config().await;
    let client = aws_sdk_sqs::Client::new(&config);
    let (url, dlq_url) = ensure_queues(&client, &unique("jobs"), max_receive_count)
        .await
        .unwrap();
    (
        SqsQueue::new(client.clone(), url),
        SqsQueue::new(client, dlq_url),
    )
}

fn job() -> Job {
    Job::Provision {
        instance_id: (unique("biz")).into(),
    }
}

/// The next delivery, polling without blocking the emulator.
async fn next(queue: &SqsQueue, visibility: Duration) -> QueueMessage {
    eventually("a delivery", PATIENCE, || async {
        queue
            .receive(1, Duration::ZERO, visibility)
            .await
            .unwrap()
            .pop()
    })
    .await
}

/// Looks (receives that do not wait) until `queue` delivers again, and checks that the lease set
/// by a call made after `leased_at` held: no look that ended before the lease could have run out
/// saw a delivery, and at least one look did end that early (so the lease was seen holding).
/// The checks hold however slow the machine is: load only makes looks end later.
async fn redelivered_after(queue: &SqsQueue, leased_at: Instant, lease: Duration) -> QueueMessage {
    let held_until = leased_at + lease - CLOCKS;
    let mut looks_inside = 0;
    loop {
        let got = queue.receive(1, Duration::ZERO, LONG).await.unwrap().pop();
        let looked = Instant::now();
        match got {
            Some(d) => {
                assert!(
                    looked >= held_until,
                    "delivered again {:?} after the lease of {lease:?} was set",
                    looked - leased_at
                );
                assert!(
                    looks_inside > 0,
                    "no look fell inside the lease: the hiding was not observed"
                );
                return d;
            }
            None if looked < held_until => looks_inside += 1,
            None => assert!(
                looked < leased_at + lease + PATIENCE,
                "not delivered again within {PATIENCE:?} after its lease of {lease:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn nothing_visible(queue: &SqsQueue) {
    let got = queue.receive(10, Duration::ZERO, LONG).await.unwrap();
    assert!(got.is_empty(), "unexpected deliveries: {got:?}");
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn enqueue_receive_delete() {
    let (queue, _) = queues(3).await;
    let job = job();
    queue.enqueue(&job).await.unwrap();
    let d = next(&queue, LONG).await;
    assert_eq!(job_of(&d).as_ref(), Ok(&job));
    assert_eq!(d.attempt, 1);
    assert!(!d.message_id.is_empty());
    queue.delete(&d.receipt).await.unwrap();

    let config = emulator_config().await;
    let attrs = aws_sdk_sqs::Client::new(&config)
        .get_queue_attributes()
        .queue_url(queue.queue_url())
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let count = |name: QueueAttributeName| {
        attrs
            .attributes()
            .and_then(|a| a.get(&name))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(count(QueueAttributeName::ApproximateNumberOfMessages), "0");
    assert_eq!(
        count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        "0"
    );
}

/// A received message is hidden for the visibility timeout the receive asked for, then delivered
/// again, the same message with its receive count raised.
#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn visibility_timeout_hides_then_redelivers_with_attempt_2() {
    let (queue, _) = queues(5).await;
    let job = job();
    queue.enqueue(&job).await.unwrap();
    let leased_at = Instant::now();
    let first = next(&queue, LEASE).await;
    assert_eq!(first.attempt, 1);
    let second = redelivered_after(&queue, leased_at, LEASE).await;
    assert_eq!(second.message_id, first.message_id);
    assert_eq!(second.attempt, 2);
    assert_eq!(job_of(&second), Ok(job));
    queue.delete(&second.receipt).await.unwrap();
}

/// ChangeMessageVisibility: zero releases a held message at once; a backoff hides it for that
/// long, then it is delivered again.
#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn change_visibility_releases_and_hides() {
    let (queue, _) = queues(5).await;
    queue.enqueue(&job()).await.unwrap();
    let first = next(&queue, LONG).await;
    nothing_visible(&queue).await;

    // Zero: visible again at once.
    queue
        .change_visibility(&first.receipt, Duration::ZERO)
        .await
        .unwrap();
    let second = next(&queue, LONG).await;
    assert_eq!(second.message_id, first.message_id);
    assert_eq!(second.attempt, 2);

    // A backoff: hidden now, back after it.
    let leased_at = Instant::now();
    queue
        .change_visibility(&second.receipt, LEASE)
        .await
        .unwrap();
    let third = redelivered_after(&queue, leased_at, LEASE).await;
    assert_eq!(third.message_id, first.message_id);
    assert_eq!(third.attempt, 3);
    queue.delete(&third.receipt).await.unwrap();
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn unacknowledged_messages_land_in_the_dlq_after_max_receive_count() {
    let (queue, dlq) = queues(2).await;
    let job = job();
    queue.enqueue(&job).await.unwrap();
    assert_eq!(next(&queue, SHORT).await.attempt, 1);
    assert_eq!(next(&queue, SHORT).await.attempt, 2);
    // The next receive past the limit moves the message instead of delivering it.
    let dead = eventually("the message in the DLQ", PATIENCE, || async {
        let again = queue.receive(1, Duration::ZERO, SHORT).await.unwrap();
        assert!(
            again.iter().all(|d| d.attempt <= 2),
            "delivered past maxReceiveCount: {again:?}"
        );
        dlq.receive(1, Duration::ZERO, LONG).await.unwrap().pop()
    })
    .await;
    assert_eq!(job_of(&dead), Ok(job));
    dlq.delete(&dead.receipt).await.unwrap();
    nothing_visible(&queue).await;
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn a_corrupt_body_is_delivered_as_an_error_with_the_raw_body() {
    let (queue, dlq) = queues(3).await;
    queue
        .send_raw(queue.queue_url(), r#"{"type":"explode"}"#)
        .await
        .unwrap();
    let d = next(&queue, LONG).await;
    // The raw body comes back, so it can be dead-lettered unchanged.
    let raw = job_of(&d).unwrap_err();
    assert_eq!(raw, r#"{"type":"explode"}"#);
    queue.send_raw(dlq.queue_url(), &raw).await.unwrap();
    queue.delete(&d.receipt).await.unwrap();
    let dead = next(&dlq, LONG).await;
    assert_eq!(job_of(&dead), Err(raw));
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn send_raw_moves_a_failed_job_to_the_dlq() {
    let (queue, dlq) = queues(3).await;
    let job = job();
    queue.enqueue(&job).await.unwrap();
    let d = next(&queue, LONG).await;
    let body = serde_json::to_string(&job_of(&d).unwrap()).unwrap();
    queue.send_raw(dlq.queue_url(), &body).await.unwrap();
    queue.delete(&d.receipt).await.unwrap();
    let dead = next(&dlq, LONG).await;
    assert_eq!(job_of(&dead), Ok(job));
    assert_eq!(dead.attempt, 1);
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn a_dead_letter_keeps_its_body_and_carries_its_reason() {
    let (queue, dlq) = queues(3).await;
    let body = r#"{"records":[]}"#;
    let long = format!(
        "refused: {}",
        "x".repeat(2 * koogallery_aws::sqs::MAX_REASON_CHARS)
    );
    queue
        .send_dead_letter(dlq.queue_url(), body, &long)
        .await
        .unwrap();
    let client = aws_sdk_sqs::Client::new(&emulator_config().await);
    let got = eventually("the dead letter", PATIENCE, || async {
        client
            .receive_message()
            .queue_url(dlq.queue_url())
            .message_attribute_names("All")
            .send()
            .await
            .unwrap()
            .messages
            .and_then(|mut m| m.pop())
    })
    .await;
    assert_eq!(got.body(), Some(body));
    let reason = got
        .message_attributes()
        .and_then(|a| a.get(koogallery_aws::sqs::REASON_ATTRIBUTE))
        .and_then(|v| v.string_value())
        .expect("the reason attribute");
    assert!(reason.starts_with("refused: x"), "{reason}");
    assert_eq!(
        reason.chars().count(),
        koogallery_aws::sqs::MAX_REASON_CHARS
    );
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn ensure_queues_is_idempotent_and_updates_the_redrive_policy() {
    let config = emulator_config().await;
    let client = aws_sdk_sqs::Client::new(&config);
    let name = unique("jobs");
    let first = ensure_queues(&client, &name, 3).await.unwrap();
    let second = ensure_queues(&client, &name, 5).await.unwrap();
    assert_eq!(first, second);
    assert!(first.1.ends_with(&format!("{name}-dlq")), "{first:?}");
    let attrs = client
        .get_queue_attributes()
        .queue_url(&first.0)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .unwrap();
    let policy: serde_json::Value = serde_json::from_str(
        attrs
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(policy["maxReceiveCount"].to_string().trim_matches('"'), "5");
    assert!(
        policy["deadLetterTargetArn"]
            .as_str()
            .unwrap()
            .ends_with(&format!("{name}-dlq"))
    );
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn an_unknown_queue_is_an_error_with_context() {
    let (queue, _) = queues(3).await;
    let bogus = format!("{}-missing", queue.queue_url());
    let err = queue.send_raw(&bogus, "{}").await.unwrap_err();
    assert!(err.to_string().contains("SendMessage"), "{err}");
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn sqs_passes_the_job_consumer_contract() {
    let (queue, dlq) = queues(5).await;
    let consumer = koogallery_aws::SqsConsumer {
        queue,
        dlq_url: dlq.queue_url().to_owned(),
        delete_on_ack: true,
    };
    koogallery::testing::contract::job_consumer_contract(&consumer).await;
    // The dead letter kept its body, unchanged.
    let dead = next(&dlq, LONG).await;
    assert!(
        matches!(job_of(&dead), Ok(Job::Notify { seq: 7, .. })),
        "{dead:?}"
    );
}

/// newInstance's write on AWS: DynamoDB's conditional transaction, then one SQS enqueue.
#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn dynamodb_then_sqs_passes_the_order_line_intake_contract() {
    let (queue, dlq) = queues(5).await;
    let client = aws_sdk_dynamodb::Client::new(&emulator_config().await);
    let table = unique("koogallery-intake");
    koogallery_aws::bootstrap::ensure_table(&client, &table)
        .await
        .unwrap();
    let store = std::sync::Arc::new(koogallery_aws::DynamoStore::new(client, &table));
    let intake = koogallery::instance::StoreThenQueue {
        store: store.clone(),
        queue: std::sync::Arc::new(queue.clone()),
    };
    let consumer = koogallery_aws::SqsConsumer {
        queue,
        dlq_url: dlq.queue_url().to_owned(),
        delete_on_ack: true,
    };
    koogallery::testing::contract::order_line_intake_contract(&intake, store.as_ref(), &consumer)
        .await;
}
