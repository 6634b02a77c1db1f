//! Tests of the operator's views and actions on the memory ports: the contracts, the redacted instance page (its 联营 tenants, SSO sessions and License codes shown without a secret), redrives and discards kept with who asked.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::*;
use crate::{
    exchange::{ExchangeQuery, redact::REDACTED},
    instance::{AccessInfo, Credential, InstanceId},
    order::{OrderDetails, OrderId, OrderLineId},
    testing::{
        ManualClock, MemoryDeadLetters, MemoryDirectory, MemorySso, MemoryStore, golden,
        license::MemoryLicenses,
        operator::{
            MemoryOperator, dead_letters_contract, instance_accounts_contract,
            instance_listing_contract,
        },
    },
};

fn t0() -> DateTime<Utc> {
    crate::protocol::time::parse_compact("20260301080000").unwrap()
}

type Bed = MemoryOperator;

fn bed() -> Bed {
    MemoryOperator::start(Arc::new(ManualClock::at(t0() + chrono::Duration::hours(1))))
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
        Job::Provision {
            instance_id: "i-c".into(),
        },
        Job::Provision {
            instance_id: "i-d".into(),
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
    seed_accounts(&b).await;
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
    assert_accounts_shown_without_secrets(&page);
    golden::check("operator_instance_v1.json", &page);
    assert!(b.operator.instance("nope").await.unwrap().is_none());
    let _ = i;
}

/// The buyer's whole License code, its session cookie's key, and what must never show.
const CODE: &str = "PLAB12345678WXYZ9876";
const SESSION_KEY: &str = "5e55105e55105e55105e55105e55105e55105e55105e55105e55105e55105e55";
const NEVER_SHOWN: &[&str] = &[
    CODE,
    SESSION_KEY,
    "sealed-CLIENT-SECRET",
    "sealed-ACCESS-TOKEN",
    "sealed-REFRESH-TOKEN",
    "Acme 有限公司",
    "张三",
    "13800000000",
    "zhangsan@example.com",
    "工程师",
    "E-0042",
];

/// A synced Kit tenant of `i-buyer-1` (an app, two users, two departments), a tenant of another
/// instance, a live SSO session and an ended one, a License code of its order and one of another
/// order.
async fn seed_accounts(b: &Bed) {
    use crate::{
        directory::{App, Department, DirectoryChange, Tenant, TenantDirectory, TenantKey, User},
        license::{Activation, License, LicenseCode, LicenseStore, Origin},
        sso::{Identity, Session, SessionStore},
    };
    let at = t0() + chrono::Duration::minutes(10);
    let tenant = TenantKey::new("i-buyer-1", "tenant-1");
    let user = |user_name: &str, enabled: bool| User {
        app_id: "app-1".into(),
        user_name: user_name.into(),
        name: "张三".into(),
        org_code: "10001".into(),
        role: "admin".into(),
        enabled,
        revoked: false,
        position: Some("工程师".into()),
        employee_code: Some("E-0042".into()),
        employee_type: None,
        mobile: Some("13800000000".into()),
        email: Some("zhangsan@example.com".into()),
        work_place: None,
        entry_date: None,
        synced_at: at,
    };
    let department = |code: &str| Department {
        org_code: code.into(),
        org_name: format!("部门{code}"),
        parent_code: None,
    };
    for (key, change) in [
        (
            &tenant,
            DirectoryChange::PutTenant(Tenant {
                order_id: "CS2603010800ABC".into(),
                tenant_code: "acme".into(),
                name: "Acme 有限公司".into(),
                domain_name: "https://idaas.example.com".into(),
                synced_at: at,
            }),
        ),
        (
            &tenant,
            DirectoryChange::PutApp(App {
                app_id: "app-1".into(),
                client_id: "client-app-1".into(),
                sealed_client_secret: "sealed-CLIENT-SECRET".into(),
                synced_at: at,
            }),
        ),
        (
            &tenant,
            DirectoryChange::PutUsers {
                app_id: "app-1".into(),
                users: vec![user("zhangsan", true), user("lisi", false)],
            },
        ),
        (
            &tenant,
            DirectoryChange::ReplaceDepartments(vec![department("10001"), department("10002")]),
        ),
        (
            &TenantKey::new("someone-else", "tenant-1"),
            DirectoryChange::PutTenant(crate::testing::directory::sample_tenant("other", at)),
        ),
    ] {
        b.directory.apply(key, &change, at).await.unwrap();
    }
    let session = |sid: &str, key: &str, ends: chrono::Duration| Session {
        key: key.into(),
        sid: sid.into(),
        instance_id: "i-buyer-1".into(),
        tenant_id: "tenant-1".into(),
        tenant_name: "Acme 有限公司".into(),
        app_id: "app-1".into(),
        identity: Identity {
            user_name: "zhangsan".into(),
            name: "张三".into(),
            email: Some("zhangsan@example.com".into()),
            mobile: Some("13800000000".into()),
            role: "admin".into(),
            org_code: "10001".into(),
            org_name: Some("部门10001".into()),
        },
        sealed_access_token: "sealed-ACCESS-TOKEN".into(),
        sealed_refresh_token: Some("sealed-REFRESH-TOKEN".into()),
        access_expires_at: at + chrono::Duration::hours(2),
        refresh_expires_at: at + ends,
        auth_time: at,
        clients: vec!["vendor-app".into()],
        refreshing_until: None,
        version: 1,
    };
    b.sso
        .create_session(&session(
            "sid-live",
            SESSION_KEY,
            chrono::Duration::days(30),
        ))
        .await
        .unwrap();
    b.sso
        .create_session(&session(
            "sid-ended",
            "ended-key",
            chrono::Duration::minutes(20),
        ))
        .await
        .unwrap();
    let license = |code: &str, order: &str| {
        let mut l = License::new(
            LicenseCode::parse(code).unwrap(),
            Origin::Marketplace,
            false,
            at,
        );
        l.order_id = Some(order.into());
        l.product_id = Some("00301-1".into());
        l.customer_id = Some("cust-1".into());
        l.amount = Some(1);
        l.expire_time = Some(t0() + chrono::Duration::days(365));
        l.activation = Some(Activation {
            at: at + chrono::Duration::minutes(5),
            client_id: "host-1".into(),
        });
        l.version = 1;
        l
    };
    b.licenses
        .put(&license(CODE, "CS2603010800ABC"))
        .await
        .unwrap();
    b.licenses
        .put(&license("PLOTHERORDER0001", "CSOTHER"))
        .await
        .unwrap();
}

/// What [`seed_accounts`] shows: the tenant with its app's client, its users by login ID and
/// status, its departments counted; the live session by `sid`; the code masked; and nothing that
/// would let anyone act as the buyer, nor the buyer's personal fields.
fn assert_accounts_shown_without_secrets(page: &serde_json::Value) {
    let tenants = page["kit_tenants"].as_array().unwrap();
    assert_eq!(tenants.len(), 1, "only the instance's own: {page}");
    let t = &tenants[0];
    assert_eq!(t["tenant_id"], "tenant-1");
    assert_eq!(
        t["apps"],
        json!([{"app_id": "app-1", "client_id": "client-app-1", "synced_at": "2026-03-01T08:10:00Z"}])
    );
    assert_eq!(t["department_count"], 2);
    let users: Vec<_> = t["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["user_name"].as_str().unwrap(),
                u["may_use_app"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(users, [("lisi", false), ("zhangsan", true)]);
    let sessions = page["sso_sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "the ended one left out: {page}");
    assert_eq!(sessions[0]["sid"], "sid-live");
    assert_eq!(sessions[0]["user_name"], "zhangsan");
    let codes = page["license_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 1, "only the order's: {page}");
    assert_eq!(codes[0]["code"], "PLAB…(20)");
    assert_eq!(codes[0]["status"], "ACTIVE");
    assert_eq!(codes[0]["activation"]["client_id"], "host-1");
    let text = page.to_string();
    for secret in NEVER_SHOWN {
        assert!(!text.contains(secret), "{secret} is shown: {text}");
    }
    assert!(!text.contains("sealed"), "{text}");
}

/// The seeded buyer's instance page, as the API answers it.
async fn buyer_page(b: &Bed) -> serde_json::Value {
    b.operator
        .instance("i-buyer-1")
        .await
        .unwrap()
        .expect("the seeded instance")
        .to_json()
}

/// An instance with no 联营 tenant and no License code says so with empty lists; an expired code
/// reads as expired before KooGallery says so.
#[tokio::test]
async fn an_instance_without_accounts_has_empty_lists_and_expiry_is_read_at_the_time() {
    use crate::license::{License, LicenseCode, LicenseStore, Origin};
    let b = bed();
    seed(&b.store).await;
    let page = buyer_page(&b).await;
    for list in ["kit_tenants", "sso_sessions", "license_codes"] {
        assert_eq!(page[list], json!([]), "{list}");
    }
    let mut l = License::new(
        LicenseCode::parse(CODE).unwrap(),
        Origin::Marketplace,
        false,
        t0(),
    );
    l.order_id = Some("CS2603010800ABC".into());
    l.expire_time = Some(t0() + chrono::Duration::minutes(30));
    l.version = 1;
    b.licenses.put(&l).await.unwrap();
    let page = buyer_page(&b).await;
    assert_eq!(page["license_codes"][0]["status"], "EXPIRED", "{page}");
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

/// Every reconciler pass is kept, scheduled or forced, with who ran it and what it found; the
/// passes are listed newest first, and an instance a pass re-queued a job for shows it.
#[tokio::test]
async fn reconciler_passes_are_kept_with_who_ran_them() {
    let b = bed();
    let i = seed(&b.store).await; // provisioning since t0, with no claim: stuck two days later
    let clock = Arc::new(ManualClock::at(t0() + chrono::Duration::days(2)));
    let reconciler = Arc::new(Reconciler {
        store: b.store.clone(),
        queue: Arc::new(crate::testing::MemoryQueue::new()),
        clock: clock.clone(),
        settings: crate::config::WorkerSettings::default(),
        metrics: Arc::new(crate::testing::RecordedMetrics::default()),
    });
    let mut operator = b.operator;
    operator.reconciler = Some(reconciler.clone());
    operator.clock = clock.clone();

    let scheduled = reconciler.run_once().await.unwrap();
    keep_pass(&operator.recorder, &scheduled, SCHEDULE, clock.now());
    clock.advance(chrono::Duration::minutes(5));
    operator
        .reconcile(&Who("ops@example.com".into()))
        .await
        .unwrap();
    operator.recorder.flush().await;

    let passes = operator.reconciler_passes(10).await.unwrap();
    let who: Vec<_> = passes.iter().map(|p| p.request["who"].clone()).collect();
    assert_eq!(
        who,
        [json!("ops@example.com"), json!("schedule")],
        "newest first"
    );
    assert_eq!(
        view::pass_json(&passes[1])["stuck_provisioning"],
        json!([i.instance_id.as_str()])
    );
    assert_eq!(operator.reconciler_passes(1).await.unwrap(), passes[..1]);

    let page = operator
        .instance(i.instance_id.as_str())
        .await
        .unwrap()
        .unwrap();
    let requeued: Vec<_> = page
        .exchanges
        .iter()
        .filter(|e| e.family == PASS_FAMILY)
        .map(|e| (e.request["who"].clone(), e.response["found"].clone()))
        .collect();
    assert_eq!(
        requeued,
        [
            (json!("ops@example.com"), json!("stuck_provisioning")),
            (json!("schedule"), json!("stuck_provisioning")),
        ],
        "the instance's timeline shows both re-queues"
    );
}

/// A dead-lettered License notice is shown without its license code (the operator redrives it by
/// its ID; its subject names the code masked).
#[test]
fn a_dead_letter_shows_no_license_code() {
    let code = "PL0123456789ABCDEF0123456789ABCDEF";
    let letter = DeadLetter {
        id: "7".into(),
        job: crate::jobs::Job::LicenseNotice {
            license: code.into(),
        },
        attempts: 5,
        reason: "the vendor refused".into(),
        at: t0(),
    };
    let shown = view::dead_letter(&letter);
    assert!(!shown.to_string().contains(code), "{shown}");
    assert_eq!(shown["job"]["license"], REDACTED);
    assert_eq!(shown["job"]["type"], "license_notice");
}
