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
use crate::{Answer, CallOptions, SimError, Simulator, V1CallOptions};

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

    pub(super) fn push(&mut self, step: Step) {
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
        let started = Instant::now();
        let answer = self.sim.exchange(name, &call.body, &opts).await;
        self.checked(name, call.activity.as_str(), started, answer, expected)
    }

    /// One V1 GET (docs/protocol/callbacks.md §3.6) that must answer as [`Run::expect`] requires.
    pub(super) async fn expect_v1(
        &mut self,
        name: &str,
        params: &[(&str, &str)],
        opts: V1CallOptions,
        expected: &[ResultCode],
    ) -> Result<Answer, SimError> {
        let activity = v1_activity(params);
        let started = Instant::now();
        let answer = self.sim.exchange_v1(name, params, &opts).await;
        self.checked(name, &activity, started, answer, expected)
    }

    /// The step of one call sent at `started`: a failed step for no usable answer, a bad
    /// transport (HTTP status, `Body-Sign`) or a result code not in `expected`.
    fn checked(
        &mut self,
        name: &str,
        activity: &str,
        started: Instant,
        answer: Result<Answer, SimError>,
        expected: &[ResultCode],
    ) -> Result<Answer, SimError> {
        let answer = match answer {
            Ok(answer) => answer,
            Err(e) => {
                self.push(Step {
                    name: name.to_owned(),
                    activity: activity.to_owned(),
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
            activity: activity.to_owned(),
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
        match answer.reply.field::<Value>("instanceId") {
            Some(Value::String(id)) if !id.trim().is_empty() => {
                if id.chars().count() > MAX_INSTANCE_ID {
                    return Err(self.fail_last(format!(
                        "instanceId is {} characters; KooGallery accepts at most {MAX_INSTANCE_ID}",
                        id.chars().count()
                    )));
                }
                Ok(id)
            }
            Some(other) => Err(self.fail_last(format!(
                "instanceId must be a non-empty string, got {other}"
            ))),
            None => Err(self.fail_last("the answer has no instanceId".to_owned())),
        }
    }

    /// Polls queryInstance until `000000` (while `000004`), then checks the instance info.
    pub(super) async fn poll_ready(&mut self, instance_id: &str) -> Result<(), SimError> {
        let body = self.body(
            Activity::QueryInstance,
            &[("instanceId", Value::from(instance_id))],
        );
        let mut poll = Poll::new(POLL, Activity::QueryInstance.as_str());
        loop {
            poll.polls += 1;
            let answer = match self
                .sim
                .exchange(POLL, &body.body, &CallOptions::default())
                .await
            {
                Ok(a) => a,
                Err(e) => {
                    self.push(poll.step(None, false, e.to_string()));
                    return Err(e);
                }
            };
            poll.slowest = poll.slowest.max(answer.elapsed);
            let code = answer.reply.result_code;
            let problem = transport_problem(&answer);
            match (problem, code) {
                (Some(problem), _) => {
                    self.push(poll.step(Some(code), true, String::new()));
                    return Err(self.fail_last(problem));
                }
                (None, ResultCode::Success) => return self.ready(&poll, &answer, instance_id),
                (None, ResultCode::Processing) => {
                    if poll.started.elapsed() + self.opts.poll_interval > self.opts.poll_timeout {
                        let waited = poll.started.elapsed();
                        let note = format!(
                            "still {} after {}",
                            ResultCode::Processing,
                            fmt_elapsed(waited)
                        );
                        self.push(poll.step(Some(code), false, note));
                        return Err(SimError::Timeout {
                            step: poll.name.to_owned(),
                            waited,
                        });
                    }
                    tokio::time::sleep(self.opts.poll_interval).await;
                }
                (None, other) => {
                    self.push(poll.step(Some(other), true, String::new()));
                    return Err(self.fail_last(format!(
                        "expected 000000 (or 000004 while provisioning), got {other} {:?}",
                        answer.reply.result_msg
                    )));
                }
            }
        }
    }

    /// The poll's last step, for a ready `queryInstance` answer: its instance info checked.
    fn ready(&mut self, poll: &Poll, answer: &Answer, instance_id: &str) -> Result<(), SimError> {
        let checked = check_instance_info(answer, instance_id, &self.sim.access_key);
        self.push(poll.step(Some(answer.reply.result_code), true, String::new()));
        match checked {
            Ok(note) => {
                self.note_last(note);
                Ok(())
            }
            Err(detail) => Err(self.fail_last(detail)),
        }
    }
}

/// The name of the `queryInstance` poll's step.
const POLL: &str = "queryInstance until ready";

/// A poll so far (queryInstance until ready; in a V1 run, newInstance until ready): its step's
/// name and activity, when it began, how many polls, the slowest answer.
pub(super) struct Poll {
    pub(super) name: &'static str,
    activity: &'static str,
    pub(super) started: Instant,
    pub(super) polls: u32,
    pub(super) slowest: Duration,
}

impl Poll {
    pub(super) fn new(name: &'static str, activity: &'static str) -> Self {
        Self {
            name,
            activity,
            started: Instant::now(),
            polls: 0,
            slowest: Duration::ZERO,
        }
    }

    /// The poll's step of the report, as it stands.
    pub(super) fn step(&self, code: Option<ResultCode>, ok: bool, note: String) -> Step {
        Step {
            name: self.name.to_owned(),
            activity: self.activity.to_owned(),
            result_code: code,
            elapsed: self.started.elapsed(),
            ok,
            note: join_notes([
                slow_note(self.slowest).unwrap_or_default(),
                format!("{} poll(s)", self.polls),
                note,
            ]),
        }
    }
}

/// The `activity` of V1 parameters, for the report (empty when there is none).
fn v1_activity(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .find(|(k, _)| *k == "activity")
        .map_or_else(String::new, |(_, v)| (*v).to_owned())
}
