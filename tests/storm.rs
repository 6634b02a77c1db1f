//! `koogallery-sim storm` in small, on both backends: 500 newInstance deliveries, 30 % of them
//! KooGallery's repeats (same order line, the same or a new businessId, a new nonce; half in
//! flight with their original), 64 at once. Every delivery of a line is answered with the same
//! instanceId, every line becomes ready through queryInstance, and the vendor's webhook receives
//! exactly one provisioning per line. BENCHMARKS.md has the 10 000-delivery figures.

use std::time::Duration;

use koogallery_e2e::{KEY, WEBHOOK_SECRET, aws_host, host, webhook_config};
use koogallery_sim::storm::{StormOptions, StormReport, WebhookReceiver, run_storm};

async fn receiver() -> WebhookReceiver {
    WebhookReceiver::start("127.0.0.1:0".parse().unwrap(), WEBHOOK_SECRET)
        .await
        .expect("the vendor's webhook listens")
}

fn options() -> StormOptions {
    StormOptions {
        deliveries: 500,
        duplicate_share: 0.3,
        connections: 64,
        retry_pause: Duration::from_millis(200),
        ready_timeout: Duration::from_secs(120),
        settle: Duration::from_millis(500),
        ..StormOptions::default()
    }
}

fn check(report: &StormReport) {
    println!("{report}");
    assert!(report.passed(), "{report}");
    assert_eq!((report.deliveries, report.lines), (500, 350));
    assert!(report.with_original > 0 && report.new_business_ids > 0);
    assert_eq!(
        report.instances, report.lines,
        "one instance per order line"
    );
    assert_eq!(report.ready, report.lines, "every line ready");
    assert_eq!(
        (
            report.provisionings.distinct(),
            report.provisionings.calls()
        ),
        (report.lines, report.lines),
        "one provisioning per order line, each sent once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_repeats_makes_one_instance_and_one_provisioning_per_line_on_the_embedded_store()
{
    let webhook = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path(), webhook_config(webhook.url()), None).await;
    let report = run_storm(&h.produce_url(), KEY, &options(), &webhook)
        .await
        .expect("the storm runs");
    check(&report);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn a_storm_of_repeats_makes_one_instance_and_one_provisioning_per_line_on_dynamodb() {
    let webhook = receiver().await;
    let (h, _data) = aws_host(webhook_config(webhook.url()), None, None).await;
    let report = run_storm(&h.produce_url(), KEY, &options(), &webhook)
        .await
        .expect("the storm runs");
    check(&report);
    h.shutdown().await;
}
