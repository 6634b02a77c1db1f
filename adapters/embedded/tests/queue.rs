//! Queue semantics: FIFO, visibility lease, retry delay, dead letters and redrive, depth counts.
//! Time is always passed explicitly: no sleeps.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use koogallery::{
    jobs::{Job, JobQueue},
    testing::ManualClock,
};
use koogallery_embedded::{EmbeddedQueue, EmbeddedStore, QueueDepth};

const LEASE: Duration = Duration::from_secs(30);

fn t0() -> DateTime<Utc> {
    koogallery::protocol::time::parse_compact("20260101000000").unwrap()
}

fn at(secs: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::seconds(secs)
}

fn job(id: &str) -> Job {
    Job::Provision {
        instance_id: id.into(),
    }
}

fn fresh() -> (tempfile::TempDir, EmbeddedQueue) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join("q.redb")).unwrap();
    (dir, store.queue())
}

fn depth(ready: usize, in_flight: usize, dead: usize) -> QueueDepth {
    QueueDepth {
        ready,
        in_flight,
        dead,
    }
}

#[test]
fn messages_due_together_are_delivered_in_enqueue_order() {
    let (_dir, q) = fresh();
    let ids: Vec<u64> = ["a", "b", "c"]
        .iter()
        .map(|i| q.enqueue_at(&job(i), t0()).unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase");
    for (id, name) in ids.iter().zip(["a", "b", "c"]) {
        let d = q.receive(t0(), LEASE).unwrap().unwrap();
        assert_eq!(
            (d.id, d.job, d.attempt, d.enqueued_at),
            (*id, job(name), 1, t0())
        );
    }
    assert!(q.receive(t0(), LEASE).unwrap().is_none());
}

#[test]
fn nothing_is_delivered_before_it_is_due() {
    let (_dir, q) = fresh();
    assert!(q.receive(t0(), LEASE).unwrap().is_none(), "empty queue");
    q.enqueue_at(&job("later"), at(5)).unwrap();
    q.enqueue_at(&job("now"), t0()).unwrap();
    let d = q.receive(t0(), LEASE).unwrap().unwrap();
    assert_eq!(
        d.job,
        job("now"),
        "earlier visibility first, whatever the id"
    );
    assert!(q.receive(at(4), LEASE).unwrap().is_none());
    assert_eq!(q.receive(at(5), LEASE).unwrap().unwrap().job, job("later"));
}

#[test]
fn an_unacked_message_comes_back_after_its_lease_with_its_receive_count_bumped() {
    let (_dir, q) = fresh();
    let id = q.enqueue_at(&job("a"), t0()).unwrap();
    let first = q.receive(t0(), LEASE).unwrap().unwrap();
    assert_eq!((first.id, first.attempt), (id, 1));
    for (n, lease_end) in [(2, at(30)), (3, at(60))] {
        let just_before = lease_end - chrono::Duration::milliseconds(1);
        assert!(
            q.receive(just_before, LEASE).unwrap().is_none(),
            "hidden until the lease ends"
        );
        let d = q.receive(lease_end, LEASE).unwrap().unwrap();
        assert_eq!((d.id, d.job, d.attempt), (id, job("a"), n));
    }
}

#[test]
fn ack_deletes_the_message_for_good() {
    let (_dir, q) = fresh();
    let id = q.enqueue_at(&job("a"), t0()).unwrap();
    let d = q.receive(t0(), LEASE).unwrap().unwrap();
    q.ack(d.id).unwrap();
    assert!(q.receive(at(3600), LEASE).unwrap().is_none());
    assert_eq!(q.depth(at(3600)).unwrap(), depth(0, 0, 0));
    q.ack(id).unwrap();
    q.ack(12345).unwrap();
}

#[test]
fn retry_later_hides_the_message_for_the_delay_and_keeps_its_count() {
    let (_dir, q) = fresh();
    let id = q.enqueue_at(&job("a"), t0()).unwrap();
    let d = q.receive(t0(), LEASE).unwrap().unwrap();
    // The retry replaces the lease: due at 10 + 120 s, not at the lease end (30 s).
    q.retry_later(d.id, at(10), Duration::from_secs(120))
        .unwrap();
    assert!(q.receive(at(30), LEASE).unwrap().is_none());
    assert!(q.receive(at(129), LEASE).unwrap().is_none());
    assert_eq!(
        q.depth(at(129)).unwrap(),
        depth(0, 1, 0),
        "delayed counts as not visible"
    );
    let again = q.receive(at(130), LEASE).unwrap().unwrap();
    assert_eq!((again.id, again.attempt), (id, 2));
    q.retry_later(999, t0(), LEASE).unwrap();
}

#[test]
fn a_retried_message_keeps_its_place_behind_earlier_due_ones() {
    let (_dir, q) = fresh();
    let first = q.enqueue_at(&job("a"), t0()).unwrap();
    let second = q.enqueue_at(&job("b"), at(1)).unwrap();
    let d = q.receive(at(1), LEASE).unwrap().unwrap();
    assert_eq!(d.id, first);
    q.retry_later(first, at(1), Duration::ZERO).unwrap();
    // Both due at 1 s now: FIFO by id puts the older one first.
    assert_eq!(q.receive(at(1), LEASE).unwrap().unwrap().id, first);
    assert_eq!(q.receive(at(1), LEASE).unwrap().unwrap().id, second);
}

#[test]
fn dead_letters_are_kept_with_reason_and_can_be_redriven() {
    let (_dir, q) = fresh();
    let id = q.enqueue_at(&job("a"), t0()).unwrap();
    for lease_start in [0, 30, 60] {
        assert_eq!(q.receive(at(lease_start), LEASE).unwrap().unwrap().id, id);
    }
    q.dead_letter(id, "rejected: 000100", at(61)).unwrap();
    assert!(
        q.receive(at(3600), LEASE).unwrap().is_none(),
        "dead letters are not delivered"
    );
    assert_eq!(q.depth(at(3600)).unwrap(), depth(0, 0, 1));

    let letters = q.dead_letters().unwrap();
    assert_eq!(letters.len(), 1);
    let l = &letters[0];
    assert_eq!((l.id, &l.job, l.attempts), (id, &job("a"), 3));
    assert_eq!((l.reason.as_str(), l.at), ("rejected: 000100", at(61)));

    assert!(q.redrive(id, at(100)).unwrap());
    assert!(!q.redrive(id, at(100)).unwrap(), "already redriven");
    assert!(!q.redrive(4242, at(100)).unwrap(), "unknown id");
    assert!(q.dead_letters().unwrap().is_empty());
    assert!(
        q.receive(at(99), LEASE).unwrap().is_none(),
        "visible from the redrive time"
    );
    let d = q.receive(at(100), LEASE).unwrap().unwrap();
    assert_eq!(
        (d.id, d.job, d.attempt, d.enqueued_at),
        (id, job("a"), 1, t0()),
        "same message, fresh attempt budget"
    );
    q.dead_letter(777, "unknown", t0()).unwrap();
}

#[test]
fn depth_counts_ready_in_flight_and_dead_relative_to_now() {
    let (_dir, q) = fresh();
    assert_eq!(q.depth(t0()).unwrap(), depth(0, 0, 0));
    let a = q.enqueue_at(&job("a"), t0()).unwrap();
    q.enqueue_at(&job("b"), t0()).unwrap();
    q.enqueue_at(&job("c"), at(10)).unwrap();
    let d = q.enqueue_at(&job("d"), t0()).unwrap();
    assert_eq!(q.depth(t0()).unwrap(), depth(3, 1, 0), "c is not due yet");
    assert_eq!(q.depth(at(10)).unwrap(), depth(4, 0, 0));

    assert_eq!(q.receive(t0(), LEASE).unwrap().unwrap().id, a);
    assert_eq!(q.depth(t0()).unwrap(), depth(2, 2, 0));
    q.receive(t0(), LEASE).unwrap().unwrap();
    q.dead_letter(d, "gave up", t0()).unwrap();
    assert_eq!(q.depth(t0()).unwrap(), depth(0, 3, 1));
    assert_eq!(
        q.depth(at(30)).unwrap(),
        depth(3, 0, 1),
        "leases over, c due"
    );
}

#[tokio::test]
async fn the_job_queue_port_stamps_jobs_with_the_queue_clock() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join("q.redb")).unwrap();
    let clock = Arc::new(ManualClock::at(at(50)));
    let q = store.queue().with_clock(clock);
    let port: &dyn JobQueue = &q;
    port.enqueue(&Job::Notify {
        instance_id: "i".into(),
        seq: 3,
    })
    .await
    .unwrap();
    assert!(q.receive(at(49), LEASE).unwrap().is_none());
    let d = q.receive(at(50), LEASE).unwrap().unwrap();
    assert_eq!(
        (d.job, d.enqueued_at),
        (
            Job::Notify {
                instance_id: "i".into(),
                seq: 3
            },
            at(50)
        )
    );
}
