//! `DynamoDirectory` against the emulator: the shared directory contract, the documented key
//! schema read back raw, a 500-user authSync and a 5 000-department allOrgSync, department sets
//! in several chunks, the one-item-per-department layout of earlier releases, IDs holding `#`
//! and `%`, concurrent applies, and damaged items. A table per directory: the emulator (moto)
//! copies the whole table for every item of a `TransactWriteItems`, so small tables stay fast.

mod common;

use std::{collections::BTreeMap, sync::Arc};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use common::{emulator_config, unique};
use koogallery::{
    StoreError,
    directory::{
        App, Department, DirectoryChange as C, Tenant, TenantDirectory, TenantKey, User, record,
    },
    testing::{
        contract::directory_contract,
        directory::{sample_app, sample_department as dept, sample_tenant, sample_user},
    },
};
use koogallery_aws::{
    DynamoDirectory,
    bootstrap::ensure_table,
    directory::{DirectoryCalls, MAX_CHUNK_BYTES, keys},
    dynamo::keys::{DATA, PK, SEQ, SK},
};

async fn fresh_directory() -> DynamoDirectory {
    let config = emulator_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = unique("koogallery-directory-test");
    ensure_table(&client, &table).await.unwrap();
    DynamoDirectory::new(client, table)
}

fn t0() -> DateTime<Utc> {
    koogallery::protocol::time::parse_compact("20260101000000").unwrap()
}

fn tenant(name: &str) -> Tenant {
    sample_tenant(name, t0())
}

fn app(id: &str) -> App {
    sample_app(id, t0())
}

fn user(app: &str, name: &str) -> User {
    sample_user(app, name, t0())
}

/// Applies `change`.
async fn apply(
    dir: &DynamoDirectory,
    key: &TenantKey,
    change: C,
) -> koogallery::directory::Applied {
    dir.apply(key, &change, t0()).await.unwrap()
}

/// Every item of a partition, raw, by sort key.
async fn raw_partition(
    dir: &DynamoDirectory,
    pk: &str,
) -> BTreeMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    raw_items(dir, pk)
        .await
        .into_iter()
        .map(|item| {
            let sk = item[SK].as_s().unwrap().clone();
            (sk, AttributeValue::M(item))
        })
        .collect()
}

async fn raw_items(
    dir: &DynamoDirectory,
    pk: &str,
) -> Vec<std::collections::HashMap<String, AttributeValue>> {
    let config = emulator_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .query()
            .table_name(dir.table())
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        out.extend(page.items().iter().cloned());
        match page.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => return out,
        }
    }
}

fn attr<'a>(item: &'a AttributeValue, name: &str) -> &'a AttributeValue {
    &item.as_m().unwrap()[name]
}

fn data(item: &AttributeValue) -> &[u8] {
    attr(item, DATA).as_s().unwrap().as_bytes()
}

async fn put_raw(dir: &DynamoDirectory, pk: &str, sk: &str, extra: &[(&str, AttributeValue)]) {
    let config = emulator_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let mut put = client
        .put_item()
        .table_name(dir.table())
        .item(PK, AttributeValue::S(pk.to_owned()))
        .item(SK, AttributeValue::S(sk.to_owned()));
    for (k, v) in extra {
        put = put.item(*k, v.clone());
    }
    put.send().await.unwrap();
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn dynamo_directory_passes_the_directory_contract() {
    directory_contract(Arc::new(fresh_directory().await)).await;
}

/// The items as the module docs and docs/architecture.md describe them, read back raw.
#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn items_follow_the_documented_key_schema() {
    let dir = fresh_directory().await;
    let key = TenantKey::new("inst-1", "tenant-1");
    let pk = "DIR#inst-1#tenant-1";
    assert_eq!(keys::tenant_pk(&key), pk);

    apply(&dir, &key, C::PutTenant(tenant("甲"))).await;
    apply(&dir, &key, C::PutApp(app("a1"))).await;
    apply(
        &dir,
        &key,
        C::PutUsers {
            app_id: "a1".into(),
            users: vec![user("a1", "u1")],
        },
    )
    .await;
    apply(&dir, &key, C::PutDepartment(dept("d0", None))).await;
    let raw = raw_partition(&dir, pk).await;
    let first = attr(&raw["ORGSET"], keys::GENERATION)
        .as_s()
        .unwrap()
        .clone();
    assert_eq!(
        attr(&raw["ORGSET"], keys::CHUNKS),
        &AttributeValue::N("1".into())
    );
    assert_eq!(
        record::decode_department_chunk(data(&raw[&format!("ORGCHUNK#{first}#0000")])).unwrap(),
        [dept("d0", None)],
        "a singleOrgSync writes the set as a new generation: {:?}",
        raw.keys()
    );
    let applied = apply(
        &dir,
        &key,
        C::ReplaceDepartments(vec![dept("d1", None), dept("d2", Some("d1"))]),
    )
    .await;
    assert_eq!((applied.first_seq, applied.last_seq), (5, 5));

    let raw = raw_partition(&dir, pk).await;
    let generation = attr(&raw["ORGSET"], keys::GENERATION)
        .as_s()
        .unwrap()
        .clone();
    assert_eq!(generation.len(), 32, "a UUID: {generation}");
    assert!(generation.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(generation, first);
    assert_eq!(
        attr(&raw["ORGSET"], keys::CHUNKS),
        &AttributeValue::N("1".into())
    );
    let mut expected: Vec<String> = vec![
        "APP#a1".into(),
        format!("ORGCHUNK#{generation}#0000"),
        "ORGSET".into(),
        "SEQ".into(),
        "TENANT".into(),
        "USER#a1#u1".into(),
    ];
    expected.extend((1..=5).map(|seq| format!("EVENT#{seq:020}")));
    expected.sort();
    assert_eq!(
        raw.keys().cloned().collect::<Vec<_>>(),
        expected,
        "the replaced generation is gone"
    );

    // Bodies: the versioned records of koogallery::directory::record, in `data`.
    assert_eq!(
        record::decode_tenant(data(&raw["TENANT"])).unwrap(),
        tenant("甲")
    );
    assert_eq!(record::decode_app(data(&raw["APP#a1"])).unwrap(), app("a1"));
    assert_eq!(
        record::decode_user(data(&raw["USER#a1#u1"])).unwrap(),
        user("a1", "u1")
    );
    assert_eq!(
        record::decode_department_chunk(data(&raw[&format!("ORGCHUNK#{generation}#0000")]))
            .unwrap(),
        [dept("d1", None), dept("d2", Some("d1"))]
    );
    assert_eq!(attr(&raw["SEQ"], SEQ), &AttributeValue::N("5".into()));
    let event_sk = format!("EVENT#{:020}", 3);
    let event = record::decode_event(data(&raw[&event_sk])).unwrap();
    assert_eq!((event.seq, event.body.name()), (3, "usersAuthorized"));
    assert_eq!(attr(&raw[&event_sk], SEQ), &AttributeValue::N("3".into()));

    // A tenant deletion keeps SEQ and the events (its own pending); numbering goes on.
    let deleted = apply(&dir, &key, C::DeleteTenant).await;
    assert_eq!(deleted.first_seq, 6);
    let raw = raw_partition(&dir, pk).await;
    let mut left: Vec<String> = (1..=6).map(|seq| format!("EVENT#{seq:020}")).collect();
    left.push("SEQ".into());
    assert_eq!(raw.keys().cloned().collect::<Vec<_>>(), left);
    dir.events_delivered(&key, 4).await.unwrap();
    let raw = raw_partition(&dir, pk).await;
    assert_eq!(
        raw.keys().cloned().collect::<Vec<_>>(),
        [
            format!("EVENT#{:020}", 5),
            format!("EVENT#{:020}", 6),
            "SEQ".into()
        ]
    );
    assert_eq!(attr(&raw["SEQ"], SEQ), &AttributeValue::N("6".into()));

    // The seller's own credential: an empty instanceId.
    let seller = TenantKey::new("", "tenant-1");
    apply(&dir, &seller, C::PutTenant(tenant("卖家"))).await;
    let raw = raw_partition(&dir, "DIR##tenant-1").await;
    assert_eq!(
        raw.keys().cloned().collect::<Vec<_>>(),
        [format!("EVENT#{:020}", 1), "SEQ".into(), "TENANT".into()]
    );
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn a_500_user_auth_sync_completes() {
    let dir = fresh_directory().await;
    let key = TenantKey::new(unique("inst"), unique("tenant"));
    let users: Vec<User> = (0..500)
        .map(|i| user("a1", &format!("user{i:03}")))
        .collect();
    dir.take_calls();
    let applied = apply(
        &dir,
        &key,
        C::PutUsers {
            app_id: "a1".into(),
            users,
        },
    )
    .await;
    let calls = dir.take_calls();
    println!("500-user authSync: {calls:?}, {} requests", calls.total());
    assert_eq!((applied.first_seq, applied.last_seq), (1, 5));
    // The figures in the module docs (the emulator never leaves items unprocessed).
    assert_eq!(
        calls,
        DirectoryCalls {
            get_item: 1,
            batch_write_item: 20,
            transact_write_items: 1,
            ..DirectoryCalls::default()
        }
    );
    let stored = dir.users(&key, "a1").await.unwrap();
    assert_eq!(stored.len(), 500);
    assert_eq!(stored[499], user("a1", "user499"));
    assert_eq!(dir.pending_events(&key, 10).await.unwrap().len(), 5);
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn a_5000_department_all_org_sync_completes_and_replaces() {
    let dir = fresh_directory().await;
    let key = TenantKey::new(unique("inst"), unique("tenant"));
    let set = |tag: &str| -> Vec<Department> {
        (0..5000)
            .map(|i| {
                dept(
                    &format!("{tag}{i:04}"),
                    (i > 0).then(|| format!("{tag}{:04}", i / 10)).as_deref(),
                )
            })
            .collect()
    };
    dir.take_calls();
    let started = std::time::Instant::now();
    let first = apply(&dir, &key, C::ReplaceDepartments(set("a"))).await;
    let took = started.elapsed();
    let calls = dir.take_calls();
    println!(
        "5 000-department allOrgSync (no set before): {calls:?}, {} requests, {took:?} on this endpoint",
        calls.total()
    );
    assert_eq!(
        (first.first_seq, first.last_seq),
        (1, 10),
        "10 events of 500"
    );
    // The figures in the module docs: SEQ and ORGSET read, the chunks in the numbering
    // transaction, generation 0's items looked for (an earlier release may have left some).
    assert_eq!(
        calls,
        DirectoryCalls {
            batch_get_item: 1,
            transact_write_items: 1,
            query: 1,
            ..DirectoryCalls::default()
        }
    );

    let started = std::time::Instant::now();
    let second = apply(&dir, &key, C::ReplaceDepartments(set("b"))).await;
    let took = started.elapsed();
    let calls = dir.take_calls();
    println!(
        "5 000-department allOrgSync (replacing 5 000): {calls:?}, {} requests, {took:?} on this endpoint",
        calls.total()
    );
    assert_eq!(second.first_seq, 11);
    assert_eq!(
        calls,
        DirectoryCalls {
            batch_get_item: 1,
            transact_write_items: 1,
            batch_write_item: 1,
            ..DirectoryCalls::default()
        },
        "the old chunks dropped by key"
    );

    // A singleOrgSync on the 5 000: SEQ and ORGSET, the chunks, the transaction (the new
    // generation in it), the old chunks dropped.
    let started = std::time::Instant::now();
    let single = apply(&dir, &key, C::PutDepartment(dept("b0012", Some("b0002")))).await;
    let took = started.elapsed();
    let calls = dir.take_calls();
    println!(
        "singleOrgSync on 5 000 departments: {calls:?}, {} requests, {took:?} on this endpoint",
        calls.total()
    );
    assert_eq!(single.first_seq, 21);
    assert_eq!(
        calls,
        DirectoryCalls {
            batch_get_item: 2,
            transact_write_items: 1,
            batch_write_item: 1,
            ..DirectoryCalls::default()
        }
    );
    // Changing nothing (a department not there) writes no generation: ORGSET only checked.
    apply(
        &dir,
        &key,
        C::DeleteDepartment {
            org_code: "zz".into(),
        },
    )
    .await;
    let calls = dir.take_calls();
    assert_eq!(
        calls,
        DirectoryCalls {
            batch_get_item: 2,
            transact_write_items: 1,
            ..DirectoryCalls::default()
        }
    );

    let departments = dir.departments(&key).await.unwrap();
    assert_eq!(departments.len(), 5000);
    assert!(departments.iter().all(|d| d.org_code.starts_with('b')));
    assert_eq!(departments[12], dept("b0012", Some("b0002")));
    assert_eq!(departments[13], dept("b0013", Some("b0001")));
    assert_eq!(dir.take_calls().total(), 2, "ORGSET and the chunks");
    // The old generations were dropped: only the current set's chunks are stored.
    let raw = raw_partition(&dir, &keys::tenant_pk(&key)).await;
    let generation = attr(&raw["ORGSET"], keys::GENERATION).as_s().unwrap();
    let chunks = chunk_keys(&raw);
    assert!(!chunks.is_empty());
    assert!(
        chunks
            .iter()
            .all(|k| k.starts_with(&format!("ORGCHUNK#{generation}#"))),
        "{chunks:?}"
    );
    assert_eq!(
        attr(&raw["ORGSET"], keys::CHUNKS),
        &AttributeValue::N(chunks.len().to_string())
    );
    assert!(!raw.keys().any(|k| k.starts_with(keys::ORG_SK_PREFIX)));
}

/// The sort keys of the partition's department chunks.
fn chunk_keys(raw: &BTreeMap<String, AttributeValue>) -> Vec<&String> {
    raw.keys()
        .filter(|k| k.starts_with(keys::ORGCHUNK_SK_PREFIX))
        .collect()
}

/// A department with a long name (`len` characters, three bytes each in UTF-8).
fn long_dept(i: usize, len: usize) -> Department {
    Department {
        org_code: format!("L{i:05}"),
        org_name: format!("{i}{}", "研".repeat(len)),
        parent_code: (i > 0).then(|| format!("L{:05}", i / 10)),
    }
}

/// Long names: the set split into chunks by their encoded size, each under DynamoDB's item
/// limit; in the numbering transaction while they fit, else written ahead; a singleOrgSync
/// rewrites the set as a new generation either way.
/// A tenant's first department change a singleOrgSync: its read of generation 0 (which an
/// earlier release may have written without an `ORGSET`) found nothing, so nothing is left to drop
/// after the flip, and that generation is not looked for a second time.
#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn a_first_single_org_sync_looks_for_generation_0_once() {
    let dir = fresh_directory().await;
    let key = TenantKey::new(unique("inst"), unique("tenant"));
    dir.take_calls();
    let single = apply(&dir, &key, C::PutDepartment(dept("a", None))).await;
    assert_eq!(single.first_seq, 1);
    assert_eq!(
        dir.take_calls(),
        DirectoryCalls {
            batch_get_item: 1,
            query: 1,
            transact_write_items: 1,
            ..DirectoryCalls::default()
        },
        "SEQ and ORGSET, generation 0 read, the transaction"
    );
    assert_eq!(dir.departments(&key).await.unwrap(), [dept("a", None)]);
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn long_department_names_take_several_chunks() {
    let dir = fresh_directory().await;
    let key = TenantKey::new(unique("inst"), "t");
    let pk = keys::tenant_pk(&key);

    // Names of 200 characters (about 650 bytes a department: 500 of them, an `orgsReplaced`
    // event, stay under DynamoDB's item limit). About 1 MB of departments: 4 chunks, in the
    // transaction with their 3 events.
    let set: Vec<Department> = (0..1500).map(|i| long_dept(i, 200)).collect();
    let expected_chunks = record::split_department_chunks(&set, MAX_CHUNK_BYTES).len();
    dir.take_calls();
    apply(&dir, &key, C::ReplaceDepartments(set.clone())).await;
    let calls = dir.take_calls();
    println!("1 500 long-named departments ({expected_chunks} chunks): {calls:?}");
    assert!(expected_chunks > 2, "{expected_chunks}");
    assert_eq!(
        (calls.transact_write_items, calls.batch_write_item),
        (1, 0),
        "in the transaction"
    );
    let raw = raw_partition(&dir, &pk).await;
    let chunks = chunk_keys(&raw);
    assert_eq!(chunks.len(), expected_chunks, "{chunks:?}");
    for k in &chunks {
        let bytes = data(&raw[*k]).len();
        assert!(bytes <= MAX_CHUNK_BYTES, "{k}: {bytes}");
    }
    assert_eq!(dir.departments(&key).await.unwrap(), set);

    // About 3.3 MB, and as much again in its 10 events: too much for one transaction, so the
    // chunks are written ahead.
    let mut set: Vec<Department> = (0..5000).map(|i| long_dept(i, 200)).collect();
    let expected_chunks = record::split_department_chunks(&set, MAX_CHUNK_BYTES).len();
    dir.take_calls();
    apply(&dir, &key, C::ReplaceDepartments(set.clone())).await;
    let calls = dir.take_calls();
    println!("5 000 long-named departments ({expected_chunks} chunks): {calls:?}");
    assert_eq!(
        calls,
        DirectoryCalls {
            batch_get_item: 1,
            batch_write_item: 2,
            transact_write_items: 1,
            ..DirectoryCalls::default()
        },
        "the chunks ahead, the old ones dropped"
    );
    let raw = raw_partition(&dir, &pk).await;
    let chunks = chunk_keys(&raw);
    assert_eq!(chunks.len(), expected_chunks, "{chunks:?}");
    assert!(expected_chunks > 10, "{expected_chunks}");
    assert_eq!(
        attr(&raw["ORGSET"], keys::CHUNKS),
        &AttributeValue::N(chunks.len().to_string())
    );
    assert_eq!(dir.departments(&key).await.unwrap(), set);

    // A singleOrgSync on it: a new generation (written ahead too: over 3 MB), the old one
    // dropped.
    let before = attr(&raw["ORGSET"], keys::GENERATION)
        .as_s()
        .unwrap()
        .clone();
    dir.take_calls();
    apply(
        &dir,
        &key,
        C::DeleteDepartment {
            org_code: "L00007".into(),
        },
    )
    .await;
    let calls = dir.take_calls();
    println!("singleOrgSync on 5 000 long-named departments: {calls:?}");
    assert_eq!(
        calls,
        DirectoryCalls {
            batch_get_item: 2,
            batch_write_item: 2,
            transact_write_items: 1,
            ..DirectoryCalls::default()
        }
    );
    set.remove(7);
    assert_eq!(dir.departments(&key).await.unwrap(), set);
    let raw = raw_partition(&dir, &pk).await;
    let after = attr(&raw["ORGSET"], keys::GENERATION).as_s().unwrap();
    assert_ne!(after, &before);
    assert!(
        chunk_keys(&raw)
            .iter()
            .all(|k| k.starts_with(&format!("ORGCHUNK#{after}#")))
    );

    // A tenant deletion sweeps the chunks and ORGSET.
    apply(&dir, &key, C::DeleteTenant).await;
    let raw = raw_partition(&dir, &pk).await;
    assert!(
        !raw.keys().any(|k| k.starts_with("ORG")),
        "{:?}",
        raw.keys()
    );
    assert_eq!(dir.departments(&key).await.unwrap(), []);
}

/// A department set as releases before the chunks stored it (one item per department, `ORGSET`
/// without a chunk count, or no `ORGSET` at all: generation 0) is read as it is, and the next
/// singleOrgSync rewrites it in chunks.
#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn a_per_item_set_of_an_earlier_release_reads_and_migrates() {
    let dir = fresh_directory().await;
    let put_dept = |pk: String, generation: &'static str, d: Department| {
        let dir = dir.clone();
        async move {
            let body = String::from_utf8(record::encode_department(&d)).unwrap();
            let sk = format!("ORG#{generation}#{}", d.org_code.replace('#', "%23"));
            put_raw(&dir, &pk, &sk, &[(DATA, AttributeValue::S(body))]).await;
        }
    };

    // Flipped by an allOrgSync of the earlier release.
    let key = TenantKey::new(unique("inst"), "t");
    let pk = keys::tenant_pk(&key);
    let old: Vec<Department> = (0..30)
        .map(|i| dept(&format!("d{i:02}"), (i > 0).then_some("d00")))
        .chain([dept("x#1", None)])
        .collect();
    put_raw(
        &dir,
        &pk,
        "ORGSET",
        &[(
            keys::GENERATION,
            AttributeValue::S("0123456789abcdef0123456789abcdef".into()),
        )],
    )
    .await;
    for d in &old {
        put_dept(pk.clone(), "0123456789abcdef0123456789abcdef", d.clone()).await;
    }
    // A leftover of another generation is not read.
    put_dept(pk.clone(), "ffff", dept("stale", None)).await;
    let mut expected = old.clone();
    expected.sort_by(|a, b| a.org_code.cmp(&b.org_code));
    assert_eq!(dir.departments(&key).await.unwrap(), expected);

    apply(&dir, &key, C::PutDepartment(dept("d99", Some("d00")))).await;
    expected.push(dept("d99", Some("d00")));
    expected.sort_by(|a, b| a.org_code.cmp(&b.org_code));
    assert_eq!(dir.departments(&key).await.unwrap(), expected);
    let raw = raw_partition(&dir, &pk).await;
    let generation = attr(&raw["ORGSET"], keys::GENERATION).as_s().unwrap();
    assert_eq!(
        attr(&raw["ORGSET"], keys::CHUNKS),
        &AttributeValue::N("1".into())
    );
    assert_eq!(
        record::decode_department_chunk(data(&raw[&format!("ORGCHUNK#{generation}#0000")]))
            .unwrap(),
        expected
    );
    let per_item: Vec<&String> = raw.keys().filter(|k| k.starts_with("ORG#")).collect();
    assert_eq!(
        per_item,
        ["ORG#ffff#stale"],
        "the migrated items are dropped"
    );

    // Generation 0 (singleOrgSyncs of the earlier release, no allOrgSync): no ORGSET.
    let key = TenantKey::new(unique("inst"), "t");
    let pk = keys::tenant_pk(&key);
    for d in [dept("a", None), dept("b", Some("a"))] {
        put_dept(pk.clone(), "0", d).await;
    }
    assert_eq!(
        dir.departments(&key).await.unwrap(),
        [dept("a", None), dept("b", Some("a"))]
    );
    apply(
        &dir,
        &key,
        C::DeleteDepartment {
            org_code: "a".into(),
        },
    )
    .await;
    assert_eq!(dir.departments(&key).await.unwrap(), [dept("b", Some("a"))]);
    let raw = raw_partition(&dir, &pk).await;
    assert!(
        !raw.keys().any(|k| k.starts_with("ORG#")),
        "{:?}",
        raw.keys()
    );
    assert_eq!(chunk_keys(&raw).len(), 1);

    // An allOrgSync over generation 0 drops its items too.
    let key = TenantKey::new(unique("inst"), "t");
    let pk = keys::tenant_pk(&key);
    put_dept(pk.clone(), "0", dept("a", None)).await;
    apply(&dir, &key, C::ReplaceDepartments(vec![dept("z", None)])).await;
    assert_eq!(dir.departments(&key).await.unwrap(), [dept("z", None)]);
    let raw = raw_partition(&dir, &pk).await;
    assert!(
        !raw.keys().any(|k| k.starts_with("ORG#")),
        "{:?}",
        raw.keys()
    );
}

/// `#` and `%` in any ID never make two keys one.
#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn ids_with_hash_and_percent_do_not_collide() {
    let dir = fresh_directory().await;
    let id = unique("x");
    let pairs = [
        (format!("{id}#a"), "b".to_owned()),
        (id.clone(), "a#b".to_owned()),
        (format!("{id}%23a"), "b".to_owned()),
        (format!("{id}%"), "23a#b".to_owned()),
        (String::new(), format!("{id}#a#b")),
        (format!("{id}#a#b"), String::new()),
    ];
    let keys: Vec<TenantKey> = pairs.iter().map(|(i, t)| TenantKey::new(i, t)).collect();
    for (n, key) in keys.iter().enumerate() {
        apply(&dir, key, C::PutTenant(tenant(&format!("t{n}")))).await;
    }
    for (n, key) in keys.iter().enumerate() {
        assert_eq!(
            dir.tenant(key).await.unwrap().unwrap().name,
            format!("t{n}"),
            "{key:?}"
        );
        let pending = dir.pending_events(key, 10).await.unwrap();
        assert_eq!(pending.len(), 1, "{key:?}: its own numbering");
    }

    // Within a tenant: apps, users (app and name), departments.
    let key = &keys[0];
    for a in ["p#q", "p", "p%23q", "p#"] {
        apply(&dir, key, C::PutApp(app(a))).await;
    }
    let combos = [("p#q", "r"), ("p", "q#r"), ("p%23q", "r"), ("p#", "q#r")];
    for (a, u) in combos {
        apply(
            &dir,
            key,
            C::PutUsers {
                app_id: a.into(),
                users: vec![user(a, u)],
            },
        )
        .await;
    }
    let apps: Vec<String> = dir
        .apps(key)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.app_id)
        .collect();
    assert_eq!(
        apps,
        ["p", "p#", "p#q", "p%23q"],
        "by appId, as the memory directory sorts"
    );
    for (a, u) in combos {
        let users = dir.users(key, a).await.unwrap();
        assert_eq!(users, [user(a, u)], "app {a}");
        assert_eq!(dir.user(key, a, u).await.unwrap(), Some(user(a, u)));
    }
    apply(&dir, key, C::DeleteApp { app_id: "p".into() }).await;
    assert_eq!(dir.users(key, "p").await.unwrap(), []);
    assert_eq!(
        dir.users(key, "p#").await.unwrap().len(),
        1,
        "not a prefix of p's users"
    );

    let depts = [
        dept("d#1", None),
        dept("d%231", None),
        dept("d", Some("d#1")),
    ];
    for d in &depts {
        apply(&dir, key, C::PutDepartment(d.clone())).await;
    }
    let stored: Vec<String> = dir
        .departments(key)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.org_code)
        .collect();
    assert_eq!(stored, ["d", "d#1", "d%231"]);
    apply(
        &dir,
        key,
        C::DeleteDepartment {
            org_code: "d#1".into(),
        },
    )
    .await;
    assert_eq!(dir.departments(key).await.unwrap().len(), 2);
}

/// One sync naming a key twice: the last copy wins, as in the memory directory (one
/// `BatchWriteItem` refuses two requests for one key).
#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn a_key_named_twice_in_one_sync_keeps_the_last_copy() {
    let dir = fresh_directory().await;
    let key = TenantKey::new(unique("inst"), "t");
    let mut renamed = user("a1", "u1");
    renamed.name = "李四".into();
    apply(
        &dir,
        &key,
        C::PutUsers {
            app_id: "a1".into(),
            users: vec![user("a1", "u1"), user("a1", "u2"), renamed.clone()],
        },
    )
    .await;
    assert_eq!(
        dir.users(&key, "a1").await.unwrap(),
        [renamed, user("a1", "u2")]
    );
    apply(
        &dir,
        &key,
        C::RevokeUsers {
            app_id: "a1".into(),
            user_names: vec!["u2".into(), "u2".into(), "nobody".into()],
        },
    )
    .await;
    assert!(dir.user(&key, "a1", "u2").await.unwrap().unwrap().revoked);
    assert_eq!(dir.user(&key, "a1", "nobody").await.unwrap(), None);
    apply(
        &dir,
        &key,
        C::DeleteUsers {
            app_id: "a1".into(),
            user_names: vec!["u1".into(), "u1".into()],
        },
    )
    .await;
    assert_eq!(dir.users(&key, "a1").await.unwrap().len(), 1);
    apply(
        &dir,
        &key,
        C::ReplaceDepartments(vec![dept("d", None), dept("e", None), dept("d", Some("e"))]),
    )
    .await;
    assert_eq!(
        dir.departments(&key).await.unwrap(),
        [dept("d", Some("e")), dept("e", None)]
    );
}

/// Applies racing on one tenant: every one numbered, without gaps or repeats.
#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn concurrent_applies_number_events_without_gaps() {
    let dir = fresh_directory().await;
    let key = TenantKey::new(unique("inst"), "t");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let (dir, key) = (dir.clone(), key.clone());
        tasks.spawn(async move {
            let change = if i % 2 == 0 {
                C::PutTenant(tenant(&format!("t{i}")))
            } else {
                C::PutDepartment(dept(&format!("d{i}"), None))
            };
            dir.apply(&key, &change, t0()).await
        });
    }
    let mut seqs = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let applied = done.unwrap().unwrap();
        assert_eq!(applied.first_seq, applied.last_seq);
        seqs.push(applied.first_seq);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=8).collect::<Vec<u64>>());
    let calls = dir.take_calls();
    println!(
        "8 concurrent applies: {} transactions, {} lost to another",
        calls.transact_write_items,
        calls.transact_write_items - 8
    );
    let pending: Vec<u64> = dir
        .pending_events(&key, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(pending, (1..=8).collect::<Vec<u64>>());
    assert_eq!(dir.departments(&key).await.unwrap().len(), 4);
}

fn corrupt<T>(r: Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::Corrupt(_)))
}

/// A damaged item is `Corrupt` (not retryable), never a panic or a misread.
#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn damaged_items_are_corrupt() {
    let dir = fresh_directory().await;
    let key = TenantKey::new(unique("inst"), "t");
    let pk = keys::tenant_pk(&key);

    put_raw(
        &dir,
        &pk,
        "TENANT",
        &[(DATA, AttributeValue::S("{".into()))],
    )
    .await;
    assert!(corrupt(dir.tenant(&key).await));
    put_raw(&dir, &pk, "APP#a1", &[]).await;
    assert!(corrupt(dir.apps(&key).await));
    // Another app's record filed under a1.
    let other = String::from_utf8(record::encode_app(&app("a2"))).unwrap();
    put_raw(&dir, &pk, "APP#a1", &[(DATA, AttributeValue::S(other))]).await;
    assert!(corrupt(dir.apps(&key).await));
    put_raw(&dir, &pk, "SEQ", &[(SEQ, AttributeValue::S("7".into()))]).await;
    let change = C::PutApp(app("a3"));
    assert!(corrupt(dir.apply(&key, &change, t0()).await));
    put_raw(
        &dir,
        &pk,
        "ORGSET",
        &[(keys::GENERATION, AttributeValue::S("a#b".into()))],
    )
    .await;
    assert!(corrupt(dir.departments(&key).await));
    // A chunk count that is not a number; a chunk missing; a chunk that does not decode.
    put_raw(
        &dir,
        &pk,
        "ORGSET",
        &[
            (keys::GENERATION, AttributeValue::S("g".into())),
            (keys::CHUNKS, AttributeValue::S("2".into())),
        ],
    )
    .await;
    assert!(corrupt(dir.departments(&key).await));
    put_raw(
        &dir,
        &pk,
        "ORGSET",
        &[
            (keys::GENERATION, AttributeValue::S("g".into())),
            (keys::CHUNKS, AttributeValue::N("2".into())),
        ],
    )
    .await;
    let chunk = String::from_utf8(record::encode_department_chunk(&[dept("d", None)])).unwrap();
    put_raw(
        &dir,
        &pk,
        "ORGCHUNK#g#0000",
        &[(DATA, AttributeValue::S(chunk))],
    )
    .await;
    assert!(corrupt(dir.departments(&key).await));
    put_raw(
        &dir,
        &pk,
        "ORGCHUNK#g#0001",
        &[(DATA, AttributeValue::S("{\"v\":1}".into()))],
    )
    .await;
    assert!(corrupt(dir.departments(&key).await));
    let chunk = String::from_utf8(record::encode_department_chunk(&[dept("e", None)])).unwrap();
    put_raw(
        &dir,
        &pk,
        "ORGCHUNK#g#0001",
        &[(DATA, AttributeValue::S(chunk))],
    )
    .await;
    assert_eq!(
        dir.departments(&key).await.unwrap(),
        [dept("d", None), dept("e", None)]
    );
    put_raw(
        &dir,
        &pk,
        &format!("EVENT#{:020}", 1),
        &[(DATA, AttributeValue::S("[]".into()))],
    )
    .await;
    assert!(corrupt(dir.pending_events(&key, 10).await));
}

/// An allOrgSync racing singleOrgSyncs and another allOrgSync: the departments end as the memory
/// directory has them after the same changes applied in the order of their seqs (a department
/// written into a generation that lost the race is written again into the current one).
#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn racing_department_syncs_end_as_their_seqs_order_them() {
    let dir = fresh_directory().await;
    let key = TenantKey::new(unique("inst"), "t");
    let memory = koogallery::testing::MemoryDirectory::new();
    for round in 0..4 {
        let set = |tag: &str| -> Vec<Department> {
            (0..30)
                .map(|i| dept(&format!("{tag}{round}-{i:02}"), None))
                .collect()
        };
        let changes = vec![
            C::ReplaceDepartments(set("r")),
            C::ReplaceDepartments(set("s")),
            C::PutDepartment(dept(&format!("p{round}"), None)),
            C::PutDepartment(dept(&format!("q{round}"), None)),
            C::DeleteDepartment {
                org_code: format!("r{round}-00"),
            },
        ];
        let mut tasks = tokio::task::JoinSet::new();
        for change in changes {
            let (dir, key) = (dir.clone(), key.clone());
            tasks.spawn(async move {
                let applied = dir.apply(&key, &change, t0()).await.unwrap();
                (applied.first_seq, change)
            });
        }
        let mut done = Vec::new();
        while let Some(d) = tasks.join_next().await {
            done.push(d.unwrap());
        }
        done.sort_by_key(|(seq, _)| *seq);
        for (_, change) in &done {
            memory.apply(&key, change, t0()).await.unwrap();
        }
        assert_eq!(
            dir.departments(&key).await.unwrap(),
            memory.departments(&key).await.unwrap(),
            "round {round}, applied in the order {:?}",
            done.iter().map(|(_, c)| c.name()).collect::<Vec<_>>()
        );
    }
}
