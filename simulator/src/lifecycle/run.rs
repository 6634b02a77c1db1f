//! One lifecycle run against the vendor's service (docs/protocol/callbacks.md §6.1–§6.7): each
//! call timed and checked, a step of the report per call, and the `queryInstance` poll until the
//! instance is ready (§6.2).

use std::time::{Duration, Instant};

use koogallery::ResultCode;
use koogallery::protocol::v2_basic::Activity;
use serde_json::Value;

use super::checks::{body, check_instance_info, codes, join_notes, slow_note, transport_problem};
use super::report::{LifecycleReport, Step, fmt_elapsed};
use super::{LifecycleOptions, MAX_INSTANCE_ID};
use crate::{Answer, CallOptions, SimError, Simulator};

/// One request of the lifecycle: its activity and body.
pub(super) struct Call {
    activity: Activity,
    body: Value,
}

/// One run of the lifecycle.
pub(super) struct Run<'a> {
    pub(super) sim: &'a Simulator,
    pub(super) opts: &'a LifecycleOptions,
    pub(super) report: LifecycleReport,
}

pub(crate) async fn run(
    sim: &Simulator,
    opts: &LifecycleOptions,
) -> (LifecycleReport, Result<(), SimError>) {
    let mut run = Run {
        sim,
        opts,
        report: LifecycleReport::default(),
    };
    let outcome = run.all().await;
    (run.report, outcome)
}

impl Run<'_> {
    pub(super) fn body(&self, activity: Activity, fields: &[(&str, Value)]) -> Call {
        Call {
            activity,
            body: body(activity, fields, self.opts.test_flag),
        }
    }

    fn push(&mut self, step: Step) {
        tracing::info!(
            step = %step.name,
            code = ?step.result_code.map(ResultCode::as_str),
            ok = step.ok,
            elapsed_ms = step.elapsed.as_millis(),
            "lifecycle step"
        );
        self.report.steps.push(step);
    }

    /// Marks the last step failed with `detail` and returns the matching error.
    pub(super) fn fail_last(&mut self, detail: String) -> SimError {
        let step = match self.report.steps.last_mut() {
            Some(step) => {
                step.ok = false;
                step.note = join_notes([std::mem::take(&mut step.note), detail.clone()]);
                step.name.clone()
            }
            None => "lifecycle".to_owned(),
        };
        SimError::BadAnswer { step, detail }
    }

    /// Adds `note` to the last step.
    pub(super) fn note_last(&mut self, note: String) {
        if let Some(step) = self.report.steps.last_mut() {
            step.note = join_notes([std::mem::take(&mut step.note), note]);
        }
    }

    /// One call that must answer HTTP 200, a valid `Body-Sign` and one of `expected`.
    pub(super) async fn expect(
        &mut self,
        name: &str,
        call: &Call,
        opts: CallOptions,
        expected: &[ResultCode],
    ) -> Result<Answer, SimError> {
        let activity = call.activity;
        let started = Instant::now();
        let answer = match self.sim.exchange(name, &call.body, &opts).await {
            Ok(answer) => answer,
            Err(e) => {
                self.push(Step {
                    name: name.to_owned(),
                    activity,
                    result_code: None,
                    elapsed: started.elapsed(),
                    ok: false,
                    note: e.to_string(),
                });
                return Err(e);
            }
        };
        let code = answer.reply.result_code;
        self.push(Step {
            name: name.to_owned(),
            activity,
            result_code: Some(code),
            elapsed: answer.elapsed,
            ok: true,
            note: slow_note(answer.elapsed).unwrap_or_default(),
        });
        if let Some(problem) = transport_problem(&answer) {
            return Err(self.fail_last(problem));
        }
        if !expected.contains(&code) {
            return Err(self.fail_last(format!(
                "expected {}, got {code} {:?}",
                codes(expected),
                answer.reply.result_msg
            )));
        }
        Ok(answer)
    }

    /// `instanceId` of a newInstance answer.
    pub(super) fn instance_id_of(&mut self, answer: &Answer) -> Result<String, SimError> {
        match answer.reply.fields.get("instanceId") {
            Some(Value::String(id)) if !id.trim().is_empty() => {
                if id.chars().count() > MAX_INSTANCE_ID {
                    return Err(self.fail_last(format!(
                        "instanceId is {} characters; KooGallery accepts at most {MAX_INSTANCE_ID}",
                        id.chars().count()
                    )));
                }
                Ok(id.clone())
            }
            Some(other) => Err(self.fail_last(format!(
                "instanceId must be a non-empty string, got {other}"
            ))),
            None => Err(self.fail_last("the answer has no instanceId".to_owned())),
        }
    }

    /// Polls queryInstance until `000000` (while `000004`), then checks the instance info.
    pub(super) async fn poll_ready(&mut self, instance_id: &str) -> Result<(), SimError> {
        const NAME: &str = "queryInstance until ready";
        let body = self.body(
            Activity::QueryInstance,
            &[("instanceId", Value::from(instance_id))],
        );
        let started = Instant::now();
        let mut polls = 0u32;
        let mut slowest = Duration::ZERO;
        let step = |code: Option<ResultCode>, ok: bool, note: String, polls: u32, slowest| Step {
            name: NAME.to_owned(),
            activity: Activity::QueryInstance,
            result_code: code,
            elapsed: started.elapsed(),
            ok,
            note: join_notes([
                slow_note(slowest).unwrap_or_default(),
                format!("{polls} poll(s)"),
                note,
            ]),
        };
        loop {
            polls += 1;
            let answer = match self
                .sim
                .exchange(NAME, &body.body, &CallOptions::default())
                .await
            {
                Ok(a) => a,
                Err(e) => {
                    self.push(step(None, false, e.to_string(), polls, slowest));
                    return Err(e);
                }
            };
            slowest = slowest.max(answer.elapsed);
            let code = answer.reply.result_code;
            let problem = transport_problem(&answer);
            match (problem, code) {
                (Some(problem), _) => {
                    self.push(step(Some(code), true, String::new(), polls, slowest));
                    return Err(self.fail_last(problem));
                }
                (None, ResultCode::Success) => {
                    let checked = check_instance_info(&answer, instance_id, &self.sim.access_key);
                    self.push(step(Some(code), true, String::new(), polls, slowest));
                    return match checked {
                        Ok(note) => {
                            self.note_last(note);
                            Ok(())
                        }
                        Err(detail) => Err(self.fail_last(detail)),
                    };
                }
                (None, ResultCode::Processing) => {
                    if started.elapsed() + self.opts.poll_interval > self.opts.poll_timeout {
                        let waited = started.elapsed();
                        self.push(step(
                            Some(code),
                            false,
                            format!(
                                "still {} after {}",
                                ResultCode::Processing,
                                fmt_elapsed(waited)
                            ),
                            polls,
                            slowest,
                        ));
                        return Err(SimError::Timeout {
                            step: NAME.to_owned(),
                            waited,
                        });
                    }
                    tokio::time::sleep(self.opts.poll_interval).await;
                }
                (None, other) => {
                    self.push(step(Some(other), true, String::new(), polls, slowest));
                    return Err(self.fail_last(format!(
                        "expected 000000 (or 000004 while provisioning), got {other} {:?}",
                        answer.reply.result_msg
                    )));
                }
            }
        }
    }
}
