//! The consumer side of the job queue, shared by every queue that delivers jobs: the SQS event
//! source on Lambda, the SQS poller of `make run-aws-local`, and the embedded queue of `make run`.
//! Each maps its messages to a [`QueueMessage`] once and settles them through [`Settle`]; the
//! consumer decides a [`Disposition`] and [`settle`] applies it, the same for every consumer.

use std::time::Duration;

use async_trait::async_trait;

use super::QueueError;

/// One received message, whichever queue delivered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    /// Stable across redeliveries (SQS `MessageId`, the embedded queue's id).
    pub message_id: String,
    /// What settles this delivery (SQS receipt handle, the embedded queue's id).
    pub receipt: String,
    /// The body exactly as received: a dead letter keeps it unchanged.
    pub body: String,
    /// 1-based receive count (SQS `ApproximateReceiveCount`, the embedded queue's own count).
    pub attempt: u32,
}

impl QueueMessage {
    /// The one mapping from a queue's raw fields: a missing or unreadable receive count is the
    /// first delivery.
    pub fn new(
        message_id: impl Into<String>,
        receipt: impl Into<String>,
        body: impl Into<String>,
        receive_count: Option<&str>,
    ) -> Self {
        Self {
            message_id: message_id.into(),
            receipt: receipt.into(),
            body: body.into(),
            attempt: receive_count
                .and_then(|c| c.trim().parse().ok())
                .unwrap_or(1)
                .max(1),
        }
    }
}

/// What a consumer does with a message once the worker has decided.
#[async_trait]
pub trait Settle: Send + Sync {
    /// Done: remove it (on the Lambda event source, leaving it out of the batch failures does).
    async fn ack(&self, message: &QueueMessage) -> Result<(), QueueError>;
    /// Hide it for `delay`, then deliver it again.
    async fn retry_after(&self, message: &QueueMessage, delay: Duration) -> Result<(), QueueError>;
    /// Move it to the dead-letter queue, body unchanged, and remove it from the queue.
    async fn dead_letter(&self, message: &QueueMessage, reason: &str) -> Result<(), QueueError>;
}

/// What the queue should do with a delivered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Done: remove it.
    Ack,
    /// Not now: deliver it again after the delay.
    RetryAfter(Duration),
    /// Never: to the dead-letter queue, with this reason.
    DeadLetter(String),
}

/// Applies `disposition` to `message` through `settle`, the one way every consumer (the worker,
/// the usage queue) settles a message. `Some(message_id)` when the message must stay on the queue
/// (an SQS partial batch failure): a retry; an ack that failed (it is delivered again, and
/// applied once); a dead letter that could not be sent (the queue's redrive policy moves it
/// after `maxReceiveCount`). Never lost.
pub async fn settle(
    settle: &dyn Settle,
    message: &QueueMessage,
    disposition: Disposition,
) -> Option<String> {
    let id = &message.message_id;
    match disposition {
        Disposition::Ack => match settle.ack(message).await {
            Ok(()) => None,
            Err(e) => {
                tracing::warn!(message_id = %id, error = %e, "could not acknowledge a settled message; it will be delivered again");
                Some(id.clone())
            }
        },
        Disposition::RetryAfter(delay) => {
            if let Err(e) = settle.retry_after(message, delay).await {
                tracing::warn!(message_id = %id, error = %e, "could not set the retry delay; the queue's visibility timeout applies");
            }
            Some(id.clone())
        }
        Disposition::DeadLetter(reason) => match settle.dead_letter(message, &reason).await {
            Ok(()) => None,
            Err(e) => {
                tracing::error!(message_id = %id, error = %e, "could not dead-letter the message (sending it or removing it failed); leaving it for the redrive policy");
                Some(id.clone())
            }
        },
    }
}

/// A queue a host polls (the Lambda event source polls SQS by itself).
#[async_trait]
pub trait Receive: Settle {
    /// Up to `max` messages, each hidden from other receivers for `visibility`; waits a little
    /// (long poll, or until woken) when none is ready.
    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<QueueMessage>, QueueError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receive_counts_are_read_leniently() {
        assert_eq!(QueueMessage::new("m", "r", "{}", Some("3")).attempt, 3);
        assert_eq!(QueueMessage::new("m", "r", "{}", Some("x")).attempt, 1);
        assert_eq!(QueueMessage::new("m", "r", "{}", Some("0")).attempt, 1);
        assert_eq!(QueueMessage::new("m", "r", "{}", None).attempt, 1);
    }
}
