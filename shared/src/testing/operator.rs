//! The operator's ports in memory ([`MemoryDeadLetters`]), an operator over all of them
//! ([`MemoryOperator`]), and their contracts: every adapter of
//! [`InstanceListing`] and [`DeadLetters`] passes them, and every backend's directory, SSO and
//! License stores pass [`instance_accounts_contract`] as the operator's [`KitTenants`],
//! [`SsoSessions`] and [`OrderLicenses`].

use std::{collections::BTreeMap, sync::Arc, sync::Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{
    directory::{DirectoryChange, TenantDirectory, TenantKey},
    instance::{Instance, InstanceState, InstanceStore},
    jobs::{Job, QueueError},
    license::{License, LicenseCode, LicenseStore, Origin},
    operator::{
        DeadLetter, DeadLetters, InstanceFilter, InstanceListing, KitTenant, KitTenants, Operator,
        OrderLicenses, SsoSessions,
    },
    order::{OrderDetails, OrderId, OrderLineId},
    sso::SessionStore,
};

/// An [`Operator`] over the memory ports, its recorder's writer running (start it within a tokio
/// runtime), and those ports, for a test to seed and read.
pub struct MemoryOperator {
    pub operator: Operator,
    pub store: Arc<super::MemoryStore>,
    pub dead: Arc<MemoryDeadLetters>,
    pub log: Arc<super::MemoryExchangeLog>,
    pub directory: Arc<super::MemoryDirectory>,
    pub sso: Arc<super::MemorySso>,
    pub licenses: Arc<super::license::MemoryLicenses>,
}

impl MemoryOperator {
    /// Exchanges kept 14 days; no reconciler (set `operator.reconciler` for one).
    pub fn start(clock: Arc<dyn crate::clock::Clock>) -> Self {
        let store = Arc::new(super::MemoryStore::new());
        let dead = Arc::new(MemoryDeadLetters::new());
        let log = Arc::new(super::MemoryExchangeLog::new());
        let directory = Arc::new(super::MemoryDirectory::new());
        let sso = Arc::new(super::MemorySso::new());
        let licenses = Arc::new(super::license::MemoryLicenses::default());
        let (recorder, writer) =
            crate::exchange::ExchangeRecorder::start(log.clone(), chrono::Duration::days(14));
        tokio::spawn(writer.run());
        let operator = Operator {
            instances: store.clone(),
            listing: store.clone(),
            dead_letters: dead.clone(),
            exchanges: Some(log.clone()),
            recorder,
            usage: Some(store.clone()),
            reconciler: None,
            kit_tenants: directory.clone(),
            sso_sessions: sso.clone(),
            licenses: licenses.clone(),
            clock,
        };
        Self {
            operator,
            store,
            dead,
            log,
            directory,
            sso,
            licenses,
        }
    }
}

/// Dead letters by ID; redriven ones are kept in [`MemoryDeadLetters::redriven`].
#[derive(Debug, Default)]
pub struct MemoryDeadLetters {
    letters: Mutex<BTreeMap<String, DeadLetter>>,
    pub redriven: Mutex<Vec<Job>>,
}

impl MemoryDeadLetters {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a dead letter (IDs sort in the order added).
    pub fn add(&self, job: Job, reason: &str, at: DateTime<Utc>) -> String {
        let mut letters = self.letters.lock().unwrap();
        let id = format!("{:06}", letters.len() + 1);
        letters.insert(
            id.clone(),
            DeadLetter {
                id: id.clone(),
                job,
                attempts: 3,
                reason: reason.to_owned(),
                at,
            },
        );
        id
    }
}

#[async_trait]
impl DeadLetters for MemoryDeadLetters {
    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, QueueError> {
        Ok(self.letters.lock().unwrap().values().cloned().collect())
    }

    async fn redrive(&self, id: &str) -> Result<bool, QueueError> {
        match self.letters.lock().unwrap().remove(id) {
            Some(d) => {
                self.redriven.lock().unwrap().push(d.job);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn discard(&self, id: &str) -> Result<bool, QueueError> {
        Ok(self.letters.lock().unwrap().remove(id).is_some())
    }
}

fn t0() -> DateTime<Utc> {
    crate::protocol::time::parse_compact("20260101000000").unwrap_or_default()
}

/// Listings by customer, order, state, product or SKU, and time, newest first, bounded. `store`
/// must be empty of instances of this call's own (IDs are unique per call), and `listing` must
/// read it.
pub async fn instance_listing_contract(
    store: Arc<dyn InstanceStore>,
    listing: Arc<dyn InstanceListing>,
) {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let customer = format!("cust-{tag}");
    let sku = format!("sku-{tag}");
    let make = |n: i64, customer: Option<&str>, sku: Option<&str>| {
        let order = OrderId::new(format!("CS{tag}{n}"));
        let (mut i, ev) = Instance::new_provisioning(
            &order,
            &OrderLineId::new(format!("{order}-000001")),
            &format!("i-{tag}-{n}"),
            false,
            t0() + chrono::Duration::minutes(n),
        );
        i.order = Some(OrderDetails {
            customer_id: customer.map(str::to_owned),
            sku_code: sku.map(str::to_owned),
            product_id: Some(format!("prod-{tag}")),
            ..OrderDetails::default()
        });
        (i, ev)
    };
    let mut ids = Vec::new();
    for (n, c, s) in [
        (1, Some(customer.as_str()), Some(sku.as_str())),
        (2, Some(customer.as_str()), None),
        (3, None, Some(sku.as_str())),
    ] {
        let (i, ev) = make(n, c, s);
        store
            .create_for_order_line(&i, &[ev])
            .await
            .expect("create");
        ids.push(i.instance_id.as_str().to_owned());
    }
    // The third one becomes active.
    crate::instance::mutate(store.as_ref(), &ids[2], |i| {
        i.state = InstanceState::Active;
        Ok(crate::instance::Outcome::Quiet)
    })
    .await
    .expect("save");

    let list = |f: InstanceFilter| {
        let listing = listing.clone();
        async move {
            listing
                .list_instances(&f)
                .await
                .expect("list")
                .into_iter()
                .map(|i| i.instance_id.as_str().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let by_customer = InstanceFilter {
        customer_id: Some(customer.clone()),
        limit: 10,
        ..InstanceFilter::default()
    };
    assert_eq!(
        list(by_customer.clone()).await,
        [ids[1].clone(), ids[0].clone()],
        "by customer, newest first"
    );
    assert_eq!(
        list(InstanceFilter {
            limit: 1,
            ..by_customer.clone()
        })
        .await,
        [ids[1].clone()],
        "bounded"
    );
    assert_eq!(
        list(InstanceFilter {
            product: Some(sku.clone()),
            limit: 10,
            ..InstanceFilter::default()
        })
        .await,
        [ids[2].clone(), ids[0].clone()],
        "by SKU"
    );
    assert_eq!(
        list(InstanceFilter {
            product: Some(format!("prod-{tag}")),
            state: Some(InstanceState::Active),
            limit: 10,
            ..InstanceFilter::default()
        })
        .await,
        [ids[2].clone()],
        "by product and state"
    );
    assert_eq!(
        list(InstanceFilter {
            order_id: Some(format!("CS{tag}2")),
            limit: 10,
            ..InstanceFilter::default()
        })
        .await,
        [ids[1].clone()],
        "by order"
    );
    assert_eq!(
        list(InstanceFilter {
            since: Some(t0() + chrono::Duration::minutes(2)),
            until: Some(t0() + chrono::Duration::minutes(3)),
            product: Some(format!("prod-{tag}")),
            limit: 10,
            ..InstanceFilter::default()
        })
        .await,
        [ids[1].clone()],
        "by time: since inclusive, until exclusive"
    );
}

/// Listing, redriving and discarding. `seeded` are dead letters the caller made, oldest first,
/// each of a job of its own; nothing else is dead-lettered meanwhile. `requeued` answers whether
/// a job is back on the queue.
pub async fn dead_letters_contract<F, Fut>(
    dead: &dyn DeadLetters,
    seeded: &[(String, Job)],
    requeued: F,
) where
    F: Fn(Job) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    assert!(seeded.len() >= 4, "seed four dead letters at least");
    let listed = dead.dead_letters().await.expect("list");
    let ours: Vec<_> = listed
        .iter()
        .filter(|d| seeded.iter().any(|(id, _)| id == &d.id))
        .map(|d| (d.id.clone(), d.job.clone()))
        .collect();
    assert_eq!(
        ours, seeded,
        "every dead letter, oldest first, with its job"
    );
    let (first, first_job) = &seeded[0];
    assert!(dead.redrive(first).await.expect("redrive"), "redriven");
    assert!(
        !dead.redrive(first).await.expect("again"),
        "a repeat finds it gone"
    );
    assert!(requeued(first_job.clone()).await, "back on the queue");
    let (second, second_job) = &seeded[1];
    assert!(dead.discard(second).await.expect("discard"));
    assert!(!dead.discard(second).await.expect("again"));
    assert!(!dead.redrive(second).await.expect("a discarded one"));
    assert!(
        !requeued(second_job.clone()).await,
        "a discarded job is not queued"
    );
    let left: Vec<_> = dead
        .dead_letters()
        .await
        .expect("list")
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert!(!left.contains(first) && !left.contains(second), "{left:?}");
    assert!(!dead.redrive("no-such-dead-letter").await.expect("unknown"));

    // Several at once, in the order asked; one gone already among them.
    let (third, third_job) = &seeded[2];
    let (fourth, fourth_job) = &seeded[3];
    let asked = [fourth.clone(), first.clone(), third.clone()];
    let redrives = dead.redrive_each(&asked).await;
    assert!(redrives.failed.is_none(), "{:?}", redrives.failed);
    assert_eq!(redrives.redriven, [true, false, true]);
    assert!(requeued(fourth_job.clone()).await && requeued(third_job.clone()).await);
    let again = dead.redrive_each(&asked).await;
    assert_eq!(
        again.redriven,
        [false, false, false],
        "a repeat finds them gone"
    );
}

/// An instance's 联营 tenants, their sessions and its order's License codes, as the operator
/// reads them from what the Kit syncs, the sign-ins and the License calls wrote: `directory` as
/// [`KitTenants`], `sessions` as [`SsoSessions`], `licenses` as [`OrderLicenses`]. IDs are unique
/// per call and hold `#` and `%` (the key separator and escape of the DynamoDB table), so the
/// stores may hold others' records.
///
/// - Only the instance's own tenants, each whole (apps, users of every app, an app not synced yet
///   included, revoked ones marked, departments), by tenant ID; not a tenant of another instance
///   (one whose ID is this one's with more after it, or with the same tenant ID), not a deleted
///   tenant, not records without their tenantSync.
/// - A tenant's sessions, every app; none of the same tenant ID under another instance.
/// - The codes whose record names the order, by code; not another order's (one whose ID starts
///   with this one's included), nor a code with no order known.
pub async fn instance_accounts_contract<D, S, L>(
    directory: Arc<D>,
    sessions: Arc<S>,
    licenses: Arc<L>,
) where
    D: TenantDirectory + KitTenants + ?Sized,
    S: SessionStore + ?Sized,
    L: LicenseStore + OrderLicenses + ?Sized,
{
    use super::directory::{sample_app, sample_department, sample_tenant, sample_user};
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let at = t0();
    let instance = format!("i#{tag}%");
    let key = |instance: &str, tenant: &str| TenantKey::new(instance, tenant);
    let (t1, t2) = (
        key(&instance, &format!("t1#{tag}")),
        key(&instance, &format!("t2%{tag}")),
    );
    let deleted = key(&instance, &format!("t3-{tag}"));
    let no_tenant_sync = key(&instance, &format!("t4-{tag}"));
    let longer_instance = key(&format!("{instance}#t1"), &format!("x-{tag}"));
    let same_tenant_elsewhere = key(&format!("other-{tag}"), &t1.tenant_id);
    let apply = |k: &TenantKey, change: DirectoryChange| {
        let (directory, k) = (directory.clone(), k.clone());
        async move { directory.apply(&k, &change, at).await.expect("apply") }
    };
    for k in [&t1, &t2, &deleted, &longer_instance, &same_tenant_elsewhere] {
        apply(k, DirectoryChange::PutTenant(sample_tenant("租户", at))).await;
    }
    for app in ["a2", "a1"] {
        apply(&t1, DirectoryChange::PutApp(sample_app(app, at))).await;
    }
    apply(
        &t1,
        DirectoryChange::PutUsers {
            app_id: "a1".into(),
            users: vec![sample_user("a1", "zoe", at), sample_user("a1", "amy", at)],
        },
    )
    .await;
    apply(
        &t1,
        DirectoryChange::PutUsers {
            app_id: "a0-not-synced".into(),
            users: vec![sample_user("a0-not-synced", "bob", at)],
        },
    )
    .await;
    apply(
        &t1,
        DirectoryChange::RevokeUsers {
            app_id: "a1".into(),
            user_names: vec!["zoe".into()],
        },
    )
    .await;
    apply(
        &t1,
        DirectoryChange::ReplaceDepartments(vec![
            sample_department("D2", Some("D1")),
            sample_department("D1", None),
        ]),
    )
    .await;
    apply(&deleted, DirectoryChange::DeleteTenant).await;
    apply(
        &no_tenant_sync,
        DirectoryChange::PutApp(sample_app("a1", at)),
    )
    .await;
    apply(
        &same_tenant_elsewhere,
        DirectoryChange::PutApp(sample_app("a-elsewhere", at)),
    )
    .await;

    let found = KitTenants::kit_tenants(directory.as_ref(), &instance)
        .await
        .expect("kit tenants");
    let mut zoe = sample_user("a1", "zoe", at);
    zoe.revoked = true;
    let expected = vec![
        KitTenant {
            key: t1.clone(),
            tenant: sample_tenant("租户", at),
            apps: vec![sample_app("a1", at), sample_app("a2", at)],
            users: vec![
                sample_user("a0-not-synced", "bob", at),
                sample_user("a1", "amy", at),
                zoe,
            ],
            departments: vec![
                sample_department("D1", None),
                sample_department("D2", Some("D1")),
            ],
        },
        KitTenant {
            key: t2.clone(),
            tenant: sample_tenant("租户", at),
            apps: vec![],
            users: vec![],
            departments: vec![],
        },
    ];
    assert_eq!(
        found, expected,
        "the instance's tenants, each whole, by tenant ID"
    );
    assert_eq!(
        KitTenants::kit_tenants(directory.as_ref(), &format!("none-{tag}"))
            .await
            .expect("none"),
        []
    );

    // Sessions: a tenant's, every app; not the same tenant ID's under another instance.
    let mine = [
        super::sso::sample_session(&t1, "a1", "amy"),
        super::sso::sample_session(&t1, "a2", "amy"),
    ];
    let theirs = super::sso::sample_session(&same_tenant_elsewhere, "a1", "amy");
    let t2s = super::sso::sample_session(&t2, "a1", "amy");
    for s in mine.iter().chain([&theirs, &t2s]) {
        sessions.create_session(s).await.expect("create session");
    }
    let mut got = SsoSessions::tenant_sessions(sessions.as_ref(), &t1)
        .await
        .expect("sessions");
    got.sort_by(|a, b| a.sid.cmp(&b.sid));
    let mut want = mine.to_vec();
    want.sort_by(|a, b| a.sid.cmp(&b.sid));
    assert_eq!(got, want, "the tenant's sessions, every app, no other's");
    assert_eq!(
        SsoSessions::tenant_sessions(sessions.as_ref(), &deleted)
            .await
            .expect("none"),
        []
    );

    // License codes of an order.
    let order = format!("CS{tag}");
    let put = |code: &str, order_id: Option<String>| {
        let licenses = licenses.clone();
        let mut l = License::new(
            LicenseCode::parse(code).expect("code"),
            Origin::Marketplace,
            false,
            at,
        );
        l.order_id = order_id;
        l.version = 1;
        async move {
            licenses.put(&l).await.expect("put license");
            l
        }
    };
    let second = put(&format!("PL{tag}B"), Some(order.clone())).await;
    let first = put(&format!("PL{tag}A%#"), Some(order.clone())).await;
    put(&format!("PL{tag}C"), Some(format!("{order}1"))).await;
    put(&format!("PL{tag}D"), None).await;
    let codes = OrderLicenses::licenses_of_order(licenses.as_ref(), &order)
        .await
        .expect("licenses of order");
    assert_eq!(codes, [first, second], "the order's codes, by code");
    assert_eq!(
        OrderLicenses::licenses_of_order(licenses.as_ref(), &format!("CS-none-{tag}"))
            .await
            .expect("none"),
        []
    );
}
