//! Everything written survives closing and reopening the file.

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use koogallery::{
    instance::{AccessInfo, Instance, InstanceState, InstanceStore, Outcome},
    jobs::Job,
    security::replay::NonceStore,
};
use koogallery_embedded::{EmbeddedStore, QueueDepth};

fn t0() -> DateTime<Utc> {
    koogallery::protocol::time::parse_compact("20260101000000").unwrap()
}

fn provision(id: &str) -> Job {
    Job::Provision {
        instance_id: id.into(),
    }
}

#[tokio::test]
async fn a_restart_loses_nothing_and_in_flight_jobs_come_back_after_their_lease() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("koogallery.redb");
    let lease = Duration::from_secs(30);
    // Nonces on the wall clock: only those unexpired when the file is opened are loaded.
    let nonce_at = chrono::Utc::now();
    let nonce_exp = nonce_at + chrono::Duration::seconds(300);

    let (in_flight, dead, ready) = {
        let store = EmbeddedStore::open(&path).unwrap();
        let (inst, created) =
            Instance::new_provisioning(&"O".into(), &"O-1".into(), "inst-1", false, t0());
        store
            .create_for_order_line(&inst, &[created])
            .await
            .unwrap();
        let mut active = store.get("inst-1").await.unwrap().unwrap();
        let app = AccessInfo {
            front_end_url: "https://a".into(),
            admin_url: None,
            user_name: None,
            password: None,
            memo: None,
        };
        let Outcome::Changed(ev) = active.activate(app, t0()).unwrap() else {
            panic!("activation changed nothing")
        };
        store.save(&active, 1, &[ev]).await.unwrap();
        assert!(
            store
                .remember("nonce-1", nonce_at, nonce_exp)
                .await
                .unwrap()
        );

        let q = store.queue();
        let in_flight = q.enqueue_at(&provision("a"), t0()).unwrap();
        let dead = q.enqueue_at(&provision("b"), t0()).unwrap();
        let ready = q.enqueue_at(&provision("c"), t0()).unwrap();
        assert_eq!(q.receive(t0(), lease).unwrap().unwrap().id, in_flight);
        assert_eq!(q.receive(t0(), lease).unwrap().unwrap().id, dead);
        q.dead_letter(dead, "provisioner said no", t0()).unwrap();
        (in_flight, dead, ready)
        // Store and queue dropped here: the file is closed.
    };

    let store = EmbeddedStore::open(&path).unwrap();
    let inst = store.get("inst-1").await.unwrap().unwrap();
    assert_eq!(
        (inst.state, inst.version),
        (InstanceState::Active, 2),
        "the saved record and its version survive"
    );
    let kinds: Vec<&str> = store
        .events("inst-1")
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind.name())
        .collect();
    assert_eq!(kinds, ["created", "provisioned"]);
    let (dup, dup_ev) =
        Instance::new_provisioning(&"O".into(), &"O-1".into(), "inst-other", false, t0());
    assert!(matches!(
        store.create_for_order_line(&dup, &[dup_ev]).await.unwrap(),
        koogallery::instance::CreateOutcome::Existing(e) if e.instance_id == "inst-1"
    ));
    assert!(
        !store
            .remember(
                "nonce-1",
                nonce_at + chrono::Duration::seconds(1),
                nonce_exp
            )
            .await
            .unwrap(),
        "a remembered nonce is still refused after a restart"
    );

    let q = store.queue();
    assert_eq!(
        q.depth(t0()).unwrap(),
        QueueDepth {
            ready: 1,
            in_flight: 1,
            dead: 1
        }
    );
    let letters = q.dead_letters().unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(
        (letters[0].id, &letters[0].job, letters[0].attempts),
        (dead, &provision("b"), 1)
    );
    assert_eq!(letters[0].reason, "provisioner said no");
    assert_eq!(letters[0].at, t0());

    let next = q.receive(t0(), lease).unwrap().unwrap();
    assert_eq!((next.id, next.attempt), (ready, 1));
    assert!(
        q.receive(t0() + chrono::Duration::seconds(29), lease)
            .unwrap()
            .is_none(),
        "the in-flight job stays hidden until its lease ends"
    );
    let again = q
        .receive(t0() + chrono::Duration::seconds(30), lease)
        .unwrap()
        .unwrap();
    assert_eq!(
        (again.id, &again.job, again.attempt, again.enqueued_at),
        (in_flight, &provision("a"), 2, t0()),
        "the job leased before the restart is delivered again (at least once)"
    );

    // The id counter survived too: new ids keep increasing.
    let later = q.enqueue_at(&provision("d"), t0()).unwrap();
    assert!(later > ready);
}

#[test]
fn a_file_open_elsewhere_in_the_process_is_reported_not_panicked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let _first = EmbeddedStore::open(&path).unwrap();
    assert!(matches!(
        EmbeddedStore::open(&path),
        Err(koogallery::StoreError::Unavailable(_))
    ));
}

/// The local store file holds credentials; it is created 0600, and an existing
/// world-readable one is tightened.
#[cfg(unix)]
#[test]
fn the_store_file_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("fresh.redb");
    drop(koogallery_embedded::EmbeddedStore::open(&fresh).unwrap());
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&fresh), 0o600);
    std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(koogallery_embedded::EmbeddedStore::open(&fresh).unwrap());
    assert_eq!(mode(&fresh), 0o600, "an existing store is tightened");
}

/// A file written by the version before the purge and replay-guard changes (commit 5a1291d)
/// still opens and reads as written: the layout is a versioned contract. It holds an instance,
/// 468 expired nonces and 5 live ones (expiring in 2100), and one usage report (key `k-1`).
/// Made with that commit's store: `open`, `create_for_order_line` (O / O-1 / inst-1), 500
/// `remember("old-{i}")` expired 5 minutes before, `flush_nonces`, 5 `remember("live-{i}")`,
/// `ingest` of 3 on `i-1` with key `k-1`, close.
#[tokio::test]
async fn a_file_written_by_the_previous_version_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::copy_of_earlier_release(dir.path());
    let store = EmbeddedStore::open(&path).unwrap();
    assert_eq!(
        store.get("inst-1").await.unwrap().unwrap().order_id,
        "O",
        "the instance"
    );
    let now = chrono::Utc::now();
    let exp = now + chrono::Duration::seconds(300);
    for i in 0..5 {
        assert!(
            !store
                .remember(&format!("live-{i}"), now, exp)
                .await
                .unwrap(),
            "live-{i} is remembered"
        );
    }
    assert!(
        store.remember("old-7", now, exp).await.unwrap(),
        "an expired nonce is not"
    );
    use koogallery::metering::{PackageQuotas, UsageReport, UsageStore};
    let windows = store.windows_of("i-1").await.unwrap();
    assert_eq!(windows[0].total.to_string(), "3");
    // The same key with other content: refused, so the key was read back.
    let other = UsageReport {
        instance_id: "i-1".into(),
        quantity: "4".parse().unwrap(),
        occurred_at: windows[0].start,
        idempotency_key: "k-1".into(),
        package_instance_id: None,
    };
    let refused = store
        .ingest(&[other], &PackageQuotas::new(), windows[0].start)
        .await;
    assert!(
        matches!(
            refused,
            Err(koogallery::metering::IngestError::Invalid {
                reason: koogallery::metering::ingest::Refusal::KeyReused(_),
                ..
            })
        ),
        "its usage key is kept: {refused:?}"
    );
}
