//! The job queue between the callbacks and the provisioning worker: a [`Job`] is a versioned
//! contract (it sits in SQS or the embedded queue across deployments), [`JobQueue`] the producer
//! port, and [`consume`] the one settlement loop every consumer (SQS event source, SQS poller,
//! embedded queue) shares.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub mod consume;

/// A job-queue port failure; always worth retrying.
#[derive(Debug, thiserror::Error)]
#[error("job queue unavailable: {0}")]
pub struct QueueError(pub String);

/// Work for the worker, delivered at least once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Job {
    /// Provision a newly ordered instance.
    Provision { instance_id: String },
    /// Tell the provisioner about lifecycle event `seq` (renewal, freeze, upgrade, release, …).
    Notify { instance_id: String, seq: u64 },
}

impl Job {
    pub fn instance_id(&self) -> &str {
        match self {
            Self::Provision { instance_id } | Self::Notify { instance_id, .. } => instance_id,
        }
    }
}

/// The producer side of the job queue. Consumers are adapter-specific (SQS event source, embedded runner).
#[async_trait]
pub trait JobQueue: Send + Sync {
    async fn enqueue(&self, job: &Job) -> Result<(), QueueError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Jobs sit in SQS or the embedded queue across a deployment: what the earlier release queued
    /// must still decode, and this release must queue the very same bytes.
    #[test]
    fn queued_jobs_keep_their_wire_form() {
        let fixture = include_str!("../../tests/fixtures/jobs_v0.jsonl");
        let jobs: Vec<Job> = fixture
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            jobs,
            [
                Job::Provision {
                    instance_id: "i-1".into()
                },
                Job::Notify {
                    instance_id: "i-1".into(),
                    seq: 4
                }
            ]
        );
        for (line, job) in fixture.lines().zip(&jobs) {
            assert_eq!(serde_json::to_string(job).unwrap(), line);
        }
    }
}
