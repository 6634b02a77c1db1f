//! Whether the host is alive and ready (`GET /healthz`, `GET /readyz`), for a load balancer, a
//! container orchestrator or systemd: live while it answers; ready while its store takes a write,
//! its worker runs and its reconciler has passed recently.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicI64, Ordering},
};

use koogallery::{clock::Clock, security::replay::NonceStore};
use serde_json::{Value, json};

/// How long the store's probe write may take before the host counts as unready.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

pub struct Health {
    /// A probe write goes here (the replay guard's store: the callbacks' own first write).
    probe: Arc<dyn NonceStore>,
    clock: Arc<dyn Clock>,
    worker_running: AtomicBool,
    /// Epoch ms of the last reconciler pass that finished; 0 before the first.
    last_reconcile_ms: AtomicI64,
    /// How long without a pass is still recent: three periods.
    reconcile_within_ms: i64,
    started_ms: i64,
    probes: std::sync::atomic::AtomicU64,
}

impl Health {
    pub fn new(
        probe: Arc<dyn NonceStore>,
        clock: Arc<dyn Clock>,
        reconcile_every: std::time::Duration,
    ) -> Arc<Self> {
        let started_ms = clock.now().timestamp_millis();
        Arc::new(Self {
            probe,
            clock,
            worker_running: AtomicBool::new(false),
            last_reconcile_ms: AtomicI64::new(0),
            reconcile_within_ms: 3 * i64::try_from(reconcile_every.as_millis())
                .unwrap_or(i64::MAX / 4),
            started_ms,
            probes: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The worker's poll loop started (`true`) or ended (`false`).
    pub fn worker_running(&self, running: bool) {
        self.worker_running.store(running, Ordering::SeqCst);
    }

    /// A reconciler pass finished.
    pub fn reconciled(&self) {
        self.last_reconcile_ms
            .store(self.clock.now().timestamp_millis(), Ordering::SeqCst);
    }

    /// `GET /readyz`: 200 when every check passes, else 503; each check named with its state.
    pub async fn ready(&self) -> (u16, Value) {
        let now = self.clock.now();
        let n = self.probes.fetch_add(1, Ordering::Relaxed);
        let key = format!("readyz:{}:{n}", now.timestamp_micros());
        let store = matches!(
            tokio::time::timeout(
                PROBE_TIMEOUT,
                self.probe
                    .remember(&key, now, now + chrono::Duration::seconds(60)),
            )
            .await,
            Ok(Ok(true))
        );
        let worker = self.worker_running.load(Ordering::SeqCst);
        let last = self.last_reconcile_ms.load(Ordering::SeqCst);
        let since = |t: i64| now.timestamp_millis().saturating_sub(t);
        // Before the first pass the host counts as ready for as long as a pass may take to come.
        let reconciler = if last == 0 {
            since(self.started_ms) <= self.reconcile_within_ms
        } else {
            since(last) <= self.reconcile_within_ms
        };
        let ok = store && worker && reconciler;
        let state = |b: bool| if b { "ok" } else { "failing" };
        (
            if ok { 200 } else { 503 },
            json!({
                "status": if ok { "ready" } else { "unready" },
                "checks": {
                    "store": state(store),
                    "worker": state(worker),
                    "reconciler": state(reconciler),
                },
            }),
        )
    }
}

/// `GET /readyz` (`GET /healthz`, live while the host answers, is the base router's).
pub fn health_router(health: Option<Arc<Health>>) -> axum::Router {
    use axum::{extract::State, routing::get};
    axum::Router::new()
        .route(
            "/readyz",
            get(|State(h): State<Option<Arc<Health>>>| async move {
                match h {
                    Some(h) => {
                        let (status, body) = h.ready().await;
                        crate::json_answer(status, body)
                    }
                    None => crate::json_answer(503, json!({"status": "unready"})),
                }
            }),
        )
        .with_state(health)
}

#[cfg(test)]
mod tests {
    use super::*;
    use koogallery::testing::{ManualClock, MemoryStore};

    /// A store that refuses every write.
    struct Broken;

    #[async_trait::async_trait]
    impl NonceStore for Broken {
        async fn remember(
            &self,
            _: &str,
            _: chrono::DateTime<chrono::Utc>,
            _: chrono::DateTime<chrono::Utc>,
        ) -> Result<bool, koogallery::StoreError> {
            Err(koogallery::StoreError::Unavailable(
                koogallery::failure::Detail::new("read-only"),
            ))
        }
    }

    #[tokio::test]
    async fn ready_only_with_a_writable_store_a_running_worker_and_a_recent_reconciler() {
        let clock = Arc::new(ManualClock::at(chrono::Utc::now()));
        let every = std::time::Duration::from_secs(60);
        let h = Health::new(Arc::new(MemoryStore::new()), clock.clone(), every);
        assert_eq!(h.ready().await.0, 503, "the worker has not started");
        h.worker_running(true);
        let (status, body) = h.ready().await;
        assert_eq!(status, 200, "{body}");
        // No pass for more than three periods: unready until one finishes.
        clock.advance(chrono::Duration::minutes(4));
        let (status, body) = h.ready().await;
        assert_eq!(
            (status, body["checks"]["reconciler"].as_str()),
            (503, Some("failing"))
        );
        h.reconciled();
        assert_eq!(h.ready().await.0, 200);
        h.worker_running(false);
        assert_eq!(h.ready().await.1["checks"]["worker"], "failing");

        let broken = Health::new(Arc::new(Broken), clock, every);
        broken.worker_running(true);
        let (status, body) = broken.ready().await;
        assert_eq!(
            (status, body["checks"]["store"].as_str()),
            (503, Some("failing"))
        );
    }
}
