//! `DynamoExchangeLog` against the emulator: the shared contract, the documented items read back
//! raw (three partitions, `ttl`), a page by time crossing day partitions, an expired item that
//! TTL has not deleted yet never answered, and a partly written exchange completed by its retry.
//! A table per test, so no other run's exchanges share a day partition.

mod common;

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, Utc};
use common::{client_and_table, raw, unique};
use koogallery::{
    exchange::{
        Direction, Exchange, ExchangeFilter, ExchangeLog, ExchangeQuery, Kept, new_id, record,
    },
    testing::contract::exchange_log_contract,
};
use koogallery_aws::{
    DynamoExchangeLog,
    dynamo::{
        exchanges::{day_of, instance_pk, order_pk, time_pk, time_shard},
        keys::{DATA, PK, SK, TTL},
    },
};

async fn fresh() -> (DynamoExchangeLog, aws_sdk_dynamodb::Client, String) {
    let (client, table) = client_and_table("koogallery-xlog-test").await;
    (
        DynamoExchangeLog::new(client.clone(), table.clone()),
        client,
        table,
    )
}

fn t0() -> DateTime<Utc> {
    koogallery::protocol::time::parse_compact("20260601120000").unwrap()
}

fn exchange(at: DateTime<Utc>, instance: Option<&str>, order: Option<&str>) -> Exchange {
    Exchange {
        id: new_id(at),
        at,
        direction: Direction::Inbound,
        family: "v2_basic".into(),
        activity: "queryInstance".into(),
        instance_id: instance.map(str::to_owned),
        order_id: order.map(str::to_owned),
        tenant_id: None,
        request: serde_json::json!({"activity": "queryInstance"}),
        response: serde_json::json!({"resultCode": "000000"}),
        result_code: Some("000000".into()),
        http_status: None,
        latency_ms: 1.5,
        key: Some("current".into()),
        attempt: None,
        test: false,
        expires_at: at + Duration::days(14),
        error: None,
    }
}

fn all(before: Option<&str>, limit: usize) -> ExchangeQuery {
    ExchangeQuery {
        filter: ExchangeFilter::All,
        before: before.map(str::to_owned),
        limit,
    }
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn the_dynamo_exchange_log_passes_the_contract() {
    let (log, _, _) = fresh().await;
    exchange_log_contract(Arc::new(log)).await;
}

/// An exchange is its record under its instance's, its order's and its day's shard partitions,
/// each with `ttl`; one without an instance or an order is its time item only.
#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn an_exchange_is_kept_under_each_partition_it_is_found_by() {
    let (log, client, table) = fresh().await;
    let (instance, order) = (unique("i#%"), unique("CS"));
    let e = exchange(t0(), Some(&instance), Some(&order));
    let bare = exchange(t0() + Duration::seconds(1), None, None);
    log.append(&Kept::all(&[e.clone(), bare.clone()]))
        .await
        .unwrap();

    let time = time_pk(day_of(&Kept::of(&e)), time_shard(&e.id));
    assert!(time.starts_with("XLOG#T#20260601#"), "{time}");
    assert!(instance_pk(&instance).contains("i%23%25"), "escaped");
    for pk in [instance_pk(&instance), order_pk(&order), time] {
        let item = raw(&client, &table, &pk, &e.id)
            .await
            .unwrap_or_else(|| panic!("no item {pk}"));
        let data = item[DATA].as_s().unwrap();
        assert_eq!(record::decode(data.as_bytes()).unwrap(), e);
        assert_eq!(
            item[TTL].as_n().unwrap(),
            &e.expires_at.timestamp().to_string(),
            "whole seconds (the ids' times are whole seconds here)"
        );
    }
    let scan = client.scan().table_name(&table).send().await.unwrap();
    assert_eq!(scan.count(), 4, "three items for one, one for the other");
    assert!(
        raw(
            &client,
            &table,
            &time_pk(day_of(&Kept::of(&bare)), time_shard(&bare.id)),
            &bare.id
        )
        .await
        .is_some()
    );
}

/// A page by time reads the day partitions backwards and crosses from one day to an earlier one,
/// skipping a day with nothing; `before` starts the next page in the middle of a day; the walk
/// ends at the retention's horizon.
#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn pages_by_time_cross_day_partitions() {
    let (log, _, _) = fresh().await;
    let log = log.with_retention(Duration::days(5));
    let now = t0() + Duration::hours(1);
    let at = |days: i64, secs: i64| t0() - Duration::days(days) + Duration::seconds(secs);
    let today: Vec<_> = (0..3).map(|s| exchange(at(0, s), None, None)).collect();
    let yesterday: Vec<_> = (0..3).map(|s| exchange(at(1, s), None, None)).collect();
    let three_days_ago = exchange(at(3, 0), None, None);
    // Beyond the 5 days' horizon: not read (and expired by its own expiry too).
    let mut ancient = exchange(at(30, 0), None, None);
    ancient.expires_at = at(30, 0) + Duration::days(5);
    let mut every: Vec<_> = today
        .iter()
        .chain(&yesterday)
        .chain([&three_days_ago, &ancient])
        .cloned()
        .collect();
    log.append(&Kept::all(&every)).await.unwrap();
    every.pop();
    every.sort_by(|a, b| b.id.cmp(&a.id));

    let whole = log.find(&all(None, 100), now).await.unwrap();
    assert_eq!(whole, every, "newest first, across three days");

    // Pages of 4: the first ends in yesterday's partitions, the second crosses to three days ago.
    let page1 = log.find(&all(None, 4), now).await.unwrap();
    assert_eq!(page1, every[..4]);
    let page2 = log.find(&all(Some(&page1[3].id), 4), now).await.unwrap();
    assert_eq!(page2, every[4..]);
    let page3 = log.find(&all(Some(&page2[2].id), 4), now).await.unwrap();
    assert!(page3.is_empty());
}

/// TTL deletion lags: an item whose `expires_at` has passed is still in the table, and is not
/// answered by any query; the page is filled from older unexpired ones.
#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn an_expired_item_not_yet_deleted_is_never_answered() {
    let (log, client, table) = fresh().await;
    let instance = unique("i");
    let now = t0() + Duration::hours(1);
    let older = exchange(t0(), Some(&instance), None);
    let mut expired = exchange(t0() + Duration::seconds(1), Some(&instance), None);
    expired.expires_at = now - Duration::milliseconds(1);
    log.append(&Kept::all(&[older.clone(), expired.clone()]))
        .await
        .unwrap();
    assert!(
        raw(&client, &table, &instance_pk(&instance), &expired.id)
            .await
            .is_some(),
        "still in the table"
    );
    let by_instance = ExchangeQuery::newest(ExchangeFilter::Instance(instance), 1);
    assert_eq!(
        log.find(&by_instance, now).await.unwrap(),
        std::slice::from_ref(&older)
    );
    assert_eq!(
        log.find(&all(None, 1), now).await.unwrap(),
        std::slice::from_ref(&older)
    );
}

/// An exchange whose append failed after some of its items were written: the retry writes the
/// missing ones and leaves the written ones as they were.
#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn a_retried_append_completes_a_partly_written_exchange() {
    let (log, client, table) = fresh().await;
    let instance = unique("i");
    let e = exchange(t0(), Some(&instance), None);
    log.append(&Kept::all(std::slice::from_ref(&e)))
        .await
        .unwrap();
    let time = time_pk(day_of(&Kept::of(&e)), time_shard(&e.id));
    client
        .delete_item()
        .table_name(&table)
        .key(PK, AttributeValue::S(time.clone()))
        .key(SK, AttributeValue::S(e.id.clone()))
        .send()
        .await
        .unwrap();
    let mut retried = e.clone();
    retried.result_code = Some("000005".into());
    log.append(&Kept::all(&[retried])).await.unwrap();
    let now = t0() + Duration::hours(1);
    assert_eq!(
        log.find(&all(None, 1), now).await.unwrap()[0]
            .result_code
            .as_deref(),
        Some("000005"),
        "the missing item written"
    );
    let by_instance = ExchangeQuery::newest(ExchangeFilter::Instance(instance), 10);
    assert_eq!(
        log.find(&by_instance, now).await.unwrap(),
        [e],
        "the kept one unchanged"
    );
}
