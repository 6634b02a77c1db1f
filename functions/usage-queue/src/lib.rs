//! The usage queue: apps already on AWS send their usage as SQS messages instead of
//! calling `POST /usage`. A message's body is the same JSON batch ([`UsageBatch`]), unsigned: IAM
//! on the queue decides who may send. Each message is one all-or-nothing batch through
//! [`ingest_batch`], and then:
//!
//! - ingested (repeats of idempotency keys included): acknowledged;
//! - not taken for a reason worth retrying (the table throttled or unreachable): left on the
//!   queue as a partial batch failure, hidden for a short [`backoff`], and moved to the usage
//!   dead-letter queue by the queue's redrive policy after its `maxReceiveCount`;
//! - refused (not a batch, no reports, too many, a report breaking a rule): retrying cannot help,
//!   so it goes to the usage dead-letter queue at once, body unchanged, with the reason as its
//!   `reason` message attribute, and is acknowledged. Nothing is dropped silently.

pub mod lambda;

use std::{sync::Arc, time::Duration};

use koogallery::retry::{Backoff, Jitter};
use koogallery::{
    clock::Clock,
    instance::InstanceStore,
    jobs::{
        JobQueue,
        consume::{self, Disposition, QueueMessage, Settle},
    },
    metering::{
        IngestError, IngestOutcome, UsageStore, api::UsageBatch, ingest::ingest_batch,
        package::PackageQuotaList,
    },
    metrics::{Metric, Metrics},
};

/// What a refused batch's log line and dead letter say at most (the reason, never the body).
const MAX_REASON_CHARS: usize = 300;

/// Ingests the usage batches that arrive as queue messages (the queue itself is SQS's).
pub struct QueuedUsage {
    pub instances: Arc<dyn InstanceStore>,
    pub usage: Arc<dyn UsageStore>,
    /// The jobs queue: a used-up package's `quotaExhausted` notice is delivered from it.
    pub jobs: Arc<dyn JobQueue>,
    /// The quotas of stop-when-used-up package SKUs (`KOOGALLERY_PACKAGE_QUOTAS`).
    pub quotas: Arc<PackageQuotaList>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<dyn Metrics>,
}

/// What became of one message's batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Applied (or every report a repeat): acknowledge it.
    Ingested(IngestOutcome),
    /// Not taken, and worth trying again (the store): leave it on the queue.
    Retry(String),
    /// Refused for good: to the usage dead-letter queue now, with this reason.
    Refused(String),
}

impl QueuedUsage {
    /// Parses and ingests one message's body.
    pub async fn disposition(&self, body: &str) -> BatchOutcome {
        let batch = match UsageBatch::parse(body.as_bytes()) {
            Ok(batch) => batch,
            Err(e) => return BatchOutcome::Refused(short(&format!("not a usage batch: {e}"))),
        };
        let reports = batch.into_reports();
        match ingest_batch(
            self.instances.as_ref(),
            self.usage.as_ref(),
            self.jobs.as_ref(),
            &self.quotas,
            &reports,
            self.clock.now(),
        )
        .await
        {
            Ok(outcome) => BatchOutcome::Ingested(outcome),
            Err(
                e
                @ (IngestError::Empty | IngestError::TooMany { .. } | IngestError::Invalid { .. }),
            ) => BatchOutcome::Refused(short(&e.to_string())),
            // A store failure is never the message's fault: even one that is not retryable
            // (a corrupt item) is retried, and left to the redrive policy and its alarm.
            Err(e) => BatchOutcome::Retry(short(&e.to_string())),
        }
    }
}

/// How long a message not taken stays hidden before its next delivery: 2 s, doubling with each
/// receive, at most a minute (the store's outages are usually short; a long one ends in the
/// dead-letter queue through the redrive policy, from where it can be redriven).
pub fn backoff(attempt: u32) -> Duration {
    REDELIVERY.delay(attempt)
}

/// The redelivery policy behind [`backoff`]; no jitter, since each message has its own receive
/// count and a queue's visibility is coarse anyway.
pub const REDELIVERY: Backoff = Backoff {
    first: Duration::from_secs(2),
    max: Duration::from_secs(60),
    jitter: Jitter::None,
};

/// Processes a batch of messages in order and returns the IDs of those to leave on the queue
/// (SQS partial batch failure). A refused batch is dead-lettered and acknowledged; if the
/// dead-letter queue cannot be reached it stays, and the redrive policy moves it later.
pub async fn settle_batch(
    queue: &QueuedUsage,
    settle: &dyn Settle,
    messages: Vec<QueueMessage>,
) -> Vec<String> {
    let mut keep = Vec::new();
    // One after the other: batches of one app often touch the same windows, and concurrent
    // transactions on them would only conflict and retry.
    for m in messages {
        if let Some(id) = settle_one(queue, settle, m).await {
            keep.push(id);
        }
    }
    keep
}

async fn settle_one(queue: &QueuedUsage, settle: &dyn Settle, m: QueueMessage) -> Option<String> {
    let disposition = match queue.disposition(&m.body).await {
        BatchOutcome::Ingested(outcome) => {
            tracing::info!(
                message_id = %m.message_id,
                applied = outcome.applied,
                duplicates = outcome.duplicates,
                exhausted_packages = outcome.exhausted_packages.len(),
                "usage batch ingested"
            );
            // Delivered again if the ack fails: its reports are then repeats, applied once.
            Disposition::Ack
        }
        BatchOutcome::Retry(reason) => {
            let delay = backoff(m.attempt);
            tracing::warn!(message_id = %m.message_id, attempt = m.attempt, retry_in_secs = delay.as_secs(), %reason, "usage batch not taken; retried");
            Disposition::RetryAfter(delay)
        }
        BatchOutcome::Refused(reason) => {
            tracing::error!(message_id = %m.message_id, attempt = m.attempt, %reason, "usage batch refused; moved to the usage dead-letter queue");
            queue.metrics.record(Metric::UsageBatchRefused);
            Disposition::DeadLetter(reason)
        }
    };
    consume::settle(settle, &m, disposition).await
}

/// At most [`MAX_REASON_CHARS`] characters of a reason.
fn short(reason: &str) -> String {
    let mut chars = reason.chars();
    let mut out: String = chars.by_ref().take(MAX_REASON_CHARS).collect();
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests;
