//! A refused usage push split in halves until the records at fault are alone
//! (docs/protocol/openapi.md §3, §8; docs/protocol/decisions.md §8): a record is rejected only when
//! KooGallery refuses it alone both before and after accepting another push of the batch; a
//! refusal of every record tried, or more refused pushes in a row than isolating a few records
//! takes, is systemic and stops the pass.

use chrono::{DateTime, Utc};

use super::{PushAnswer, PushError, PushRecord, PushReport, UsagePusher};
use crate::metering::UsageWindow;
use crate::{metrics::Metric, storage::StoreError};

/// Refused pushes in a row a batch may meet beyond the `⌈log2 n⌉ + 1` that isolate one record of
/// `n`, before the pusher probes with the batch's newest record (a few records at fault next to
/// each other need a few more).
pub const SYSTEMIC_MARGIN: u32 = 4;

/// Refused pushes in a row after which a batch of `n` records probes, then stops as systemic.
pub fn refusal_limit(n: usize) -> u32 {
    let isolate = usize::BITS - n.saturating_sub(1).leading_zeros() + 1;
    isolate + SYSTEMIC_MARGIN
}

/// Why a batch's pushes stopped the pass.
#[derive(Debug, thiserror::Error)]
pub(super) enum Halt {
    /// A push failed (outage, credentials).
    #[error(transparent)]
    Failed(PushError),
    /// KooGallery refused every record tried: nothing singles a record out.
    #[error(
        "KooGallery refused every usage record tried ({code} {message}); kept pending, retried by the next pass"
    )]
    Systemic { code: String, message: String },
}

/// A part of a batch to push: its windows, oldest first, and whether each of them was already
/// refused alone before KooGallery accepted another push (refused alone again, it is rejected).
struct Part {
    windows: Vec<UsageWindow>,
    recheck: bool,
}

/// A record KooGallery refused alone, not yet judged.
struct Suspect {
    window: UsageWindow,
    code: String,
    message: String,
}

impl UsagePusher {
    /// Pushes `batch` (oldest first); a refusal splits it in halves until the records at fault
    /// are alone, and a record refused alone is rejected only when KooGallery refuses it alone
    /// again after accepting another push (the module's documentation has the whole rule).
    /// `Ok(Err(_))`: the pass should stop; the windows not settled are marked and stay pending.
    pub(super) async fn push_split(
        &self,
        batch: Vec<UsageWindow>,
        report: &mut PushReport,
        now: DateTime<Utc>,
    ) -> Result<Result<(), Halt>, StoreError> {
        let limit = refusal_limit(batch.len());
        let mut stack = vec![Part {
            windows: batch,
            recheck: false,
        }];
        // Refused alone, not yet judged: pushed again (`recheck`) after KooGallery next accepts.
        let mut suspects: Vec<Suspect> = Vec::new();
        // The last record KooGallery accepted: pushed again, unchanged (a duplicate KooGallery
        // drops, docs/protocol/openapi.md §3 rule 5, as for any retry), it shows whether KooGallery
        // still accepts records when nothing else is left to compare the suspects with.
        let mut witness: Option<UsageWindow> = None;
        // Refused pushes since the last accepted one.
        let mut streak = 0u32;
        let halt = loop {
            let probe = streak >= limit || (stack.is_empty() && !suspects.is_empty());
            let (mut part, is_witness) = if probe {
                match probe_part(&mut stack, &mut witness, &suspects) {
                    Ok(probed) => probed,
                    Err(halt) => break Some(halt),
                }
            } else {
                match stack.pop() {
                    Some(part) => (part, false),
                    None => break None,
                }
            };
            let records: Vec<PushRecord> = part.windows.iter().filter_map(PushRecord::of).collect();
            report.pushes += 1;
            match self.sink.push(&records).await {
                Ok(PushAnswer::Accepted) => {
                    streak = 0;
                    if !is_witness {
                        for w in &mut part.windows {
                            w.accept(now);
                        }
                        part.windows = self.save_all(&mut part.windows).await?;
                        report.accepted += part.windows.len();
                    }
                    witness = part.windows.pop().or(witness);
                    if !suspects.is_empty() {
                        // Refused alone before this acceptance: once more, now.
                        stack.push(Part {
                            windows: suspects.drain(..).map(|s| s.window).collect(),
                            recheck: true,
                        });
                    }
                }
                Ok(PushAnswer::Refused { code, message }) => {
                    streak += 1;
                    if part.windows.len() > 1 {
                        let second = part.windows.split_off(part.windows.len() / 2);
                        // The older half first: the stack pops the last pushed.
                        stack.push(Part {
                            windows: second,
                            recheck: part.recheck,
                        });
                        stack.push(part);
                    } else if part.recheck {
                        // Refused alone before and after KooGallery accepted other records.
                        let w = &mut part.windows[0];
                        tracing::error!(instance_id = %w.instance_id, start = %w.start, %code, %message,
                            "KooGallery refused a usage record; kept as rejected");
                        w.reject(&code, &message, now);
                        if self.save(w).await? {
                            report.rejected += 1;
                            self.metrics.record(Metric::UsageRejected);
                        }
                    } else if !is_witness {
                        suspects.extend(part.windows.drain(..).map(|window| Suspect {
                            window,
                            code: code.clone(),
                            message: message.clone(),
                        }));
                    }
                    if probe {
                        break Some(Halt::Systemic { code, message });
                    }
                }
                Err(e) => {
                    if !is_witness {
                        stack.push(part);
                    }
                    break Some(Halt::Failed(e));
                }
            }
        };
        let Some(halt) = halt else {
            return Ok(Ok(()));
        };
        self.defer(&halt, suspects, stack, report).await?;
        Ok(Err(halt))
    }

    /// After `halt`: every window not settled (the suspects, then the parts left) is marked with
    /// why and stays pending, for the next pass.
    async fn defer(
        &self,
        halt: &Halt,
        suspects: Vec<Suspect>,
        stack: Vec<Part>,
        report: &mut PushReport,
    ) -> Result<(), StoreError> {
        let mut left: Vec<UsageWindow> = suspects
            .into_iter()
            .map(|s| s.window)
            .chain(stack.into_iter().flat_map(|p| p.windows))
            .collect();
        match halt {
            Halt::Failed(e) => {
                tracing::warn!(error = %e, records = left.len(), "usage push failed; retried by the next pass");
                self.metrics.record(Metric::UsagePushFailed);
            }
            Halt::Systemic { code, message } => {
                tracing::error!(%code, %message, records = left.len(), pushes = report.pushes,
                    "KooGallery refused every usage record tried; kept pending, retried by the next pass");
            }
        }
        let why = halt.to_string();
        for w in &mut left {
            w.push_failed(&why);
        }
        report.deferred += left.len();
        self.save_all(&mut left).await?;
        Ok(())
    }
}

/// The part a probe pushes: the newest record left alone, as far from the refusals as the batch
/// goes, or else the witness (`true`). `Err`: every record tried was refused, nothing singles one
/// out.
fn probe_part(
    stack: &mut Vec<Part>,
    witness: &mut Option<UsageWindow>,
    suspects: &[Suspect],
) -> Result<(Part, bool), Halt> {
    if let Some(w) = stack.first_mut().and_then(|p| p.windows.pop()) {
        let part = Part {
            windows: vec![w],
            recheck: false,
        };
        stack.retain(|p| !p.windows.is_empty());
        Ok((part, false))
    } else if let Some(w) = witness.take() {
        let part = Part {
            windows: vec![w],
            recheck: false,
        };
        Ok((part, true))
    } else {
        let (code, message) = suspects
            .last()
            .map(|s| (s.code.clone(), s.message.clone()))
            .unwrap_or_default();
        Err(Halt::Systemic { code, message })
    }
}
