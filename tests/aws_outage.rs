//! The store and the queue out for 30 s mid-traffic, on the AWS adapters: the host reaches the
//! emulator (DynamoDB and SQS) through a proxy of this test's own, which is frozen for 30 s — no
//! byte passes and nothing is answered, as if the emulator were SIGSTOP'd, yet the emulator keeps
//! its state and the other tests sharing it see nothing. KooGallery keeps delivering newInstance
//! (with repeats) throughout. During the outage every callback answers a signed, retryable
//! `000005` within KooGallery's 5 s; after it, every order line gets exactly one instance, one
//! provisioning and reaches ready, and the queues end empty (nothing dead-lettered).

use std::time::Duration;

use koogallery::instance::InstanceStore;
use koogallery_e2e::{
    KEY, WEBHOOK_SECRET, aws_host,
    proxy::{FreezableProxy, emulator_addr},
    webhook_config,
};
use koogallery_sim::storm::{Outcome, StormOptions, WebhookReceiver, run_storm};

const OUTAGE: Duration = Duration::from_secs(30);
/// When the outage starts, from the first delivery.
const CUT_AT: Duration = Duration::from_secs(8);

/// Messages in a queue, visible or in flight (what has not been deleted).
async fn messages_in(sqs: &aws_sdk_sqs::Client, url: &str) -> i64 {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(A::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .expect("queue attributes");
    out.attributes()
        .into_iter()
        .flatten()
        .map(|(_, v)| v.parse::<i64>().unwrap_or(0))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the AWS emulator; `make test` starts it (takes about a minute)"]
async fn an_emulator_outage_of_30_s_mid_traffic_answers_000005_and_loses_nothing() {
    let proxy = FreezableProxy::start(emulator_addr()).await;
    let webhook = WebhookReceiver::start("127.0.0.1:0".parse().unwrap(), WEBHOOK_SECRET)
        .await
        .unwrap();
    // The reconciler keeps its defaults: it would find a job lost with the outage only minutes
    // after this test ends, so everything here completes by the host's own means.
    let (h, _data) = aws_host(webhook_config(webhook.url()), None, Some(&proxy.url())).await;

    // 4 deliveries/s for 42 s: before the outage, through it, and just past it.
    let opts = StormOptions {
        deliveries: 168,
        duplicate_share: 0.3,
        connections: 16,
        rate: Some(4.0),
        retry_pause: Duration::from_secs(1),
        give_up_after: Duration::from_secs(120),
        ready_timeout: Duration::from_secs(120),
        settle: Duration::from_secs(1),
        ..StormOptions::default()
    };
    let url = h.produce_url();
    let report = {
        let outage = async {
            tokio::time::sleep(CUT_AT).await;
            proxy.freeze();
            tokio::time::sleep(OUTAGE).await;
            proxy.thaw();
        };
        let ((), report) = tokio::join!(outage, run_storm(&url, KEY, &opts, &webhook));
        report.expect("the storm runs")
    };
    println!("{report}");
    let (cut, restored) = (CUT_AT, CUT_AT + OUTAGE);

    // During the outage (past the answers already under way), every attempt was answered with a
    // signed 000005 within KooGallery's 5 s (the storm counts anything else as wrong).
    let during: Vec<_> = report
        .attempts
        .iter()
        .filter(|a| a.sent_at > cut + Duration::from_secs(1) && a.sent_at + a.latency < restored)
        .collect();
    let not_retryable: Vec<_> = during
        .iter()
        .filter(|a| a.outcome != Outcome::Retryable)
        .collect();
    assert!(
        not_retryable.is_empty(),
        "during the outage: {not_retryable:?}"
    );
    assert!(
        during.len() > 20,
        "traffic during the outage: {}",
        during.len()
    );
    let slowest = during.iter().map(|a| a.latency).max().unwrap_or_default();

    // After it: when the first delivery was answered with its instance, when the last delivery
    // the outage held was, and when every line was ready.
    let answered_at = |a: &koogallery_sim::storm::Attempt| a.sent_at + a.latency;
    let first_after = report
        .attempts
        .iter()
        .filter(|a| a.sent_at >= restored && matches!(a.outcome, Outcome::Answered { .. }))
        .map(answered_at)
        .min()
        .expect("deliveries answered after the outage");
    let held: std::collections::BTreeSet<usize> = report
        .attempts
        .iter()
        .filter(|a| a.outcome == Outcome::Retryable)
        .map(|a| a.delivery)
        .collect();
    let last_held = report
        .attempts
        .iter()
        .filter(|a| held.contains(&a.delivery) && matches!(a.outcome, Outcome::Answered { .. }))
        .map(answered_at)
        .max()
        .expect("the held deliveries were answered");
    let all_ready = report.elapsed + report.all_ready_after.unwrap_or_default();
    println!(
        "outage: {} attempts answered a signed 000005, the slowest in {} ms; {} deliveries held",
        during.len(),
        slowest.as_millis(),
        held.len()
    );
    println!(
        "recovery after the emulator came back: first newInstance answered in {:.1} s, the last held delivery in {:.1} s, every line ready in {:.1} s",
        (first_after.saturating_sub(restored)).as_secs_f64(),
        (last_held.saturating_sub(restored)).as_secs_f64(),
        (all_ready.saturating_sub(restored)).as_secs_f64(),
    );
    assert!(report.passed(), "{report}");
    assert_eq!(report.instances, report.lines);
    assert_eq!(report.provisionings.distinct(), report.lines);

    // Nothing half-written or left behind: no instance still owed anything, the jobs all ran and
    // nothing was dead-lettered.
    let sqs = aws_sdk_sqs::Client::new(&koogallery_aws::sdk_config().await);
    let mut left = (i64::MAX, i64::MAX);
    for _ in 0..60 {
        left = (
            messages_in(&sqs, h.backend.sqs.queue_url()).await,
            messages_in(&sqs, &h.backend.dlq_url).await,
        );
        if left == (0, 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(left, (0, 0), "jobs queue and dead-letter queue end empty");
    let unsettled = h.backend.store.unsettled().await.expect("store answers");
    assert!(
        unsettled.is_empty(),
        "instances still owed something: {:?}",
        unsettled.iter().map(|i| &i.instance_id).collect::<Vec<_>>()
    );
    h.shutdown().await;
}
