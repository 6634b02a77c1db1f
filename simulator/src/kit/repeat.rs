//! One Kit sync sent again and again, one call at a time as KooGallery syncs a tenant
//! (docs/protocol/callbacks.md §9), with the latency of each answer.

use serde_json::Value;

use super::KitSimulator;
use crate::SimError;

/// What [`repeat`] measured: one Kit call sent `calls` times in a row.
pub struct KitRepeatReport {
    pub name: String,
    pub calls: u64,
    pub body_bytes: usize,
    /// Answers other than `000000` with a valid `Body-Sign`.
    pub wrong: u64,
    /// Latency per call, microseconds.
    pub latency_us: hdrhistogram::Histogram<u64>,
}

impl std::fmt::Display for KitRepeatReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{}: {} calls of {} bytes, {} wrong answers",
            self.name, self.calls, self.body_bytes, self.wrong
        )?;
        crate::load::write_latency(f, &self.latency_us)
    }
}

/// Sends the Kit call `name` with `body` `calls` times, one after the other (KooGallery syncs a
/// tenant one call at a time), each with a fresh nonce, and measures each answer's latency.
///
/// # Errors
/// The first call that cannot be sent or read.
pub async fn repeat(
    kit: &KitSimulator,
    name: &str,
    body: &Value,
    calls: u64,
) -> Result<KitRepeatReport, SimError> {
    let mut latency_us = hdrhistogram::Histogram::<u64>::new(3)
        .map_err(|e| SimError::InvalidOptions(e.to_string()))?;
    let mut wrong = 0;
    for _ in 0..calls {
        let a = kit.call(name, body).await?;
        let _ = latency_us.record(a.elapsed.as_micros() as u64);
        if !(a.http_status == 200 && a.body_sign_valid && a.reply.result_code.as_str() == "000000")
        {
            wrong += 1;
        }
    }
    Ok(KitRepeatReport {
        name: name.into(),
        calls,
        body_bytes: serde_json::to_vec(body).map(|b| b.len()).unwrap_or(0),
        wrong,
        latency_us,
    })
}
