//! The job queue on SQS. [`SqsQueue`] implements the producer port ([`JobQueue`]: one
//! `SendMessage` per job, body = the [`Job`] JSON). On AWS the Lambda event source receives and
//! deletes; the consumer helpers here serve a local polling loop, the tests, and explicit
//! dead-lettering ([`SqsQueue::send_raw`] to the DLQ).

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::{
    Client,
    error::{DisplayErrorContext, SdkError},
    types::{Message, MessageSystemAttributeName},
};
use koogallery::{
    error::QueueError,
    ports::{Job, JobQueue},
};

use crate::whole_secs;

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

/// One received message.
#[derive(Debug, Clone)]
pub struct SqsDelivery {
    pub message_id: String,
    /// Needed to delete the message or change its visibility.
    pub receipt_handle: String,
    /// The message body exactly as received, for settling it unchanged.
    pub body: String,
    /// The decoded job, or — for a body that is not a job (a poison message) — the raw body,
    /// unchanged so it can be moved to the DLQ as it came ([`SqsQueue::send_raw`]). Why it does
    /// not decode is logged at receive time.
    pub job: Result<Job, String>,
    /// How many times SQS has delivered the message (`ApproximateReceiveCount`), this one included.
    pub attempt: u32,
}

fn failure<E, R>(op: &str, err: &SdkError<E, R>) -> QueueError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    QueueError(format!("SQS {op} failed: {}", DisplayErrorContext(err)))
}

/// The job in a message body, or why it is not one.
pub(crate) fn decode_job(body: &str) -> Result<Job, serde_json::Error> {
    serde_json::from_str(body)
}

/// A delivery from an SQS message; `None` without a receipt handle (nothing could be done with it).
pub(crate) fn delivery(message: &Message) -> Option<SqsDelivery> {
    let receipt_handle = message.receipt_handle()?.to_owned();
    let attempt = message
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|c| c.parse().ok())
        .unwrap_or(1);
    let message_id = message.message_id().unwrap_or_default().to_owned();
    let body = message.body().unwrap_or_default();
    let job = decode_job(body).map_err(|e| {
        tracing::warn!(%message_id, attempt, error = %e, "SQS message body is not a job");
        body.to_owned()
    });
    Some(SqsDelivery {
        message_id,
        receipt_handle,
        body: body.to_owned(),
        job,
        attempt,
    })
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
    ) -> Result<Vec<SqsDelivery>, QueueError> {
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
            .map_err(|e| failure(&format!("ReceiveMessage from {}", self.queue_url), &e))?;
        Ok(out
            .messages()
            .iter()
            .filter_map(|m| {
                let d = delivery(m);
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
            .map_err(|e| failure(&format!("DeleteMessage on {}", self.queue_url), &e))?;
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
            .map_err(|e| {
                failure(
                    &format!("ChangeMessageVisibility on {}", self.queue_url),
                    &e,
                )
            })?;
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
            .map_err(|e| failure(&format!("SendMessage to {queue_url}"), &e))?;
        Ok(())
    }
}

#[async_trait]
impl JobQueue for SqsQueue {
    async fn enqueue(&self, job: &Job) -> Result<(), QueueError> {
        let body = serde_json::to_string(job)
            .map_err(|e| QueueError(format!("cannot encode job: {e}")))?;
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
                        job.instance_id(),
                        self.queue_url
                    ),
                    &e,
                )
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_decode_jobs_and_receive_counts() {
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
        let d = delivery(&m).unwrap();
        assert_eq!(d.message_id, "m-1");
        assert_eq!(d.receipt_handle, "rh");
        assert_eq!(d.attempt, 3);
        assert_eq!(
            d.job,
            Ok(Job::Notify {
                instance_id: "i-1".into(),
                seq: 4
            })
        );

        let poison = Message::builder()
            .receipt_handle("rh")
            .body("{oops")
            .build();
        let d = delivery(&poison).unwrap();
        assert_eq!(d.attempt, 1, "a missing count reads as the first delivery");
        assert_eq!(d.job, Err("{oops".to_owned()), "the raw body, for the DLQ");
        assert!(delivery(&Message::builder().body(&body).build()).is_none());
    }
}
