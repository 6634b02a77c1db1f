//! Tests of the operator's views and actions on the memory ports: the contracts, the redacted instance page, redrives and discards kept with who asked.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::*;
use crate::{
    exchange::{ExchangeQuery, redact::REDACTED},
    instance::{AccessInfo, Credential, InstanceId},
    order::{OrderDetails, OrderId, OrderLineId},
    testing::{
        ManualClock, MemoryDeadLetters, MemoryDirectory, MemoryExchangeLog, MemorySso, MemoryStore,
        golden,
        license::MemoryLicenses,
        operator::{dead_letters_contract, instance_accounts_contract, instance_listing_contract},
    },
};

fn t0() -> DateTime<Utc> {
    crate::protocol::time::parse_compact("20260301080000").unwrap()
}

struct Bed {
    operator: Operator,
    store: Arc<MemoryStore>,
    dead: Arc<MemoryDeadLetters>,
    log: Arc<MemoryExchangeLog>,
}

fn bed() -> Bed {
    let store = Arc::new(MemoryStore::new());
    let dead = Arc::new(MemoryDeadLetters::new());
    let log = Arc::new(MemoryExchangeLog::new());
    let (recorder, writer) = ExchangeRecorder::start(log.clone(), chrono::Duration::days(14));
    tokio::spawn(writer.run());
    let operator = Operator {
        instances: store.clone(),
        listing: store.clone(),
        dead_letters: dead.clone(),
        exchanges: Some(log.clone()),
        recorder,
        usage: Some(store.clone()),
        reconciler: None,
        clock: Arc::new(ManualClock::at(t0() + chrono::Duration::hours(1))),
    };
    Bed {
        operator,
        store,
        dead,
        log,
    }
}

async fn seed(store: &MemoryStore) -> Instance {
    let order = OrderId::new("CS2603010800ABC");
    let (mut i, ev) = Instance::new_provisioning(
        &order,
        &OrderLineId::new("CS2603010800ABC-000001"),
        "i-buyer-1",
        false,
        t0(),
    );
    i.order = Some(OrderDetails {
        customer_id: Some("cust-1".into()),
        customer_name: Some("Zhang San".into()),
        sku_code: Some("sku-basic".into()),
        product_id: Some("prod-1".into()),
        ..OrderDetails::default()
    });
    i.access = Some(AccessInfo {
        front_end_url: "https://app.example.com".into(),
        admin_url: None,
        user_name: Some("admin".into()),
        password: Some(Credential::Plain("s3cret".into())),
        memo: None,
    });
    store.create_for_order_line(&i, &[ev]).await.unwrap();
    i
}

#[tokio::test]
async fn the_memory_store_and_dead_letters_pass_the_contracts() {
    let store = Arc::new(MemoryStore::new());
    instance_listing_contract(store.clone(), store).await;
    let dead = MemoryDeadLetters::new();
    let jobs = [
        Job::Provision {
            instance_id: "i-a".into(),
        },
        Job::Notify {
            instance_id: "i-b".into(),
            seq: 2,
        },
    ];
    let seeded: Vec<_> = jobs
        .iter()
        .map(|j| (dead.add(j.clone(), "deadline", t0()), j.clone()))
        .collect();
    dead_letters_contract(&dead, &seeded, |job| {
        let queued = dead.redriven.lock().unwrap().contains(&job);
        async move { queued }
    })
    .await;
    instance_accounts_contract(
        Arc::new(MemoryDirectory::new()),
        Arc::new(MemorySso::new()),
        Arc::new(MemoryLicenses::default()),
    )
    .await;
}

/// The instance page: the record with its credentials and the buyer's name redacted, its history,
/// its exchanges and its dead letters, in a versioned shape.
#[tokio::test]
async fn an_instance_page_shows_everything_kept_about_it_redacted() {
    let b = bed();
    let i = seed(&b.store).await;
    b.dead.add(
        Job::Provision {
            instance_id: "i-buyer-1".into(),
        },
        "provisioning deadline passed",
        t0() + chrono::Duration::minutes(30),
    );
    b.dead.add(
        Job::Provision {
            instance_id: "someone-else".into(),
        },
        "other",
        t0(),
    );
    let detail = b.operator.instance("i-buyer-1").await.unwrap().unwrap();
    assert_eq!(
        detail.instance.instance_id,
        InstanceId::from("i-buyer-1".to_owned())
    );
    assert_eq!(detail.history.len(), 1);
    assert_eq!(detail.dead_letters.len(), 1, "only its own");
    let page = detail.to_json();
    assert_eq!(page["v"], 1);
    assert_eq!(page["summary"]["customer_id"], "cust-1");
    let text = page.to_string();
    assert!(
        !text.contains("s3cret") && !text.contains("Zhang San"),
        "{text}"
    );
    assert_eq!(page["instance"]["order"]["customer_name"], REDACTED);
    golden::check("operator_instance_v1.json", &page);
    assert!(b.operator.instance("nope").await.unwrap().is_none());
    let _ = i;
}

/// Redrive: oldest first, each action kept with who asked; a repeat finds them gone.
#[tokio::test]
async fn redrives_go_oldest_first_are_idempotent_and_kept_with_who_asked() {
    let b = bed();
    let notice = |seq| Job::Notify {
        instance_id: "i-buyer-1".into(),
        seq,
    };
    let first = b.dead.add(notice(3), "notice deadline passed", t0());
    let second = b.dead.add(notice(4), "notice deadline passed", t0());
    let other = b.dead.add(
        Job::Provision {
            instance_id: "i-other".into(),
        },
        "x",
        t0(),
    );
    let who = Who("ops@example.com".into());
    let done = b
        .operator
        .redrive(&Selection::Instance("i-buyer-1".into()), &who)
        .await
        .unwrap();
    assert_eq!(done.done, [first.clone(), second.clone()]);
    assert_eq!(
        *b.dead.redriven.lock().unwrap(),
        [notice(3), notice(4)],
        "in order"
    );
    let again = b
        .operator
        .redrive(&Selection::One(first.clone()), &who)
        .await
        .unwrap();
    assert_eq!(
        again,
        ActionOutcome {
            done: vec![],
            gone: vec![first.clone()]
        }
    );

    let refused = b.operator.discard(&other, "  ", &who).await.unwrap_err();
    assert!(matches!(refused, OperatorError::Invalid(_)));
    let discarded = b
        .operator
        .discard(&other, "order refunded by hand", &who)
        .await
        .unwrap();
    assert_eq!(discarded.done, std::slice::from_ref(&other));
    assert!(
        b.dead.redriven.lock().unwrap().len() == 2,
        "discarded, not queued"
    );

    b.operator.recorder.flush().await;
    let actions = b
        .operator
        .exchanges(&ExchangeQuery::newest(
            crate::exchange::ExchangeFilter::All,
            10,
        ))
        .await
        .unwrap();
    assert_eq!(actions.len(), 3, "{actions:#?}");
    assert!(actions.iter().all(|a| a.direction == Direction::Operator));
    let discard = actions.iter().find(|a| a.activity == "discard").unwrap();
    assert_eq!(discard.request["who"], "ops@example.com");
    assert_eq!(discard.request["reason"], "order refunded by hand");
    assert_eq!(discard.instance_id.as_deref(), Some("i-other"));
    let _ = b.log;
    let _ = json!(null);
}
