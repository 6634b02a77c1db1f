//! Fault injection for the tests: an ingest stopped, or paused, between two of its
//! transactions, as a crash or a concurrent writer would find it.

use std::sync::atomic::Ordering;

use super::DynamoUsageStore;

pub(super) const NO_FAULT: u64 = u64::MAX;

/// Where the next batch pauses (see [`DynamoUsageStore::pause_next_ingest_after`]).
#[derive(Debug)]
pub(super) struct PauseAt {
    pub(super) after: u64,
    pub(super) reached: tokio::sync::oneshot::Sender<()>,
    pub(super) resume: tokio::sync::oneshot::Receiver<()>,
}

/// A test's handle on a paused batch: wait until it [`reached`](Self::reached) its pause, do
/// something concurrent, then [`resume`](Self::resume) it.
#[derive(Debug)]
pub struct IngestPause {
    reached: Option<tokio::sync::oneshot::Receiver<()>>,
    resume: tokio::sync::oneshot::Sender<()>,
}

impl IngestPause {
    /// Waits until the batch pauses (returns at once if it ended without pausing).
    pub async fn reached(&mut self) {
        if let Some(reached) = self.reached.take() {
            let _ = reached.await;
        }
    }

    /// Lets the batch go on.
    pub fn resume(self) {
        let _ = self.resume.send(());
    }
}

impl DynamoUsageStore {
    /// Fault injection for tests: the next [`UsageStore::ingest`] stops with a retryable
    /// `StoreError::Unavailable` once `transactions` of its transactions have committed, before it
    /// sends the next one, as a crash or an outage between two transactions would. Has no effect
    /// on a batch that commits in `transactions` transactions or fewer.
    ///
    /// [`UsageStore::ingest`]: koogallery::metering::UsageStore::ingest
    pub fn fail_next_ingest_after(&self, transactions: u64) {
        self.ingests
            .fail_after
            .store(transactions.min(NO_FAULT - 1), Ordering::SeqCst);
    }

    /// For tests: the next [`UsageStore::ingest`] that gets as far pauses once `transactions` of
    /// its transactions have committed (after its holds, if it takes any), before it sends the
    /// next, until the handle is resumed; a test does something concurrent meanwhile.
    ///
    /// [`UsageStore::ingest`]: koogallery::metering::UsageStore::ingest
    pub fn pause_next_ingest_after(&self, transactions: u64) -> IngestPause {
        let (reached_tx, reached_rx) = tokio::sync::oneshot::channel();
        let (resume_tx, resume_rx) = tokio::sync::oneshot::channel();
        *self.ingests.pause.lock().unwrap_or_else(|p| p.into_inner()) = Some(PauseAt {
            after: transactions,
            reached: reached_tx,
            resume: resume_rx,
        });
        IngestPause {
            reached: Some(reached_rx),
            resume: resume_tx,
        }
    }

    /// The fault and the pause set for the next ingest, taken (each applies to one ingest).
    pub(super) fn take_faults(&self) -> (Option<u64>, Option<PauseAt>) {
        let fault = match self.ingests.fail_after.swap(NO_FAULT, Ordering::SeqCst) {
            NO_FAULT => None,
            n => Some(n),
        };
        let pause = self
            .ingests
            .pause
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        (fault, pause)
    }
}
