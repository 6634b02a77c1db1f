//! [`DeadLetters`] on the jobs' dead-letter queue: what the worker gave up on, listed, redriven
//! to the jobs queue or discarded by an operator.
//!
//! A message reaches the DLQ two ways: the worker sends it (a job that cannot succeed, or past its
//! deadline: [`SqsConsumer::dead_letter`](super::SqsConsumer), body unchanged, with the message
//! attributes `reason` and `attempts`), or the queue's redrive policy moves it after
//! `maxReceiveCount` receives (no attributes; the reason is in the worker's log). A dead letter's
//! ID is its `MessageId`.
//!
//! # Looking without taking
//!
//! SQS has no access by ID and no way to read a queue without receiving from it. So every call
//! sweeps the DLQ: `ReceiveMessage` (10 at a time, a 1 s long poll so that an empty answer means
//! empty, every system and message attribute) hiding what it receives for [`HIDE_SECS`], until a
//! receive brings no message not seen yet, or the one looked for appears, or [`MAX_RECEIVES`]
//! receives or [`MAX_LISTED`] messages; then every message seen and not taken is made visible
//! again at once (`ChangeMessageVisibilityBatch` to 0). Hiding is what lets the next receive reach
//! the messages after the first ten. A sweep costs a receive per ten dead letters: fine at
//! dead-letter volumes, where an operator looks at a few dozen. While one sweep runs, another
//! (a second operator) sees only what the first has not hidden; a sweep that dies midway leaves
//! its messages hidden for at most [`HIDE_SECS`]. Nothing else reads the DLQ.
//!
//! - [`DeadLetters::dead_letters`]: oldest first by `SentTimestamp` (then `MessageId`), deduplicated
//!   by `MessageId`. `attempts` is the worker's `attempts` attribute, else the
//!   `ApproximateReceiveCount` as received less this receive (SQS carries the jobs queue's count
//!   over when the redrive policy moves a message, and counts earlier looks at the DLQ too: an
//!   upper bound). `reason` is the worker's `reason` attribute, else `reached maxReceiveCount`.
//!   `at` is `SentTimestamp`: when the worker sent it, or, for a message the redrive policy moved,
//!   when it was first sent to the jobs queue (SQS keeps that timestamp). A body that is not a job
//!   is left out with a warning, as the embedded queue does (it stays in the DLQ).
//! - [`DeadLetters::redrive`]: the sweep until that `MessageId`, then `SendMessage` of its body and
//!   message attributes to the jobs queue (a new message: a fresh receive count, hence a fresh
//!   attempt budget), then `DeleteMessage` from the DLQ. If the delete fails after the send, the
//!   job is queued and still a dead letter: a repeat redrives it twice, which jobs, idempotent,
//!   allow.
//! - [`DeadLetters::discard`]: the same sweep, then `DeleteMessage`.
//! - [`DeadLetters::redrive_each`] (an operator's *Redrive all*, or an instance's): one sweep for
//!   them all, then each as `redrive` does, in the order asked; not a sweep each.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_sqs::{
    Client,
    types::{ChangeMessageVisibilityBatchRequestEntry, Message, MessageSystemAttributeName},
};
use chrono::{DateTime, Utc};
use koogallery::{
    jobs::{Job, QueueError},
    operator::{DeadLetter, DeadLetters, Redrives},
};

use super::{ATTEMPTS_ATTRIBUTE, MAX_MESSAGES, REASON_ATTRIBUTE, failure};

/// How long a sweep hides what it received (seconds): longer than a sweep takes.
pub const HIDE_SECS: i32 = 30;
/// The most receives of one sweep.
pub const MAX_RECEIVES: usize = 50;
/// The most messages one sweep looks at.
pub const MAX_LISTED: usize = 1000;
/// How long a receive waits for a message (seconds): long polling asks every SQS server, so an
/// empty answer means the queue has nothing visible.
const WAIT_SECS: i32 = 1;
/// What a dead letter the redrive policy moved says about why.
pub const MAX_RECEIVE_COUNT_REASON: &str = "reached maxReceiveCount";

/// The jobs' dead-letter queue, and the jobs queue it redrives to; cheap to clone.
#[derive(Debug, Clone)]
pub struct SqsDeadLetters {
    pub client: Client,
    /// The dead-letter queue (the stack output `DeadLetterQueueUrl`).
    pub dlq_url: String,
    /// The jobs queue redriven dead letters go back to.
    pub queue_url: String,
}

/// What a sweep received: each message once (by `MessageId`, its latest delivery), in the order
/// first seen; and the one looked for, when it was found (not among `seen`).
struct Sweep {
    seen: Vec<Message>,
    found: Option<Message>,
}

impl SqsDeadLetters {
    pub fn new(client: Client, dlq_url: impl Into<String>, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            dlq_url: dlq_url.into(),
            queue_url: queue_url.into(),
        }
    }

    /// Receives from the DLQ, hiding what comes, until nothing new comes, `wanted` comes, or a
    /// cap (module docs). On an error, what was hidden is made visible again first.
    async fn sweep(&self, wanted: Option<&str>) -> Result<Sweep, QueueError> {
        let mut seen: Vec<Message> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for _ in 0..MAX_RECEIVES {
            let out = self
                .client
                .receive_message()
                .queue_url(&self.dlq_url)
                .max_number_of_messages(MAX_MESSAGES)
                .wait_time_seconds(WAIT_SECS)
                .visibility_timeout(HIDE_SECS)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await;
            let out = match out {
                Ok(out) => out,
                Err(e) => {
                    self.release(&seen).await;
                    return Err(failure(
                        &format!("ReceiveMessage from the DLQ {}", self.dlq_url),
                        e,
                    ));
                }
            };
            let mut new = 0;
            let mut found = None;
            for m in out.messages.unwrap_or_default() {
                let Some(id) = m.message_id().map(str::to_owned) else {
                    continue;
                };
                if wanted == Some(id.as_str()) {
                    found = Some(m);
                    continue;
                }
                match index.get(&id) {
                    // Delivered again: keep the latest receipt, the one that settles it.
                    Some(&k) => seen[k] = m,
                    None => {
                        index.insert(id, seen.len());
                        seen.push(m);
                        new += 1;
                    }
                }
            }
            if found.is_some() {
                return Ok(Sweep { seen, found });
            }
            if new == 0 {
                return Ok(Sweep { seen, found: None });
            }
            if seen.len() >= MAX_LISTED {
                tracing::warn!(
                    dlq = %self.dlq_url,
                    seen = seen.len(),
                    "dead-letter queue sweep stopped at {MAX_LISTED} messages; some left unseen"
                );
                return Ok(Sweep { seen, found: None });
            }
        }
        tracing::warn!(
            dlq = %self.dlq_url,
            seen = seen.len(),
            "dead-letter queue sweep stopped after {MAX_RECEIVES} receives; some may be unseen"
        );
        Ok(Sweep { seen, found: None })
    }

    /// Makes `messages` visible again at once. Best effort: what stays hidden comes back by
    /// itself after [`HIDE_SECS`], so a failure is only logged.
    async fn release(&self, messages: &[Message]) {
        for chunk in messages.chunks(MAX_MESSAGES as usize) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .filter_map(|(k, m)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(k.to_string())
                        .receipt_handle(m.receipt_handle()?)
                        .visibility_timeout(0)
                        .build()
                        .ok()
                })
                .collect();
            if entries.is_empty() {
                continue;
            }
            match self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.dlq_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) if out.failed().is_empty() => {}
                Ok(out) => tracing::warn!(
                    dlq = %self.dlq_url,
                    failed = out.failed().len(),
                    "dead letters left hidden for {HIDE_SECS} s after a look"
                ),
                Err(e) => tracing::warn!(
                    dlq = %self.dlq_url,
                    error = %aws_sdk_sqs::error::DisplayErrorContext(e),
                    "dead letters left hidden for {HIDE_SECS} s after a look"
                ),
            }
        }
    }

    /// Deletes a received dead letter.
    async fn delete(&self, m: &Message) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.dlq_url)
            .receipt_handle(m.receipt_handle().unwrap_or_default())
            .send()
            .await
            .map_err(|e| failure(&format!("DeleteMessage on the DLQ {}", self.dlq_url), e))?;
        Ok(())
    }

    /// Sends a dead letter's body and message attributes to the jobs queue.
    async fn requeue(&self, m: &Message) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(m.body().unwrap_or_default())
            .set_message_attributes(m.message_attributes().cloned())
            .send()
            .await
            .map_err(|e| failure(&format!("SendMessage (redrive) to {}", self.queue_url), e))?;
        Ok(())
    }

    /// Takes a received dead letter off the DLQ: sent back to the jobs queue first when
    /// `redrive`, else discarded.
    async fn settle(&self, m: &Message, redrive: bool) -> Result<(), QueueError> {
        if redrive {
            self.requeue(m).await?;
        }
        self.delete(m).await
    }

    /// Sweeps for `id`, then applies `act` to it; the others seen are made visible again (and it
    /// too, when `act` failed). False when not found.
    async fn take(&self, id: &str, redrive: bool) -> Result<bool, QueueError> {
        let Sweep { mut seen, found } = self.sweep(Some(id)).await?;
        let Some(m) = found else {
            self.release(&seen).await;
            return Ok(false);
        };
        let done = self.settle(&m, redrive).await;
        if done.is_err() {
            seen.push(m);
        }
        self.release(&seen).await;
        done.map(|()| true)
    }
}

/// A message as a dead letter; `None` (with a warning) when its body is not a job.
fn dead_letter(m: &Message) -> Option<DeadLetter> {
    let id = m.message_id()?.to_owned();
    let job: Job = match serde_json::from_str(m.body().unwrap_or_default()) {
        Ok(job) => job,
        Err(e) => {
            tracing::warn!(message_id = %id, error = %e, "undecodable dead letter left out");
            return None;
        }
    };
    let system = |name: MessageSystemAttributeName| {
        m.attributes()
            .and_then(|a| a.get(&name))
            .map(String::as_str)
    };
    let attribute = |name: &str| {
        m.message_attributes()
            .and_then(|a| a.get(name))
            .and_then(|v| v.string_value())
    };
    let received: Option<u32> = system(MessageSystemAttributeName::ApproximateReceiveCount)
        .and_then(|c| c.trim().parse().ok());
    let attempts = attribute(ATTEMPTS_ATTRIBUTE)
        .and_then(|a| a.trim().parse().ok())
        .or(received.map(|c| c.saturating_sub(1)))
        .unwrap_or(0);
    let reason = attribute(REASON_ATTRIBUTE)
        .filter(|r| !r.trim().is_empty())
        .unwrap_or(MAX_RECEIVE_COUNT_REASON)
        .to_owned();
    let at = system(MessageSystemAttributeName::SentTimestamp)
        .and_then(|t| t.trim().parse::<i64>().ok())
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .unwrap_or_default();
    Some(DeadLetter {
        id,
        job,
        attempts,
        reason,
        at,
    })
}

#[async_trait]
impl DeadLetters for SqsDeadLetters {
    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, QueueError> {
        let Sweep { seen, .. } = self.sweep(None).await?;
        self.release(&seen).await;
        let mut letters: Vec<DeadLetter> = seen.iter().filter_map(dead_letter).collect();
        letters.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.id.cmp(&b.id)));
        Ok(letters)
    }

    async fn redrive(&self, id: &str) -> Result<bool, QueueError> {
        self.take(id, true).await
    }

    async fn discard(&self, id: &str) -> Result<bool, QueueError> {
        self.take(id, false).await
    }

    /// One sweep for all of them (not one each), then each redriven in the order asked; what is
    /// seen and not redriven is made visible again.
    async fn redrive_each(&self, ids: &[String]) -> Redrives {
        let mut done = Redrives::default();
        let mut seen = match self.sweep(None).await {
            Ok(Sweep { seen, .. }) => seen,
            Err(e) => {
                done.failed = Some(e);
                return done;
            }
        };
        for id in ids {
            let Some(k) = seen
                .iter()
                .position(|m| m.message_id() == Some(id.as_str()))
            else {
                done.redriven.push(false);
                continue;
            };
            let m = seen.remove(k);
            match self.settle(&m, true).await {
                Ok(()) => done.redriven.push(true),
                Err(e) => {
                    seen.push(m);
                    done.failed = Some(e);
                    break;
                }
            }
        }
        self.release(&seen).await;
        done
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_sqs::types::MessageAttributeValue;

    use super::*;

    fn string(v: &str, data_type: &str) -> MessageAttributeValue {
        MessageAttributeValue::builder()
            .data_type(data_type)
            .string_value(v)
            .build()
            .unwrap()
    }

    #[test]
    fn a_message_reads_as_a_dead_letter() {
        let job = Job::Provision {
            instance_id: "i-1".into(),
        };
        let body = serde_json::to_string(&job).unwrap();
        let moved = Message::builder()
            .message_id("m-1")
            .receipt_handle("rh")
            .body(&body)
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "6")
            .attributes(MessageSystemAttributeName::SentTimestamp, "1767225600000")
            .build();
        let d = dead_letter(&moved).unwrap();
        assert_eq!(d.id, "m-1");
        assert_eq!(d.job, job);
        assert_eq!(d.attempts, 5, "the receive count less this look");
        assert_eq!(d.reason, MAX_RECEIVE_COUNT_REASON);
        assert_eq!(d.at.timestamp_millis(), 1_767_225_600_000);

        let sent = Message::builder()
            .message_id("m-2")
            .body(&body)
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "2")
            .message_attributes(
                REASON_ATTRIBUTE,
                string("provisioning deadline passed", "String"),
            )
            .message_attributes(ATTEMPTS_ATTRIBUTE, string("3", "Number"))
            .build();
        let d = dead_letter(&sent).unwrap();
        assert_eq!(d.attempts, 3, "the worker's count");
        assert_eq!(d.reason, "provisioning deadline passed");

        let poison = Message::builder().message_id("m-3").body("{oops").build();
        assert!(dead_letter(&poison).is_none());
    }
}
