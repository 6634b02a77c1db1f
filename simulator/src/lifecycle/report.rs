//! The lifecycle report: one row per step of the purchase lifecycle (docs/protocol/callbacks.md
//! §6.1–§6.7), its result code, time and checks, printed as a table.

use std::fmt;
use std::time::Duration;

use koogallery::ResultCode;

use super::SLOW;
use crate::KOOGALLERY_TIMEOUT;

/// One step of a lifecycle run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What the step does, e.g. `updateInstanceStatus FREEZE (repeat)`.
    pub name: String,
    /// The activity called, as sent: a V2 activity, or a V1 one (`upgrade`, `instanceStatus`…)
    /// in a V1 run.
    pub activity: String,
    /// The result code answered (the last one, for polling); `None` without a usable answer.
    pub result_code: Option<ResultCode>,
    /// Time of the call (for polling: of the whole poll).
    pub elapsed: Duration,
    /// Whether every check of the step passed.
    pub ok: bool,
    /// Details: what was found, or why the step failed. Starts with `SLOW` when an answer took
    /// longer than KooGallery's 5 s limit.
    pub note: String,
}

impl Step {
    /// `true` if an answer of this step took longer than KooGallery waits.
    #[must_use]
    pub fn is_slow(&self) -> bool {
        self.note.starts_with(SLOW)
    }

    fn status(&self) -> &'static str {
        match (self.ok, self.is_slow()) {
            (false, _) => "FAIL",
            (true, true) => "SLOW",
            (true, false) => "ok",
        }
    }
}

/// The steps of a lifecycle run, in order. `Display` prints a table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LifecycleReport {
    /// The instance created (empty if creation failed).
    pub instance_id: String,
    /// Every step run, the failed one (if any) last.
    pub steps: Vec<Step>,
}

impl LifecycleReport {
    /// `true` if at least one step ran and every step passed.
    #[must_use]
    pub fn passed(&self) -> bool {
        !self.steps.is_empty() && self.steps.iter().all(|s| s.ok)
    }

    /// The first failed step, if any.
    #[must_use]
    pub fn failed_step(&self) -> Option<&Step> {
        self.steps.iter().find(|s| !s.ok)
    }
}

/// `12 ms` below a second, `1.234 s` above.
pub(crate) fn fmt_elapsed(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.3} s", d.as_secs_f64())
    }
}

impl LifecycleReport {
    /// One row per step, columns padded to their widest cell.
    fn write_table(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows: Vec<[String; 7]> = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                [
                    (i + 1).to_string(),
                    s.name.clone(),
                    s.activity.clone(),
                    s.result_code
                        .map_or_else(|| "-".to_owned(), |c| c.as_str().to_owned()),
                    fmt_elapsed(s.elapsed),
                    s.status().to_owned(),
                    // One line per step: a multi-line note would break the table.
                    s.note.replace(['\n', '\r'], " "),
                ]
            })
            .collect();
        let header = ["#", "step", "activity", "code", "time", "status", "note"];
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, cells: [&str; 7]| -> fmt::Result {
            let [n, step, activity, code, time, status, note] = cells;
            let text = format!(
                "{n:>w0$}  {step:<w1$}  {activity:<w2$}  {code:<w3$}  {time:>w4$}  {status:<w5$}  {note}",
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
                w3 = widths[3],
                w4 = widths[4],
                w5 = widths[5],
            );
            writeln!(f, "{}", text.trim_end())
        };
        line(f, header)?;
        for row in &rows {
            line(f, row.each_ref().map(String::as_str))?;
        }
        Ok(())
    }
}

impl fmt::Display for LifecycleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let instance = if self.instance_id.is_empty() {
            "(none)"
        } else {
            &self.instance_id
        };
        writeln!(f, "instance {instance}")?;
        self.write_table(f)?;
        let passed = self.steps.iter().filter(|s| s.ok).count();
        let slow = self.steps.iter().filter(|s| s.is_slow()).count();
        write!(f, "{passed}/{} steps passed", self.steps.len())?;
        if slow > 0 {
            write!(
                f,
                ", {slow} slower than KooGallery's {} s limit",
                KOOGALLERY_TIMEOUT.as_secs()
            )?;
        }
        match self.failed_step() {
            Some(s) => write!(
                f,
                "; FAILED at step {:?}: {}",
                s.name,
                s.note.replace(['\n', '\r'], " ")
            ),
            None if self.steps.is_empty() => write!(f, "; nothing ran"),
            None => write!(f, "; PASSED"),
        }
    }
}
