//! `DynamoStore` against the emulator: the shared port contracts plus DynamoDB-specific cases.
//! One table per test-binary run (a unique name), created idempotently by each test.

mod common;

use std::{collections::HashMap, sync::Arc, sync::OnceLock};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, Utc};
use common::{emulator_config, unique};
use koogallery::{
    StoreError,
    instance::{CreateOutcome, Instance, InstanceStore, Outcome},
    order::OrderId,
    security::replay::NonceStore,
    testing::contract::{
        concurrent_create_contract, instance_store_contract, nonce_store_contract,
        order_notice_store_contract,
    },
};
use koogallery_aws::{DynamoStore, bootstrap::ensure_table, dynamo::keys};

fn table() -> &'static str {
    static TABLE: OnceLock<String> = OnceLock::new();
    TABLE.get_or_init(|| unique("koogallery-test"))
}

async fn store() -> DynamoStore {
    let config = emulator_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    ensure_table(&client, table()).await.unwrap();
    DynamoStore::new(client, table())
}

fn t0() -> DateTime<Utc> {
    koogallery::protocol::time::parse_compact("20260101000000").unwrap()
}

fn new_instance() -> (Instance, koogallery::instance::InstanceEvent) {
    let order = OrderId::new(unique("CS"));
    Instance::new_provisioning(
        &order,
        &format!("{order}-000001").into(),
        &unique("biz"),
        false,
        t0(),
    )
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn dynamo_store_passes_the_instance_store_contract() {
    instance_store_contract(Arc::new(store().await)).await;
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn dynamo_store_passes_the_concurrent_create_contract() {
    concurrent_create_contract(Arc::new(store().await)).await;
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn dynamo_store_passes_the_nonce_store_contract() {
    nonce_store_contract(Arc::new(store().await)).await;
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn ensure_table_is_idempotent() {
    let store = store().await;
    ensure_table(store.client(), table()).await.unwrap();
    let ttl = store
        .client()
        .describe_time_to_live()
        .table_name(table())
        .send()
        .await
        .unwrap();
    let desc = ttl.time_to_live_description().unwrap();
    assert_eq!(desc.attribute_name(), Some("ttl"));
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn items_follow_the_documented_key_schema() {
    let store = store().await;
    let (inst, ev) = new_instance();
    store.create_for_order_line(&inst, &[ev]).await.unwrap();
    let get = |pk: String, sk: String| {
        let client = store.client().clone();
        async move {
            client
                .get_item()
                .table_name(table())
                .key(keys::PK, AttributeValue::S(pk))
                .key(keys::SK, AttributeValue::S(sk))
                .send()
                .await
                .unwrap()
                .item
                .unwrap_or_else(|| panic!("item missing"))
        }
    };
    let item = get(format!("INSTANCE#{}", inst.instance_id), "INSTANCE".into()).await;
    assert_eq!(item.get("version"), Some(&AttributeValue::N("1".into())));
    assert_eq!(
        item.get("state"),
        Some(&AttributeValue::S("provisioning".into()))
    );
    assert_eq!(
        item.get("order_id"),
        Some(&AttributeValue::S(inst.order_id.to_string()))
    );
    assert!(matches!(item.get("data"), Some(AttributeValue::S(_))));
    let line = get(
        format!("ORDERLINE#{}#{}", inst.order_id, inst.order_line_id),
        "ORDERLINE".into(),
    )
    .await;
    assert_eq!(
        line.get("instance_id"),
        Some(&AttributeValue::S(inst.instance_id.clone().into()))
    );
    let event = get(
        format!("INSTANCE#{}", inst.instance_id),
        "EVENT#00000000000000000000".into(),
    )
    .await;
    assert!(matches!(event.get("data"), Some(AttributeValue::S(_))));

    let nonce = unique("nonce");
    let expires = t0() + Duration::milliseconds(300_500);
    assert!(store.remember(&nonce, t0(), expires).await.unwrap());
    let item = get(format!("NONCE#{nonce}"), "NONCE".into()).await;
    assert_eq!(
        item.get("expires_ms"),
        Some(&AttributeValue::N(expires.timestamp_millis().to_string()))
    );
    assert_eq!(
        item.get("ttl"),
        Some(&AttributeValue::N((expires.timestamp() + 1).to_string()))
    );
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn instance_id_reused_by_another_order_line_is_reported_not_written() {
    let store = store().await;
    let (inst, ev) = new_instance();
    store
        .create_for_order_line(&inst, std::slice::from_ref(&ev))
        .await
        .unwrap();
    let mut other = inst.clone();
    other.order_line_id = format!("{}-000002", inst.order_id).into();
    // The caller is told, so that newInstance can derive another ID
    // (docs/protocol/decisions.md §6).
    assert!(matches!(
        store.create_for_order_line(&other, &[ev]).await,
        Ok(CreateOutcome::InstanceIdTaken)
    ));
    // Nothing of the refused create was written.
    let again = store.create_for_order_line(&inst, &[]).await.unwrap();
    let CreateOutcome::Existing(existing) = again else {
        panic!("the first order line must still be recorded")
    };
    assert_eq!(existing.order_line_id, inst.order_line_id);
    assert_eq!(store.events(&inst.instance_id).await.unwrap().len(), 1);
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn save_without_events_and_with_a_stored_seq() {
    let store = store().await;
    let (inst, ev) = new_instance();
    store
        .create_for_order_line(&inst, std::slice::from_ref(&ev))
        .await
        .unwrap();
    let mut loaded = store.get(&inst.instance_id).await.unwrap().unwrap();

    // Bookkeeping-only save: a single conditional PutItem.
    loaded.provisioning.enqueued = true;
    store.save(&loaded, 1, &[]).await.unwrap();
    assert!(matches!(
        store.save(&loaded, 1, &[]).await,
        Err(StoreError::Conflict)
    ));
    let loaded = store.get(&inst.instance_id).await.unwrap().unwrap();
    assert_eq!(loaded.version, 2);
    assert!(loaded.provisioning.enqueued);

    // An event whose seq is already stored refuses the whole save.
    assert!(matches!(
        store.save(&loaded, 2, &[ev]).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        store.get(&inst.instance_id).await.unwrap().unwrap().version,
        2
    );
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn get_many_chunks_dedupes_and_keeps_the_callers_order() {
    let store = store().await;
    let mut ids = Vec::new();
    for _ in 0..130 {
        let (inst, ev) = new_instance();
        store.create_for_order_line(&inst, &[ev]).await.unwrap();
        ids.push(inst.instance_id);
    }
    let mut ask: Vec<&str> = ids.iter().rev().map(|i| i.as_str()).collect();
    ask.insert(5, "unknown-id");
    ask.push(ids[0].as_str());
    let got = store.get_many(&ask).await.unwrap();
    let got_ids: Vec<&str> = got.iter().map(|i| i.instance_id.as_str()).collect();
    let want: Vec<&str> = ask
        .iter()
        .copied()
        .filter(|id| *id != "unknown-id")
        .collect();
    assert_eq!(got_ids, want);
    assert!(got.iter().all(|i| i.version == 1));
    assert!(store.get_many(&[]).await.unwrap().is_empty());
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn long_histories_come_back_in_order() {
    let store = store().await;
    let (mut inst, ev) = new_instance();
    store.create_for_order_line(&inst, &[ev]).await.unwrap();
    inst.version = 1;
    let app = koogallery::instance::AccessInfo {
        front_end_url: "https://a".into(),
        admin_url: None,
        user_name: None,
        password: None,
        memo: Some("x".repeat(2000)),
    };
    let Outcome::Changed(ev) = inst.activate(app, t0()).unwrap() else {
        panic!()
    };
    store.save(&inst, 1, &[ev]).await.unwrap();
    inst.version = 2;
    // 2 + 10 x 12 events, saved in batches.
    for round in 0..10u32 {
        let mut batch = Vec::new();
        for _ in 0..6 {
            let Outcome::Changed(a) = inst.freeze(t0()).unwrap() else {
                panic!()
            };
            let Outcome::Changed(b) = inst.unfreeze(t0()).unwrap() else {
                panic!()
            };
            batch.extend([a, b]);
        }
        store.save(&inst, inst.version, &batch).await.unwrap();
        inst.version += 1;
        assert_eq!(inst.version, u64::from(round) + 3);
    }
    let events = store.events(&inst.instance_id).await.unwrap();
    assert_eq!(events.len(), 2 + 10 * 12);
    assert!(events.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    assert_eq!(events[0].kind.name(), "created");
    assert!(store.events(&unique("nobody")).await.unwrap().is_empty());
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn undecodable_records_are_corrupt() {
    let store = store().await;
    let (inst, ev) = new_instance();
    store.create_for_order_line(&inst, &[ev]).await.unwrap();
    let pk = format!("INSTANCE#{}", inst.instance_id);
    let put = |sk: &str, extra: HashMap<String, AttributeValue>| {
        let mut item = HashMap::from([
            (keys::PK.to_owned(), AttributeValue::S(pk.clone())),
            (keys::SK.to_owned(), AttributeValue::S(sk.to_owned())),
            ("data".to_owned(), AttributeValue::S("{not json".into())),
        ]);
        item.extend(extra);
        store
            .client()
            .put_item()
            .table_name(table())
            .set_item(Some(item))
            .send()
    };
    put(
        "INSTANCE",
        HashMap::from([("version".into(), AttributeValue::N("1".into()))]),
    )
    .await
    .unwrap();
    put("EVENT#00000000000000000001", HashMap::new())
        .await
        .unwrap();
    assert!(matches!(
        store.get(&inst.instance_id).await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        store.get_many(&[inst.instance_id.as_str()]).await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        store.events(&inst.instance_id).await,
        Err(StoreError::Corrupt(_))
    ));
    let (dup, dup_ev) = Instance::new_provisioning(
        &inst.order_id,
        &inst.order_line_id,
        &unique("biz"),
        false,
        t0(),
    );
    assert!(matches!(
        store.create_for_order_line(&dup, &[dup_ev]).await,
        Err(StoreError::Corrupt(_))
    ));
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn a_missing_table_is_unavailable() {
    let config = emulator_config().await;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        unique("no-such-table"),
    );
    let err = store.get("x").await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("GetItem"), "{err}");
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn events_paginate_past_one_megabyte() {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    use koogallery::instance::{Actor, EventKind, InstanceEvent, InstanceState};

    let store = store().await;
    let (inst, ev) = new_instance();
    store.create_for_order_line(&inst, &[ev]).await.unwrap();
    // 400 events of about 3 KB each: well over the 1 MB a Query page holds.
    let big = "R".repeat(3000);
    let mut requests = Vec::new();
    for seq in 1..=400u64 {
        let event = InstanceEvent {
            instance_id: inst.instance_id.clone().into(),
            seq,
            at: t0(),
            actor: Actor::Worker,
            kind: EventKind::Released {
                order_id: Some(big.clone().into()),
            },
            from: Some(InstanceState::Active),
            to: InstanceState::Released,
            test: false,
        };
        let item = HashMap::from([
            (
                keys::PK.to_owned(),
                AttributeValue::S(format!("INSTANCE#{}", inst.instance_id)),
            ),
            (
                keys::SK.to_owned(),
                AttributeValue::S(format!("EVENT#{seq:020}")),
            ),
            (
                "data".to_owned(),
                AttributeValue::S(
                    String::from_utf8(koogallery::instance::record::encode_event(&event).unwrap())
                        .unwrap(),
                ),
            ),
        ]);
        requests.push(
            WriteRequest::builder()
                .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
                .build(),
        );
    }
    for chunk in requests.chunks(25) {
        let out = store
            .client()
            .batch_write_item()
            .request_items(table(), chunk.to_vec())
            .send()
            .await
            .unwrap();
        assert!(out.unprocessed_items().is_none_or(|u| u.is_empty()));
    }
    let events = store.events(&inst.instance_id).await.unwrap();
    assert_eq!(events.len(), 401);
    assert!(events.iter().enumerate().all(|(i, e)| e.seq == i as u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn dynamo_store_passes_the_order_notice_contract() {
    order_notice_store_contract(Arc::new(store().await)).await;
}

/// The ids `unsettled` lists.
async fn unsettled_ids(store: &DynamoStore) -> std::collections::BTreeSet<String> {
    store
        .unsettled()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.instance_id.into_string())
        .collect()
}

/// Unsettled instances are spread over the index's shards by a hash of their
/// ID (not one constant key), the index holds keys only, and `unsettled` finds them in every
/// shard.
#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn unsettled_instances_are_spread_over_shards_of_a_keys_only_index() {
    let store = store().await;
    let client = store.client();
    let description = client
        .describe_table()
        .table_name(table())
        .send()
        .await
        .unwrap();
    let index = description
        .table()
        .unwrap()
        .global_secondary_indexes()
        .iter()
        .find(|g| g.index_name() == Some(keys::UNSETTLED_INDEX))
        .expect("the sharded index");
    assert_eq!(
        index.projection().and_then(|p| p.projection_type()),
        Some(&aws_sdk_dynamodb::types::ProjectionType::KeysOnly)
    );

    let mut ids = Vec::new();
    let mut shards = std::collections::BTreeSet::new();
    for _ in 0..48 {
        let (inst, ev) = new_instance();
        store.create_for_order_line(&inst, &[ev]).await.unwrap();
        let item = client
            .get_item()
            .table_name(table())
            .key(
                keys::PK,
                AttributeValue::S(keys::instance_pk(&inst.instance_id)),
            )
            .key(keys::SK, AttributeValue::S(keys::INSTANCE_SK.into()))
            .send()
            .await
            .unwrap()
            .item
            .unwrap();
        let shard = keys::unsettled_shard(&inst.instance_id);
        assert_eq!(
            item.get(keys::UNSETTLED_SHARD),
            Some(&AttributeValue::S(shard.clone()))
        );
        assert!(
            !item.contains_key(keys::LEGACY_UNSETTLED),
            "nothing writes the legacy key"
        );
        shards.insert(shard);
        ids.push(inst.instance_id);
    }
    // 48 IDs over 16 shards: about 15 in use; all in one would be the hot partition again.
    assert!(shards.len() >= 8, "{shards:?}");
    let listed = unsettled_ids(&store).await;
    assert!(ids.iter().all(|id| listed.contains(id.as_str())));

    // One shard's query answers keys only: the table's and the index's.
    let shard = keys::unsettled_shard(&ids[0]);
    let out = client
        .query()
        .table_name(table())
        .index_name(keys::UNSETTLED_INDEX)
        .key_condition_expression("#u = :u")
        .expression_attribute_names("#u", keys::UNSETTLED_SHARD)
        .expression_attribute_values(":u", AttributeValue::S(shard))
        .send()
        .await
        .unwrap();
    assert!(!out.items().is_empty());
    for item in out.items() {
        let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, [keys::PK, keys::SK, keys::UNSETTLED_SHARD]);
    }
}

/// An instance written by an earlier release (`unsettled` = "1", the legacy
/// index's one key) is still found; its next save moves it to its shard.
#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn instances_under_the_legacy_key_are_found_until_saved_again() {
    let store = store().await;
    let (inst, ev) = new_instance();
    store.create_for_order_line(&inst, &[ev]).await.unwrap();
    // As an earlier release left it.
    let key = |item: &str| keys::instance_pk(item);
    store
        .client()
        .update_item()
        .table_name(table())
        .key(keys::PK, AttributeValue::S(key(&inst.instance_id)))
        .key(keys::SK, AttributeValue::S(keys::INSTANCE_SK.into()))
        .update_expression("SET #old = :one REMOVE #shard")
        .expression_attribute_names("#old", keys::LEGACY_UNSETTLED)
        .expression_attribute_names("#shard", keys::UNSETTLED_SHARD)
        .expression_attribute_values(":one", AttributeValue::S(keys::LEGACY_UNSETTLED_KEY.into()))
        .send()
        .await
        .unwrap();
    assert!(
        unsettled_ids(&store)
            .await
            .contains(inst.instance_id.as_str())
    );

    let mut loaded = store.get(&inst.instance_id).await.unwrap().unwrap();
    loaded.provisioning.enqueued = true;
    store.save(&loaded, 1, &[]).await.unwrap();
    let item = store
        .client()
        .get_item()
        .table_name(table())
        .key(keys::PK, AttributeValue::S(key(&inst.instance_id)))
        .key(keys::SK, AttributeValue::S(keys::INSTANCE_SK.into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert!(!item.contains_key(keys::LEGACY_UNSETTLED));
    assert!(item.contains_key(keys::UNSETTLED_SHARD));
    let listed = store.unsettled().await.unwrap();
    let found: Vec<&Instance> = listed
        .iter()
        .filter(|i| i.instance_id == inst.instance_id)
        .collect();
    assert_eq!(found.len(), 1, "listed once, from its shard");
    assert_eq!(found[0].version, 2, "read from the table, not the index");
}
