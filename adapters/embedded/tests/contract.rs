//! The shared port contracts, run against a fresh embedded store in a temporary directory.

use std::sync::Arc;

use koogallery::testing::contract::{
    concurrent_create_contract, instance_store_contract, nonce_store_contract,
    order_notice_store_contract,
};
use koogallery_embedded::EmbeddedStore;

fn fresh() -> (tempfile::TempDir, Arc<EmbeddedStore>) {
    let dir = tempfile::tempdir().unwrap();
    // A nested path also checks that `open` creates parent directories.
    let store = EmbeddedStore::open(dir.path().join("data/nested/store.redb")).unwrap();
    (dir, Arc::new(store))
}

#[tokio::test]
async fn embedded_store_passes_the_instance_store_contract() {
    let (_dir, store) = fresh();
    instance_store_contract(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_store_passes_the_concurrent_create_contract() {
    let (_dir, store) = fresh();
    concurrent_create_contract(store).await;
}

#[tokio::test]
async fn embedded_store_passes_the_nonce_store_contract() {
    let (_dir, store) = fresh();
    nonce_store_contract(store).await;
}

#[tokio::test]
async fn embedded_queue_passes_the_job_consumer_contract() {
    let (_dir, store) = fresh();
    let consumer = koogallery_embedded::EmbeddedConsumer::new(
        store.queue(),
        std::sync::Arc::new(koogallery::clock::SystemClock),
    );
    koogallery::testing::contract::job_consumer_contract(&consumer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_store_passes_the_order_notice_contract() {
    let (_dir, store) = fresh();
    order_notice_store_contract(store).await;
}

#[tokio::test]
async fn embedded_store_passes_the_order_line_intake_contract() {
    let (_dir, store) = fresh();
    let consumer = koogallery_embedded::EmbeddedConsumer::new(
        store.queue(),
        std::sync::Arc::new(koogallery::clock::SystemClock),
    );
    koogallery::testing::contract::order_line_intake_contract(
        store.as_ref(),
        store.as_ref(),
        &consumer,
    )
    .await;
}

#[tokio::test]
async fn embedded_store_passes_the_usage_store_contract() {
    let (_dir, store) = fresh();
    koogallery::testing::contract::usage_store_contract(store).await;
}

#[tokio::test]
async fn embedded_store_passes_the_directory_contract() {
    let (_dir, store) = fresh();
    koogallery::testing::contract::directory_contract(store).await;
}

#[tokio::test]
async fn embedded_store_passes_the_instance_listing_contract() {
    let (_dir, store) = fresh();
    koogallery::testing::operator::instance_listing_contract(store.clone(), store).await;
}

/// The operator's reads of an instance's 联营 tenants, their SSO sessions and its order's License
/// codes, all on the one file.
#[tokio::test]
async fn embedded_store_passes_the_instance_accounts_contract() {
    let (_dir, store) = fresh();
    koogallery::testing::operator::instance_accounts_contract(store.clone(), store.clone(), store)
        .await;
}

#[tokio::test]
async fn embedded_queue_passes_the_dead_letters_contract() {
    use koogallery::jobs::Job;
    let (_dir, store) = fresh();
    let queue = store.queue();
    let now = chrono::Utc::now();
    let mut seeded = Vec::new();
    for job in [
        Job::Provision {
            instance_id: "i-a".into(),
        },
        Job::Notify {
            instance_id: "i-b".into(),
            seq: 2,
        },
        Job::Provision {
            instance_id: "i-c".into(),
        },
        Job::Provision {
            instance_id: "i-d".into(),
        },
    ] {
        let id = queue.enqueue_at(&job, now).unwrap();
        queue.dead_letter(id, "deadline passed", now).unwrap();
        seeded.push((id.to_string(), job));
    }
    let probe = queue.clone();
    koogallery::testing::operator::dead_letters_contract(&queue, &seeded, |job| {
        let probe = probe.clone();
        async move {
            // Everything due within a day, taken for a minute: is `job` among it?
            let later = chrono::Utc::now() + chrono::Duration::days(1);
            let mut got = Vec::new();
            while let Some(d) = probe
                .receive(later, std::time::Duration::from_secs(60))
                .unwrap()
            {
                got.push(d);
            }
            let found = got.iter().any(|d| d.job == job);
            for d in got {
                probe
                    .retry_later(d.id, later, std::time::Duration::ZERO)
                    .ok();
            }
            found
        }
    })
    .await;
}
