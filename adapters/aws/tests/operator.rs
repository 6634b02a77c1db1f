//! The operator's ports on the emulator: `DynamoStore` as the instance listing, `SqsDeadLetters`
//! on a jobs queue's DLQ, and the directory, SSO and License stores on one table as the reads of
//! an instance's 联营 tenants, their sessions and its order's License codes; each passes its
//! contract.

mod common;

use std::{collections::HashSet, sync::Arc, time::Duration};

use common::{emulator_config, unique};
use koogallery::{
    jobs::Job,
    operator::DeadLetters,
    testing::operator::{
        dead_letters_contract, instance_accounts_contract, instance_listing_contract,
    },
};
use koogallery_aws::{
    DynamoDirectory, DynamoLicenses, DynamoSso, DynamoStore, SqsDeadLetters, SqsQueue,
    bootstrap::{ensure_queues, ensure_table},
    sqs::{ATTEMPTS_ATTRIBUTE, REASON_ATTRIBUTE},
};

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn dynamo_store_passes_the_instance_listing_contract() {
    let config = emulator_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = unique("koogallery-listing");
    ensure_table(&client, &table).await.unwrap();
    let store = DynamoStore::new(client, table);
    instance_listing_contract(Arc::new(store.clone()), Arc::new(store)).await;
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn the_directory_sso_and_license_stores_pass_the_instance_accounts_contract() {
    let config = emulator_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = unique("koogallery-accounts");
    ensure_table(&client, &table).await.unwrap();
    let store = DynamoStore::new(client, table);
    instance_accounts_contract(
        Arc::new(DynamoDirectory::from(&store)),
        Arc::new(DynamoSso::from(&store)),
        Arc::new(DynamoLicenses::from(&store)),
    )
    .await;
}

/// A fresh jobs queue, its DLQ, and the dead letters on it.
async fn queues() -> (aws_sdk_sqs::Client, SqsQueue, SqsDeadLetters) {
    let config = emulator_config().await;
    let client = aws_sdk_sqs::Client::new(&config);
    let (url, dlq_url) = ensure_queues(&client, &unique("jobs"), 3).await.unwrap();
    (
        client.clone(),
        SqsQueue::new(client.clone(), &url),
        SqsDeadLetters::new(client, dlq_url, url),
    )
}

fn job() -> Job {
    Job::Provision {
        instance_id: unique("biz").into(),
    }
}

/// Sends `body` straight to the DLQ, as the worker does (with a reason and its attempts) or as the
/// redrive policy leaves it (neither); answers its MessageId.
async fn seed(
    client: &aws_sdk_sqs::Client,
    dlq_url: &str,
    body: &str,
    worker: Option<(&str, u32)>,
) -> String {
    let mut send = client.send_message().queue_url(dlq_url).message_body(body);
    if let Some((reason, attempts)) = worker {
        let attr = |t: &str, v: String| {
            aws_sdk_sqs::types::MessageAttributeValue::builder()
                .data_type(t)
                .string_value(v)
                .build()
                .unwrap()
        };
        send = send
            .message_attributes(REASON_ATTRIBUTE, attr("String", reason.to_owned()))
            .message_attributes(ATTEMPTS_ATTRIBUTE, attr("Number", attempts.to_string()));
    }
    send.send().await.unwrap().message_id().unwrap().to_owned()
}

fn body(job: &Job) -> String {
    serde_json::to_string(job).unwrap()
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn sqs_dead_letters_pass_the_dead_letters_contract() {
    let (client, queue, dead) = queues().await;
    let (first, second) = (job(), job());
    let a = seed(
        &client,
        &dead.dlq_url,
        &body(&first),
        Some(("provisioning deadline passed", 4)),
    )
    .await;
    // SentTimestamp orders them: a clear step between the two.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let b = seed(&client, &dead.dlq_url, &body(&second), None).await;
    let (third, fourth) = (job(), job());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let c = seed(&client, &dead.dlq_url, &body(&third), None).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let d = seed(&client, &dead.dlq_url, &body(&fourth), None).await;
    // Not a job: left out of the listing, never in the way.
    seed(&client, &dead.dlq_url, "{oops", None).await;

    let listed = dead.dead_letters().await.unwrap();
    assert_eq!(listed.len(), 4, "the undecodable one left out: {listed:?}");
    assert_eq!(
        (listed[0].reason.as_str(), listed[0].attempts),
        ("provisioning deadline passed", 4),
        "the worker's reason and count"
    );
    assert_eq!(listed[1].reason, "reached maxReceiveCount");
    assert!(listed[0].at < listed[1].at);

    let requeued = |job: Job| {
        let queue = queue.clone();
        async move {
            for _ in 0..3 {
                // Visible again at once: a later look (another job) sees them too.
                let got = queue
                    .receive(10, Duration::from_secs(1), Duration::ZERO)
                    .await
                    .unwrap();
                if got
                    .iter()
                    .any(|m| serde_json::from_str::<Job>(&m.body).ok().as_ref() == Some(&job))
                {
                    return true;
                }
            }
            false
        }
    };
    let seeded = [(a, first), (b, second), (c, third), (d, fourth)];
    dead_letters_contract(&dead, &seeded, requeued).await;
}

/// The IDs a listing of `dead` gives.
async fn listed_ids(dead: &SqsDeadLetters) -> HashSet<String> {
    dead.dead_letters()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect()
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn a_listing_reaches_past_the_first_ten_and_leaves_every_message_visible() {
    let (client, _, dead) = queues().await;
    let mut ids = HashSet::new();
    for _ in 0..23 {
        ids.insert(seed(&client, &dead.dlq_url, &body(&job()), None).await);
    }
    let listed: HashSet<String> = listed_ids(&dead).await;
    assert_eq!(listed, ids);
    // Looked at, not taken: a second look sees them all at once.
    let again: HashSet<String> = listed_ids(&dead).await;
    assert_eq!(again, ids);
    // Any one is found among the others, which stay.
    let last = ids.iter().next().unwrap().clone();
    assert!(dead.discard(&last).await.unwrap());
    assert_eq!(dead.dead_letters().await.unwrap().len(), ids.len() - 1);
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn the_worker_s_dead_letter_lists_with_its_reason_and_deliveries() {
    use koogallery::jobs::{JobQueue, consume::Settle};
    let (_, queue, dead) = queues().await;
    let job = job();
    queue.enqueue(&job).await.unwrap();
    let consumer = koogallery_aws::SqsConsumer {
        queue: queue.clone(),
        dlq_url: dead.dlq_url.clone(),
        delete_on_ack: true,
    };
    let mut delivered = None;
    for _ in 0..2 {
        // Two deliveries: the second gives up.
        let m = common::eventually("a delivery", Duration::from_secs(15), || async {
            queue
                .receive(1, Duration::ZERO, Duration::ZERO)
                .await
                .unwrap()
                .pop()
        })
        .await;
        delivered = Some(m);
    }
    let m = delivered.unwrap();
    assert_eq!(m.attempt, 2);
    consumer
        .dead_letter(&m, "webhook refused: 400")
        .await
        .unwrap();
    let listed = dead.dead_letters().await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].job, job);
    assert_eq!(listed[0].attempts, 2);
    assert_eq!(listed[0].reason, "webhook refused: 400");
}
