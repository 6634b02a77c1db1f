//! The operator's ports in memory ([`MemoryDeadLetters`]) and their contracts: every adapter of
//! [`InstanceListing`] and [`DeadLetters`] passes them.

use std::{collections::BTreeMap, sync::Arc, sync::Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{
    instance::{Instance, InstanceState, InstanceStore},
    jobs::{Job, QueueError},
    operator::{DeadLetter, DeadLetters, InstanceFilter, InstanceListing},
    order::{OrderDetails, OrderId, OrderLineId},
};

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
    assert!(seeded.len() >= 2, "seed two dead letters at least");
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
}
