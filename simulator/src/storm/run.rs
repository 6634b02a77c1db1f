//! The storm itself: the plan's deliveries over the connections, then the checks of what the
//! host answered and provisioned.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use hdrhistogram::Histogram;
use tokio::time::Instant;

use super::deliver::{Delivered, deliver};
use super::judge::judge_provisionings;
use super::ready::wait_ready;
use super::{Attempt, Outcome, Plan, StormOptions, StormReport, WebhookReceiver};
use crate::{SimError, Simulator};

/// Runs a storm against `url` signed with `key`; `webhook` is the receiver the host provisions
/// through (its `KOOGALLERY_WEBHOOK_URL`).
///
/// # Errors
/// Invalid options or URL; everything the host does wrong is in the report's violations.
pub async fn run_storm(
    url: &str,
    key: &str,
    opts: &StormOptions,
    webhook: &WebhookReceiver,
) -> Result<StormReport, SimError> {
    if opts.connections == 0 {
        return Err(SimError::InvalidOptions("at least one connection".into()));
    }
    let plan = Arc::new(Plan::new(opts)?);
    let sim = Arc::new(Simulator::new(url, key)?);
    let t0 = Instant::now();
    let tally = send(&sim, &plan, opts, t0).await?;
    let elapsed = t0.elapsed();

    let mut violations = answer_violations(&tally, &plan);
    let instances: BTreeSet<String> = tally.per_line.iter().flatten().cloned().collect();

    let (ready, all_ready_after, poll_wrong) = wait_ready(
        &sim,
        instances.iter().cloned().collect(),
        opts.connections,
        opts.ready_timeout,
    )
    .await;
    violations.extend(ready_violations(instances.len(), ready, &poll_wrong, opts));
    tokio::time::sleep(opts.settle).await;
    let provisionings = webhook.provisionings();
    violations.extend(judge_provisionings(&provisionings, &instances, &plan.run));
    Ok(StormReport {
        plan_run: plan.run.clone(),
        deliveries: plan.deliveries.len(),
        lines: plan.lines,
        duplicates: plan.deliveries.len() - plan.lines,
        with_original: plan.with_original(),
        new_business_ids: plan.new_business_ids(),
        connections: opts.connections,
        elapsed,
        latency_us: tally.latency,
        by_outcome: tally.by_outcome,
        wrong: tally.wrong,
        wrong_examples: tally.wrong_examples,
        instances: instances.len(),
        ready,
        all_ready_after,
        provisionings,
        violations,
        attempts: tally.attempts,
    })
}

/// What must hold once the deliveries are done: every one of the `instances` answered ready by
/// queryInstance within the ready timeout (`ready` were), and no queryInstance answered wrongly.
fn ready_violations(
    instances: usize,
    ready: usize,
    poll_wrong: &[String],
    opts: &StormOptions,
) -> Vec<String> {
    let mut violations = Vec::new();
    if ready < instances {
        violations.push(format!(
            "{} of {} instances not ready within {} s",
            instances - ready,
            instances,
            opts.ready_timeout.as_secs()
        ));
    }
    if let Some(w) = poll_wrong.first() {
        violations.push(format!(
            "{} wrong queryInstance answers, e.g. {w}",
            poll_wrong.len()
        ));
    }
    violations
}

/// What the deliveries of a storm got, counted as they ended.
struct Tally {
    /// The instanceIds each order line was answered with.
    per_line: Vec<BTreeSet<String>>,
    latency: Histogram<u64>,
    by_outcome: BTreeMap<String, u64>,
    attempts: Vec<Attempt>,
    wrong: usize,
    wrong_examples: Vec<String>,
    unanswered: usize,
}

/// Sends the plan's deliveries over `opts.connections` connections, at `opts.rate` if given, and
/// counts what each ended with.
async fn send(
    sim: &Arc<Simulator>,
    plan: &Arc<Plan>,
    opts: &StormOptions,
    t0: Instant,
) -> Result<Tally, SimError> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..opts.connections {
        let (sim, plan, next, opts) = (sim.clone(), plan.clone(), next.clone(), opts.clone());
        tasks.push(tokio::spawn(async move {
            let mut ended = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(d) = plan.deliveries.get(i) else {
                    break;
                };
                if let Some(rate) = opts.rate.filter(|r| *r > 0.0) {
                    tokio::time::sleep_until(t0 + Duration::from_secs_f64(i as f64 / rate)).await;
                }
                let delivered = deliver(&sim, &plan.body(d), i, &opts, t0).await;
                ended.push((d.line, delivered));
            }
            ended
        }));
    }
    let mut tally = Tally {
        per_line: vec![BTreeSet::new(); plan.lines],
        latency: Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)
            .expect("valid histogram bounds"),
        by_outcome: BTreeMap::new(),
        attempts: Vec::new(),
        wrong: 0,
        wrong_examples: Vec::new(),
        unanswered: 0,
    };
    // One example per delivery, so a delivery retried many times does not fill the list.
    let mut exemplified = BTreeSet::new();
    for task in tasks {
        let ended = task
            .await
            .map_err(|e| SimError::InvalidOptions(format!("a storm connection failed: {e}")))?;
        for (line, delivered) in ended {
            tally.count(line, delivered, &mut exemplified);
        }
    }
    Ok(tally)
}

impl Tally {
    /// Counts one delivery of order line `line`; `exemplified` holds the deliveries that already
    /// have an example among the wrong ones.
    fn count(&mut self, line: usize, delivered: Delivered, exemplified: &mut BTreeSet<usize>) {
        for a in delivered.attempts {
            let micros = a.latency.as_micros().min(u128::from(u64::MAX)) as u64;
            let _ = self.latency.record(micros.max(1));
            *self.by_outcome.entry(a.outcome.label()).or_insert(0u64) += 1;
            if let Outcome::Wrong(w) | Outcome::NoAnswer(w) = &a.outcome {
                self.wrong += 1;
                if self.wrong_examples.len() < 10 && exemplified.insert(a.delivery) {
                    self.wrong_examples
                        .push(format!("{} (delivery {}, line {line})", w, a.delivery));
                }
            }
            self.attempts.push(a);
        }
        match delivered.answered {
            Some((_, id)) => {
                self.per_line[line].insert(id);
            }
            None => self.unanswered += 1,
        }
    }
}

/// What must hold of the answers: none wrong or missing, one instanceId per order line, and no
/// instanceId for two lines.
fn answer_violations(tally: &Tally, plan: &Plan) -> Vec<String> {
    let (wrong, unanswered, per_line) = (tally.wrong, tally.unanswered, &tally.per_line);
    let mut violations = Vec::new();
    if wrong > 0 {
        violations.push(format!(
            "{wrong} attempts answered wrongly or not within KooGallery's timeout"
        ));
    }
    if unanswered > 0 {
        violations.push(format!(
            "{unanswered} deliveries never answered with their instanceId"
        ));
    }
    let split: Vec<String> = per_line
        .iter()
        .enumerate()
        .filter(|(_, ids)| ids.len() > 1)
        .map(|(line, ids)| format!("{} answered {ids:?}", plan.order_id(line)))
        .collect();
    if !split.is_empty() {
        violations.push(format!(
            "{} order lines answered more than one instanceId, e.g. {}",
            split.len(),
            split[0]
        ));
    }
    let mut owner: HashMap<&str, usize> = HashMap::new();
    let mut shared = 0;
    for (line, ids) in per_line.iter().enumerate() {
        for id in ids {
            if owner.insert(id, line).is_some() {
                shared += 1;
            }
        }
    }
    if shared > 0 {
        violations.push(format!(
            "{shared} instanceIds answered for more than one order line"
        ));
    }
    violations
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::plan::tests::opts;
    use super::*;

    /// A host that names each instance after the businessId it was sent (a repeat with a new
    /// businessId gets a second instance) and provisions nothing: the storm must say so.
    async fn careless_host() -> String {
        use axum::{Router, body::Bytes, routing::post};
        let app = Router::new().route(
            "/produce",
            post(|body: Bytes| async move {
                let req: Value = serde_json::from_slice(&body).unwrap_or_default();
                let reply = match req["activity"].as_str() {
                    Some("newInstance") => json!({"resultCode":"000004","resultMsg":"",
                        "instanceId":req["businessId"]}),
                    _ => json!({"resultCode":"000000","resultMsg":""}),
                }
                .to_string();
                let sign = koogallery::security::body_sign_header(KEY, reply.as_bytes());
                ([("body-sign", sign)], reply)
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/produce", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }

    const KEY: &str = "storm-test-key";

    #[tokio::test]
    async fn a_second_instance_for_a_line_and_missing_provisionings_are_violations() {
        let url = careless_host().await;
        let webhook = WebhookReceiver::start("127.0.0.1:0".parse().unwrap(), "s")
            .await
            .unwrap();
        let opts = StormOptions {
            connections: 8,
            settle: Duration::ZERO,
            ready_timeout: Duration::from_secs(5),
            ..opts(60, 0.4, 3)
        };
        let report = run_storm(&url, KEY, &opts, &webhook).await.unwrap();
        assert!(!report.passed());
        assert_eq!(report.wrong, 0, "{report}");
        assert_eq!(report.ready, report.instances);
        assert!(report.instances > report.lines, "{report}");
        let all = report.violations.join("\n");
        assert!(all.contains("answered more than one instanceId"), "{all}");
        assert!(all.contains("no provisioning reached the webhook"), "{all}");
        assert!(report.to_string().contains("VIOLATIONS"));
    }

    #[tokio::test]
    async fn unsigned_answers_are_wrong_and_fail_the_storm() {
        use axum::{Router, routing::post};
        let app = Router::new().route(
            "/produce",
            post(|| async { r#"{"resultCode":"000004","resultMsg":"","instanceId":"x"}"# }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/produce", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let webhook = WebhookReceiver::start("127.0.0.1:0".parse().unwrap(), "s")
            .await
            .unwrap();
        let opts = StormOptions {
            connections: 4,
            settle: Duration::ZERO,
            ready_timeout: Duration::from_secs(1),
            ..opts(10, 0.3, 1)
        };
        let report = run_storm(&url, KEY, &opts, &webhook).await.unwrap();
        assert_eq!(report.wrong, 10, "{report}");
        assert!(!report.passed());
    }
}
