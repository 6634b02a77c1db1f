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

/// Where the isolation of a batch's refused records stands.
struct Isolation {
    /// The parts left to push: the last is pushed next.
    stack: Vec<Part>,
    /// Refused alone, not yet judged: pushed again (`recheck`) after KooGallery next accepts.
    suspects: Vec<Suspect>,
    /// The last record KooGallery accepted: pushed again, unchanged (a duplicate KooGallery
    /// drops, docs/protocol/openapi.md §3 rule 5, as for any retry), it shows whether KooGallery
    /// still accepts records when nothing else is left to compare the suspects with.
    witness: Option<UsageWindow>,
    /// Refused pushes since the last accepted one.
    streak: u32,
}

impl Isolation {
    /// The part a probe pushes: the newest record left alone, as far from the refusals as the
    /// batch goes, or else the witness (`true`). `Err`: every record tried was refused, nothing
    /// singles one out.
    fn probe_part(&mut self) -> Result<(Part, bool), Halt> {
        if let Some(w) = self.stack.first_mut().and_then(|p| p.windows.pop()) {
            let part = Part {
                windows: vec![w],
                recheck: false,
            };
            self.stack.retain(|p| !p.windows.is_empty());
            Ok((part, false))
        } else if let Some(w) = self.witness.take() {
            let part = Part {
                windows: vec![w],
                recheck: false,
            };
            Ok((part, true))
        } else {
            let (code, message) = self
                .suspects
                .last()
                .map(|s| (s.code.clone(), s.message.clone()))
                .unwrap_or_default();
            Err(Halt::Systemic { code, message })
        }
    }
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
        let mut iso = Isolation {
            stack: vec![Part {
                windows: batch,
                recheck: false,
            }],
            suspects: Vec::new(),
            witness: None,
            streak: 0,
        };
        let halt = loop {
            let probe = iso.streak >= limit || (iso.stack.is_empty() && !iso.suspects.is_empty());
            let (part, is_witness) = if probe {
                match iso.probe_part() {
                    Ok(probed) => probed,
                    Err(halt) => break Some(halt),
                }
            } else {
                match iso.stack.pop() {
                    Some(part) => (part, false),
                    None => break None,
                }
            };
            let records: Vec<PushRecord> = part.windows.iter().filter_map(PushRecord::of).collect();
            report.pushes += 1;
            match self.sink.push(&records).await {
                Ok(PushAnswer::Accepted) => {
                    self.accepted(&mut iso, part, is_witness, report, now)
                        .await?;
                }
                Ok(PushAnswer::Refused { code, message }) => {
                    let refusal = (code.as_str(), message.as_str());
                    self.refused(&mut iso, part, is_witness, refusal, report, now)
                        .await?;
                    if probe {
                        break Some(Halt::Systemic { code, message });
                    }
                }
                Err(e) => {
                    if !is_witness {
                        iso.stack.push(part);
                    }
                    break Some(Halt::Failed(e));
                }
            }
        };
        let Some(halt) = halt else {
            return Ok(Ok(()));
        };
        self.defer(&halt, iso.suspects, iso.stack, report).await?;
        Ok(Err(halt))
    }

    /// KooGallery accepted `part`: its windows are accepted (unless it was the witness, accepted
    /// before), its newest is the witness, and the suspects are pushed again.
    async fn accepted(
        &self,
        iso: &mut Isolation,
        mut part: Part,
        is_witness: bool,
        report: &mut PushReport,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        iso.streak = 0;
        if !is_witness {
            for w in &mut part.windows {
                w.accept(now);
            }
            part.windows = self.save_all(&mut part.windows).await?;
            report.accepted += part.windows.len();
        }
        iso.witness = part.windows.pop().or(iso.witness.take());
        if !iso.suspects.is_empty() {
            // Refused alone before this acceptance: once more, now.
            iso.stack.push(Part {
                windows: iso.suspects.drain(..).map(|s| s.window).collect(),
                recheck: true,
            });
        }
        Ok(())
    }

    /// KooGallery refused `part` (`refusal`: its code and message): a part of several records is
    /// split in halves; a record refused alone before and after another acceptance is rejected;
    /// one refused alone for the first time is a suspect.
    async fn refused(
        &self,
        iso: &mut Isolation,
        mut part: Part,
        is_witness: bool,
        (code, message): (&str, &str),
        report: &mut PushReport,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        iso.streak += 1;
        if part.windows.len() > 1 {
            let second = part.windows.split_off(part.windows.len() / 2);
            // The older half first: the stack pops the last pushed.
            iso.stack.push(Part {
                windows: second,
                recheck: part.recheck,
            });
            iso.stack.push(part);
        } else if part.recheck {
            // Refused alone before and after KooGallery accepted other records.
            let w = &mut part.windows[0];
            tracing::error!(instance_id = %w.instance_id, start = %w.start, %code, %message,
                "KooGallery refused a usage record; kept as rejected");
            w.reject(code, message, now);
            if self.save(w).await? {
                report.rejected += 1;
                self.metrics.record(Metric::UsageRejected);
            }
        } else if !is_witness {
            iso.suspects
                .extend(part.windows.drain(..).map(|window| Suspect {
                    window,
                    code: code.to_owned(),
                    message: message.to_owned(),
                }));
        }
        Ok(())
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
