//! The job queue between the callbacks and the provisioning worker: a [`Job`] is a versioned
//! contract (it sits in SQS or the embedded queue across deployments), [`JobQueue`] the producer
//! port, and [`consume`] the one settlement loop every consumer (SQS event source, SQS poller,
//! embedded queue) shares.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{
    directory::TenantId,
    failure::Detail,
    instance::InstanceId,
    order::{OrderId, OrderLineId},
};

pub mod consume;

/// A job-queue port failure.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue could not be reached, timed out or refused the write: worth retrying.
    #[error("job queue unavailable: {0}")]
    Unavailable(#[source] Detail),
    /// A job, a receipt or a queue record that cannot be encoded or read: retrying cannot help.
    #[error("job queue record is corrupt: {0}")]
    Corrupt(#[source] Detail),
}

impl QueueError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// Work for the worker, delivered at least once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Job {
    /// Provision a newly ordered instance.
    Provision { instance_id: InstanceId },
    /// Tell the provisioner about lifecycle event `seq` (renewal, freeze, upgrade, release, …).
    Notify { instance_id: InstanceId, seq: u64 },
    /// Read a paid order line (an `orderNotify`, docs/protocol/callbacks.md §6.8) and tell the
    /// vendor.
    OrderNotice {
        order_id: OrderId,
        order_line_id: OrderLineId,
    },
    /// Deliver the tenant's pending directory events (the Kit syncs, docs/protocol/callbacks.md §9)
    /// in `seq` order.
    DirectoryNotice {
        instance_id: String,
        tenant_id: TenantId,
    },
    /// Deliver the license code's pending events (docs/protocol/openapi.md §6) in `seq` order.
    LicenseNotice { license: LicenseRef },
}

/// A license code as a job carries it: the plain string on the wire, masked in `Debug` (jobs are
/// logged with `{:?}`; a code is a buyer's secret).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LicenseRef(pub String);

impl std::fmt::Debug for LicenseRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let head: String = self.0.chars().take(4).collect();
        write!(f, "\"{head}…({})\"", self.0.len())
    }
}

impl From<String> for LicenseRef {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for LicenseRef {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl Job {
    /// The instance the job is about; an order notice is about an order line instead.
    pub fn instance_id(&self) -> Option<&str> {
        match self {
            Self::Provision { instance_id } | Self::Notify { instance_id, .. } => Some(instance_id),
            Self::OrderNotice { .. }
            | Self::DirectoryNotice { .. }
            | Self::LicenseNotice { .. } => None,
        }
    }

    /// What the job is about, for logs and errors.
    pub fn subject(&self) -> String {
        match self {
            Self::OrderNotice {
                order_id,
                order_line_id,
            } => format!("order line {order_id}/{order_line_id}"),
            Self::DirectoryNotice {
                instance_id,
                tenant_id,
            } => format!("tenant {tenant_id} of instance {instance_id:?}"),
            Self::LicenseNotice { license } => match crate::license::LicenseCode::parse(&license.0)
            {
                Ok(code) => format!("license {}", code.masked()),
                Err(_) => "a license".to_owned(),
            },
            other => format!("instance {}", other.instance_id().unwrap_or_default()),
        }
    }
}

impl Job {
    /// The job that drains `instance`'s outbox, when it holds undelivered lifecycle notices. One
    /// job is enough: whichever delivery drains the outbox sends every pending notice, in `seq`
    /// order.
    pub fn drain(instance: &crate::instance::Instance) -> Option<Self> {
        instance.outbox.pending.last().map(|&seq| Self::Notify {
            instance_id: instance.instance_id.clone(),
            seq,
        })
    }
}

/// The producer side of the job queue. Consumers are adapter-specific (SQS event source, embedded
/// runner).
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

    /// The license notice job, pinned.
    #[test]
    fn the_license_notice_job_is_pinned() {
        let job = Job::LicenseNotice {
            license: "PL1".into(),
        };
        assert!(!format!("{job:?}").contains("\"PL1\""), "masked in logs");
        let text = r#"{"type":"license_notice","license":"PL1"}"#;
        assert_eq!(serde_json::to_string(&job).unwrap(), text);
        assert_eq!(serde_json::from_str::<Job>(text).unwrap(), job);
    }

    /// The directory notice job, pinned.
    #[test]
    fn the_directory_notice_job_is_pinned() {
        let job = Job::DirectoryNotice {
            instance_id: "i-1".into(),
            tenant_id: "t-1".into(),
        };
        let text = r#"{"type":"directory_notice","instance_id":"i-1","tenant_id":"t-1"}"#;
        assert_eq!(serde_json::to_string(&job).unwrap(), text);
        assert_eq!(serde_json::from_str::<Job>(text).unwrap(), job);
    }

    /// The order notice job of this release, pinned.
    #[test]
    fn the_order_notice_job_is_pinned() {
        let job = Job::OrderNotice {
            order_id: "CS1".into(),
            order_line_id: "CS1-000001".into(),
        };
        let text = r#"{"type":"order_notice","order_id":"CS1","order_line_id":"CS1-000001"}"#;
        assert_eq!(serde_json::to_string(&job).unwrap(), text);
        assert_eq!(serde_json::from_str::<Job>(text).unwrap(), job);
    }
}
