//! What a storm measured and found, and how it is printed.

use std::{collections::BTreeMap, fmt, time::Duration};

use hdrhistogram::Histogram;

use super::{Attempt, Provisionings};

/// What a storm measured and found.
#[derive(Debug, Clone)]
pub struct StormReport {
    pub plan_run: String,
    pub deliveries: usize,
    pub lines: usize,
    /// Repeats of a line, in all; sent with their original; with a businessId of their own.
    pub duplicates: usize,
    pub with_original: usize,
    pub new_business_ids: usize,
    pub connections: usize,
    /// From the first delivery sent to the last one answered.
    pub elapsed: Duration,
    /// Every attempt's latency (repeats included).
    pub latency_us: Histogram<u64>,
    /// Attempts by [`Outcome::label`](super::Outcome::label).
    pub by_outcome: BTreeMap<String, u64>,
    /// Attempts answered wrongly or not at all (see [`Outcome`](super::Outcome)), and the first
    /// few of them.
    pub wrong: usize,
    pub wrong_examples: Vec<String>,
    /// Distinct instanceIds answered.
    pub instances: usize,
    /// Lines that reached ready through queryInstance, and when the last did (after the last
    /// delivery was answered).
    pub ready: usize,
    pub all_ready_after: Option<Duration>,
    pub provisionings: Provisionings,
    /// Everything that must not happen; empty when the storm passed.
    pub violations: Vec<String>,
    /// Every attempt, in the order they ended.
    pub attempts: Vec<Attempt>,
}

impl StormReport {
    #[must_use]
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// Deliveries answered per second.
    #[must_use]
    pub fn rate(&self) -> f64 {
        self.deliveries as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

impl fmt::Display for StormReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_plan(f)?;
        crate::load::write_latency(f, &self.latency_us)?;
        let outcomes: Vec<String> = self
            .by_outcome
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        writeln!(f, "answers: {}", outcomes.join(", "))?;
        writeln!(
            f,
            "instances created (distinct instanceIds answered): {} for {} order lines",
            self.instances, self.lines
        )?;
        writeln!(
            f,
            "provisionings (webhook): {} distinct, {} requests, for {} instances",
            self.provisionings.distinct(),
            self.provisionings.calls(),
            self.provisionings.by_instance.len()
        )?;
        self.write_ready(f)?;
        writeln!(f, "wrong answers: {}", self.wrong)?;
        for w in &self.wrong_examples {
            writeln!(f, "  {w}")?;
        }
        self.write_violations(f)
    }
}

impl StormReport {
    /// What was sent (lines, duplicates, connections) and how fast it was answered.
    fn write_plan(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "storm {}: {} newInstance deliveries for {} order lines: {} duplicates ({} in flight with their original, {} with a new businessId) over {} connections",
            self.plan_run,
            self.deliveries,
            self.lines,
            self.duplicates,
            self.with_original,
            self.new_business_ids,
            self.connections
        )?;
        writeln!(
            f,
            "answered in {:.1} s: {:.0} deliveries/s; {} requests ({} repeats after a 000005 or no answer)",
            self.elapsed.as_secs_f64(),
            self.rate(),
            self.latency_us.len(),
            self.latency_us.len().saturating_sub(self.deliveries as u64)
        )
    }

    /// How many lines queryInstance answered ready, and when the last one was, if all were.
    fn write_ready(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.all_ready_after {
            Some(t) => writeln!(
                f,
                "ready via queryInstance: {}/{} lines, the last {:.1} s after the last delivery",
                self.ready,
                self.lines,
                t.as_secs_f64()
            ),
            None => writeln!(
                f,
                "ready via queryInstance: {}/{} lines",
                self.ready, self.lines
            ),
        }
    }

    /// The verdict, last: none, or every violation on a line of its own.
    fn write_violations(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.violations.is_empty() {
            write!(
                f,
                "violations: none (one instance and one provisioning per order line)"
            )
        } else {
            write!(f, "VIOLATIONS:")?;
            for v in &self.violations {
                write!(f, "\n  {v}")?;
            }
            Ok(())
        }
    }
}
