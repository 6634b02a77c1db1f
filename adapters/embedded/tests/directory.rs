//! The tenant directory on the embedded store (docs/protocol/decisions.md §16), beyond the shared
//! contract: it survives a restart, a large sync is one durable commit, a tenant's key range takes
//! in no other tenant, and a file written before the directory existed opens with an empty one.

mod common;

use chrono::{DateTime, Utc};
use koogallery::directory::{
    App, Department, DirectoryChange as C, Tenant, TenantDirectory, TenantKey, User,
};
use koogallery::testing::directory::{sample_app, sample_department, sample_tenant, sample_user};
use koogallery_embedded::EmbeddedStore;

fn t0() -> DateTime<Utc> {
    koogallery::protocol::time::parse_compact("20261205010203").unwrap()
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

fn dept(code: &str) -> Department {
    sample_department(code, None)
}

fn put_users(app_id: &str, n: usize) -> C {
    C::PutUsers {
        app_id: app_id.into(),
        users: (0..n)
            .map(|i| user(app_id, &format!("user{i:03}")))
            .collect(),
    }
}

async fn apply(dir: &EmbeddedStore, key: &TenantKey, change: C) -> koogallery::directory::Applied {
    dir.apply(key, &change, t0()).await.unwrap()
}

#[tokio::test]
async fn the_directory_and_its_numbering_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let key = TenantKey::new("inst-1", "tenant-1");
    {
        let store = EmbeddedStore::open(&path).unwrap();
        apply(&store, &key, C::PutTenant(tenant("甲"))).await;
        apply(&store, &key, C::PutApp(app("a1"))).await;
        apply(&store, &key, put_users("a1", 3)).await;
        apply(
            &store,
            &key,
            C::RevokeUsers {
                app_id: "a1".into(),
                user_names: vec!["user001".into()],
            },
        )
        .await;
        apply(
            &store,
            &key,
            C::ReplaceDepartments(vec![dept("d2"), dept("d1")]),
        )
        .await;
        store.events_delivered(&key, 2).await.unwrap();
    }
    let store = EmbeddedStore::open(&path).unwrap();
    assert_eq!(store.tenant(&key).await.unwrap(), Some(tenant("甲")));
    assert_eq!(store.apps(&key).await.unwrap(), [app("a1")]);
    let users = store.users(&key, "a1").await.unwrap();
    assert_eq!(users.len(), 3);
    assert!(users[1].revoked, "the revocation is kept");
    assert_eq!(
        store.departments(&key).await.unwrap(),
        [dept("d1"), dept("d2")]
    );
    let pending: Vec<u64> = store
        .pending_events(&key, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(pending, [3, 4, 5], "delivered events stay delivered");
    let next = apply(&store, &key, C::DeleteTenant).await;
    assert_eq!(next.first_seq, 6, "numbering goes on after a restart");
}

/// docs/protocol/decisions.md §16: one sync, one durable commit, however many records and events it
/// holds.
#[tokio::test]
async fn a_500_user_sync_and_a_5000_department_replace_are_one_commit_each() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join("s.redb")).unwrap();
    let key = TenantKey::new("", "tenant-1");
    apply(&store, &key, C::PutDepartment(dept("old"))).await;

    let before = store.durable_commits();
    let users = apply(&store, &key, put_users("a1", 500)).await;
    assert_eq!(store.durable_commits() - before, 1);
    assert_eq!((users.first_seq, users.last_seq), (2, 6), "five events");
    assert_eq!(store.users(&key, "a1").await.unwrap().len(), 500);

    let all: Vec<Department> = (0..5000).map(|i| dept(&format!("d{i:04}"))).collect();
    let before = store.durable_commits();
    let replaced = apply(&store, &key, C::ReplaceDepartments(all.clone())).await;
    assert_eq!(store.durable_commits() - before, 1);
    assert_eq!(
        (replaced.first_seq, replaced.last_seq),
        (7, 16),
        "ten parts"
    );
    assert_eq!(
        store.departments(&key).await.unwrap(),
        all,
        "by orgCode, `old` gone"
    );

    // And again: the previous set is replaced in the same single commit.
    let fewer: Vec<Department> = all[..10].to_vec();
    let before = store.durable_commits();
    apply(&store, &key, C::ReplaceDepartments(fewer.clone())).await;
    assert_eq!(store.durable_commits() - before, 1);
    assert_eq!(store.departments(&key).await.unwrap(), fewer);
}

/// A tenant's range never takes in another whose ids extend its own, nor the same tenantId under
/// another instance (an empty instanceId, the seller's credential, included).
#[tokio::test]
async fn a_tenant_range_takes_in_no_other_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join("s.redb")).unwrap();
    let t1 = TenantKey::new("i", "t1");
    let others = [
        TenantKey::new("i", "t10"),
        TenantKey::new("i", "t1 "),
        TenantKey::new("i1", "t1"),
        TenantKey::new("", "t1"),
        TenantKey::new("", "it1"),
        TenantKey::new("i", ""),
    ];
    for key in std::iter::once(&t1).chain(&others) {
        apply(&store, key, C::PutTenant(tenant(&key.tenant_id))).await;
        apply(&store, key, C::PutApp(app("a1"))).await;
        apply(&store, key, C::PutApp(app("a10"))).await;
        apply(&store, key, put_users("a1", 2)).await;
        apply(&store, key, put_users("a10", 3)).await;
        apply(&store, key, C::PutDepartment(dept("d1"))).await;
    }
    // Users by app: "a1" is not a prefix match for "a10".
    assert_eq!(store.users(&t1, "a1").await.unwrap().len(), 2);
    apply(
        &store,
        &t1,
        C::DeleteApp {
            app_id: "a1".into(),
        },
    )
    .await;
    assert_eq!(store.users(&t1, "a1").await.unwrap(), []);
    assert_eq!(store.users(&t1, "a10").await.unwrap().len(), 3);
    assert_eq!(store.apps(&t1).await.unwrap(), [app("a10")]);

    let deleted = apply(&store, &t1, C::DeleteTenant).await;
    assert_eq!(store.tenant(&t1).await.unwrap(), None);
    assert_eq!(store.apps(&t1).await.unwrap(), []);
    assert_eq!(store.users(&t1, "a10").await.unwrap(), []);
    assert_eq!(store.departments(&t1).await.unwrap(), []);
    let t1_events = store.pending_events(&t1, 100).await.unwrap();
    assert_eq!(t1_events.last().unwrap().seq, deleted.last_seq);
    assert_eq!(t1_events.last().unwrap().body.name(), "tenantDeleted");
    store.events_delivered(&t1, deleted.last_seq).await.unwrap();
    for key in &others {
        assert!(store.tenant(key).await.unwrap().is_some(), "{key:?}");
        assert_eq!(store.apps(key).await.unwrap().len(), 2, "{key:?}");
        assert_eq!(store.users(key, "a1").await.unwrap().len(), 2, "{key:?}");
        assert_eq!(store.users(key, "a10").await.unwrap().len(), 3, "{key:?}");
        assert_eq!(store.departments(key).await.unwrap(), [dept("d1")]);
        assert_eq!(
            store.pending_events(key, 100).await.unwrap().len(),
            6,
            "{key:?}: its events, numbered on their own, undelivered"
        );
    }
}

/// The golden file of an earlier release has no directory tables: it opens, its directory is
/// empty, and syncs are taken and numbered from 1.
#[tokio::test]
async fn a_file_from_before_the_directory_opens_with_an_empty_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::copy_of_earlier_release(dir.path());
    {
        use redb::{ReadableDatabase, TableHandle};
        let db = redb::Database::open(&path).unwrap();
        let read = db.begin_read().unwrap();
        let tables: Vec<String> = read
            .list_tables()
            .unwrap()
            .map(|t| t.name().to_owned())
            .collect();
        assert!(
            tables.iter().all(|t| !t.starts_with("dir_")),
            "the fixture predates the directory: {tables:?}"
        );
    }
    let store = EmbeddedStore::open(&path).unwrap();
    let key = TenantKey::new("inst-1", "tenant-1");
    assert_eq!(store.tenant(&key).await.unwrap(), None);
    assert_eq!(store.apps(&key).await.unwrap(), []);
    assert_eq!(store.users(&key, "a1").await.unwrap(), []);
    assert_eq!(store.departments(&key).await.unwrap(), []);
    assert_eq!(store.pending_events(&key, 10).await.unwrap(), []);
    let first = apply(&store, &key, C::PutTenant(tenant("甲"))).await;
    assert_eq!((first.first_seq, first.last_seq), (1, 1));
    assert_eq!(store.tenant(&key).await.unwrap(), Some(tenant("甲")));
}
