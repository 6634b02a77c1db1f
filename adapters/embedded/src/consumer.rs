//! The consumer side of the embedded job queue ([`Settle`], [`Receive`]): what the local host's
//! worker polls, settled exactly as SQS messages are.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use koogallery::{
    clock::Clock,
    failure::Detail,
    jobs::{
        Job, JobQueue, QueueError,
        consume::{QueueMessage, Receive, Settle},
    },
};

use crate::EmbeddedQueue;

/// The embedded queue as a host's worker consumes it: enqueues wake the worker at once, and the
/// worker receives and settles through the same [`Settle`] port as SQS. redb commits fsync, so every
/// call runs off the async threads.
#[derive(Clone)]
pub struct EmbeddedConsumer {
    queue: EmbeddedQueue,
    clock: Arc<dyn Clock>,
}

impl EmbeddedConsumer {
    /// `clock` stamps retries and dead letters; use the queue's own clock.
    pub fn new(queue: EmbeddedQueue, clock: Arc<dyn Clock>) -> Self {
        Self {
            queue: queue.with_clock(clock.clone()),
            clock,
        }
    }
}

/// How long an idle worker waits before looking again (a retry falling due wakes nobody).
const IDLE_POLL: Duration = Duration::from_millis(500);

fn message_id(m: &QueueMessage) -> Result<u64, QueueError> {
    m.receipt.parse().map_err(|_| {
        QueueError::Corrupt(format!("not an embedded queue receipt: {}", m.receipt).into())
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, QueueError> + Send + 'static,
) -> Result<T, QueueError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(QueueError::Unavailable(Detail::caused_by(
            "queue task failed",
            e,
        )))
    })
}

#[async_trait]
impl JobQueue for EmbeddedConsumer {
    async fn enqueue(&self, job: &Job) -> Result<(), QueueError> {
        // The queue wakes the worker (so does a job queued with its instance).
        self.queue.enqueue(job).await
    }
}

#[async_trait]
impl Settle for EmbeddedConsumer {
    async fn ack(&self, m: &QueueMessage) -> Result<(), QueueError> {
        let (q, id) = (self.queue.clone(), message_id(m)?);
        blocking(move || q.ack(id)).await
    }

    async fn retry_after(&self, m: &QueueMessage, delay: Duration) -> Result<(), QueueError> {
        let (q, id, now) = (self.queue.clone(), message_id(m)?, self.clock.now());
        blocking(move || q.retry_later(id, now, delay)).await
    }

    async fn dead_letter(&self, m: &QueueMessage, reason: &str) -> Result<(), QueueError> {
        let (q, id, now, reason) = (
            self.queue.clone(),
            message_id(m)?,
            self.clock.now(),
            reason.to_owned(),
        );
        blocking(move || q.dead_letter(id, &reason, now)).await
    }
}

#[async_trait]
impl Receive for EmbeddedConsumer {
    async fn receive(
        &self,
        _max: usize,
        visibility: Duration,
    ) -> Result<Vec<QueueMessage>, QueueError> {
        let (q, now) = (self.queue.clone(), self.clock.now());
        match blocking(move || q.receive(now, visibility)).await? {
            Some(d) => {
                let body = serde_json::to_string(&d.job)
                    .map_err(|e| QueueError::Corrupt(Detail::caused_by("cannot encode job", e)))?;
                Ok(vec![QueueMessage::new(
                    format!("embedded-{}", d.id),
                    d.id.to_string(),
                    body,
                    Some(&d.attempt.to_string()),
                )])
            }
            None => {
                // Sleep until woken by an enqueue, or a retry falls due.
                tokio::select! {
                    _ = self.queue.job_queued() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                }
                Ok(Vec::new())
            }
        }
    }
}
