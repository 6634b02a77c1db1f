//! Settling a batch of queue messages, for any queue that delivers them (the SQS event source on
//! AWS, a polling loop on the emulator).

use koogallery::{error::QueueError, ports::Job};

use crate::{Disposition, JobDelivery, Worker};

/// What the worker does to a message besides acking it: hide it for a backoff, or move it to the DLQ.
#[async_trait::async_trait]
pub trait Settle: Send + Sync {
    async fn retry_after(
        &self,
        receipt_handle: &str,
        delay: std::time::Duration,
    ) -> Result<(), QueueError>;
    async fn dead_letter(&self, body: &str) -> Result<(), QueueError>;
}

/// One received message, as the Lambda event source or a polling loop delivers it.
#[derive(Debug, Clone)]
pub struct Message {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// `ApproximateReceiveCount`.
    pub attempt: u32,
}

/// Processes a batch and returns the IDs of the messages to leave on the queue (SQS partial batch
/// failure). A retryable failure hides its message for the backoff and stays; a permanent one, a
/// last attempt or an unreadable body goes to the DLQ explicitly and is acked, so nothing waits
/// for redrive counts. If the DLQ cannot be reached the message stays and SQS's own redrive policy
/// moves it there after `maxReceiveCount`: never lost.
pub async fn process_batch(
    worker: &Worker,
    settle: &dyn Settle,
    messages: Vec<Message>,
) -> Vec<String> {
    // The messages of a batch (≤ 10) run concurrently, so one slow webhook does not hold up the rest
    // and the function's timeout stays that of a single job.
    let settled =
        futures_util::future::join_all(messages.into_iter().map(|m| settle_one(worker, settle, m)))
            .await;
    settled.into_iter().flatten().collect()
}

/// Processes one message; `Some(message_id)` when it must stay on the queue.
async fn settle_one(worker: &Worker, settle: &dyn Settle, m: Message) -> Option<String> {
    let job: Job = match serde_json::from_str(&m.body) {
        Ok(job) => job,
        Err(e) => {
            tracing::error!(message_id = %m.message_id, error = %e, "unreadable job; dead-lettering");
            return settle
                .dead_letter(&m.body)
                .await
                .is_err()
                .then_some(m.message_id);
        }
    };
    let delivery = JobDelivery {
        job,
        attempt: m.attempt.max(1),
        delivery_id: m.message_id.clone(),
    };
    let result = worker.process(&delivery).await;
    match worker.disposition(&delivery, &result) {
        Disposition::Ack => None,
        Disposition::RetryAfter(delay) => {
            if let Err(e) = settle.retry_after(&m.receipt_handle, delay).await {
                tracing::warn!(error = %e, "could not set the retry delay; the queue's visibility timeout applies");
            }
            Some(m.message_id)
        }
        Disposition::DeadLetter(reason) => {
            tracing::error!(job = ?delivery.job, attempts = delivery.attempt, reason, "job dead-lettered");
            match settle.dead_letter(&m.body).await {
                Ok(()) => None,
                Err(e) => {
                    tracing::error!(error = %e, "DLQ unreachable; leaving the job for the redrive policy");
                    Some(m.message_id)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
