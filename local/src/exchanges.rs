//! The exchange log on the local host (docs/operations.md): the recorder the edge and the worker
//! hand their calls to, its writer on a thread of its own at the lowest CPU priority, and its last
//! batch written when the host stops.
//!
//! Why the lowest priority: the log is for people, KooGallery's calls are not. On a machine with
//! CPU to spare (every real deployment: KooGallery calls a few times a minute) the writer keeps
//! every call at once. On one saturated by a load it falls behind; a KooGallery call that finds
//! it a full channel behind waits for room (at most `koogallery::exchange::recorder::KEEP_WAIT`),
//! which leaves the writer the CPU: the host slows down rather than lose calls from its log. Only
//! a writer stuck past that wait loses calls, counted and warned about (`exchange log behind`).

use std::{sync::Arc, time::Duration};

use koogallery::{
    config::Config,
    exchange::{ExchangeLog, ExchangeRecorder},
};

/// How often the writer appends what arrived (the calls never wake it).
pub(crate) const WRITE_EVERY: Duration = Duration::from_millis(50);

/// How long a stopping host waits for the exchange log's last batch.
pub(crate) const FLUSH_AT_STOP: Duration = Duration::from_secs(2);

/// A recorder appending to `log` with its writer running, or one that keeps nothing when
/// `KOOGALLERY_EXCHANGE_LOG_DAYS` is 0.
pub(crate) fn recorder(config: &Config, log: Option<Arc<dyn ExchangeLog>>) -> ExchangeRecorder {
    match (config.settings.exchange_log, log) {
        (Some(retention), Some(log)) => {
            let (recorder, writer) = ExchangeRecorder::start(log, retention);
            match spawn_low_priority(writer) {
                Ok(()) => recorder,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the exchange log's writer: no log kept");
                    ExchangeRecorder::off()
                }
            }
        }
        _ => ExchangeRecorder::off(),
    }
}

/// Writes what the recorder holds and ends its writer, within [`FLUSH_AT_STOP`]: the log's file
/// is let go even while a task winding down (the worker's webhook or open API client) still holds
/// a clone of the recorder, so a host started next on the same directory can open it.
pub(crate) async fn flush(recorder: &ExchangeRecorder) {
    if tokio::time::timeout(FLUSH_AT_STOP, recorder.close())
        .await
        .is_err()
    {
        tracing::warn!("the exchange log's last calls were not written before the host stopped");
    }
}

/// Runs `writer` on a thread of its own (with its own runtime, whose blocking threads do the
/// store's writes), every one of its threads at the lowest CPU priority (nice 19).
fn spawn_low_priority(writer: koogallery::exchange::RecorderTask) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("exchange-log-io")
        .max_blocking_threads(2)
        .on_thread_start(lowest_priority)
        .build()?;
    std::thread::Builder::new()
        .name("exchange-log".into())
        .spawn(move || {
            lowest_priority();
            runtime.block_on(writer.run_every(WRITE_EVERY));
        })?;
    Ok(())
}

/// Sets the calling thread's nice value to 19 (Linux: a thread's own priority); elsewhere, or if
/// refused, it keeps the process's.
fn lowest_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and setpriority take no pointers; they act on this thread only.
        let refused = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19)
        };
        if refused != 0 {
            tracing::debug!("the exchange log's writer keeps the process's priority");
        }
    }
}
