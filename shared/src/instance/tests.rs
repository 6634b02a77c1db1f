//! The state machine's rules, one transition at a time.

use super::*;
use crate::ResultCode;

/// The result code KooGallery sees for a domain error (mapped once, in the callbacks).
fn code(e: DomainError) -> ResultCode {
    crate::callbacks::CallbackError::from(e).result_code()
}

fn now() -> DateTime<Utc> {
    crate::protocol::time::parse_compact("20260101000000").unwrap()
}

fn active() -> Instance {
    let (mut i, _) = Instance::new_provisioning(&"O".into(), &"O-1".into(), "inst-1", false, now());
    let app = AccessInfo {
        front_end_url: "https://x".into(),
        admin_url: None,
        user_name: None,
        password: None,
        memo: None,
    };
    assert!(matches!(
        i.activate(app, now()).unwrap(),
        Outcome::Changed(_)
    ));
    i
}

#[test]
fn freeze_unfreeze_round_trip_is_idempotent_and_recorded() {
    let mut i = active();
    let Outcome::Changed(ev) = i.freeze(now()).unwrap() else {
        panic!()
    };
    assert_eq!(
        (ev.from, ev.to),
        (Some(InstanceState::Active), InstanceState::Frozen)
    );
    assert_eq!(i.freeze(now()).unwrap(), Outcome::Unchanged);
    assert!(matches!(i.unfreeze(now()).unwrap(), Outcome::Changed(_)));
    assert_eq!(i.unfreeze(now()).unwrap(), Outcome::Unchanged);
    assert_eq!(i.state, InstanceState::Active);
    assert_eq!(
        i.outbox.pending.len(),
        2,
        "both changes wait for the provisioner"
    );
}

#[test]
fn provisioning_instance_cannot_be_frozen_yet_but_can_be_released() {
    let (mut i, _) = Instance::new_provisioning(&"O".into(), &"O-1".into(), "inst-1", false, now());
    let err = i.freeze(now()).unwrap_err();
    assert!(err.is_retryable());
    assert!(matches!(i.release(None, now()), Outcome::Changed(_)));
    assert_eq!(i.release(None, now()), Outcome::Unchanged);
    assert_eq!(
        code(i.freeze(now()).unwrap_err()),
        ResultCode::InstanceNotFound
    );
}

#[test]
fn refresh_is_idempotent_per_order_and_scene_and_moves_expiry_absolutely() {
    let mut i = active();
    let later = crate::protocol::time::parse_compact("20270101000000").unwrap();
    let earlier = crate::protocol::time::parse_compact("20261201000000").unwrap();
    let renew = |i: &mut Instance| {
        i.refresh(
            RefreshScene::Renewal,
            &"R1".into(),
            None,
            None,
            later,
            now(),
        )
        .unwrap()
    };
    assert!(matches!(renew(&mut i), Outcome::Changed(_)));
    assert_eq!(renew(&mut i), Outcome::Unchanged);
    assert!(matches!(
        i.refresh(
            RefreshScene::UnsubscribeRenewalPeriod,
            &"R1".into(),
            None,
            None,
            earlier,
            now()
        )
        .unwrap(),
        Outcome::Changed(_)
    ));
    assert_eq!(i.expire_time, Some(earlier));
}

#[test]
fn failed_is_terminal_except_release() {
    let (mut i, _) = Instance::new_provisioning(&"O".into(), &"O-1".into(), "inst-1", false, now());
    assert!(matches!(
        i.fail(ResultCode::NoResource, "full".into(), now()),
        Outcome::Changed(_)
    ));
    assert_eq!(i.failure.as_ref().unwrap().code, ResultCode::NoResource);
    assert_eq!(
        i.fail(ResultCode::InternalError, "again".into(), now()),
        Outcome::Unchanged
    );
    assert!(i.activate(active().access.unwrap(), now()).is_err());
    assert_eq!(
        code(i.upgrade(&"U".into(), &"U-1".into(), now()).unwrap_err()),
        ResultCode::NoResource
    );
    assert!(matches!(i.release(None, now()), Outcome::Changed(_)));
}

#[test]
fn a_success_code_never_becomes_a_failure_code() {
    let (mut i, _) = Instance::new_provisioning(&"O".into(), &"O-1".into(), "inst-1", false, now());
    i.fail(ResultCode::Success, "odd".into(), now());
    assert_eq!(i.failure.unwrap().code, ResultCode::InternalError);
}

#[test]
fn only_released_debug_records_restart() {
    let (mut debug, _) =
        Instance::new_provisioning(&"O".into(), &"O-1".into(), "inst-1", true, now());
    debug.activate(active().access.unwrap(), now()).unwrap();
    assert_eq!(
        debug.restart_debug("b2", now()),
        Outcome::Unchanged,
        "an active record stays as it is"
    );
    debug.release(None, now());
    let Outcome::Changed(ev) = debug.restart_debug("b2", now()) else {
        panic!("released debug record restarts")
    };
    assert_eq!(
        (ev.from, ev.to),
        (Some(InstanceState::Released), InstanceState::Active)
    );
    assert!(
        debug.outbox.pending.is_empty(),
        "debug records notify no one"
    );
    let mut real = active();
    real.release(None, now());
    assert_eq!(
        real.restart_debug("b2", now()),
        Outcome::Unchanged,
        "a real order is never revived"
    );
    assert_eq!(real.state, InstanceState::Released);
}

#[test]
fn test_records_queue_no_notices() {
    let (mut i, _) = Instance::new_provisioning(&"O".into(), &"O-1".into(), "inst-1", true, now());
    let app = active().access.unwrap();
    i.activate(app, now()).unwrap();
    i.freeze(now()).unwrap();
    assert!(i.outbox.pending.is_empty());
}

#[test]
fn event_sequence_numbers_increase() {
    let mut i = active();
    let Outcome::Changed(a) = i.freeze(now()).unwrap() else {
        panic!()
    };
    let Outcome::Changed(b) = i.unfreeze(now()).unwrap() else {
        panic!()
    };
    assert_eq!(b.seq, a.seq + 1);
    assert_eq!(i.next_seq, b.seq + 1);
}

/// `mutate_from` ends as `mutate` would whatever the record it starts from: a save on an out-of-date
/// record fails its compare-and-set and is applied again to a fresh read, and no change (or a
/// refusal) on a record it did not read is decided again on one.
#[tokio::test]
async fn mutate_from_a_known_record_ends_as_a_fresh_read_would() {
    use crate::testing::MemoryStore;
    let store = MemoryStore::new();
    async fn stored(store: &MemoryStore) -> Instance {
        store.get("inst-1").await.unwrap().unwrap()
    }
    let (created, event) =
        Instance::new_provisioning(&"O".into(), &"O-1".into(), "inst-1", false, now());
    store
        .create_for_order_line(&created, &[event])
        .await
        .unwrap();
    let known = stored(&store).await;

    // Up to date: saved, and returned as saved.
    let (saved, outcome) = mutate_from(&store, known.clone(), |i| {
        i.activate(active().access.unwrap(), now())
    })
    .await
    .unwrap();
    assert!(matches!(outcome, Outcome::Changed(_)));
    assert_eq!(saved.version, stored(&store).await.version);

    // Out of date (the activation above is not in it): a freeze is refused on it (still
    // provisioning), so it is decided on a fresh read, which freezes.
    let (frozen, outcome) = mutate_from(&store, known.clone(), |i| i.freeze(now()))
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Changed(_)));
    assert_eq!(frozen.state, InstanceState::Frozen);
    assert_eq!(stored(&store).await.state, InstanceState::Frozen);

    // Another writer unfreezes it. On the record as frozen, a freeze changes nothing; decided
    // again on a fresh read, it freezes.
    mutate(&store, "inst-1", |i| i.unfreeze(now()))
        .await
        .unwrap();
    let (_, outcome) = mutate_from(&store, frozen, |i| i.freeze(now()))
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Changed(_)), "{outcome:?}");
    assert_eq!(stored(&store).await.state, InstanceState::Frozen);
    // On the record as activated, a freeze is a save, whose compare-and-set fails: applied again
    // to the stored record, frozen already, it changes nothing.
    let (_, outcome) = mutate_from(&store, saved, |i| i.freeze(now()))
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Unchanged);
    assert_eq!(
        store.events("inst-1").await.unwrap().len(),
        5,
        "created, activated, frozen, unfrozen, frozen: each once"
    );
}
