//! The operator's ports ([`koogallery::operator`]) on the embedded file: instances listed by a
//! scan of the `instances` table (a single host's store: thousands of instances, read in one
//! snapshot), and the dead letters of the job queue, redriven or discarded by ID.

use async_trait::async_trait;
use koogallery::{
    StoreError,
    instance::Instance,
    jobs::QueueError,
    operator::{DeadLetter, DeadLetters, InstanceFilter, InstanceListing},
};
use redb::ReadableTable;

use crate::{EmbeddedQueue, EmbeddedStore, Fault, INSTANCES, JOBS_DEAD, store::decode_instance};

#[async_trait]
impl InstanceListing for EmbeddedStore {
    async fn list_instances(&self, filter: &InstanceFilter) -> Result<Vec<Instance>, StoreError> {
        let filter = filter.clone();
        Ok(self
            .blocking(move |db| {
                let read = db.begin_read()?;
                let table = read.open_table(INSTANCES)?;
                let mut found = Vec::new();
                for entry in table.iter()? {
                    let (id, bytes) = entry?;
                    let instance = decode_instance(id.value(), bytes.value())?;
                    if filter.matches(&instance) {
                        found.push(instance);
                    }
                }
                Ok(filter.select(found))
            })
            .await?)
    }
}

/// A dead letter's ID as the operator sees it: the queue's number.
fn number(id: &str) -> Option<u64> {
    id.parse().ok()
}

#[async_trait]
impl DeadLetters for EmbeddedQueue {
    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, QueueError> {
        let queue = self.clone();
        let letters = tokio::task::spawn_blocking(move || queue.dead_letters())
            .await
            .map_err(|e| QueueError::Unavailable(format!("queue task failed: {e}").into()))??;
        Ok(letters
            .into_iter()
            .map(|d| DeadLetter {
                id: d.id.to_string(),
                job: d.job,
                attempts: d.attempts,
                reason: d.reason,
                at: d.at,
            })
            .collect())
    }

    async fn redrive(&self, id: &str) -> Result<bool, QueueError> {
        let Some(id) = number(id) else {
            return Ok(false);
        };
        let queue = self.clone();
        let now = self.now();
        tokio::task::spawn_blocking(move || queue.redrive(id, now))
            .await
            .map_err(|e| QueueError::Unavailable(format!("queue task failed: {e}").into()))?
    }

    async fn discard(&self, id: &str) -> Result<bool, QueueError> {
        let Some(id) = number(id) else {
            return Ok(false);
        };
        let queue = self.clone();
        tokio::task::spawn_blocking(move || queue.discard(id))
            .await
            .map_err(|e| QueueError::Unavailable(format!("queue task failed: {e}").into()))?
    }
}

impl EmbeddedQueue {
    /// Operator action: removes dead letter `id` for good. False if there is no such entry.
    pub fn discard(&self, id: u64) -> Result<bool, QueueError> {
        let txn = self.db.begin_write()?;
        let found = {
            let mut dead = txn.open_table(JOBS_DEAD).map_err(Fault::from)?;
            dead.remove(id).map_err(Fault::from)?.is_some()
        };
        txn.commit().map_err(Fault::from)?;
        Ok(found)
    }
}
