//! Writing the exchange log off the request's path: a caller hands a [`Capture`] (raw bytes, a
//! copy and a channel send) to [`ExchangeRecorder::keep`] (KooGallery's calls: it waits, up to
//! [`KEEP_WAIT`], for room when the writer is [`CAPACITY`] calls behind) or
//! [`ExchangeRecorder::record`] (which never waits); a writer task ([`RecorderTask`]) redacts,
//! batches and appends.
//!
//! Why `keep` waits: on a host whose CPU is saturated the writer, at the lowest priority, falls
//! behind; a call that waits for it leaves it the CPU, so the host slows down instead of losing
//! calls from the log. The bound keeps a writer stuck on its disk from holding the calls up for
//! longer: after it the capture is dropped.
//!
//! What can be lost, and is said: a capture that still finds the channel full after its wait
//! (the store slower than the traffic for longer than [`CAPACITY`] calls and [`KEEP_WAIT`]) or at
//! once (`record`) is dropped and counted, with a warning at most every [`WARN_EVERY`]; a batch
//! the store refuses [`ATTEMPTS`] times is dropped with a warning; a crash loses what the channel
//! holds (at most [`CAPACITY`] calls, the last fraction of a second under load). The protocol
//! never reads the log, so none of this touches an order.

use std::{
    borrow::Cow,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use super::{Direction, ExchangeLog, Kept, new_id, record, redact::Redaction};

/// Captures the channel holds before `record` drops them (and `keep` waits for room).
pub const CAPACITY: usize = 8192;
/// How long [`ExchangeRecorder::keep`] waits for room in a full channel before it drops the
/// capture: far under KooGallery's 5 s, long enough for a writer that only lacked CPU.
pub const KEEP_WAIT: Duration = Duration::from_millis(100);
/// Exchanges appended in one call to the store, at most: a writer that wakes on a tick appends
/// what arrived meanwhile in one call (one commit of the embedded file) up to this.
pub const BATCH: usize = 2048;
/// Appends of one batch before it is dropped.
pub const ATTEMPTS: u32 = 3;
/// Warnings about dropped captures, at most one per this.
pub const WARN_EVERY: Duration = Duration::from_secs(10);
/// Calls that did not verify, kept per second at most ([`ExchangeRecorder::record_unverified`]):
/// anyone can send them, so they must not be able to fill the disk.
pub const UNVERIFIED_PER_SECOND: u32 = 20;
/// The largest body of a call that did not verify kept whole; a larger one is kept as its size.
pub const UNVERIFIED_MAX_BYTES: usize = 2048;

/// One call as its caller saw it, before redaction.
#[derive(Debug, Clone)]
pub struct Capture {
    pub at: DateTime<Utc>,
    pub direction: Direction,
    pub family: Cow<'static, str>,
    pub activity: Cow<'static, str>,
    pub instance_id: Option<String>,
    pub order_id: Option<String>,
    pub tenant_id: Option<String>,
    pub request: Vec<u8>,
    pub response: Vec<u8>,
    pub result_code: Option<String>,
    pub http_status: Option<u16>,
    pub latency: Duration,
    pub key: Option<&'static str>,
    pub attempt: Option<u32>,
    pub test: bool,
    pub error: Option<String>,
}

impl Capture {
    /// An outbound call's capture with what every one has; the caller fills in the rest.
    pub fn outbound(
        at: DateTime<Utc>,
        family: &'static str,
        activity: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            at,
            direction: Direction::Outbound,
            family: family.into(),
            activity: activity.into(),
            instance_id: None,
            order_id: None,
            tenant_id: None,
            request: Vec::new(),
            response: Vec::new(),
            result_code: None,
            http_status: None,
            latency: Duration::ZERO,
            key: None,
            attempt: None,
            test: false,
            error: None,
        }
    }

    /// The record kept for this call: bodies redacted, expiring `retention` after it. Written
    /// straight from the capture's bytes: no JSON tree of either body is built.
    pub fn into_kept(self, retention: chrono::Duration) -> Kept {
        let redaction = Redaction::for_call(&self.family, &self.activity);
        let mut request = Vec::with_capacity(self.request.len() + 2);
        redaction.write_body(&self.request, &mut request);
        let mut response = Vec::with_capacity(self.response.len() + 2);
        redaction.write_body(&self.response, &mut response);
        let id = new_id(self.at);
        let expires_at = self.at + retention;
        let before = record::Before {
            v: record::SCHEMA,
            id: &id,
            at: &self.at,
            direction: self.direction.as_str(),
            family: &self.family,
            activity: &self.activity,
            instance_id: self.instance_id.as_deref(),
            order_id: self.order_id.as_deref(),
            tenant_id: self.tenant_id.as_deref(),
        };
        let after = record::After {
            result_code: self.result_code.as_deref(),
            http_status: self.http_status,
            latency_ms: record::round_latency(self.latency.as_secs_f64() * 1000.0),
            key: self.key,
            attempt: self.attempt,
            test: self.test,
            expires_at: &expires_at,
            error: self.error.as_deref(),
        };
        let record = record::assemble(&before, &after, &request, &response);
        Kept {
            id,
            at: self.at,
            instance_id: self.instance_id,
            order_id: self.order_id,
            action: self.direction == Direction::Operator,
            expires_at,
            record,
        }
    }
}

enum Message {
    Record(Box<Capture>),
    Flush(oneshot::Sender<()>),
    /// Write what is held, then end the writer (letting the log go) whatever clones remain.
    Close(oneshot::Sender<()>),
}

struct Inner {
    tx: mpsc::Sender<Message>,
    dropped: AtomicU64,
    last_warning: Mutex<Option<Instant>>,
    /// (the second, calls that did not verify kept in it).
    unverified: Mutex<(u64, u32)>,
    started: Instant,
}

impl Inner {
    /// Counts a capture not kept, and warns at most every [`WARN_EVERY`].
    fn dropped_one(&self) {
        let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self.last_warning.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            *last = Some(Instant::now());
            tracing::warn!(
                dropped,
                "exchange log behind: calls not kept in it (the calls themselves were served)"
            );
        }
    }
}

/// The handle callers record through; cheap to clone. [`ExchangeRecorder::off`] records nothing
/// (`KOOGALLERY_EXCHANGE_LOG_DAYS=0`).
#[derive(Clone, Default)]
pub struct ExchangeRecorder {
    inner: Option<Arc<Inner>>,
}

impl std::fmt::Debug for ExchangeRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExchangeRecorder")
            .field("on", &self.is_on())
            .finish()
    }
}

impl ExchangeRecorder {
    /// A recorder that keeps nothing.
    pub fn off() -> Self {
        Self::default()
    }

    /// A recorder appending to `log`, each exchange kept for `retention`, and the writer task
    /// the host runs (it ends once every clone of the recorder is dropped, after writing what
    /// it holds).
    pub fn start(log: Arc<dyn ExchangeLog>, retention: chrono::Duration) -> (Self, RecorderTask) {
        let (tx, rx) = mpsc::channel(CAPACITY);
        let recorder = Self {
            inner: Some(Arc::new(Inner {
                tx,
                dropped: AtomicU64::new(0),
                last_warning: Mutex::new(None),
                unverified: Mutex::new((0, 0)),
                started: Instant::now(),
            })),
        };
        (recorder, RecorderTask { rx, log, retention })
    }

    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    /// Hands `capture` to the writer; never waits. A full channel drops it (counted).
    pub fn record(&self, capture: Capture) {
        let Some(inner) = &self.inner else { return };
        match inner.tx.try_send(Message::Record(Box::new(capture))) {
            Ok(()) => {}
            // The host has stopped its log ([`Self::close`]): a call still finishing then is
            // not kept.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(_)) => inner.dropped_one(),
        }
    }

    /// Hands `capture` to the writer, waiting up to [`KEEP_WAIT`] for room when the writer is
    /// [`CAPACITY`] calls behind, then dropping it (counted): a verified KooGallery call, which
    /// the host would rather answer a little later than leave out of the log (module docs).
    pub async fn keep(&self, capture: Capture) {
        let Some(inner) = &self.inner else { return };
        let message = match inner.tx.try_send(Message::Record(Box::new(capture))) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => return,
            Err(mpsc::error::TrySendError::Full(message)) => message,
        };
        if let Err(mpsc::error::SendTimeoutError::Timeout(_)) =
            inner.tx.send_timeout(message, KEEP_WAIT).await
        {
            inner.dropped_one();
        }
    }

    /// Hands over a call that did not verify (or that no family serves): at most
    /// [`UNVERIFIED_PER_SECOND`] a second are kept, bodies over [`UNVERIFIED_MAX_BYTES`] as their
    /// size only; the others are counted with the dropped ones.
    pub fn record_unverified(&self, mut capture: Capture) {
        let Some(inner) = &self.inner else { return };
        {
            let second = inner.started.elapsed().as_secs();
            let mut window = inner.unverified.lock().unwrap_or_else(|e| e.into_inner());
            if window.0 != second {
                *window = (second, 0);
            }
            if window.1 >= UNVERIFIED_PER_SECOND {
                inner.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            window.1 += 1;
        }
        if capture.request.len() > UNVERIFIED_MAX_BYTES {
            capture.request = serde_json::to_vec(&serde_json::json!({
                "bytes": capture.request.len(),
                "kept": "too large to keep for a call that did not verify",
            }))
            .unwrap_or_default();
        }
        self.record(capture);
    }

    /// Captures dropped so far because the channel was full, or past the unverified calls' rate.
    pub fn dropped(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |i| i.dropped.load(Ordering::Relaxed))
    }

    /// Waits until everything recorded before this call has been appended (or given up on): a
    /// host stopping, a Lambda invocation ending.
    pub async fn flush(&self) {
        let Some(inner) = &self.inner else { return };
        let (tx, rx) = oneshot::channel();
        if inner.tx.send(Message::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Writes everything recorded before this call, then ends the writer, which lets the log go
    /// (an embedded log's file is closed once nothing else holds it), whatever clones of the
    /// recorder remain (a task still winding down holds one): a host stopping. What is recorded
    /// afterwards is not kept.
    pub async fn close(&self) {
        let Some(inner) = &self.inner else { return };
        let (tx, rx) = oneshot::channel();
        if inner.tx.send(Message::Close(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// The writer: redacts, batches and appends what the recorder is handed.
pub struct RecorderTask {
    rx: mpsc::Receiver<Message>,
    log: Arc<dyn ExchangeLog>,
    retention: chrono::Duration,
}

impl RecorderTask {
    /// Wakes every `every` and appends what arrived meanwhile, until every recorder clone is
    /// dropped and the channel is drained. Callers then never wake the writer (a cross-thread
    /// wake per call costs more than the call's copy); a flush waits for the next tick.
    pub async fn run_every(self, every: Duration) {
        self.drive(Some(every)).await
    }

    /// Runs until every recorder clone is dropped and the channel is drained, appending as soon
    /// as something arrives (a Lambda function, which flushes before each answer).
    pub async fn run(self) {
        self.drive(None).await
    }

    /// Waits for the next `tick` (or, without one, for the first message), takes everything that
    /// arrived, appends it, answers the flushes; until closed or every recorder is gone.
    async fn drive(mut self, tick: Option<Duration>) {
        use mpsc::error::TryRecvError;
        let mut batch = Vec::with_capacity(BATCH);
        let mut flushes = Vec::new();
        let mut closed = None;
        loop {
            let mut next = match tick {
                Some(every) => {
                    tokio::time::sleep(every).await;
                    self.rx.try_recv()
                }
                None => self.rx.recv().await.ok_or(TryRecvError::Disconnected),
            };
            let ended = loop {
                match next {
                    Ok(Message::Record(c)) => {
                        batch.push(c.into_kept(self.retention));
                        if batch.len() >= BATCH {
                            self.append(&mut batch).await;
                        }
                    }
                    Ok(Message::Flush(done)) => flushes.push(done),
                    Ok(Message::Close(done)) => {
                        closed = Some(done);
                        break true;
                    }
                    Err(TryRecvError::Empty) => break false,
                    Err(TryRecvError::Disconnected) => break true,
                }
                next = self.rx.try_recv();
            };
            self.append(&mut batch).await;
            for done in flushes.drain(..) {
                let _ = done.send(());
            }
            if ended {
                break;
            }
        }
        // The log (and the channel) go before the closer hears it is done.
        drop(self);
        if let Some(done) = closed {
            let _ = done.send(());
        }
    }

    async fn append(&self, batch: &mut Vec<Kept>) {
        if batch.is_empty() {
            return;
        }
        let mut delay = Duration::from_millis(100);
        for attempt in 1..=ATTEMPTS {
            match self.log.append(batch).await {
                Ok(()) => break,
                Err(e) if attempt < ATTEMPTS && e.is_retryable() => {
                    tokio::time::sleep(delay).await;
                    delay *= 4;
                }
                Err(e) => {
                    tracing::warn!(
                        exchanges = batch.len(),
                        error = %e,
                        "exchange log: a batch could not be appended and is dropped"
                    );
                    break;
                }
            }
        }
        batch.clear();
    }
}
