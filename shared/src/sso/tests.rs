//! The login step and the session's life against the memory stores and a scripted auth centre
//! (docs/protocol/decisions.md §19).

use std::sync::Arc;

use chrono::Duration;

use super::*;
use crate::clock::Clock as _;
use crate::directory::{App, DirectoryChange as C, TenantDirectory, TenantKey};
use crate::security::at_rest::{CredentialSealer, LocalKeySealer};
use crate::testing::directory::{sample_tenant, sample_user};
use crate::testing::sso::AuthCentreCall;
use crate::testing::{ManualClock, MemoryDirectory, MemorySso, ScriptedAuthCentre};

struct Bed {
    sso: Sso,
    dir: Arc<MemoryDirectory>,
    centre: Arc<ScriptedAuthCentre>,
    store: Arc<MemorySso>,
    sealer: Arc<LocalKeySealer>,
    clock: Arc<ManualClock>,
    key: TenantKey,
}

const TENANT: &str = "68cbc86abc51458880d92f36422fa0e";

async fn bed() -> Bed {
    let t0 = crate::protocol::time::parse_compact("20261205080000").unwrap();
    let clock = Arc::new(ManualClock::at(t0));
    let dir = Arc::new(MemoryDirectory::new());
    let sealer = Arc::new(LocalKeySealer::random());
    let key = TenantKey::new("inst-1", TENANT);
    dir.apply(&key, &C::PutTenant(sample_tenant("华为", t0)), t0)
        .await
        .unwrap();
    let sealed = sealer
        .seal(&key.app_binding("app-1"), "client-secret")
        .await
        .unwrap();
    let app = App {
        app_id: "app-1".into(),
        client_id: "client-app-1".into(),
        sealed_client_secret: sealed,
        synced_at: t0,
    };
    dir.apply(&key, &C::PutApp(app), t0).await.unwrap();
    dir.apply(
        &key,
        &C::PutUsers {
            app_id: "app-1".into(),
            users: vec![
                sample_user("app-1", "alice", t0),
                sample_user("app-1", "bob", t0),
            ],
        },
        t0,
    )
    .await
    .unwrap();
    let centre = Arc::new(ScriptedAuthCentre::new());
    let store = Arc::new(MemorySso::new());
    let sso = Sso::new(
        dir.clone(),
        dir.clone(),
        centre.clone(),
        store.clone(),
        sealer.clone(),
        clock.clone(),
        SsoSettings {
            app_id: Some("app-1".into()),
            login_address: Some("https://vendor.example.com/sso/callback".into()),
        },
    );
    Bed {
        sso,
        dir,
        centre,
        store,
        sealer,
        clock,
        key,
    }
}

fn user(name: &str) -> AuthCentreUser {
    AuthCentreUser {
        user_name: name.into(),
        name: Some(format!("{name} from userinfo")),
        email: Some(format!("{name}@example.com")),
        tenant: Some(TENANT.into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_login_exchanges_the_code_once_and_keeps_the_tokens_sealed() {
    let b = bed().await;
    b.centre.code_for("c1", user("alice"));
    let done = b.sso.login("c1", TENANT).await.unwrap();
    let s = &done.session;
    assert_eq!(s.key, done.cookie.key());
    assert_eq!(
        (s.instance_id.as_str(), s.app_id.as_str()),
        ("inst-1", "app-1")
    );
    assert_eq!(s.identity.name, "alice from userinfo");
    assert_eq!(
        s.identity.mobile.as_deref(),
        Some("13800000000"),
        "authSync fills the gaps"
    );
    assert_eq!(s.identity.role, "user");
    assert!(!s.sealed_access_token.contains("access-1"));
    assert_eq!(
        b.sealer
            .open(&s.binding(), &s.sealed_access_token)
            .await
            .unwrap(),
        "access-1"
    );
    assert_eq!(
        s.access_expires_at,
        b.clock.now() + Duration::seconds(7200),
        "the default 2 h"
    );
    assert_eq!(s.refresh_expires_at, b.clock.now() + Duration::days(30));
    assert_eq!(b.store.session(&s.key).await.unwrap().as_ref(), Some(s));
    assert_eq!(
        b.centre.calls()[0],
        AuthCentreCall::Exchange {
            client_id: "client-app-1".into(),
            code: "c1".into()
        }
    );
    // The code was single use.
    let again = b.sso.login("c1", TENANT).await.unwrap_err();
    assert!(
        again.is_refusal() && again.outcome() == "auth_centre_failed",
        "{again}"
    );
}

#[tokio::test]
async fn logins_are_refused_for_unknown_tenants_unauthorized_users_and_auth_centre_failures() {
    let b = bed().await;
    let e = b.sso.login("c", "no-such-tenant").await.unwrap_err();
    assert!(matches!(e, LoginError::UnknownTenant(_)), "{e}");

    b.centre.code_for("c2", user("mallory"));
    let e = b.sso.login("c2", TENANT).await.unwrap_err();
    assert!(
        matches!(e, LoginError::NotAuthorized { .. }) && e.is_refusal(),
        "{e}"
    );
    assert!(
        b.store.sessions_of_tenant(&b.key).await.unwrap().is_empty(),
        "no session"
    );

    let t = b.clock.now();
    b.dir
        .apply(
            &b.key,
            &C::RevokeUsers {
                app_id: "app-1".into(),
                user_names: vec!["bob".into()],
            },
            t,
        )
        .await
        .unwrap();
    b.centre.code_for("c3", user("bob"));
    assert!(matches!(
        b.sso.login("c3", TENANT).await,
        Err(LoginError::NotAuthorized { .. })
    ));

    let mut disabled = sample_user("app-1", "carol", t);
    disabled.enabled = false;
    b.dir
        .apply(
            &b.key,
            &C::PutUsers {
                app_id: "app-1".into(),
                users: vec![disabled],
            },
            t,
        )
        .await
        .unwrap();
    b.centre.code_for("c4", user("carol"));
    assert!(matches!(
        b.sso.login("c4", TENANT).await,
        Err(LoginError::NotAuthorized { .. })
    ));

    b.centre.code_for("c5", user("alice"));
    b.centre
        .fail_next(AuthCentreError::Unavailable("503".into()));
    let e = b.sso.login("c5", TENANT).await.unwrap_err();
    assert!(
        e.is_refusal(),
        "a failed auth-centre call refuses the login: {e}"
    );

    let mut other = user("alice");
    other.tenant = Some("another-tenant".into());
    b.centre.code_for("c6", other);
    assert!(matches!(
        b.sso.login("c6", TENANT).await,
        Err(LoginError::TenantMismatch { .. })
    ));

    b.dir
        .apply(
            &b.key,
            &C::DeleteApp {
                app_id: "app-1".into(),
            },
            t,
        )
        .await
        .unwrap();
    b.centre.code_for("c7", user("alice"));
    assert!(matches!(
        b.sso.login("c7", TENANT).await,
        Err(LoginError::UnknownApp { .. })
    ));
    b.dir.apply(&b.key, &C::DeleteTenant, t).await.unwrap();
    assert!(matches!(
        b.sso.login("c7", TENANT).await,
        Err(LoginError::UnknownTenant(_))
    ));
}

#[tokio::test]
async fn the_access_token_is_refreshed_within_five_minutes_of_expiry_and_a_missing_refresh_token_keeps_the_last()
 {
    let b = bed().await;
    b.centre.code_for("c1", user("alice"));
    let s = b.sso.login("c1", TENANT).await.unwrap().session;
    b.clock.advance(Duration::minutes(114));
    let Current::Live(same) = b.sso.current(&s.key).await.unwrap() else {
        panic!()
    };
    assert_eq!(same.version, s.version, "not yet within 5 minutes");
    b.clock.advance(Duration::minutes(1));
    let Current::Live(r1) = b.sso.current(&s.key).await.unwrap() else {
        panic!()
    };
    assert_eq!(
        b.sealer
            .open(&r1.binding(), &r1.sealed_access_token)
            .await
            .unwrap(),
        "access-2"
    );
    assert_eq!(
        b.sealer
            .open(&r1.binding(), r1.sealed_refresh_token.as_ref().unwrap())
            .await
            .unwrap(),
        "refresh-2",
        "the returned refresh token replaces the last"
    );
    assert!(b.centre.calls().contains(&AuthCentreCall::Refresh {
        client_id: "client-app-1".into(),
        refresh_token: "refresh-1".into()
    }));
    b.centre.omit_refresh_token();
    b.clock.advance(Duration::minutes(116));
    let Current::Live(r2) = b.sso.current(&s.key).await.unwrap() else {
        panic!()
    };
    assert_eq!(
        b.sealer
            .open(&r2.binding(), r2.sealed_refresh_token.as_ref().unwrap())
            .await
            .unwrap(),
        "refresh-2",
        "an answer without refresh_token keeps the previous one"
    );
    assert_eq!(r2.refresh_expires_at, r1.refresh_expires_at);
}

#[tokio::test]
async fn a_refused_refresh_ends_the_session_and_an_unavailable_one_waits_while_the_token_lasts() {
    let b = bed().await;
    b.centre.code_for("c1", user("alice"));
    let s = b.sso.login("c1", TENANT).await.unwrap().session;
    b.clock.advance(Duration::minutes(116));
    b.centre
        .fail_next(AuthCentreError::Unavailable("502".into()));
    assert!(
        matches!(b.sso.current(&s.key).await.unwrap(), Current::Live(_)),
        "still valid for 4 min"
    );
    let calls = b.centre.calls().len();
    assert!(
        matches!(b.sso.current(&s.key).await.unwrap(), Current::Live(_)),
        "within the failed attempt's lease"
    );
    assert_eq!(b.centre.calls().len(), calls, "no second call within 30 s");
    b.clock.advance(Duration::seconds(31));
    b.centre.fail_next(AuthCentreError::Refused {
        status: 400,
        error: "invalid_grant".into(),
        description: "Invalid refresh token".into(),
    });
    assert!(matches!(
        b.sso.current(&s.key).await.unwrap(),
        Current::Ended(_, Ended::RefreshFailed)
    ));
    assert!(matches!(
        b.sso.current(&s.key).await.unwrap(),
        Current::Absent
    ));
}

#[tokio::test]
async fn a_session_ends_with_its_user_app_or_tenant_and_never_outlives_the_refresh_token() {
    let b = bed().await;
    let t = b.clock.now();
    b.centre.code_for("a", user("alice"));
    let s1 = b.sso.login("a", TENANT).await.unwrap().session;
    b.dir
        .apply(
            &b.key,
            &C::RevokeUsers {
                app_id: "app-1".into(),
                user_names: vec!["alice".into()],
            },
            t,
        )
        .await
        .unwrap();
    assert!(matches!(
        b.sso.current(&s1.key).await.unwrap(),
        Current::Ended(_, Ended::UserRevoked)
    ));

    b.dir
        .apply(
            &b.key,
            &C::PutUsers {
                app_id: "app-1".into(),
                users: vec![sample_user("app-1", "alice", t)],
            },
            t,
        )
        .await
        .unwrap();
    b.centre.code_for("b", user("alice"));
    let s2 = b.sso.login("b", TENANT).await.unwrap().session;
    b.dir.apply(&b.key, &C::DeleteTenant, t).await.unwrap();
    assert!(matches!(
        b.sso.current(&s2.key).await.unwrap(),
        Current::Ended(_, Ended::TenantOrAppDeleted)
    ));

    let b = bed().await;
    b.centre.code_for("c", user("alice"));
    let s3 = b.sso.login("c", TENANT).await.unwrap().session;
    let mut stale = s3.clone();
    stale.refresh_expires_at = b.clock.now() + Duration::hours(1);
    stale.version += 1;
    b.store.replace_session(&stale, s3.version).await.unwrap();
    b.clock.advance(Duration::hours(1));
    assert!(matches!(
        b.sso.current(&s3.key).await.unwrap(),
        Current::Ended(_, Ended::Expired)
    ));
}

#[tokio::test]
async fn the_kit_syncs_end_the_sessions_of_a_user_an_app_or_a_tenant() {
    let b = bed().await;
    for (code, who) in [("1", "alice"), ("2", "alice"), ("3", "bob")] {
        b.centre.code_for(code, user(who));
        b.sso.login(code, TENANT).await.unwrap();
    }
    let ended = b
        .sso
        .end_sessions_of(&b.key, Some("app-1"), Some("alice"))
        .await
        .unwrap();
    assert_eq!(ended.len(), 2);
    assert_eq!(b.store.sessions_of_tenant(&b.key).await.unwrap().len(), 1);
    let ended = b
        .sso
        .end_sessions_of(&b.key, Some("app-2"), None)
        .await
        .unwrap();
    assert!(ended.is_empty(), "another app's sessions are left");
    let ended = b.sso.end_sessions_of(&b.key, None, None).await.unwrap();
    assert_eq!(ended.len(), 1);
}

#[tokio::test]
async fn concurrent_uses_refresh_once_and_an_add_client_never_drops_the_new_tokens() {
    let b = bed().await;
    b.centre.code_for("c1", user("alice"));
    let s = b.sso.login("c1", TENANT).await.unwrap().session;
    b.clock.advance(Duration::minutes(116));
    let (x, y, z) = tokio::join!(
        b.sso.current(&s.key),
        b.sso.current(&s.key),
        b.sso.add_client(s.clone(), "vendor-app")
    );
    assert!(matches!(x.unwrap(), Current::Live(_)) && matches!(y.unwrap(), Current::Live(_)));
    z.unwrap();
    let refreshes = b
        .centre
        .calls()
        .into_iter()
        .filter(|c| matches!(c, AuthCentreCall::Refresh { .. }))
        .count();
    assert_eq!(refreshes, 1, "one refresh for two concurrent uses");
    let stored = b.store.session(&s.key).await.unwrap().unwrap();
    assert_eq!(
        b.sealer
            .open(
                &stored.binding(),
                stored.sealed_refresh_token.as_ref().unwrap()
            )
            .await
            .unwrap(),
        "refresh-2",
        "the rotated refresh token is kept"
    );
    assert_eq!(stored.clients, vec!["vendor-app".to_owned()]);
    assert_eq!(stored.refreshing_until, None);
}
