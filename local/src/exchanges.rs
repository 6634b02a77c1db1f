//! The exchange log on the local host (docs/operations.md): the recorder the edge and the worker
//! hand their calls to, its writer task beside the server, and its last batch written when the
//! host stops.

use std::{sync::Arc, time::Duration};

use koogallery::{
    config::Config,
    exchange::{ExchangeLog, ExchangeRecorder},
};

/// How long a stopping host waits for the exchange log's last batch.
pub(crate) const FLUSH_AT_STOP: Duration = Duration::from_secs(2);

/// A recorder appending to `log` with its writer running, or one that keeps nothing when
/// `KOOGALLERY_EXCHANGE_LOG_DAYS` is 0.
pub(crate) fn recorder(config: &Config, log: Option<Arc<dyn ExchangeLog>>) -> ExchangeRecorder {
    match (config.settings.exchange_log, log) {
        (Some(retention), Some(log)) => {
            let (recorder, writer) = ExchangeRecorder::start(log, retention);
            tokio::spawn(writer.run());
            recorder
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
