//! The job queue on SQS. [`SqsQueue`] implements the producer port ([`JobQueue`]: one
//! `SendMessage` per job, body = the [`Job`] JSON). On AWS the Lambda event source receives and
//! deletes; the consumer helpers here serve a local polling loop, the tests, and explicit
//! dead-lettering ([`SqsQueue::send_dead_letter`]: the body unchanged, the reason as a message
//! attribute; the worker's [`SqsConsumer`] adds the deliveries made, in `attempts`). [`SqsDeadLetters`] is the operator's
//! [`DeadLetters`](koogallery::operator::DeadLetters) port on the dead-letter queue.

use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::{
    Client,
    error::SdkError,
    types::{Message, MessageAttributeValue, MessageSystemAttributeName},
};
use koogallery::failure::Detail;
use koogallery::jobs::{
    Job, JobQueue, QueueError,
    consume::{QueueMessage, Receive, Settle},
};

use crate::whole_secs;

mod dead_letters;

pub use dead_letters::SqsDeadLetters;

/// The message attribute a dead letter carries its reason in ([`SqsQueue::send_dead_letter`]).
pub const REASON_ATTRIBUTE: &str = "reason";

/// The message attribute a dead letter the worker sent carries its delivery count in (a number:
/// the `ApproximateReceiveCount` of the delivery that gave up), which [`SqsDeadLetters`] reports.
pub const ATTEMPTS_ATTRIBUTE: &str = "attempts";

/// The longest reason a dead letter carries; longer ones are cut.
pub const MAX_REASON_CHARS: usize = 1024;

/// SQS caps: messages per receive, long-poll wait, visibility timeout (seconds).
const MAX_MESSAGES: i32 = 10;
const MAX_WAIT_SECS: i32 = 20;
const MAX_VISIBILITY_SECS: i32 = 43_200;

/// A job queue on SQS; cheap to clone.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
}

/// An SQS call that failed: worth retrying. Names the operation and keeps the SDK error as the
/// source.
fn failure<E, R>(op: &str, err: SdkError<E, R>) -> QueueError
where
    SdkError<E, R>: std::error::Error + Send + Sync + 'static,
{
    QueueError::Unavailable(Detail::caused_by(format!("SQS {op} failed"), err))
}

/// A received SDK message as the worker's [`QueueMessage`]; `None` without a receipt handle (nothing
/// could be done with it).
pub(crate) fn from_sdk(message: &Message) -> Option<QueueMessage> {
    let receipt = message.receipt_handle()?;
    let count = message
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount));
    Some(QueueMessage::new(
        message.message_id().unwrap_or_default(),
        receipt,
        message.body().unwrap_or_default(),
        count.map(String::as_str),
    ))
}

/// The Lambda SQS event source's records as the worker's [`QueueMessage`]s: the same mapping as
/// [`from_sdk`], for the other way SQS hands over messages.
pub fn from_lambda_event(event: SqsEvent) -> Vec<QueueMessage> {
    event
        .records
        .into_iter()
        .map(|m| {
            QueueMessage::new(
                m.message_id.unwrap_or_default(),
                m.receipt_handle.unwrap_or_default(),
                m.body.unwrap_or_default(),
                m.attributes
                    .get("ApproximateReceiveCount")
                    .map(String::as_str),
            )
        })
        .collect()
}

/// The answer to the Lambda SQS event source with partial batch failures
/// (`ReportBatchItemFailures`): the messages to leave on the queue; the rest are deleted.
pub fn batch_response(keep: Vec<String>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = keep
        .into_iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    response
}

impl SqsQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    /// The queue's URL.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Receives up to `max` messages (1–10), long-polling up to `wait` (at most 20 s) and hiding
    /// each received message for `visibility` (whole seconds, rounded up).
    pub async fn receive(
        &self,
        max: i32,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<QueueMessage>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max.clamp(1, MAX_MESSAGES))
            .wait_time_seconds(whole_secs(wait, MAX_WAIT_SECS))
            .visibility_timeout(whole_secs(visibility, MAX_VISIBILITY_SECS))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| failure(&format!("ReceiveMessage from {}", self.queue_url), e))?;
        Ok(out
            .messages()
            .iter()
            .filter_map(|m| {
                let d = from_sdk(m);
                if d.is_none() {
                    tracing::warn!(message_id = ?m.message_id(), "SQS message without a receipt handle skipped");
                }
                d
            })
            .collect())
    }

    /// Acknowledges a message: it will not be delivered again.
    pub async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(|e| failure(&format!("DeleteMessage on {}", self.queue_url), e))?;
        Ok(())
    }

    /// Hides a received message for `delay` from now (whole seconds, rounded up; zero makes it
    /// visible again at once): the retry backoff.
    pub async fn change_visibility(
        &self,
        receipt_handle: &str,
        delay: Duration,
    ) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(whole_secs(delay, MAX_VISIBILITY_SECS))
            .send()
            .await
            .map_err(|e| failure(&format!("ChangeMessageVisibility on {}", self.queue_url), e))?;
        Ok(())
    }

    /// Sends `body` as-is to another queue, e.g. a poison or permanently failed job to the DLQ.
    pub async fn send_raw(&self, queue_url: &str, body: &str) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| failure(&format!("SendMessage to {queue_url}"), e))?;
        Ok(())
    }

    /// Sends `body` as-is to a dead-letter queue with why it is there: the message attribute
    /// [`REASON_ATTRIBUTE`] (a string, cut to [`MAX_REASON_CHARS`] characters), which the SQS
    /// console and `aws sqs receive-message --message-attribute-names reason` show.
    pub async fn send_dead_letter(
        &self,
        queue_url: &str,
        body: &str,
        reason: &str,
    ) -> Result<(), QueueError> {
        self.send_dead_letter_after(queue_url, body, reason, None)
            .await
    }

    /// [`Self::send_dead_letter`], with the deliveries made so far in [`ATTEMPTS_ATTRIBUTE`]
    /// when known.
    pub async fn send_dead_letter_after(
        &self,
        queue_url: &str,
        body: &str,
        reason: &str,
        attempts: Option<u32>,
    ) -> Result<(), QueueError> {
        let reason: String = reason.trim().chars().take(MAX_REASON_CHARS).collect();
        let reason = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(if reason.is_empty() {
                "unspecified".to_owned()
            } else {
                reason
            })
            .build()
            .map_err(|e| {
                QueueError::Corrupt(Detail::caused_by("cannot build the reason attribute", e))
            })?;
        let mut send = self
            .client
            .send_message()
            .queue_url(queue_url)
            .message_body(body)
            .message_attributes(REASON_ATTRIBUTE, reason);
        if let Some(attempts) = attempts {
            let attempts = MessageAttributeValue::builder()
                .data_type("Number")
                .string_value(attempts.to_string())
                .build()
                .map_err(|e| {
                    QueueError::Corrupt(Detail::caused_by("cannot build the attempts attribute", e))
                })?;
            send = send.message_attributes(ATTEMPTS_ATTRIBUTE, attempts);
        }
        send.send()
            .await
            .map_err(|e| failure(&format!("SendMessage (dead letter) to {queue_url}"), e))?;
        Ok(())
    }
}

#[async_trait]
impl JobQueue for SqsQueue {
    async fn enqueue(&self, job: &Job) -> Result<(), QueueError> {
        let body = serde_json::to_string(job)
            .map_err(|e| QueueError::Corrupt(Detail::caused_by("cannot encode job", e)))?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| {
                failure(
                    &format!(
                        "SendMessage (job for {}) to {}",
                        job.subject(),
                        self.queue_url
                    ),
                    e,
                )
            })?;
        Ok(())
    }
}

/// The jobs queue as a consumer settles it: on the Lambda event source an ack is leaving the message
/// out of the batch failures (Lambda deletes it), on a poller it is a delete.
#[derive(Debug, Clone)]
pub struct SqsConsumer {
    pub queue: SqsQueue,
    pub dlq_url: String,
    /// True for a poller (`make run-aws-local`); false under the Lambda event source.
    pub delete_on_ack: bool,
}

#[async_trait]
impl Settle for SqsConsumer {
    async fn ack(&self, message: &QueueMessage) -> Result<(), QueueError> {
        if self.delete_on_ack {
            self.queue.delete(&message.receipt).await?;
        }
        Ok(())
    }

    async fn retry_after(&self, message: &QueueMessage, delay: Duration) -> Result<(), QueueError> {
        self.queue.change_visibility(&message.receipt, delay).await
    }

    async fn dead_letter(&self, message: &QueueMessage, reason: &str) -> Result<(), QueueError> {
        self.queue
            .send_dead_letter_after(&self.dlq_url, &message.body, reason, Some(message.attempt))
            .await?;
        self.ack(message).await
    }
}

#[async_trait]
impl JobQueue for SqsConsumer {
    async fn enqueue(&self, job: &Job) -> Result<(), QueueError> {
        self.queue.enqueue(job).await
    }
}

/// How long one poll waits for a message.
const POLL_WAIT: Duration = Duration::from_secs(1);

#[async_trait]
impl Receive for SqsConsumer {
    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<QueueMessage>, QueueError> {
        let max = i32::try_from(max).unwrap_or(MAX_MESSAGES);
        self.queue.receive(max, POLL_WAIT, visibility).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_messages_and_lambda_records_map_alike() {
        let body = serde_json::to_string(&Job::Notify {
            instance_id: "i-1".into(),
            seq: 4,
        })
        .unwrap();
        assert_eq!(body, r#"{"type":"notify","instance_id":"i-1","seq":4}"#);
        let m = Message::builder()
            .message_id("m-1")
            .receipt_handle("rh")
            .body(&body)
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "3")
            .build();
        let d = from_sdk(&m).unwrap();
        assert_eq!(d, QueueMessage::new("m-1", "rh", body.clone(), Some("3")));
        assert_eq!(d.attempt, 3);

        let event: SqsEvent = serde_json::from_value(serde_json::json!({"Records": [{
            "messageId": "m-1", "receiptHandle": "rh", "body": body,
            "attributes": {"ApproximateReceiveCount": "3"}, "messageAttributes": {},
            "eventSource": "aws:sqs"
        }]}))
        .unwrap();
        assert_eq!(from_lambda_event(event), vec![d]);

        let poison = Message::builder()
            .receipt_handle("rh")
            .body("{oops")
            .build();
        let d = from_sdk(&poison).unwrap();
        assert_eq!(d.attempt, 1, "a missing count reads as the first delivery");
        assert_eq!(d.body, "{oops", "the raw body, for the DLQ");
        assert!(from_sdk(&Message::builder().body(&body).build()).is_none());
    }
}
