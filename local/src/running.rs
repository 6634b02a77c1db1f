//! A started host: its address, its backend's handles, and how it stops.

use std::net::SocketAddr;

use tokio::sync::watch;

/// A started host with its backend's handles (`B`). Dropping it does not stop it: call
/// [`Running::shutdown`].
pub struct Running<B> {
    pub addr: SocketAddr,
    pub backend: B,
    pub(crate) stop: watch::Sender<bool>,
    pub(crate) tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl<B> Running<B> {
    /// The production URL to paste into the simulator (or, behind HTTPS, into KooGallery).
    pub fn produce_url(&self) -> String {
        format!("http://{}/produce", self.addr)
    }

    /// Stops accepting calls and lets the worker finish its current job.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}
