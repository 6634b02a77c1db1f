//! The one settlement loop, for every queue that delivers jobs: the SQS event source on Lambda
//! ([`settle_batch`] on each event), and the pollers of the local host ([`poll`] over the embedded
//! queue for `make run`, over SQS for `make run-aws-local`). Each queue maps its messages once to
//! a [`QueueMessage`] and settles them through its [`Settle`] implementation.

use std::time::Duration;

use koogallery::jobs::{
    Job,
    consume::{self, Disposition, QueueMessage, Receive, Settle},
};
use tokio::sync::watch;

use crate::{JobDelivery, Worker};

/// Processes a batch and returns the IDs of the messages to leave on the queue (SQS partial batch
/// failure). A retryable failure hides its message for the backoff and stays; a permanent one, a
/// last attempt or an unreadable body goes to the DLQ explicitly and is acked, so nothing waits
/// for redrive counts. If the DLQ cannot be reached the message stays and the queue's own redrive
/// policy moves it there after `maxReceiveCount`: never lost.
pub async fn settle_batch(
    worker: &Worker,
    settle: &dyn Settle,
    messages: Vec<QueueMessage>,
) -> Vec<String> {
    // The messages of a batch (≤ 10) run concurrently, so one slow webhook does not hold up the rest
    // and the function's timeout stays that of a single job.
    let settled =
        futures_util::future::join_all(messages.into_iter().map(|m| settle_one(worker, settle, m)))
            .await;
    settled.into_iter().flatten().collect()
}

/// Processes one message; `Some(message_id)` when it must stay on the queue.
async fn settle_one(worker: &Worker, settle: &dyn Settle, m: QueueMessage) -> Option<String> {
    let job: Job = match serde_json::from_str(&m.body) {
        Ok(job) => job,
        Err(e) => {
            tracing::error!(message_id = %m.message_id, error = %e, "unreadable job; dead-lettering");
            let reason = format!("unreadable job: {e}");
            return consume::settle(settle, &m, Disposition::DeadLetter(reason)).await;
        }
    };
    let delivery = JobDelivery {
        job,
        attempt: m.attempt,
        delivery_id: m.message_id.clone(),
    };
    let result = worker.process(&delivery).await;
    let disposition = worker.disposition(&delivery, &result);
    if let Disposition::DeadLetter(reason) = &disposition {
        tracing::error!(job = ?delivery.job, attempts = delivery.attempt, reason, "job dead-lettered");
    }
    consume::settle(settle, &m, disposition).await
}

/// Messages taken per receive: SQS's maximum batch.
const BATCH: usize = 10;

/// How long a received job stays hidden from other receivers: longer than one delivery can take
/// (which the settings bound by the claim), so a crashed delivery's job returns soon after its
/// claim expires.
pub fn visibility(worker: &Worker) -> Duration {
    worker.config.claim_duration + Duration::from_secs(10)
}

/// Receives and settles jobs until `stopped` says so (the local host's worker, on either backend).
/// A receive is never abandoned half-way (the embedded queue's runs on a blocking thread that would
/// keep the database open after shutdown); each one waits at most about a second, which bounds how
/// long a stop takes.
pub async fn poll(worker: &Worker, queue: &dyn Receive, mut stopped: watch::Receiver<bool>) {
    let visibility = visibility(worker);
    while !*stopped.borrow() {
        match queue.receive(BATCH, visibility).await {
            Ok(messages) if messages.is_empty() => {}
            Ok(messages) => {
                settle_batch(worker, queue, messages).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot receive jobs; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stopped.changed() => return,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
