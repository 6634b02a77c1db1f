//! A started host: its address, its backend's handles, and how it stops.

use std::{net::SocketAddr, time::Duration};

use tokio::sync::watch;

/// A started host with its backend's handles (`B`). Dropping it does not stop it: call
/// [`Running::shutdown`].
pub struct Running<B> {
    pub addr: SocketAddr,
    /// Whether it serves HTTPS (`KOOGALLERY_TLS_CERT`).
    pub https: bool,
    pub backend: B,
    pub(crate) stop: watch::Sender<bool>,
    /// The HTTP server's task: it stops accepting at once and ends its connections by its own
    /// drain deadline (the dispatch deadline and a margin).
    pub(crate) server: tokio::task::JoinHandle<()>,
    /// The worker, the timers and the usage passes.
    pub(crate) tasks: Vec<tokio::task::JoinHandle<()>>,
    /// How long the other tasks (the worker's job, above all) may take once told to stop.
    pub(crate) grace: Duration,
    /// The exchange log's recorder: its last batch is written before the backend closes.
    pub(crate) exchanges: koogallery::exchange::ExchangeRecorder,
}

/// What a backend does last when the host stops.
pub trait Backend {
    /// Puts on disk what the backend holds only in memory (the embedded store's recent nonces).
    fn close(&self) {}
}

impl<B> Running<B> {
    /// The production URL to paste into the simulator (or, behind HTTPS, into KooGallery).
    pub fn produce_url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}/produce", self.addr)
    }
}

impl<B: Backend> Running<B> {
    /// Stops accepting calls, lets those in flight answer (within the dispatch deadline), lets the
    /// worker finish its current job (within the grace, counted from then), and closes the
    /// backend. A job still
    /// running when the grace ends is left leased: it is received again once its lease expires,
    /// after a restart, so nothing is lost, only delayed.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        // Not under the grace: the server is bounded by its drain, and a shorter grace must not
        // cut off a call that is still being answered.
        let _ = self.server.await;
        let deadline = tokio::time::Instant::now()
            .checked_add(self.grace)
            .unwrap_or_else(tokio::time::Instant::now);
        for task in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                tracing::warn!(grace = ?self.grace, "a task did not stop within the grace: left to its lease");
                abort.abort();
            }
        }
        crate::exchanges::flush(&self.exchanges).await;
        self.backend.close();
    }
}
