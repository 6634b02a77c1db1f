//! Usage push tests: the claim, the deadline, sealing and pushing closed windows oldest first,
//! and what each answer of the open API leaves stored.

use std::sync::Mutex;

use super::*;
use crate::{
    metering::{UsageReport, WINDOW, WindowKey, WindowState, window_start},
    metrics::Metric,
    testing::{ManualClock, MemoryStore, RecordedMetrics},
};

/// A scripted KooGallery: answers in turn from `script` (then accepts), keeps every push.
#[derive(Default)]
struct Sink {
    script: Mutex<Vec<Result<PushAnswer, PushError>>>,
    /// Refuses any push that carries one of these instances' records.
    refuse_instances: Vec<String>,
    pushes: Mutex<Vec<Vec<PushRecord>>>,
    /// Each push takes this long on this clock.
    slow: Option<(Arc<ManualClock>, Duration)>,
}

#[async_trait]
impl UsageSink for Sink {
    async fn push(&self, records: &[PushRecord]) -> Result<PushAnswer, PushError> {
        self.pushes.lock().unwrap().push(records.to_vec());
        if let Some((clock, took)) = &self.slow {
            clock.advance(*took);
        }
        let scripted = {
            let mut s = self.script.lock().unwrap();
            (!s.is_empty()).then(|| s.remove(0))
        };
        if let Some(answer) = scripted {
            return answer;
        }
        if records
            .iter()
            .any(|r| self.refuse_instances.contains(&r.instance_id))
        {
            return Ok(PushAnswer::Refused {
                code: "MKT.9001".into(),
                message: "instance not found".into(),
            });
        }
        Ok(PushAnswer::Accepted)
    }
}

struct Bed {
    store: Arc<MemoryStore>,
    sink: Arc<Sink>,
    clock: Arc<ManualClock>,
    metrics: Arc<RecordedMetrics>,
    pusher: UsagePusher,
}

fn t0() -> DateTime<Utc> {
    window_start(crate::protocol::time::parse_compact("20261121100000").unwrap())
}

fn bed(sink: Sink) -> Bed {
    let store = Arc::new(MemoryStore::new());
    let sink = Arc::new(sink);
    let clock = Arc::new(ManualClock::at(t0()));
    let metrics = Arc::new(RecordedMetrics::default());
    let pusher = UsagePusher {
        store: store.clone(),
        sink: sink.clone(),
        clock: clock.clone(),
        metrics: metrics.clone(),
        settings: PushSettings::default(),
        instances: Some(store.clone()),
    };
    Bed {
        store,
        sink,
        clock,
        metrics,
        pusher,
    }
}

async fn report(b: &Bed, instance: &str, hour: i64, quantity: &str) {
    let at = t0() + Duration::hours(hour) + Duration::minutes(30);
    let r = UsageReport {
        instance_id: instance.into(),
        quantity: quantity.parse().unwrap(),
        occurred_at: at,
        idempotency_key: format!("{instance}-{hour}-{quantity}"),
        package_instance_id: None,
    };
    b.store.ingest(&[r], &Default::default(), at).await.unwrap();
}

fn pushed(b: &Bed) -> Vec<Vec<PushRecord>> {
    b.sink.pushes.lock().unwrap().clone()
}

/// One pass at a time (package offsets depend on it): a pass that finds the push held does
/// nothing, and one that ends gives the push up.
#[tokio::test]
async fn a_pass_skips_while_another_holds_the_push_and_gives_it_up_when_done() {
    let b = bed(Sink::default());
    report(&b, "i-1", 0, "1.5").await;
    b.clock.advance(Duration::hours(2));
    let now = b.clock.now();
    assert!(
        b.store
            .claim_push("another pass", now, now + Duration::seconds(55))
            .await
            .unwrap()
    );
    let r = b.pusher.run_once().await.unwrap();
    assert_eq!(
        r,
        PushReport {
            skipped: true,
            ..PushReport::default()
        }
    );
    assert!(pushed(&b).is_empty());
    // That claim lapses at its deadline (a pass killed by its timeout never gives it up).
    b.clock.advance(Duration::seconds(55));
    let r = b.pusher.run_once().await.unwrap();
    assert_eq!((r.skipped, r.accepted), (false, 1));
    // Given up: the next pass claims at once.
    let now = b.clock.now();
    assert!(
        b.store
            .claim_push("next pass", now, now + Duration::seconds(55))
            .await
            .unwrap()
    );
}

/// A pass starts no round it may not finish before its deadline: what is left is the next
/// pass's.
#[tokio::test]
async fn a_pass_starts_no_round_within_the_reserve_of_its_deadline() {
    let clock = Arc::new(ManualClock::at(t0()));
    let mut b = bed(Sink {
        slow: Some((clock.clone(), Duration::seconds(30))),
        ..Sink::default()
    });
    b.clock = clock.clone();
    b.pusher.clock = clock.clone();
    let at = t0() + Duration::minutes(30);
    let reports: Vec<UsageReport> = (0..1500)
        .map(|i| UsageReport {
            instance_id: format!("i-{i:04}"),
            quantity: "1".parse().unwrap(),
            occurred_at: at,
            idempotency_key: format!("k-{i}"),
            package_instance_id: None,
        })
        .collect();
    b.store
        .ingest(&reports, &Default::default(), at)
        .await
        .unwrap();
    clock.advance(Duration::hours(2));
    let r = b
        .pusher
        .run_until(clock.now() + Duration::seconds(35))
        .await
        .unwrap();
    // Round one at 0 s (35 s left); round two would start at 30 s, within the 10 s reserve.
    assert_eq!((r.accepted, r.pushes), (1000, 1));
    assert!(r.stopped.unwrap().contains("deadline"));
    let r = b.pusher.run_once().await.unwrap();
    assert_eq!((r.accepted, r.stopped), (500, None));
}

#[tokio::test]
async fn closed_windows_are_pushed_oldest_first_after_their_grace() {
    let b = bed(Sink::default());
    report(&b, "i-1", 0, "1.5").await;
    report(&b, "i-1", 1, "2").await;
    report(&b, "i-2", 0, "3").await;
    // 11:04: the 10:00 hour is over but within its grace; nothing goes.
    b.clock.advance(Duration::minutes(64));
    assert_eq!(b.pusher.run_once().await.unwrap().pushes, 0);
    // 11:06: the 10:00 windows go, the 11:00 one stays open.
    b.clock.advance(Duration::minutes(2));
    let r = b.pusher.run_once().await.unwrap();
    assert_eq!((r.sealed, r.accepted, r.pushes), (2, 2, 1));
    let p = pushed(&b);
    assert_eq!(
        p[0].iter()
            .map(|r| r.instance_id.as_str())
            .collect::<Vec<_>>(),
        ["i-1", "i-2"]
    );
    assert_eq!(p[0][0].begin, t0());
    assert_eq!(p[0][0].end, t0() + Duration::hours(1));
    assert_eq!(p[0][0].value, "1.5".parse::<Decimal>().unwrap());
    let open = b
        .store
        .window(&WindowKey {
            instance_id: "i-1".into(),
            start: t0() + Duration::hours(1),
            package: None,
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(open.state, WindowState::Open);
    // Nothing is pushed twice once accepted.
    assert_eq!(b.pusher.run_once().await.unwrap().pushes, 0);
}

/// docs/protocol/openapi.md §3 rule 3: while a resource is open, `begin_time` is not before its
/// start. An instance ordered at 10:59:08.3 gets its first record from 10:59:08 (truncated to
/// the second), not from 10:00:00; its package's record begins a second later (never the
/// instance's own range, rule 5); later hours are whole. The serial stays the hour's
/// (docs/protocol/decisions.md §8: a retry or another pusher computes the same).
#[tokio::test]
async fn an_instance_first_record_begins_at_its_start() {
    use crate::instance::{Instance, InstanceStore};
    let b = bed(Sink::default());
    let created = t0() + Duration::minutes(59) + Duration::milliseconds(8_300);
    let (inst, ev) = Instance::new_provisioning(&"O1".into(), &"1".into(), "i-new", false, created);
    b.store.create_for_order_line(&inst, &[ev]).await.unwrap();
    let quotas: crate::metering::PackageQuotas =
        [("pkg".to_owned(), Some(Decimal::from(100)))].into();
    let at = t0() + Duration::minutes(59) + Duration::seconds(30);
    let reports: Vec<UsageReport> = [(None, 0), (Some("pkg"), 0), (None, 1)]
        .iter()
        .map(|(package, hour)| UsageReport {
            instance_id: "i-new".into(),
            quantity: Decimal::ONE,
            occurred_at: at + Duration::hours(*hour),
            idempotency_key: format!("{package:?}-{hour}"),
            package_instance_id: package.map(str::to_owned),
        })
        .collect();
    b.store.ingest(&reports, &quotas, at).await.unwrap();
    b.clock.advance(Duration::minutes(126));
    b.pusher.run_once().await.unwrap();
    let mut ranges: Vec<_> = pushed(&b)
        .concat()
        .into_iter()
        .map(|r| (r.begin, r.end, r.package, r.metering_sn))
        .collect();
    ranges.sort();
    let begin = t0() + Duration::minutes(59) + Duration::seconds(8);
    let hour = t0() + WINDOW;
    assert_eq!(
        ranges,
        [
            (
                begin,
                hour,
                None,
                crate::metering::metering_sn("i-new", None, t0())
            ),
            (
                begin + Duration::seconds(1),
                hour,
                Some("pkg".to_owned()),
                crate::metering::metering_sn("i-new", Some("pkg"), t0())
            ),
            (
                hour,
                hour + WINDOW,
                None,
                crate::metering::metering_sn("i-new", None, hour)
            ),
        ]
    );
}

/// Both halves of rule 3 at once: an instance started and released within one hour has a
/// record from its start to its release.
#[tokio::test]
async fn an_instance_started_and_released_within_the_hour_has_one_record_between() {
    use crate::instance::{Instance, InstanceStore};
    let b = bed(Sink::default());
    let created = t0() + Duration::minutes(10);
    let (inst, ev) =
        Instance::new_provisioning(&"O1".into(), &"1".into(), "i-brief", false, created);
    b.store.create_for_order_line(&inst, &[ev]).await.unwrap();
    report(&b, "i-brief", 0, "1").await;
    let released = t0() + Duration::minutes(40);
    crate::instance::mutate(b.store.as_ref(), "i-brief", |i| {
        Ok(i.release(None, released))
    })
    .await
    .unwrap();
    b.clock.advance(Duration::minutes(66));
    b.pusher.run_once().await.unwrap();
    let p = pushed(&b);
    assert_eq!((p[0][0].begin, p[0][0].end), (created, released));
}

/// docs/protocol/openapi.md §3 rule 3: a released instance's records end by its release. The
/// hour it was released in is pushed ending then (rounded up to the second); earlier hours are
/// whole.
#[tokio::test]
async fn a_released_instance_last_record_ends_at_its_release() {
    use crate::instance::{Instance, InstanceStore};
    let b = bed(Sink::default());
    let (inst, ev) = Instance::new_provisioning(&"O1".into(), &"1".into(), "i-rel", false, t0());
    b.store.create_for_order_line(&inst, &[ev]).await.unwrap();
    report(&b, "i-rel", 0, "1").await;
    report(&b, "i-rel", 1, "2").await;
    let released = t0() + Duration::hours(1) + Duration::minutes(40) + Duration::milliseconds(250);
    crate::instance::mutate(b.store.as_ref(), "i-rel", |i| Ok(i.release(None, released)))
        .await
        .unwrap();
    b.clock.advance(Duration::minutes(126));
    b.pusher.run_once().await.unwrap();
    let p = pushed(&b);
    let ends: Vec<_> = p[0].iter().map(|r| (r.begin, r.end)).collect();
    assert_eq!(
        ends,
        [
            (t0(), t0() + WINDOW),
            (
                t0() + WINDOW,
                t0() + WINDOW + Duration::minutes(40) + Duration::seconds(1)
            ),
        ]
    );
}

/// KooGallery keeps only the first of an instance's records with the same begin and end
/// (docs/protocol/openapi.md §3 rule 5): the instance's own hour and two packages' usage in the
/// same hour go as three records that never share both, and a retry resends them unchanged.
#[tokio::test]
async fn package_records_never_share_an_instance_hour_range() {
    let b = bed(Sink::default());
    b.sink
        .script
        .lock()
        .unwrap()
        .push(Err(PushError::Unavailable("503".into())));
    let at = t0() + Duration::minutes(30);
    let quotas: crate::metering::PackageQuotas = [
        ("pkg-a".to_owned(), Some(Decimal::from(100))),
        ("pkg-b".to_owned(), Some(Decimal::from(100))),
    ]
    .into();
    let reports: Vec<UsageReport> = [None, Some("pkg-a"), Some("pkg-b")]
        .iter()
        .enumerate()
        .map(|(n, p)| UsageReport {
            instance_id: "i-1".into(),
            quantity: Decimal::from(n as i64 + 1),
            occurred_at: at,
            idempotency_key: format!("k{n}"),
            package_instance_id: p.map(str::to_owned),
        })
        .collect();
    b.store.ingest(&reports, &quotas, at).await.unwrap();
    b.clock.advance(Duration::minutes(66));
    b.pusher.run_once().await.unwrap();
    b.pusher.run_once().await.unwrap();
    let p = pushed(&b);
    assert_eq!(p.len(), 2, "one failed push, one retry");
    assert_eq!(p[0], p[1], "the retry is the same records");
    let mut ranges: Vec<_> = p[1]
        .iter()
        .map(|r| (r.begin, r.end, r.package.clone()))
        .collect();
    ranges.sort();
    let hour = t0();
    assert_eq!(
        ranges,
        [
            (hour, hour + WINDOW, None),
            (
                hour + Duration::seconds(1),
                hour + WINDOW,
                Some("pkg-a".into())
            ),
            (
                hour + Duration::seconds(2),
                hour + WINDOW,
                Some("pkg-b".into())
            ),
        ]
    );
}

/// An outage of any length: nothing is lost, nothing is resent with other content, and the
/// catch-up pushes oldest first.
#[tokio::test]
async fn an_outage_is_caught_up_with_byte_identical_records() {
    let b = bed(Sink::default());
    report(&b, "i-1", 0, "1").await;
    b.clock.advance(Duration::minutes(66));
    b.sink.script.lock().unwrap().extend([
        Err(PushError::Unavailable("primary and fallback down".into())),
        Err(PushError::Unavailable("still down".into())),
    ]);
    let first = b.pusher.run_once().await.unwrap();
    assert_eq!((first.deferred, first.accepted), (1, 0));
    assert!(first.stopped.is_some());
    // Hours pass; usage keeps coming for later hours.
    report(&b, "i-1", 1, "2").await;
    b.clock.advance(Duration::hours(1));
    assert_eq!(b.pusher.run_once().await.unwrap().accepted, 0);
    report(&b, "i-1", 2, "4").await;
    b.clock.advance(Duration::hours(2));
    let caught_up = b.pusher.run_once().await.unwrap();
    assert_eq!(caught_up.accepted, 3);
    let p = pushed(&b);
    assert_eq!(p.len(), 3);
    assert_eq!(p[0][0], p[1][0], "a retry resends the very same record");
    assert_eq!(p[2][0], p[0][0], "and so does the catch-up, oldest first");
    assert_eq!(p[2].len(), 3);
    assert!(b.metrics.count(&Metric::UsagePushFailed) >= 2);
}

#[tokio::test]
async fn a_refused_record_is_isolated_kept_and_reported_and_the_rest_accepted() {
    let b = bed(Sink {
        refuse_instances: vec!["i-bad".into()],
        ..Sink::default()
    });
    for id in ["i-1", "i-2", "i-bad", "i-3", "i-4"] {
        report(&b, id, 0, "1").await;
    }
    b.clock.advance(Duration::minutes(66));
    let r = b.pusher.run_once().await.unwrap();
    assert_eq!((r.accepted, r.rejected), (4, 1));
    let bad = b
        .store
        .window(&WindowKey {
            instance_id: "i-bad".into(),
            start: t0(),
            package: None,
        })
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&bad.state, WindowState::Rejected { code, .. } if code == "MKT.9001"),
        "{:?}",
        bad.state
    );
    assert_eq!(b.metrics.count(&Metric::UsageRejected), 1);
    // Not retried for ever: the next pass pushes nothing.
    let pushes = pushed(&b).len();
    b.pusher.run_once().await.unwrap();
    assert_eq!(pushed(&b).len(), pushes);
    // Every good window was accepted, and pushed once but for the one record pushed again,
    // unchanged, to show KooGallery still took records after i-bad (the newest) was refused.
    let good: Vec<PushRecord> = pushed(&b)
        .into_iter()
        .filter(|p| !p.iter().any(|r| r.instance_id == "i-bad"))
        .flatten()
        .collect();
    let distinct: std::collections::BTreeSet<&str> =
        good.iter().map(|r| r.metering_sn.as_str()).collect();
    assert_eq!((distinct.len(), good.len()), (4, 5));
}

fn refused(code: &str) -> Result<PushAnswer, PushError> {
    Ok(PushAnswer::Refused {
        code: code.into(),
        message: "simulated".into(),
    })
}

async fn states(b: &Bed, ids: &[String]) -> Vec<&'static str> {
    let mut out = Vec::new();
    for id in ids {
        let w = b.store.windows_of(id).await.unwrap();
        out.push(match w[0].state {
            WindowState::Open => "open",
            WindowState::Sealed(_) => "sealed",
            WindowState::Accepted { .. } => "accepted",
            WindowState::Rejected { .. } => "rejected",
        });
    }
    out
}

/// KooGallery answers `MKT.0100` to every push for a while (it says nothing of which record
/// is at fault): no record is singled out, so none is rejected. The pass stops after a few
/// pushes (not one per record), raises the alarm, and keeps every window pending, unchanged;
/// once KooGallery recovers, every window is accepted.
#[tokio::test]
async fn a_refusal_of_every_record_is_systemic_and_rejects_none() {
    let b = bed(Sink::default());
    let ids: Vec<String> = (0..40).map(|i| format!("i-{i:02}")).collect();
    for id in &ids {
        report(&b, id, 0, "1").await;
    }
    b.clock.advance(Duration::minutes(66));
    b.sink
        .script
        .lock()
        .unwrap()
        .extend((0..200).map(|_| refused("MKT.0100")));
    for _ in 0..3 {
        let r = b.pusher.run_once().await.unwrap();
        assert_eq!((r.accepted, r.rejected, r.deferred), (0, 0, 40), "{r:?}");
        assert!(r.pushes <= refusal_limit(40) as usize + 1, "{r:?}");
        assert!(r.stopped.unwrap().contains("MKT.0100"));
    }
    assert_eq!(b.metrics.count(&Metric::UsagePushSystemicRefusal), 3);
    assert_eq!(b.metrics.count(&Metric::UsageRejected), 0);
    assert!(states(&b, &ids).await.iter().all(|s| *s == "sealed"));
    let first = pushed(&b)[0].clone();
    b.sink.script.lock().unwrap().clear();
    let r = b.pusher.run_once().await.unwrap();
    assert_eq!((r.accepted, r.rejected, r.stopped), (40, 0, None));
    assert_eq!(pushed(&b).last().unwrap(), &first, "the very same records");
    assert!(states(&b, &ids).await.iter().all(|s| *s == "accepted"));
}

/// KooGallery recovers while a refused push is being split: the record refused alone before
/// the first acceptance is pushed again, accepted, not rejected.
#[tokio::test]
async fn a_record_refused_before_a_recovery_is_tried_again_not_rejected() {
    let b = bed(Sink::default());
    let ids: Vec<String> = (0..8).map(|i| format!("i-{i}")).collect();
    for id in &ids {
        report(&b, id, 0, "1").await;
    }
    b.clock.advance(Duration::minutes(66));
    // 8, 4, 2 and then i-0 alone refused; everything after accepted.
    b.sink
        .script
        .lock()
        .unwrap()
        .extend((0..4).map(|_| refused("MKT.0199")));
    let r = b.pusher.run_once().await.unwrap();
    assert_eq!(
        (r.accepted, r.rejected, r.stopped.as_deref()),
        (8, 0, None),
        "{r:?}"
    );
    assert!(states(&b, &ids).await.iter().all(|s| *s == "accepted"));
}

/// Records at fault next to each other at the head of the batch take more refusals in a row
/// than isolating one does: a probe with the newest record shows KooGallery takes records,
/// and each record at fault is then refused alone again and rejected; the rest accepted.
#[tokio::test]
async fn records_at_fault_clustered_at_the_head_are_still_singled_out() {
    let bad: Vec<String> = (0..6).map(|i| format!("i-{i:02}")).collect();
    let b = bed(Sink {
        refuse_instances: bad.clone(),
        ..Sink::default()
    });
    let ids: Vec<String> = (0..16).map(|i| format!("i-{i:02}")).collect();
    for id in &ids {
        report(&b, id, 0, "1").await;
    }
    b.clock.advance(Duration::minutes(66));
    let r = b.pusher.run_once().await.unwrap();
    assert_eq!(
        (r.accepted, r.rejected, r.stopped.as_deref()),
        (10, 6, None),
        "{r:?}"
    );
    let s = states(&b, &ids).await;
    assert_eq!(&s[..6], ["rejected"; 6]);
    assert_eq!(&s[6..], ["accepted"; 10]);
    assert_eq!(b.metrics.count(&Metric::UsagePushSystemicRefusal), 0);
}

/// A record refused with nothing else to compare it with is not rejected on a guess: it waits
/// (systemic for now) until a later hour's records are accepted beside it, then it is.
#[tokio::test]
async fn a_lone_refused_record_waits_for_a_comparison() {
    let b = bed(Sink {
        refuse_instances: vec!["i-bad".into()],
        ..Sink::default()
    });
    report(&b, "i-bad", 0, "1").await;
    b.clock.advance(Duration::minutes(66));
    let r = b.pusher.run_once().await.unwrap();
    assert_eq!((r.accepted, r.rejected, r.deferred), (0, 0, 1));
    assert_eq!(b.metrics.count(&Metric::UsagePushSystemicRefusal), 1);
    report(&b, "i-good", 1, "1").await;
    b.clock.advance(Duration::hours(1));
    let r = b.pusher.run_once().await.unwrap();
    assert_eq!(
        (r.accepted, r.rejected, r.stopped.as_deref()),
        (1, 1, None),
        "{r:?}"
    );
}

#[test]
fn the_refusal_limit_covers_isolating_one_record() {
    assert_eq!(refusal_limit(1), 1 + SYSTEMIC_MARGIN);
    assert_eq!(refusal_limit(2), 2 + SYSTEMIC_MARGIN);
    assert_eq!(refusal_limit(1000), 11 + SYSTEMIC_MARGIN);
    assert_eq!(refusal_limit(1024), 11 + SYSTEMIC_MARGIN);
    assert_eq!(refusal_limit(1025), 12 + SYSTEMIC_MARGIN);
}

#[tokio::test]
async fn a_misconfigured_push_stops_the_pass_and_raises_its_metric() {
    let b = bed(Sink::default());
    report(&b, "i-1", 0, "1").await;
    b.clock.advance(Duration::minutes(66));
    b.sink
        .script
        .lock()
        .unwrap()
        .push(Err(PushError::Misconfigured(
            "MKT.0102 Invalid body sign".into(),
        )));
    let r = b.pusher.run_once().await.unwrap();
    assert_eq!(r.accepted, 0);
    assert_eq!(b.metrics.count(&Metric::UsagePushMisconfigured), 1);
    assert_eq!(b.pusher.run_once().await.unwrap().accepted, 1);
}

#[tokio::test]
async fn windows_near_the_horizon_warn_and_past_it_are_kept_unsent() {
    let b = bed(Sink::default());
    report(&b, "i-old", 0, "1").await;
    b.sink
        .script
        .lock()
        .unwrap()
        .extend((0..3).map(|_| Err(PushError::Unavailable("down".into()))));
    b.clock.advance(Duration::days(19));
    let warned = b.pusher.run_once().await.unwrap();
    assert_eq!(warned.near_horizon, 1);
    b.clock.advance(Duration::days(3));
    let past = b.pusher.run_once().await.unwrap();
    assert_eq!((past.rejected, past.pushes), (1, 0));
    assert_eq!(pushed(&b).len(), 1, "never sent once past the horizon");
}

/// A pass that read fewer windows than a push takes and settled every one ends there: another
/// read of the due windows could only find none (on DynamoDB, a query of the due index).
#[tokio::test]
async fn a_pass_that_settles_all_it_read_reads_the_due_windows_once() {
    let b = bed(Sink::default());
    report(&b, "i-1", 0, "1.5").await;
    report(&b, "i-2", 0, "3").await;
    b.clock.advance(Duration::hours(2));
    let r = b.pusher.run_once().await.unwrap();
    assert_eq!((r.sealed, r.accepted, r.pushes), (2, 2, 1));
    assert_eq!(b.store.due_reads(), 1);
}
