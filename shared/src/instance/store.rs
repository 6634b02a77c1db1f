//! The instance store port (instances, their order-line idempotency records and their history) and
//! [`mutate`], the compare-and-set loop every change goes through (docs/protocol/decisions.md §6).

use async_trait::async_trait;

use std::sync::Arc;

use super::{DomainError, Instance, InstanceEvent, Outcome};
use crate::{
    jobs::{Job, JobQueue, QueueError},
    storage::StoreError,
};

/// Result of the conditional create keyed by (`orderId`, `orderLineId`).
#[derive(Debug, Clone, PartialEq)]
pub enum CreateOutcome {
    /// This call created the record (and its first event).
    Created,
    /// The order line was already recorded; here is its instance, whatever this call's
    /// `businessId`.
    Existing(Box<Instance>),
    /// The instance ID is already another order line's (a `businessId` reused): nothing was
    /// written. docs/protocol/decisions.md §6: the caller derives another ID rather than failing
    /// the order.
    InstanceIdTaken,
}

/// Instances, their order-line idempotency records and their event history.
#[async_trait]
pub trait InstanceStore: Send + Sync {
    /// Atomically records the order line and creates the instance with its first events, unless the
    /// order line exists already or the instance ID is taken (then nothing is written). Exactly one
    /// of any number of concurrent callers gets `Created`.
    async fn create_for_order_line(
        &self,
        instance: &Instance,
        events: &[InstanceEvent],
    ) -> Result<CreateOutcome, StoreError>;

    async fn get(&self, instance_id: &str) -> Result<Option<Instance>, StoreError>;

    /// Reads several instances at once (queryInstance takes up to 100); unknown IDs are left out.
    /// Shared, read-only: a store that keeps records decoded hands out its own, not copies.
    async fn get_many(&self, instance_ids: &[&str]) -> Result<Vec<Arc<Instance>>, StoreError>;

    /// Writes `instance` if the stored version is still `expected_version` (bumping it by one) and
    /// appends `events`, all or nothing. `StoreError::Conflict` when another writer was first.
    async fn save(
        &self,
        instance: &Instance,
        expected_version: u64,
        events: &[InstanceEvent],
    ) -> Result<(), StoreError>;

    /// The instance's history, oldest first.
    async fn events(&self, instance_id: &str) -> Result<Vec<InstanceEvent>, StoreError>;

    /// Every instance the worker still owes something ([`Instance::is_unsettled`]: provisioning,
    /// or notices pending), for the reconciler. Adapters index them rather than scan the table.
    async fn unsettled(&self) -> Result<Vec<Instance>, StoreError>;
}

/// newInstance's one write (docs/protocol/callbacks.md §6.1): the order line's new instance and its
/// provisioning job, as a single durable unit where the backend has one. The embedded store writes
/// both in one redb transaction (they share a file); DynamoDB and SQS cannot share a transaction,
/// so [`StoreThenQueue`] makes the conditional create, then one enqueue.
///
/// The caller marks the instance `provisioning.enqueued` before calling: the mark is written with
/// the record, so no second write follows the enqueue on KooGallery's path.
#[async_trait]
pub trait OrderLineIntake: Send + Sync {
    /// [`InstanceStore::create_for_order_line`], and on `Created` also queues `job`. On `Existing`
    /// or `InstanceIdTaken` nothing is written or queued. An error after the record was created
    /// leaves it marked not enqueued (or, if even that write fails, to the reconciler): the caller
    /// answers a retryable code and KooGallery's repeat queues the job.
    async fn create_and_enqueue(
        &self,
        instance: &Instance,
        events: &[InstanceEvent],
        job: &Job,
    ) -> Result<CreateOutcome, IntakeError>;
}

/// Why newInstance's write failed; both kinds are worth KooGallery's retry.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The record was created but its job could not be queued.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// [`OrderLineIntake`] over a store and a queue that share no transaction (DynamoDB and SQS, the
/// test bed): the conditional create, then one enqueue. If the enqueue fails, the record is marked
/// not enqueued so KooGallery's repeat queues the job; if that write fails too, the instance is
/// still unsettled and the reconciler queues it once it has been idle past its grace.
pub struct StoreThenQueue {
    pub store: Arc<dyn InstanceStore>,
    pub queue: Arc<dyn JobQueue>,
}

#[async_trait]
impl OrderLineIntake for StoreThenQueue {
    async fn create_and_enqueue(
        &self,
        instance: &Instance,
        events: &[InstanceEvent],
        job: &Job,
    ) -> Result<CreateOutcome, IntakeError> {
        let outcome = self.store.create_for_order_line(instance, events).await?;
        if outcome != CreateOutcome::Created {
            return Ok(outcome);
        }
        if let Err(e) = self.queue.enqueue(job).await {
            let id = instance.instance_id.as_str();
            let unmarked = mutate(self.store.as_ref(), id, |i| {
                if !i.provisioning.enqueued {
                    return Ok(Outcome::Unchanged);
                }
                i.provisioning.enqueued = false;
                Ok(Outcome::Quiet)
            })
            .await;
            if let Err(m) = unmarked {
                tracing::warn!(instance_id = id, error = %m, "job not queued and not marked so; the reconciler will queue it");
            }
            return Err(e.into());
        }
        Ok(outcome)
    }
}

/// Loads an instance, applies `change`, and saves record and event together with a compare-and-set,
/// retrying from a fresh read when another writer got there first.
pub async fn mutate<F>(
    store: &dyn InstanceStore,
    instance_id: &str,
    change: F,
) -> Result<(Instance, Outcome), DomainError>
where
    F: FnMut(&mut Instance) -> Result<Outcome, DomainError> + Send,
{
    apply(store, instance_id, None, change).await
}

/// [`mutate`] starting from `known`, the record as this process last read or saved it (as
/// `mutate` returns it): no read first. The save's compare-and-set still holds it to the stored
/// version, and anything but a save (no change, or the change refused) is decided again on a fresh
/// read, so the outcome is `mutate`'s; only the read of a record just saved is spared.
pub async fn mutate_from<F>(
    store: &dyn InstanceStore,
    known: Instance,
    change: F,
) -> Result<(Instance, Outcome), DomainError>
where
    F: FnMut(&mut Instance) -> Result<Outcome, DomainError> + Send,
{
    let instance_id = known.instance_id.clone();
    apply(store, &instance_id, Some(known), change).await
}

async fn apply<F>(
    store: &dyn InstanceStore,
    instance_id: &str,
    mut known: Option<Instance>,
    mut change: F,
) -> Result<(Instance, Outcome), DomainError>
where
    F: FnMut(&mut Instance) -> Result<Outcome, DomainError> + Send,
{
    const ATTEMPTS: usize = 8;
    for _ in 0..ATTEMPTS {
        let (mut inst, read) = match known.take() {
            Some(inst) => (inst, false),
            None => match store.get(instance_id).await? {
                Some(inst) => (inst, true),
                None => return Err(DomainError::NotFound(instance_id.to_owned().into())),
            },
        };
        let expected = inst.version;
        let outcome = match change(&mut inst) {
            Ok(outcome) => outcome,
            // Refused on a record not read here: it may be out of date.
            Err(_) if !read => continue,
            Err(e) => return Err(e),
        };
        let events: &[InstanceEvent] = match &outcome {
            Outcome::Unchanged if !read => continue,
            Outcome::Unchanged => return Ok((inst, outcome)),
            Outcome::Quiet => &[],
            Outcome::Changed(ev) => std::slice::from_ref(ev),
        };
        match store.save(&inst, expected, events).await {
            Ok(()) => {
                inst.version = expected + 1;
                return Ok((inst, outcome));
            }
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
}
