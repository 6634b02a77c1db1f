//! One delivery of the plan: sent, and repeated as KooGallery does, until it is answered with
//! its instance, answered wrongly for good, or lost; and what each attempt got.

use std::time::Duration;

use koogallery::ResultCode;
use serde_json::Value;
use tokio::time::Instant;

use super::StormOptions;
use crate::{Answer, KOOGALLERY_TIMEOUT, SimError, Simulator};

/// What one attempt of a delivery got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A signed `000000` / `000004` naming the instance, within KooGallery's timeout.
    Answered {
        code: ResultCode,
        instance_id: String,
    },
    /// A signed `000005`: KooGallery repeats the delivery.
    Retryable,
    /// No answer KooGallery would have read: a transport failure or longer than 5 s.
    NoAnswer(String),
    /// Anything else (unsigned, not HTTP 200, another code, no instanceId).
    Wrong(String),
}

impl Outcome {
    /// The heading the report counts it under.
    pub fn label(&self) -> String {
        match self {
            Self::Answered { code, .. } => code.as_str().to_owned(),
            Self::Retryable => ResultCode::InternalError.as_str().to_owned(),
            Self::NoAnswer(_) => "no answer".to_owned(),
            Self::Wrong(_) => "wrong".to_owned(),
        }
    }
}

/// One newInstance attempt, for the timeline (e.g. what was answered during an outage).
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The delivery's index in the plan.
    pub delivery: usize,
    /// When it was sent, from the start of the storm.
    pub sent_at: Duration,
    /// Send to the last byte of the answer (or to the failure).
    pub latency: Duration,
    pub outcome: Outcome,
}

/// What one delivery ended with: the instanceId answered (once it was), and every attempt.
pub(super) struct Delivered {
    pub(super) answered: Option<(ResultCode, String)>,
    pub(super) attempts: Vec<Attempt>,
}

/// Sends one delivery until it is answered with its instance, answered wrongly for good, or lost.
pub(super) async fn deliver(
    sim: &Simulator,
    body: &Value,
    index: usize,
    opts: &StormOptions,
    t0: Instant,
) -> Delivered {
    let first = Instant::now();
    let mut attempts = Vec::new();
    loop {
        let sent = Instant::now();
        let outcome = Outcome::of(sim.call(body).await);
        let attempt = Attempt {
            delivery: index,
            sent_at: sent - t0,
            latency: sent.elapsed(),
            outcome: outcome.clone(),
        };
        attempts.push(attempt);
        match outcome {
            Outcome::Answered { code, instance_id } => {
                return Delivered {
                    answered: Some((code, instance_id)),
                    attempts,
                };
            }
            // A wrong answer is final for the storm: KooGallery would retry it an hour later.
            Outcome::Wrong(_) => {
                return Delivered {
                    answered: None,
                    attempts,
                };
            }
            Outcome::Retryable | Outcome::NoAnswer(_) => {
                if first.elapsed() >= opts.give_up_after {
                    return Delivered {
                        answered: None,
                        attempts,
                    };
                }
                tokio::time::sleep(opts.retry_pause).await;
            }
        }
    }
}

impl Outcome {
    /// What KooGallery would make of one newInstance call's answer.
    fn of(answer: Result<Answer, SimError>) -> Self {
        match answer {
            Err(e) => Self::NoAnswer(e.to_string()),
            Ok(a) if a.is_slow() => Self::NoAnswer(format!(
                "answered after {} ms, past KooGallery's {} s",
                a.elapsed.as_millis(),
                KOOGALLERY_TIMEOUT.as_secs()
            )),
            Ok(a) if a.http_status != 200 || !a.body_sign_valid => Self::Wrong(format!(
                "HTTP {}, Body-Sign {}: {:?}",
                a.http_status,
                if a.body_sign_valid {
                    "valid"
                } else {
                    "invalid"
                },
                a.reply
            )),
            Ok(a) => match (a.reply.result_code, a.reply.field::<String>("instanceId")) {
                (ResultCode::InternalError, _) => Self::Retryable,
                (code @ (ResultCode::Success | ResultCode::Processing), Some(id)) => {
                    Self::Answered {
                        code,
                        instance_id: id,
                    }
                }
                _ => Self::Wrong(format!("{:?}", a.reply)),
            },
        }
    }
}
