//! The SSO stores on the embedded store (docs/protocol/decisions.md §19): the shared contracts,
//! and beyond them that a session survives a restart, a damaged record is reported rather than
//! panicked on, ended sessions and grants are purged by a later take, and a file from before SSO
//! opens with empty stores.

mod common;

use std::sync::Arc;

use chrono::Duration;
use koogallery::{
    StoreError,
    directory::TenantKey,
    sso::{GrantKind, GrantStore, SessionStore},
    testing::sso::{sample_session, sso_store_contract, tenant_locator_contract},
};
use koogallery_embedded::EmbeddedStore;
use redb::{ReadableDatabase, TableDefinition};

const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sso_sessions");

fn fresh() -> (tempfile::TempDir, Arc<EmbeddedStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join("store.redb")).unwrap();
    (dir, Arc::new(store))
}

#[tokio::test]
async fn embedded_store_passes_the_sso_store_contract() {
    let (_dir, store) = fresh();
    sso_store_contract(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_passes_the_sso_store_contract_on_many_threads() {
    let (_dir, store) = fresh();
    sso_store_contract(store).await;
}

#[tokio::test]
async fn embedded_store_passes_the_tenant_locator_contract() {
    let (_dir, store) = fresh();
    tenant_locator_contract(store).await;
}

#[tokio::test]
async fn a_session_survives_a_restart_with_its_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let tenant = TenantKey::new("inst-1", "tenant-1");
    let session = sample_session(&tenant, "app-1", "alice");
    {
        let store = EmbeddedStore::open(&path).unwrap();
        store.create_session(&session).await.unwrap();
    }
    let store = EmbeddedStore::open(&path).unwrap();
    assert_eq!(
        store.session(&session.key).await.unwrap(),
        Some(session.clone())
    );
    let of_user = store
        .sessions_of_user(&tenant, "app-1", "alice")
        .await
        .unwrap();
    assert_eq!(of_user, vec![session.clone()]);
    let mut next = session.clone();
    next.version = 2;
    store.replace_session(&next, 1).await.unwrap();
    assert_eq!(store.sessions_of_tenant(&tenant).await.unwrap(), vec![next]);
}

#[tokio::test]
async fn a_damaged_session_is_corrupt_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let tenant = TenantKey::new("inst-1", "tenant-1");
    let session = sample_session(&tenant, "app-1", "alice");
    {
        let store = EmbeddedStore::open(&path).unwrap();
        store.create_session(&session).await.unwrap();
    }
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(SESSIONS)
            .unwrap()
            .insert(session.key.as_str(), b"{\"schema\":1,\"key\":".as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let store = EmbeddedStore::open(&path).unwrap();
    assert!(matches!(
        store.session(&session.key).await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        store.sessions_of_user(&tenant, "app-1", "alice").await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        store.replace_session(&session, 1).await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        store.delete_session(&session.key).await,
        Err(StoreError::Corrupt(_))
    ));
}

/// A take deletes what ended before its `now`: sessions past `refresh_expires_at`, grants past
/// `expires_at`, with their index entries; live ones stay.
#[tokio::test]
async fn a_take_purges_ended_sessions_and_expired_grants() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let tenant = TenantKey::new("inst-1", "tenant-1");
    let ended = sample_session(&tenant, "app-1", "alice");
    let mut live = sample_session(&tenant, "app-1", "bob");
    live.refresh_expires_at = ended.refresh_expires_at + Duration::days(30);
    let now = ended.refresh_expires_at + Duration::seconds(1);
    {
        let store = EmbeddedStore::open(&path).unwrap();
        store.create_session(&ended).await.unwrap();
        store.create_session(&live).await.unwrap();
        store
            .put_grant(GrantKind::PendingLogin, "old", "x", now)
            .await
            .unwrap();
        store
            .put_grant(
                GrantKind::PendingLogin,
                "new",
                "y",
                now + Duration::seconds(1),
            )
            .await
            .unwrap();
        assert_eq!(
            store
                .take_grant(GrantKind::AccessToken, "none", now)
                .await
                .unwrap(),
            None
        );
        assert_eq!(store.session(&ended.key).await.unwrap(), None);
        assert_eq!(
            store.sessions_of_tenant(&tenant).await.unwrap(),
            vec![live.clone()]
        );
        assert_eq!(
            store
                .grant(GrantKind::PendingLogin, "new", now)
                .await
                .unwrap()
                .as_deref(),
            Some("y")
        );
    }
    // The expired grant is gone from the file, not only hidden.
    let db = redb::Database::open(&path).unwrap();
    let grants = db
        .begin_read()
        .unwrap()
        .open_table(TableDefinition::<(&str, &str), (&str, i64)>::new(
            "sso_grants",
        ))
        .unwrap();
    assert!(grants.get(("login", "old")).unwrap().is_none());
    assert!(grants.get(("login", "new")).unwrap().is_some());
}

/// The golden file of an earlier release has no SSO tables: it opens with empty SSO stores.
#[tokio::test]
async fn a_file_from_before_sso_opens_with_empty_stores() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::copy_of_earlier_release(dir.path());
    let store = EmbeddedStore::open(&path).unwrap();
    let tenant = TenantKey::new("inst-1", "tenant-1");
    assert_eq!(store.sessions_of_tenant(&tenant).await.unwrap(), vec![]);
    let session = sample_session(&tenant, "app-1", "alice");
    store.create_session(&session).await.unwrap();
    assert_eq!(store.session(&session.key).await.unwrap(), Some(session));
}
