//! Port contract tests: every store and nonce adapter must pass these (memory, embedded, DynamoDB),
//! and every job queue's consumer side (embedded, SQS).
//! Call them from an adapter's own test with a fresh, empty store. IDs are unique per call so a
//! shared emulator can be reused.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::{
    instance::{
        AccessInfo, CreateOutcome, Instance, InstanceState, InstanceStore, OrderLineIntake, Outcome,
    },
    jobs::{
        Job, JobQueue,
        consume::{QueueMessage, Receive, Settle},
    },
    order::{OrderId, OrderLineId},
    security::replay::NonceStore,
    storage::StoreError,
};

fn t0() -> DateTime<Utc> {
    crate::protocol::time::parse_compact("20260101000000").unwrap_or_default()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Conditional create, duplicates, reads, compare-and-set saves and the event history.
pub async fn instance_store_contract(store: Arc<dyn InstanceStore>) {
    let order = OrderId::new(unique("CS"));
    let line = OrderLineId::new(format!("{order}-000001"));
    let first_id = unique("biz");
    let (inst, created) = Instance::new_provisioning(&order, &line, &first_id, false, t0());
    assert_eq!(
        store
            .create_for_order_line(&inst, &[created])
            .await
            .unwrap(),
        CreateOutcome::Created
    );

    // A retry with a new businessId gets the first instance back.
    let (dup, dup_ev) = Instance::new_provisioning(&order, &line, &unique("biz"), false, t0());
    match store.create_for_order_line(&dup, &[dup_ev]).await.unwrap() {
        CreateOutcome::Existing(existing) => assert_eq!(existing.instance_id, first_id),
        other => panic!("duplicate order line created again: {other:?}"),
    }

    // Another order line with the same instance ID: nothing written, the caller is told.
    let (other, other_ev) =
        Instance::new_provisioning(&unique("CS").into(), &"L-2".into(), &first_id, false, t0());
    assert_eq!(
        store
            .create_for_order_line(&other, &[other_ev])
            .await
            .unwrap(),
        CreateOutcome::InstanceIdTaken
    );

    let loaded = store
        .get(&first_id)
        .await
        .unwrap()
        .expect("created instance is readable");
    assert_eq!(loaded.state, InstanceState::Provisioning);
    assert_eq!(loaded.version, 1, "a created record starts at version 1");
    assert!(store.get(&unique("nope")).await.unwrap().is_none());

    // Batched read skips unknown IDs.
    let many = store
        .get_many(&[first_id.as_str(), "does-not-exist"])
        .await
        .unwrap();
    assert_eq!(many.len(), 1);

    // Compare-and-set: the first save wins, a stale one conflicts and changes nothing.
    let mut a = loaded.clone();
    let app = AccessInfo {
        front_end_url: "https://a".into(),
        admin_url: None,
        user_name: None,
        password: None,
        memo: None,
    };
    let Outcome::Changed(ev) = a.activate(app, t0()).unwrap() else {
        panic!("activation changed nothing")
    };
    store
        .save(&a, loaded.version, std::slice::from_ref(&ev))
        .await
        .unwrap();
    let mut b = loaded.clone();
    let Outcome::Changed(ev_b) = b.release(None, t0()) else {
        panic!()
    };
    assert!(matches!(
        store.save(&b, loaded.version, &[ev_b]).await,
        Err(StoreError::Conflict)
    ));
    let now = store.get(&first_id).await.unwrap().unwrap();
    assert_eq!(now.state, InstanceState::Active);
    assert_eq!(now.version, 2);
    assert_eq!(
        now.access.as_ref().map(|a| a.front_end_url.as_str()),
        Some("https://a")
    );

    // History: created, then provisioned; the losing writer's event is not there.
    let events = store.events(&first_id).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(kinds, ["created", "provisioned"]);
    assert_eq!(events[1].seq, events[0].seq + 1);

    // Saving against a missing record is a conflict, never a blind create.
    let (ghost, _) = Instance::new_provisioning(
        &unique("O").into(),
        &"L".into(),
        &unique("ghost"),
        false,
        t0(),
    );
    assert!(matches!(
        store.save(&ghost, 1, &[]).await,
        Err(StoreError::Conflict)
    ));
    assert!(store.get(&ghost.instance_id).await.unwrap().is_none());

    unsettled_contract(store.as_ref()).await;
}

/// `unsettled` lists exactly the real instances the worker owes something (provisioning, or
/// notices pending), and drops one as soon as it settles. Other tests may share the store, so
/// only this test's IDs are checked.
async fn unsettled_contract(store: &dyn InstanceStore) {
    let create = |test: bool| {
        let id = unique("uns");
        let (i, ev) =
            Instance::new_provisioning(&unique("CS").into(), &"L-1".into(), &id, test, t0());
        (id, i, ev)
    };
    let listed = || async {
        store
            .unsettled()
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.instance_id)
            .collect::<std::collections::BTreeSet<_>>()
    };
    let (provisioning, i, ev) = create(false);
    store.create_for_order_line(&i, &[ev]).await.unwrap();
    let (debug, i, ev) = create(true);
    store.create_for_order_line(&i, &[ev]).await.unwrap();
    let (released, mut i, ev) = create(false);
    store.create_for_order_line(&i, &[ev]).await.unwrap();
    i.version = 1;
    let app = crate::testing::sample_access(&released);
    let Outcome::Changed(activated) = i.activate(app, t0()).unwrap() else {
        panic!()
    };
    store.save(&i, 1, &[activated]).await.unwrap();
    let settled = listed().await;
    assert!(settled.iter().any(|i| *i == provisioning));
    assert!(
        !settled.iter().any(|i| *i == debug),
        "debug records are never unsettled"
    );
    assert!(
        !settled.iter().any(|i| *i == released),
        "active, nothing pending"
    );

    let Outcome::Changed(release) = i.release(None, t0()) else {
        panic!()
    };
    assert!(i.outbox.pending.contains(&release.seq));
    store
        .save(&i, 2, std::slice::from_ref(&release))
        .await
        .unwrap();
    assert!(
        listed().await.iter().any(|i| *i == released),
        "a notice is pending"
    );
    i.notice_delivered(release.seq, true);
    store.save(&i, 3, &[]).await.unwrap();
    assert!(
        !listed().await.iter().any(|i| *i == released),
        "settled once delivered"
    );
}

/// Every [`OrderLineIntake`] (newInstance's write), with `consumer` reading the queue it writes to:
/// a new order line's instance is stored as sent (marked enqueued) and its job is delivered; a
/// repeat for the order line, or an instance ID another order line has, writes and queues nothing.
pub async fn order_line_intake_contract<Q: Receive + Settle + ?Sized>(
    intake: &dyn OrderLineIntake,
    store: &dyn InstanceStore,
    consumer: &Q,
) {
    let visibility = std::time::Duration::from_secs(30);
    let new_line = |order: &str, id: &str| {
        let (mut inst, ev) = Instance::new_provisioning(
            &order.into(),
            &format!("{order}-000001").into(),
            id,
            false,
            t0(),
        );
        inst.provisioning.enqueued = true;
        let job = Job::Provision {
            instance_id: id.to_owned().into(),
        };
        (inst, ev, job)
    };
    let (order, id) = (unique("CS"), unique("biz"));
    let (inst, ev, job) = new_line(&order, &id);
    let outcome = intake
        .create_and_enqueue(&inst, std::slice::from_ref(&ev), &job)
        .await
        .unwrap();
    assert_eq!(outcome, CreateOutcome::Created);
    let stored = store
        .get(&id)
        .await
        .unwrap()
        .expect("the instance is stored");
    assert!(stored.provisioning.enqueued, "stored marked enqueued");
    assert_eq!(stored.order_id, order);
    assert_eq!(store.events(&id).await.unwrap(), vec![ev.clone()]);
    let m = receive_job(consumer, &job, visibility, 20)
        .await
        .expect("the instance's job is queued");
    consumer.ack(&m).await.unwrap();

    // A repeat of the order line (another businessId): the first instance, nothing written.
    let (again, ev2, job2) = new_line(&order, &unique("biz"));
    match intake
        .create_and_enqueue(&again, std::slice::from_ref(&ev2), &job2)
        .await
        .unwrap()
    {
        CreateOutcome::Existing(e) => assert_eq!(e.instance_id, id),
        other => panic!("a repeat finds the order line's instance, got {other:?}"),
    }
    assert!(store.get(&again.instance_id).await.unwrap().is_none());
    // Another order line naming the same instance ID: refused, nothing written.
    let (taken, ev3, job3) = new_line(&unique("CS"), &id);
    assert_eq!(
        intake
            .create_and_enqueue(&taken, std::slice::from_ref(&ev3), &job3)
            .await
            .unwrap(),
        CreateOutcome::InstanceIdTaken
    );
    assert_eq!(store.get(&id).await.unwrap().unwrap().order_id, order);

    // A marker order line: its job comes, and nothing queued for the calls above came before it.
    let (marker, ev4, job4) = new_line(&unique("CS"), &unique("biz"));
    intake
        .create_and_enqueue(&marker, std::slice::from_ref(&ev4), &job4)
        .await
        .unwrap();
    for _ in 0..20 {
        for m in consumer.receive(10, visibility).await.expect("receive") {
            let got: Option<Job> = serde_json::from_str(&m.body).ok();
            assert!(
                got.as_ref() != Some(&job) && got.as_ref() != Some(&job2),
                "a repeat or a refused create queued a job: {got:?}"
            );
            if got.as_ref() == Some(&job4) {
                consumer.ack(&m).await.unwrap();
                return;
            }
        }
    }
    panic!("the marker order line's job never came");
}

/// Sixteen concurrent creates for one order line: exactly one wins, all see the same instance.
pub async fn concurrent_create_contract(store: Arc<dyn InstanceStore>) {
    let order = OrderId::new(unique("CS"));
    let line = OrderLineId::new(format!("{order}-000001"));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        let (order, line) = (order.clone(), line.clone());
        tasks.push(tokio::spawn(async move {
            let (inst, ev) = Instance::new_provisioning(&order, &line, &unique("biz"), false, t0());
            let outcome = store.create_for_order_line(&inst, &[ev]).await.unwrap();
            match outcome {
                CreateOutcome::Created => (true, inst.instance_id),
                CreateOutcome::Existing(e) => (false, e.instance_id),
                CreateOutcome::InstanceIdTaken => panic!("each caller has its own businessId"),
            }
        }));
    }
    let mut winners = 0;
    let mut ids = std::collections::BTreeSet::new();
    for t in tasks {
        let (won, id) = t.await.unwrap();
        winners += usize::from(won);
        ids.insert(id);
    }
    assert_eq!(winners, 1, "exactly one concurrent create wins");
    assert_eq!(ids.len(), 1, "every caller sees the same instanceId");
}

/// The nonce replay guard.
pub async fn nonce_store_contract(store: Arc<dyn NonceStore>) {
    let n = unique("nonce");
    let exp = t0() + Duration::seconds(300);
    assert!(
        store.remember(&n, t0(), exp).await.unwrap(),
        "a fresh nonce is accepted"
    );
    assert!(
        !store
            .remember(&n, t0() + Duration::seconds(10), exp)
            .await
            .unwrap(),
        "a replay is refused"
    );
    assert!(
        store.remember(&unique("nonce"), t0(), exp).await.unwrap(),
        "another nonce is independent"
    );
    let later = t0() + Duration::seconds(301);
    assert!(
        store
            .remember(&n, later, later + Duration::seconds(300))
            .await
            .unwrap(),
        "expired nonces may recur"
    );
}

/// Receives until `id` (or, with `None`, the first message carrying `job`) arrives, settling
/// nothing else; `None` when it does not come within `tries` receives.
async fn receive_job<Q: Receive + ?Sized>(
    queue: &Q,
    job: &Job,
    visibility: std::time::Duration,
    tries: usize,
) -> Option<QueueMessage> {
    for _ in 0..tries {
        let got = queue.receive(10, visibility).await.expect("receive");
        if let Some(m) = got
            .into_iter()
            .find(|m| serde_json::from_str::<Job>(&m.body).ok().as_ref() == Some(job))
        {
            return Some(m);
        }
    }
    None
}

/// The consumer side of a job queue, on a fresh queue: an enqueued job is received with receive
/// count 1 and its body as sent; a retry brings the same message back with the count raised; an ack
/// and a dead letter each remove it for good.
///
/// Nothing here depends on how fast the machine runs. The first delivery is leased for longer than
/// all the receives that look for it again can take, so only `retry_after` brings it back, never
/// its lease running out. The acked and the dead-lettered deliveries are leased for `short`; a
/// canary received after them with the same lease, and left unsettled, comes back only once their
/// leases have run out too: every receive up to its return must bring neither of them back.
pub async fn job_consumer_contract<Q: JobQueue + Receive>(queue: &Q) {
    use std::time::Duration;
    // Each receive waits about a second at most when nothing is due (the embedded queue's idle
    // poll, SQS's long poll), so 20 receives end well inside this lease.
    let long = Duration::from_secs(120);
    let short = Duration::from_secs(1);
    let job = Job::Provision {
        instance_id: (unique("job")).into(),
    };
    queue.enqueue(&job).await.expect("enqueue");
    let first = receive_job(queue, &job, long, 20)
        .await
        .expect("an enqueued job is received");
    assert_eq!(first.attempt, 1, "first delivery");
    assert_eq!(
        first.body,
        serde_json::to_string(&job).unwrap(),
        "the body as sent"
    );
    queue
        .retry_after(&first, Duration::ZERO)
        .await
        .expect("retry");
    let second = receive_job(queue, &job, short, 20)
        .await
        .expect("a retried job comes back (its lease has far to run: the retry brought it)");
    assert_eq!(second.message_id, first.message_id, "the same message");
    assert_eq!(second.attempt, 2, "its receive count raised");
    queue.ack(&second).await.expect("ack");

    let doomed = Job::Notify {
        instance_id: (unique("job")).into(),
        seq: 7,
    };
    queue.enqueue(&doomed).await.expect("enqueue");
    let m = receive_job(queue, &doomed, short, 20)
        .await
        .expect("received");
    queue
        .dead_letter(&m, "contract: gave up")
        .await
        .expect("dead letter");

    // The canary: leased as they were, after them, and never settled until it returns.
    let canary = Job::Provision {
        instance_id: (unique("canary")).into(),
    };
    queue.enqueue(&canary).await.expect("enqueue");
    let leased = receive_job(queue, &canary, short, 20)
        .await
        .expect("the canary is received");
    let mut back = None;
    for _ in 0..60 {
        for m in queue.receive(10, long).await.expect("receive") {
            let got: Option<Job> = serde_json::from_str(&m.body).ok();
            assert!(got.as_ref() != Some(&job), "an acked job never returns");
            assert!(
                got.as_ref() != Some(&doomed),
                "a dead-lettered job leaves the queue"
            );
            if got.as_ref() == Some(&canary) {
                back = Some(m);
            }
        }
        if back.is_some() {
            break;
        }
    }
    let back = back.expect("the canary returns once its lease runs out");
    assert_eq!(back.message_id, leased.message_id, "the same message");
    assert_eq!(back.attempt, 2, "delivered again: its lease ran out");
    queue.ack(&back).await.expect("ack");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MemoryStore;

    #[tokio::test]
    async fn memory_store_passes_the_contract() {
        instance_store_contract(Arc::new(MemoryStore::new())).await;
        concurrent_create_contract(Arc::new(MemoryStore::new())).await;
        nonce_store_contract(Arc::new(MemoryStore::new())).await;
        usage_store_contract(Arc::new(MemoryStore::new())).await;
    }
}

/// Every credential sealer: what it seals opens, by `again` too (another instance on the same key,
/// with nothing cached), never shows the plain text, differs each time, opens only for the
/// instance it was sealed for, and refuses an altered value as corrupt (not retryable).
pub async fn credential_sealer_contract(
    sealer: &dyn crate::security::at_rest::CredentialSealer,
    again: &dyn crate::security::at_rest::CredentialSealer,
) {
    use crate::security::at_rest::SealError;
    for plain in ["S3cret!pass", "密码-Ünïcode-1", "", &"x".repeat(128)] {
        let sealed = sealer.seal("i-owner", plain).await.unwrap();
        if !plain.is_empty() {
            assert!(
                !sealed.contains(plain),
                "the sealed value shows the plain text"
            );
        }
        assert_ne!(
            sealed,
            sealer.seal("i-owner", plain).await.unwrap(),
            "a fresh nonce each time"
        );
        assert_eq!(sealer.open("i-owner", &sealed).await.unwrap(), plain);
        assert_eq!(
            again.open("i-owner", &sealed).await.unwrap(),
            plain,
            "opened without a cache"
        );
        // Copied into another instance's record, it does not open: with the data key cached
        // (`sealer`) or not (`again`).
        for other in [sealer, again] {
            match other.open("i-other", &sealed).await {
                Err(e @ SealError::Corrupt(_)) => assert!(!e.is_retryable()),
                got => panic!("a value sealed for i-owner opened for i-other: {got:?}"),
            }
        }
    }
    let sealed = sealer.seal("i-owner", "tamper-me").await.unwrap();
    let mut chars: Vec<char> = sealed.chars().collect();
    let last = chars.len() - 3;
    chars[last] = if chars[last] == 'A' { 'B' } else { 'A' };
    let altered: String = chars.into_iter().collect();
    match again.open("i-owner", &altered).await {
        Err(e @ SealError::Corrupt(_)) => assert!(!e.is_retryable()),
        other => panic!("an altered value opened: {other:?}"),
    }
}

#[cfg(test)]
mod local_sealer {
    #[tokio::test]
    async fn the_local_key_sealer_passes_the_sealer_contract() {
        let key = crate::security::at_rest::encode_base64(&[7u8; 32]);
        let a = crate::security::at_rest::LocalKeySealer::from_base64(&key).unwrap();
        let b = crate::security::at_rest::LocalKeySealer::from_base64(&key).unwrap();
        super::credential_sealer_contract(&a, &b).await;
    }

    /// A password sealed before values were bound to their instance (`local1.`, golden) still
    /// opens.
    #[tokio::test]
    async fn a_value_sealed_before_binding_still_opens() {
        use crate::security::at_rest::CredentialSealer;
        let key = crate::security::at_rest::encode_base64(&[7u8; 32]);
        let sealer = crate::security::at_rest::LocalKeySealer::from_base64(&key).unwrap();
        // Sealed by the version-1 code under the key [7; 32].
        let v1 = include_str!("../../tests/fixtures/sealed_local_v1.txt").trim();
        assert!(v1.starts_with("local1."));
        assert_eq!(
            sealer.open("any-instance", v1).await.unwrap(),
            "S3cret!pass"
        );
    }
}

/// Every order-notice store: one record per order line whoever records it first, read back as
/// written, updated in place.
pub async fn order_notice_store_contract(store: Arc<dyn crate::order::notice::OrderNoticeStore>) {
    use crate::order::{OrderDetails, notice::OrderNotice};
    let order = OrderId::new(unique("CS"));
    let line = OrderLineId::new(format!("{order}-000001"));
    let first = OrderNotice::received(&order, &line, t0());
    assert!(store.record_notice(&first).await.unwrap());
    let again = OrderNotice::received(&order, &line, t0() + Duration::hours(1));
    assert!(
        !store.record_notice(&again).await.unwrap(),
        "one record per order line"
    );
    assert_eq!(
        store.notice(&order, &line).await.unwrap(),
        Some(first.clone())
    );
    assert!(
        store
            .notice(&order, &"other-line".into())
            .await
            .unwrap()
            .is_none()
    );
    let mut read = first;
    read.order = Some(OrderDetails {
        sku_code: Some("sku-1".into()),
        ..Default::default()
    });
    read.delivered_at = Some(t0() + Duration::minutes(1));
    store.update_notice(&read).await.unwrap();
    assert_eq!(store.notice(&order, &line).await.unwrap(), Some(read));
    // Concurrent first notices: exactly one records.
    let order = OrderId::new(unique("CS"));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, order) = (store.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            store
                .record_notice(&OrderNotice::received(&order, &"L".into(), t0()))
                .await
                .unwrap()
        }));
    }
    let mut recorded = 0;
    for t in tasks {
        recorded += usize::from(t.await.unwrap());
    }
    assert_eq!(recorded, 1);
}

#[cfg(test)]
mod memory_notices {
    #[tokio::test]
    async fn the_memory_store_passes_the_order_notice_contract() {
        super::order_notice_store_contract(std::sync::Arc::new(crate::testing::MemoryStore::new()))
            .await;
    }
}

/// A copy of a stored window made stale by a save after it was read.
async fn read_again_stale(
    store: &Arc<dyn crate::metering::UsageStore>,
    key: &crate::metering::WindowKey,
) -> crate::metering::UsageWindow {
    let copy = store.window(key).await.unwrap().unwrap();
    let mut current = copy.clone();
    current.push_failed("bump");
    store.save_window(&current).await.unwrap();
    copy
}

/// The running sums equal what they sum: each instance's usage total its windows' (none without
/// windows), read one at a time and in one batched read, and each stop-when-used-up package's use
/// per instance its package windows'.
async fn assert_totals_sum_windows(
    store: &Arc<dyn crate::metering::UsageStore>,
    instances: &[&str],
    stop_packages: &[&str],
    step: &str,
) {
    use crate::metering::UsageTotal;
    let mut ids = instances.to_vec();
    ids.push("usage-nobody");
    let batched = store.usage_totals(&ids).await.unwrap();
    let mut expected = 0;
    for id in instances {
        let windows = store.windows_of(id).await.unwrap();
        let built = UsageTotal::of_windows(id, &windows);
        let stored = store.usage_total(id).await.unwrap();
        match (&built, &stored) {
            (None, None) => {}
            (Some(b), Some(s)) => {
                assert!(
                    b.same_sums(s),
                    "{step}: {id}: stored {s:?}, windows sum {b:?}"
                );
                expected += 1;
                let one = batched.iter().filter(|t| t.instance_id == *id).count();
                assert_eq!(one, 1, "{step}: {id} once in the batched read");
                let in_batch = batched.iter().find(|t| t.instance_id == *id).unwrap();
                assert!(in_batch.same_sums(s), "{step}: {id}: batched {in_batch:?}");
            }
            _ => panic!("{step}: {id}: stored {stored:?}, windows sum {built:?}"),
        }
        for package in stop_packages {
            let in_windows: rust_decimal::Decimal = windows
                .iter()
                .filter(|w| w.package.as_deref() == Some(*package))
                .map(|w| w.total)
                .sum();
            let used = store
                .package(package)
                .await
                .unwrap()
                .and_then(|p| p.used.get(*id).copied())
                .unwrap_or_default();
            assert_eq!(used, in_windows, "{step}: {package} used by {id}");
        }
    }
    assert_eq!(batched.len(), expected, "{step}: {batched:?}");
}

/// Every usage store: batches applied all or nothing, each idempotency key once, windows read
/// back as written, the unsettled ones listed oldest first, compare-and-set saves, no report
/// ever added to a sealed window, and each instance's usage total the sum of its windows after
/// every step. Each case names instances of its own, so they share the store in any order.
pub async fn usage_store_contract(store: Arc<dyn crate::metering::UsageStore>) {
    usage_a_batch_is_applied_once_and_read_back(&store).await;
    usage_a_reused_key_refuses_the_whole_batch(&store).await;
    usage_due_lists_ended_hours_oldest_first(&store).await;
    usage_sealing_is_a_compare_and_set_and_a_sealed_window_takes_nothing_more(&store).await;
    usage_settled_windows_leave_the_due_list(&store).await;
    usage_several_saves_are_each_a_compare_and_set(&store).await;
    usage_a_save_never_changes_what_a_window_adds_up_to(&store).await;
    usage_a_stop_when_used_up_package_is_a_window_dimension_of_its_own(&store).await;
    usage_a_package_refuses_more_than_is_left_and_is_used_up_once(&store).await;
    usage_push_claim_has_one_holder_at_a_time(&store).await;
}

/// Two instances of one usage case, named for it alone, and the reports, keys and hours its
/// steps share.
struct UsageCase {
    store: Arc<dyn crate::metering::UsageStore>,
    a: String,
    b: String,
}

impl UsageCase {
    fn new(store: &Arc<dyn crate::metering::UsageStore>) -> Self {
        Self {
            store: store.clone(),
            a: unique("usage-a"),
            b: unique("usage-b"),
        }
    }

    /// `n` hours after the contract's epoch.
    fn h(n: i64) -> DateTime<Utc> {
        t0() + Duration::hours(n)
    }

    /// When every case ingests and settles.
    fn now() -> DateTime<Utc> {
        Self::h(5)
    }

    fn report(id: &str, q: &str, at: DateTime<Utc>, key: &str) -> crate::metering::UsageReport {
        crate::metering::UsageReport {
            instance_id: id.to_owned(),
            quantity: q.parse().unwrap(),
            occurred_at: at,
            idempotency_key: format!("{id}/{key}"),
            package_instance_id: None,
        }
    }

    fn key(id: &str, n: i64) -> crate::metering::WindowKey {
        crate::metering::WindowKey {
            instance_id: id.to_owned(),
            start: Self::h(n),
            package: None,
        }
    }

    /// `a`: 1.5 and 2 in hour 1, 0.25 in hour 2; `b`: 7 in hour 1.
    fn first_batch(&self) -> Vec<crate::metering::UsageReport> {
        let (a, b, h) = (&self.a, &self.b, Self::h);
        vec![
            Self::report(a, "1.5", h(1) + Duration::minutes(10), "1"),
            Self::report(a, "2", h(1) + Duration::minutes(50), "2"),
            Self::report(a, "0.25", h(2), "3"),
            Self::report(b, "7", h(1) + Duration::minutes(5), "4"),
        ]
    }

    /// A case whose instances have the first batch stored: windows a@1, a@2 and b@1, open.
    async fn after_first_batch(store: &Arc<dyn crate::metering::UsageStore>) -> Self {
        let case = Self::new(store);
        let outcome = store
            .ingest(
                &case.first_batch(),
                &crate::metering::PackageQuotas::new(),
                Self::now(),
            )
            .await
            .unwrap();
        assert_eq!((outcome.applied, outcome.duplicates), (4, 0));
        case
    }

    async fn window(&self, id: &str, n: i64) -> Option<crate::metering::UsageWindow> {
        self.store.window(&Self::key(id, n)).await.unwrap()
    }

    /// The case's windows among those due at `at`, as (instance, hour).
    async fn due(&self, at: DateTime<Utc>) -> Vec<(String, DateTime<Utc>)> {
        self.store
            .due(at, 10_000)
            .await
            .unwrap()
            .into_iter()
            .filter(|w| w.instance_id == self.a || w.instance_id == self.b)
            .map(|w| (w.instance_id, w.start))
            .collect()
    }

    /// Window a@1 sealed and saved, as read back.
    async fn seal_a1(&self) -> crate::metering::UsageWindow {
        let mut sealed = self.window(&self.a, 1).await.unwrap();
        assert!(sealed.seal(Self::now()));
        self.store.save_window(&sealed).await.unwrap();
        self.window(&self.a, 1).await.unwrap()
    }

    async fn assert_totals(&self, stop_packages: &[&str], step: &str) {
        assert_totals_sum_windows(&self.store, &[&self.a, &self.b], stop_packages, step).await;
    }
}

/// A batch is applied once: windows read back as written, the same batch again all duplicates.
async fn usage_a_batch_is_applied_once_and_read_back(store: &Arc<dyn crate::metering::UsageStore>) {
    use crate::metering::{PackageQuotas, WindowState};
    let c = UsageCase::after_first_batch(store).await;
    c.assert_totals(&[], "first batch").await;
    let w = c.window(&c.a, 1).await.expect("window a@1");
    assert_eq!((w.total, w.reports), ("3.5".parse().unwrap(), 2));
    assert_eq!(w.state, WindowState::Open);

    // The same batch again: every report a duplicate, nothing added.
    let again = store
        .ingest(&c.first_batch(), &PackageQuotas::new(), UsageCase::now())
        .await
        .unwrap();
    assert_eq!((again.applied, again.duplicates), (0, 4));
    c.assert_totals(&[], "the batch again").await;
    assert_eq!(c.window(&c.a, 1).await.unwrap().total, w.total);
}

/// A reused key with other content refuses the whole batch: the new report is not stored.
async fn usage_a_reused_key_refuses_the_whole_batch(store: &Arc<dyn crate::metering::UsageStore>) {
    use crate::metering::{IngestError, PackageQuotas, ingest::Refusal};
    let c = UsageCase::after_first_batch(store).await;
    let h = UsageCase::h;
    let mixed = vec![
        UsageCase::report(&c.a, "5", h(3), "5"),
        UsageCase::report(&c.a, "9", h(1) + Duration::minutes(10), "1"),
    ];
    let err = store
        .ingest(&mixed, &PackageQuotas::new(), UsageCase::now())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            IngestError::Invalid {
                index: 1,
                reason: Refusal::KeyReused(_)
            }
        ),
        "{err}"
    );
    assert!(c.window(&c.a, 3).await.is_none(), "all or nothing");
    c.assert_totals(&[], "a refused batch").await;
}

/// Due: windows whose hour ended, oldest first, then by instance.
async fn usage_due_lists_ended_hours_oldest_first(store: &Arc<dyn crate::metering::UsageStore>) {
    let c = UsageCase::after_first_batch(store).await;
    let h = UsageCase::h;
    let mut first_hour = vec![(c.a.clone(), h(1)), (c.b.clone(), h(1))];
    first_hour.sort();
    assert_eq!(c.due(h(2)).await, first_hour);
    let all = c.due(h(3)).await;
    assert_eq!(all.len(), 3);
    assert_eq!(all[2], (c.a.clone(), h(2)));
}

/// Sealing is a compare-and-set (a stale copy loses), and a sealed window takes nothing more: the
/// batch around a late report is not stored.
async fn usage_sealing_is_a_compare_and_set_and_a_sealed_window_takes_nothing_more(
    store: &Arc<dyn crate::metering::UsageStore>,
) {
    use crate::metering::{IngestError, PackageQuotas, ingest::Refusal};
    let c = UsageCase::after_first_batch(store).await;
    let (h, now) = (UsageCase::h, UsageCase::now());
    let mut sealed = c.window(&c.a, 1).await.unwrap();
    let stale = sealed.clone();
    assert!(sealed.seal(now));
    store.save_window(&sealed).await.unwrap();
    assert!(matches!(
        store.save_window(&stale).await,
        Err(StoreError::Conflict)
    ));
    let read = c.window(&c.a, 1).await.unwrap();
    assert_eq!(read.sealed(), sealed.sealed());
    assert_eq!(read.version, sealed.version + 1);
    c.assert_totals(&[], "sealed").await;

    let late = vec![
        UsageCase::report(&c.b, "1", h(4), "6"),
        UsageCase::report(&c.a, "1", h(1) + Duration::minutes(59), "7"),
    ];
    let err = store
        .ingest(&late, &PackageQuotas::new(), now)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            IngestError::Invalid {
                index: 1,
                reason: Refusal::WindowReported { .. }
            }
        ),
        "{err}"
    );
    assert!(c.window(&c.b, 4).await.is_none());
    c.assert_totals(&[], "a late report refused").await;
}

/// Settled windows leave the due list (its limit holds); an instance's windows still list them.
async fn usage_settled_windows_leave_the_due_list(store: &Arc<dyn crate::metering::UsageStore>) {
    use crate::metering::WindowState;
    let c = UsageCase::after_first_batch(store).await;
    let h = UsageCase::h;
    let mut accepted = c.seal_a1().await;
    accepted.accept(UsageCase::now());
    store.save_window(&accepted).await.unwrap();
    let left = c.due(h(3)).await;
    assert!(!left.contains(&(c.a.clone(), h(1))), "{left:?}");
    c.assert_totals(&[], "accepted").await;
    assert_eq!(left.len(), 2);
    assert_eq!(
        store.due(h(3), 1).await.unwrap().len(),
        1,
        "the limit holds"
    );

    let of_a = store.windows_of(&c.a).await.unwrap();
    assert_eq!(
        of_a.iter().map(|w| w.start).collect::<Vec<_>>(),
        vec![h(1), h(2)]
    );
    assert!(matches!(of_a[0].state, WindowState::Accepted { .. }));
}

/// Several saves at once: each its own compare-and-set.
async fn usage_several_saves_are_each_a_compare_and_set(
    store: &Arc<dyn crate::metering::UsageStore>,
) {
    let c = UsageCase::after_first_batch(store).await;
    let fresh = c.window(&c.a, 2).await.unwrap();
    let mut sealed_fresh = fresh.clone();
    assert!(sealed_fresh.seal(UsageCase::now()));
    let stale = read_again_stale(store, &UsageCase::key(&c.b, 1)).await;
    assert_eq!(
        store.save_windows(&[sealed_fresh, stale]).await.unwrap(),
        [true, false]
    );
    let w = c.window(&c.a, 2).await.unwrap();
    assert_eq!((w.version, w.sealed().is_some()), (fresh.version + 1, true));
    c.assert_totals(&[], "saved several").await;
}

/// A save never changes what a window adds up to: that is ingestion's, with the total. A copy
/// whose usage differs from the stored one is refused as a stale copy is; a sealed window's
/// settlement (here a rejection) saves.
async fn usage_a_save_never_changes_what_a_window_adds_up_to(
    store: &Arc<dyn crate::metering::UsageStore>,
) {
    let c = UsageCase::after_first_batch(store).await;
    let mut rejected = c.seal_a1().await;
    let mut inflated = rejected.clone();
    inflated.total += rust_decimal::Decimal::ONE;
    inflated.reports += 1;
    assert!(matches!(
        store.save_window(&inflated).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.save_windows(&[inflated]).await.unwrap(), [false]);
    rejected.reject("MKT.9001", "instance not found", UsageCase::now());
    store.save_window(&rejected).await.unwrap();
    c.assert_totals(&[], "rejected").await;
}

/// A stop-when-used-up package (quota 10) and an on-demand one (no quota), unique to a case.
struct Packages {
    stop: String,
    on_demand: String,
    quotas: crate::metering::PackageQuotas,
}

impl Packages {
    fn new() -> Self {
        let (stop, on_demand) = (unique("pkg-stop"), unique("pkg-od"));
        let quotas = [
            (stop.clone(), Some("10".parse().unwrap())),
            (on_demand.clone(), None),
        ]
        .into();
        Self {
            stop,
            on_demand,
            quotas,
        }
    }

    fn with(r: crate::metering::UsageReport, p: &str) -> crate::metering::UsageReport {
        crate::metering::UsageReport {
            package_instance_id: Some(p.to_owned()),
            ..r
        }
    }

    /// In hour 4: `a` uses 4 of the stop package, `b` 5 of it; `a` 2 of the on-demand package and
    /// 1 on its own.
    async fn first_used(&self, c: &UsageCase) {
        let h = UsageCase::h;
        let first = vec![
            Self::with(UsageCase::report(&c.a, "4", h(4), "p1"), &self.stop),
            Self::with(
                UsageCase::report(&c.b, "5", h(4) + Duration::minutes(1), "p2"),
                &self.stop,
            ),
            Self::with(UsageCase::report(&c.a, "2", h(4), "p3"), &self.on_demand),
            UsageCase::report(&c.a, "1", h(4), "p4"),
        ];
        let o = c
            .store
            .ingest(&first, &self.quotas, UsageCase::now())
            .await
            .unwrap();
        assert_eq!((o.applied, o.exhausted_packages.len()), (4, 0));
    }
}

/// A stop-when-used-up package is a window dimension of its own, due like any other; an on-demand
/// package only keeps what was used of it, the usage staying in the instance's own window.
async fn usage_a_stop_when_used_up_package_is_a_window_dimension_of_its_own(
    store: &Arc<dyn crate::metering::UsageStore>,
) {
    use crate::metering::WindowKey;
    let c = UsageCase::after_first_batch(store).await;
    let p = Packages::new();
    p.first_used(&c).await;
    c.assert_totals(&[&p.stop], "packages").await;
    let in_pkg = WindowKey {
        package: Some(p.stop.clone()),
        ..UsageCase::key(&c.a, 4)
    };
    let w = store
        .window(&in_pkg)
        .await
        .unwrap()
        .expect("a@4 in the package");
    assert_eq!(
        (w.total, w.package.as_deref()),
        ("4".parse().unwrap(), Some(p.stop.as_str()))
    );
    assert_eq!(
        c.window(&c.a, 4).await.unwrap().total,
        "3".parse().unwrap(),
        "an on-demand package's usage stays in the instance's own window"
    );
    let used = store
        .package(&p.stop)
        .await
        .unwrap()
        .expect("the package's usage");
    assert_eq!(used.used[&c.a], "4".parse().unwrap());
    assert_eq!(used.used[&c.b], "5".parse().unwrap());
    assert_eq!(used.remaining(), Some("1".parse().unwrap()));
    let od = store.package(&p.on_demand).await.unwrap().unwrap();
    assert_eq!(
        (od.used[&c.a], od.remaining()),
        ("2".parse().unwrap(), None)
    );
    assert!(store.package("no-such-package").await.unwrap().is_none());
    assert_eq!(
        store.windows_of(&c.a).await.unwrap().len(),
        4,
        "its own and its package's"
    );
    assert!(
        store
            .due(UsageCase::h(5), 10_000)
            .await
            .unwrap()
            .iter()
            .any(|w| w.key() == in_pkg),
        "a package window is due like any other"
    );
}

/// More than is left of a package refuses the batch; exactly what is left uses the package up,
/// said again by a repeat of that batch, and nothing more is taken.
async fn usage_a_package_refuses_more_than_is_left_and_is_used_up_once(
    store: &Arc<dyn crate::metering::UsageStore>,
) {
    use crate::metering::{IngestError, ingest::Refusal};
    let c = UsageCase::after_first_batch(store).await;
    let (h, now) = (UsageCase::h, UsageCase::now());
    let p = Packages::new();
    p.first_used(&c).await;
    let (stop, quotas) = (&p.stop, &p.quotas);
    let over = vec![
        UsageCase::report(&c.b, "1", h(4), "p5"),
        Packages::with(UsageCase::report(&c.a, "1.5", h(4), "p6"), stop),
    ];
    let err = store.ingest(&over, quotas, now).await.unwrap_err();
    assert!(
        matches!(
            err,
            IngestError::Invalid {
                index: 1,
                reason: Refusal::QuotaExceeded { .. }
            }
        ),
        "{err}"
    );
    assert!(c.window(&c.b, 4).await.is_none(), "all or nothing");
    c.assert_totals(&[stop], "over the quota").await;
    let last = vec![Packages::with(
        UsageCase::report(&c.a, "1", h(4), "p7"),
        stop,
    )];
    let o = store.ingest(&last, quotas, now).await.unwrap();
    assert_eq!(o.exhausted_packages, vec![stop.clone()]);
    let used = store.package(stop).await.unwrap().unwrap();
    assert_eq!(
        (used.remaining(), used.exhausted_at),
        (Some(rust_decimal::Decimal::ZERO), Some(now))
    );
    // A repeat of the last batch is a duplicate, and still says the package is used up.
    let o = store.ingest(&last, quotas, now).await.unwrap();
    assert_eq!(
        (o.duplicates, o.exhausted_packages.clone()),
        (1, vec![stop.clone()])
    );
    c.assert_totals(&[stop], "used up").await;
    let err = store
        .ingest(
            &[Packages::with(
                UsageCase::report(&c.a, "0.1", h(4), "p8"),
                stop,
            )],
            quotas,
            now,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            IngestError::Invalid {
                index: 0,
                reason: Refusal::QuotaExhausted(_)
            }
        ),
        "{err}"
    );
}

/// The push claim: one holder at a time, extended by its holder, free once it lapses, and given
/// up only by its holder. It is no window.
async fn usage_push_claim_has_one_holder_at_a_time(store: &Arc<dyn crate::metering::UsageStore>) {
    let now = UsageCase::now();
    let claim = |holder: &'static str, at: DateTime<Utc>| {
        let store = store.clone();
        async move {
            store
                .claim_push(holder, at, at + Duration::seconds(55))
                .await
                .unwrap()
        }
    };
    assert!(claim("pass-1", now).await, "nothing held");
    assert!(
        !claim("pass-2", now + Duration::seconds(1)).await,
        "held by pass-1"
    );
    assert!(
        claim("pass-1", now + Duration::seconds(50)).await,
        "its holder extends it"
    );
    assert!(
        !claim("pass-2", now + Duration::seconds(104)).await,
        "extended to 105 s"
    );
    assert!(
        claim("pass-2", now + Duration::seconds(105)).await,
        "lapsed"
    );
    store.release_push("pass-1").await.unwrap();
    assert!(
        !claim("pass-3", now + Duration::seconds(106)).await,
        "pass-1 no longer held it"
    );
    store.release_push("pass-2").await.unwrap();
    assert!(
        claim("pass-3", now + Duration::seconds(106)).await,
        "given up"
    );
    assert!(
        store.windows_of("").await.unwrap().is_empty(),
        "the claim is no window"
    );
}

/// Every tenant directory (docs/protocol/decisions.md §16): upserts, deletes of unknown keys,
/// revoke keeps the record, a tenant's deletion takes its apps, users and departments (and nothing
/// of another tenant, nor of the same tenant under another instance), a full department replace, a
/// 500-user sync, events numbered per tenant from 1 and drained in order.
pub async fn directory_contract(dir: Arc<dyn crate::directory::TenantDirectory>) {
    use crate::directory::{Department, DirectoryChange as C, TenantKey, User};
    let now = t0();
    let key = TenantKey::new(unique("inst"), unique("tenant"));
    let other_instance = TenantKey::new(unique("inst"), key.tenant_id.clone());
    let seller = TenantKey::new("", unique("tenant"));
    let apply = |k: TenantKey, c: C| {
        let dir = dir.clone();
        async move { dir.apply(&k, &c, now).await.unwrap() }
    };
    use crate::testing::directory::{sample_app, sample_department, sample_tenant, sample_user};
    let tenant = |name: &str| sample_tenant(name, now);
    let app = |id: &str| sample_app(id, now);
    let user = |app: &str, name: &str| sample_user(app, name, now);
    let dept = sample_department;

    // Nothing yet; deleting what is unknown is fine.
    assert_eq!(dir.tenant(&key).await.unwrap(), None);
    let first = apply(key.clone(), C::DeleteTenant).await;
    assert_eq!(
        (first.first_seq, first.last_seq),
        (1, 1),
        "events are numbered from 1"
    );

    // Tenant upsert and modify, isolated per instance.
    apply(key.clone(), C::PutTenant(tenant("甲"))).await;
    apply(key.clone(), C::PutTenant(tenant("乙"))).await;
    apply(other_instance.clone(), C::PutTenant(tenant("丙"))).await;
    apply(seller.clone(), C::PutTenant(tenant("卖家"))).await;
    assert_eq!(dir.tenant(&key).await.unwrap().unwrap().name, "乙");
    assert_eq!(
        dir.tenant(&other_instance).await.unwrap().unwrap().name,
        "丙"
    );
    assert_eq!(dir.tenant(&seller).await.unwrap().unwrap().name, "卖家");

    // Apps and 500 users in one sync.
    apply(key.clone(), C::PutApp(app("a1"))).await;
    apply(key.clone(), C::PutApp(app("a2"))).await;
    apply(other_instance.clone(), C::PutApp(app("a1"))).await;
    let ids: Vec<String> = (0..500).map(|i| format!("user{i:03}")).collect();
    let users: Vec<User> = ids.iter().map(|n| user("a1", n)).collect();
    let applied = apply(
        key.clone(),
        C::PutUsers {
            app_id: "a1".into(),
            users,
        },
    )
    .await;
    assert_eq!(
        applied.last_seq - applied.first_seq + 1,
        5,
        "500 users: 5 events"
    );
    apply(
        key.clone(),
        C::PutUsers {
            app_id: "a2".into(),
            users: vec![user("a2", "user000")],
        },
    )
    .await;
    let stored = dir.users(&key, "a1").await.unwrap();
    assert_eq!(stored.len(), 500);
    assert!(
        stored.windows(2).all(|w| w[0].user_name < w[1].user_name),
        "by userName"
    );
    assert_eq!(stored[7], user("a1", "user007"));
    assert_eq!(
        dir.apps(&key)
            .await
            .unwrap()
            .iter()
            .map(|a| a.app_id.as_str())
            .collect::<Vec<_>>(),
        ["a1", "a2"]
    );

    // Revoke keeps the record; modify authorizes again; delete removes; unknown names are fine.
    apply(
        key.clone(),
        C::RevokeUsers {
            app_id: "a1".into(),
            user_names: vec!["user001".into(), "nobody".into()],
        },
    )
    .await;
    let revoked = dir.user(&key, "a1", "user001").await.unwrap().unwrap();
    assert!(revoked.revoked && !revoked.may_use_app());
    assert_eq!(
        dir.user(&key, "a1", "nobody").await.unwrap(),
        None,
        "revoke creates nothing"
    );
    assert!(
        dir.user(&key, "a2", "user000")
            .await
            .unwrap()
            .unwrap()
            .may_use_app(),
        "per app"
    );
    apply(
        key.clone(),
        C::PutUsers {
            app_id: "a1".into(),
            users: vec![user("a1", "user001")],
        },
    )
    .await;
    assert!(
        dir.user(&key, "a1", "user001")
            .await
            .unwrap()
            .unwrap()
            .may_use_app()
    );
    apply(
        key.clone(),
        C::DeleteUsers {
            app_id: "a1".into(),
            user_names: vec!["user002".into(), "nobody".into()],
        },
    )
    .await;
    assert_eq!(dir.user(&key, "a1", "user002").await.unwrap(), None);
    assert_eq!(dir.users(&key, "a1").await.unwrap().len(), 499);

    // Departments: single upserts, then a full replace (parents after children, a missing parent).
    apply(key.clone(), C::PutDepartment(dept("old", None))).await;
    apply(
        key.clone(),
        C::DeleteDepartment {
            org_code: "never".into(),
        },
    )
    .await;
    let all: Vec<Department> = (0..1200)
        .rev()
        .map(|i| {
            dept(
                &format!("d{i:04}"),
                (i > 0).then(|| format!("d{:04}", i - 1)).as_deref(),
            )
        })
        .chain([dept("orphan", Some("missing"))])
        .collect();
    apply(key.clone(), C::ReplaceDepartments(all.clone())).await;
    let depts = dir.departments(&key).await.unwrap();
    assert_eq!(depts.len(), 1201, "replaced, not merged: `old` is gone");
    assert!(depts.iter().all(|d| d.org_code != "old"));
    assert!(depts.contains(&dept("orphan", Some("missing"))));
    assert!(depts.contains(&dept("d0000", None)));
    apply(
        key.clone(),
        C::DeleteDepartment {
            org_code: "orphan".into(),
        },
    )
    .await;
    assert_eq!(dir.departments(&key).await.unwrap().len(), 1200);

    // Deleting an app takes its users.
    apply(
        key.clone(),
        C::DeleteApp {
            app_id: "a2".into(),
        },
    )
    .await;
    assert_eq!(dir.users(&key, "a2").await.unwrap(), []);
    assert_eq!(dir.apps(&key).await.unwrap().len(), 1);

    // Events: numbered without gaps, drained in order, in pages.
    let pending = dir.pending_events(&key, 1000).await.unwrap();
    let seqs: Vec<u64> = pending.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    assert_eq!(pending[1].body.name(), "tenantSynced");
    let page = dir.pending_events(&key, 3).await.unwrap();
    assert_eq!(page, pending[..3]);
    dir.events_delivered(&key, 3).await.unwrap();
    assert_eq!(dir.pending_events(&key, 1).await.unwrap()[0].seq, 4);
    let last = pending.last().unwrap().seq;

    // Deleting the tenant takes apps, users, departments; not the other instance's; numbering
    // goes on, and the deletion's own event is pending.
    let deleted = apply(key.clone(), C::DeleteTenant).await;
    assert_eq!(deleted.first_seq, last + 1);
    assert_eq!(dir.tenant(&key).await.unwrap(), None);
    assert_eq!(dir.apps(&key).await.unwrap(), []);
    assert_eq!(dir.users(&key, "a1").await.unwrap(), []);
    assert_eq!(dir.departments(&key).await.unwrap(), []);
    assert_eq!(dir.apps(&other_instance).await.unwrap().len(), 1);
    let after = dir.pending_events(&key, 1000).await.unwrap();
    assert_eq!(after.last().unwrap().body.name(), "tenantDeleted");
    dir.events_delivered(&key, deleted.last_seq).await.unwrap();
    assert_eq!(dir.pending_events(&key, 10).await.unwrap(), []);
}

/// The exchange log: appended exchanges come back whole, newest first, by instance, by order and
/// by time, page after page; a re-appended exchange is not doubled; an expired one is never
/// answered.
pub async fn exchange_log_contract(log: Arc<dyn crate::exchange::ExchangeLog>) {
    use crate::exchange::{
        Direction, Exchange, ExchangeFilter, ExchangeQuery, ExchangeQuery as Q, Kept,
    };
    use serde_json::json;

    // A day of 2026 of this call's own, so a shared emulator's other runs do not interleave.
    let base = t0() + chrono::Duration::days(rand::random_range(0..365));
    let now = base + chrono::Duration::hours(1);
    let (instance_a, instance_b, order) = (unique("i"), unique("i"), unique("CS"));
    let exchange = |secs: i64, instance: Option<&str>, order: Option<&str>| {
        let at = base + chrono::Duration::seconds(secs);
        Exchange {
            id: crate::exchange::new_id(at),
            at,
            direction: if secs % 2 == 0 {
                Direction::Inbound
            } else {
                Direction::Outbound
            },
            family: "v2_basic".into(),
            activity: "newInstance".into(),
            instance_id: instance.map(str::to_owned),
            order_id: order.map(str::to_owned),
            tenant_id: (secs == 3).then(|| "t-1".to_owned()),
            request: json!({"activity": "newInstance", "n": secs, "nested": {"list": [1, "two"]}}),
            response: json!({"resultCode": "000000", "resultMsg": "成功"}),
            result_code: Some("000000".into()),
            http_status: (secs % 2 == 1).then_some(200),
            latency_ms: 1.25 * secs as f64,
            key: (secs % 2 == 0).then(|| "current".to_owned()),
            attempt: (secs % 2 == 1).then_some(2),
            test: secs == 4,
            expires_at: at + chrono::Duration::days(14),
            error: (secs == 3).then(|| "timed out".to_owned()),
        }
    };
    let a1 = exchange(1, Some(&instance_a), Some(&order));
    let a2 = exchange(2, Some(&instance_a), None);
    let b1 = exchange(3, Some(&instance_b), Some(&order));
    let n1 = exchange(4, None, None);
    log.append(&Kept::all(&[
        a1.clone(),
        a2.clone(),
        b1.clone(),
        n1.clone(),
    ]))
    .await
    .expect("append");

    let find = |q: ExchangeQuery| {
        let log = log.clone();
        async move { log.find(&q, now).await.expect("find") }
    };
    assert_eq!(
        find(Q::newest(ExchangeFilter::Instance(instance_a.clone()), 10)).await,
        [a2.clone(), a1.clone()],
        "by instance, newest first, whole"
    );
    assert_eq!(
        find(Q::newest(ExchangeFilter::Order(order.clone()), 10)).await,
        [b1.clone(), a1.clone()],
        "by order"
    );
    assert_eq!(
        find(Q::newest(ExchangeFilter::Instance(instance_b.clone()), 10)).await,
        std::slice::from_ref(&b1)
    );

    // By time, a page at a time, from just after the newest.
    let after = crate::exchange::new_id(base + chrono::Duration::seconds(5));
    let page1 = find(ExchangeQuery {
        filter: ExchangeFilter::All,
        before: Some(after),
        limit: 2,
    })
    .await;
    assert_eq!(page1, [n1.clone(), b1.clone()], "the newest page");
    let page2 = find(ExchangeQuery {
        filter: ExchangeFilter::All,
        before: Some(b1.id.clone()),
        limit: 2,
    })
    .await;
    assert_eq!(page2, [a2.clone(), a1.clone()], "the next page");
    let page = find(ExchangeQuery {
        filter: ExchangeFilter::Instance(instance_a.clone()),
        before: Some(a2.id.clone()),
        limit: 10,
    })
    .await;
    assert_eq!(
        page,
        std::slice::from_ref(&a1),
        "`before` pages a filtered query too"
    );
    assert_eq!(
        find(Q::newest(ExchangeFilter::Instance(instance_a.clone()), 0))
            .await
            .len(),
        1,
        "a limit of 0 is taken as 1"
    );

    // A retried batch is not doubled, nor does it change what is kept.
    let mut again = a1.clone();
    again.result_code = Some("000005".into());
    log.append(&Kept::all(&[again]))
        .await
        .expect("append again");
    assert_eq!(
        find(Q::newest(ExchangeFilter::Instance(instance_a.clone()), 10)).await,
        [a2.clone(), a1.clone()]
    );

    // Expired: never answered, whether or not the store deleted it.
    let instance_c = unique("i");
    let mut old = exchange(1, Some(&instance_c), None);
    old.expires_at = now - chrono::Duration::seconds(1);
    let fresh = exchange(2, Some(&instance_c), None);
    log.append(&Kept::all(&[old, fresh.clone()]))
        .await
        .expect("append");
    assert_eq!(
        find(Q::newest(ExchangeFilter::Instance(instance_c.clone()), 10)).await,
        [fresh]
    );
    assert!(
        find(Q::newest(ExchangeFilter::Instance(unique("i")), 10))
            .await
            .is_empty(),
        "an unknown instance has nothing"
    );

    // Operators' actions and reconciler passes, found as such, newest first (after the pages by
    // time above: those end at 5 s).
    let mut pass = exchange(6, None, None);
    pass.direction = Direction::Operator;
    pass.family = "reconciler".into();
    let mut redrive = exchange(7, Some(&instance_a), None);
    redrive.direction = Direction::Operator;
    log.append(&Kept::all(&[
        pass.clone(),
        exchange(8, None, None),
        redrive.clone(),
    ]))
    .await
    .expect("append");
    let actions = find(ExchangeQuery {
        filter: ExchangeFilter::Actions,
        before: Some(crate::exchange::new_id(base + chrono::Duration::seconds(9))),
        limit: 2,
    })
    .await;
    assert_eq!(
        actions,
        [redrive.clone(), pass.clone()],
        "actions only, newest first"
    );
    let older = find(ExchangeQuery {
        filter: ExchangeFilter::Actions,
        before: Some(redrive.id.clone()),
        limit: 1,
    })
    .await;
    assert_eq!(older, [pass], "`before` pages actions too");
    assert_eq!(
        find(Q::newest(ExchangeFilter::Instance(instance_a.clone()), 1)).await,
        [redrive],
        "an action about an instance is found by it too"
    );
}
