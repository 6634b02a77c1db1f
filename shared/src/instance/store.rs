//! The instance store port (instances, their order-line idempotency records and their history) and
//! [`mutate`], the compare-and-set loop every change goes through (Decisions §6).

use async_trait::async_trait;

use super::{DomainError, Instance, InstanceEvent, Outcome};
use crate::storage::StoreError;

/// Result of the conditional create keyed by (`orderId`, `orderLineId`).
#[derive(Debug, Clone, PartialEq)]
pub enum CreateOutcome {
    /// This call created the record (and its first event).
    Created,
    /// The order line was already recorded; here is its instance, whatever this call's `businessId`.
    Existing(Box<Instance>),
    /// The instance ID is already another order line's (a `businessId` reused): nothing was
    /// written. Decisions §6: the caller derives another ID rather than failing the order.
    InstanceIdTaken,
}

/// Instances, their order-line idempotency records and their event history.
#[async_trait]
pub trait InstanceStore: Send + Sync {
    /// Atomically records the order line and creates the instance with its first events, unless the
    /// order line exists already or the instance ID is taken (then nothing is written). Exactly one of any number of concurrent callers gets `Created`.
    async fn create_for_order_line(
        &self,
        instance: &Instance,
        events: &[InstanceEvent],
    ) -> Result<CreateOutcome, StoreError>;

    async fn get(&self, instance_id: &str) -> Result<Option<Instance>, StoreError>;

    /// Reads several instances at once (queryInstance takes up to 100); unknown IDs are left out.
    async fn get_many(&self, instance_ids: &[&str]) -> Result<Vec<Instance>, StoreError>;

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

/// Loads an instance, applies `change`, and saves record and event together with a compare-and-set,
/// retrying from a fresh read when another writer got there first.
pub async fn mutate<F>(
    store: &dyn InstanceStore,
    instance_id: &str,
    mut change: F,
) -> Result<(Instance, Outcome), DomainError>
where
    F: FnMut(&mut Instance) -> Result<Outcome, DomainError> + Send,
{
    const ATTEMPTS: usize = 8;
    for _ in 0..ATTEMPTS {
        let Some(mut inst) = store.get(instance_id).await? else {
            return Err(DomainError::NotFound(instance_id.to_owned()));
        };
        let expected = inst.version;
        let outcome = change(&mut inst)?;
        let events: &[InstanceEvent] = match &outcome {
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
