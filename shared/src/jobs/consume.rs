//! The consumer side of the job queue, shared by every queue that delivers jobs: the SQS event
//! source on Lambda, the SQS poller of `make run-aws-local`, and the embedded queue of `make run`.
//! Each maps its messages to a [`QueueMessage`] once and settles them through [`Settle`]; the
//! worker's one settlement loop (`provision_worker::consume`) decides ack, retry or dead letter.

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
