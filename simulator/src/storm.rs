//! `koogallery-sim storm`: KooGallery's newInstance deliveries at scale, with its repeats. A share
//! of the deliveries repeats an order line already sent (same `orderId`/`orderLineId`, the same or
//! a new `businessId`, always a new nonce and timestamp), half of them sent right beside their
//! original so that both are in flight at once. A delivery answered with a signed, retryable
//! `000005` (or not answered in KooGallery's 5 s) is repeated, as KooGallery does
//! (docs/protocol/callbacks.md §5).
//!
//! Then it checks what must hold whatever the load (docs/protocol/callbacks.md §6.1,
//! docs/protocol/decisions.md §6): every delivery of an order line was answered with the same
//! instanceId, and no two lines share one; every line becomes ready through queryInstance; and the
//! vendor's webhook, played here by [`WebhookReceiver`], received exactly one provisioning per line
//! and none for an instance nobody was answered. Any breach is a violation in the report (and a
//! non-zero exit of the command).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fmt,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use hdrhistogram::Histogram;
use koogallery::{ResultCode, security::webhook};
use rand::{Rng as _, SeedableRng as _, rngs::StdRng, seq::SliceRandom as _};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::{KOOGALLERY_TIMEOUT, SimError, Simulator};

/// What a storm sends and how long it waits.
#[derive(Debug, Clone)]
pub struct StormOptions {
    /// newInstance deliveries in all, repeats included.
    pub deliveries: usize,
    /// The share of the deliveries that repeat an order line already sent (0 ≤ share < 1).
    pub duplicate_share: f64,
    /// Deliveries in flight at once.
    pub connections: usize,
    /// Deliveries started per second, across all connections (default: as fast as answered).
    pub rate: Option<f64>,
    /// Pause before a delivery is repeated after a `000005` or no answer.
    pub retry_pause: Duration,
    /// A delivery still without an answer naming its instance this long after it was first sent
    /// counts as lost.
    pub give_up_after: Duration,
    /// How long every line has to become ready (queryInstance `000000`) after the last delivery.
    pub ready_timeout: Duration,
    /// Pause after the last line is ready before the provisionings are counted (a late duplicate
    /// provisioning would arrive in it).
    pub settle: Duration,
    /// Makes the plan (which lines repeat, which businessIds change, the order) reproducible.
    pub seed: u64,
}

impl Default for StormOptions {
    fn default() -> Self {
        Self {
            deliveries: 10_000,
            duplicate_share: 0.3,
            connections: 64,
            rate: None,
            retry_pause: Duration::from_secs(1),
            give_up_after: Duration::from_secs(180),
            ready_timeout: Duration::from_secs(600),
            settle: Duration::from_secs(2),
            seed: rand::rng().random(),
        }
    }
}

/// How a delivery relates to its order line's first one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryKind {
    /// The line's first delivery.
    Original,
    /// A repeat sent right after its original, so both are in flight together.
    WithOriginal,
    /// A repeat sent later in the storm.
    Later,
}

/// One newInstance delivery of the plan.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub line: usize,
    pub business_id: String,
    pub kind: DeliveryKind,
}

/// The deliveries in the order they are started.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Names this storm's orders (`CS<run><line>`), so two storms against one host do not meet.
    pub run: String,
    pub lines: usize,
    pub deliveries: Vec<Delivery>,
}

impl Plan {
    /// `round(deliveries × share)` repeats over `deliveries − repeats` order lines; each repeat
    /// picks a line at random, keeps its businessId or gets a new one (even odds), and is sent
    /// right after the original or at a random later place (even odds).
    ///
    /// # Errors
    /// [`SimError::InvalidOptions`] for no deliveries or a share outside `[0, 1)`.
    pub fn new(opts: &StormOptions) -> Result<Self, SimError> {
        if opts.deliveries == 0 {
            return Err(SimError::InvalidOptions("at least one delivery".into()));
        }
        if !(0.0..1.0).contains(&opts.duplicate_share) {
            return Err(SimError::InvalidOptions(format!(
                "the duplicate share must be in [0, 1), got {}",
                opts.duplicate_share
            )));
        }
        let mut rng = StdRng::seed_from_u64(opts.seed);
        let run: String = (0..8)
            .map(|_| char::from(b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789"[rng.random_range(0..32)]))
            .collect();
        let repeats = ((opts.deliveries as f64) * opts.duplicate_share).round() as usize;
        let repeats = repeats.min(opts.deliveries - 1);
        let lines = opts.deliveries - repeats;
        // Each delivery gets a place; sorting by it gives the sending order. A line's original is
        // at its index; a repeat "with" it just after; a later one anywhere after it (the tail of
        // the storm included).
        let mut placed: Vec<(f64, Delivery)> = (0..lines)
            .map(|line| {
                (
                    line as f64,
                    Delivery {
                        line,
                        business_id: business_id(&run, line, 0),
                        kind: DeliveryKind::Original,
                    },
                )
            })
            .collect();
        for n in 1..=repeats {
            let line = rng.random_range(0..lines);
            let business_id = if rng.random_bool(0.5) {
                business_id(&run, line, 0)
            } else {
                business_id(&run, line, n)
            };
            let (place, kind) = if rng.random_bool(0.5) {
                (
                    line as f64 + rng.random_range(0.0001..0.001),
                    DeliveryKind::WithOriginal,
                )
            } else {
                (
                    rng.random_range(line as f64 + 0.001..lines as f64 + 1.0),
                    DeliveryKind::Later,
                )
            };
            placed.push((
                place,
                Delivery {
                    line,
                    business_id,
                    kind,
                },
            ));
        }
        // Ties (none in practice) in a random order rather than by line.
        placed.shuffle(&mut rng);
        placed.sort_by(|a, b| a.0.total_cmp(&b.0));
        Ok(Self {
            run,
            lines,
            deliveries: placed.into_iter().map(|(_, d)| d).collect(),
        })
    }

    /// KooGallery's order ID of a line: `CS` and 15 characters, like real ones.
    #[must_use]
    pub fn order_id(&self, line: usize) -> String {
        format!("CS{}{line:07}", self.run)
    }

    fn body(&self, d: &Delivery) -> Value {
        let order_id = self.order_id(d.line);
        json!({"activity":"newInstance","orderId":order_id,
            "orderLineId":format!("{order_id}-000001"),"businessId":d.business_id,"testFlag":"0"})
    }
}

fn business_id(run: &str, line: usize, repeat: usize) -> String {
    if repeat == 0 {
        format!("storm-{run}-{line}")
    } else {
        format!("storm-{run}-{line}-r{repeat}")
    }
}

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

/// The vendor's webhook, played by the simulator: verifies each event's signature, answers a
/// `provision` with access information and anything else with `000000`, and counts what it got.
pub struct WebhookReceiver {
    url: String,
    state: Arc<Mutex<Received>>,
}

#[derive(Debug, Default)]
struct Received {
    provisions: HashMap<String, Provisioned>,
    bad_signatures: u64,
    other_events: u64,
}

/// The provision requests for one instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provisioned {
    /// The order the events named.
    pub order_id: String,
    /// The eventId of each request: the host's retries of one event keep it (the vendor's
    /// idempotency key); a second provisioning has a new one.
    pub event_ids: Vec<String>,
}

/// What the webhook received, at one moment.
#[derive(Debug, Clone, Default)]
pub struct Provisionings {
    /// Provision requests per instance.
    pub by_instance: HashMap<String, Provisioned>,
    /// Requests whose signature did not verify (answered 401, not counted above).
    pub bad_signatures: u64,
    /// Events other than `provision`.
    pub other_events: u64,
}

impl Provisionings {
    /// Provision requests received in all.
    #[must_use]
    pub fn calls(&self) -> usize {
        self.by_instance.values().map(|p| p.event_ids.len()).sum()
    }

    /// Distinct provisionings (distinct eventIds) in all.
    #[must_use]
    pub fn distinct(&self) -> usize {
        self.by_instance
            .values()
            .map(|p| p.event_ids.iter().collect::<BTreeSet<_>>().len())
            .sum()
    }
}

impl WebhookReceiver {
    /// Listens on `listen` (port 0: any free port) at `/hook`; events must be signed with `secret`
    /// (the host's `KOOGALLERY_WEBHOOK_SECRET`).
    ///
    /// # Errors
    /// The listener cannot be bound.
    pub async fn start(listen: SocketAddr, secret: &str) -> std::io::Result<Self> {
        use axum::{Router, body::Bytes, http::HeaderMap, http::StatusCode, routing::post};
        let state = Arc::new(Mutex::new(Received::default()));
        let (seen, secret) = (state.clone(), secret.to_owned());
        let app = Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: Bytes| {
                let (seen, secret) = (seen.clone(), secret.clone());
                async move {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                    };
                    let signed = webhook::verify_webhook_signature(
                        &secret,
                        header(webhook::HEADER_TIMESTAMP),
                        &body,
                        header(webhook::HEADER_SIGNATURE),
                    );
                    let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                    if !signed {
                        seen.bad_signatures += 1;
                        return (StatusCode::UNAUTHORIZED, String::new());
                    }
                    let event: Value = serde_json::from_slice(&body).unwrap_or_default();
                    let text = |k: &str| event[k].as_str().unwrap_or_default().to_owned();
                    if event["event"] != "provision" {
                        seen.other_events += 1;
                        return (StatusCode::OK, json!({"resultCode":"000000"}).to_string());
                    }
                    let instance_id = text("instanceId");
                    let provisioned = seen.provisions.entry(instance_id.clone()).or_default();
                    provisioned.order_id = text("orderId");
                    provisioned.event_ids.push(text("eventId"));
                    let answer = json!({"frontEndUrl":format!("https://vendor.example/{instance_id}"),
                        "userName":"owner","password":format!("pw-{instance_id}")});
                    (StatusCode::OK, answer.to_string())
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { url, state })
    }

    /// The URL to give the host as `KOOGALLERY_WEBHOOK_URL`.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What it received so far.
    #[must_use]
    pub fn provisionings(&self) -> Provisionings {
        let seen = self.state.lock().unwrap_or_else(|p| p.into_inner());
        Provisionings {
            by_instance: seen.provisions.clone(),
            bad_signatures: seen.bad_signatures,
            other_events: seen.other_events,
        }
    }
}

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
    /// Attempts by [`Outcome::label`].
    pub by_outcome: BTreeMap<String, u64>,
    /// Attempts answered wrongly or not at all (see [`Outcome`]), and the first few of them.
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
        )?;
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
        match self.all_ready_after {
            Some(t) => writeln!(
                f,
                "ready via queryInstance: {}/{} lines, the last {:.1} s after the last delivery",
                self.ready,
                self.lines,
                t.as_secs_f64()
            )?,
            None => writeln!(
                f,
                "ready via queryInstance: {}/{} lines",
                self.ready, self.lines
            )?,
        }
        writeln!(f, "wrong answers: {}", self.wrong)?;
        for w in &self.wrong_examples {
            writeln!(f, "  {w}")?;
        }
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

/// What one delivery ended with: the instanceId answered (once it was), and every attempt.
struct Delivered {
    answered: Option<(ResultCode, String)>,
    attempts: Vec<Attempt>,
}

/// Sends one delivery until it is answered with its instance, answered wrongly for good, or lost.
async fn deliver(
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
        let outcome = match sim.call(body).await {
            Err(e) => Outcome::NoAnswer(e.to_string()),
            Ok(a) if a.is_slow() => Outcome::NoAnswer(format!(
                "answered after {} ms, past KooGallery's {} s",
                a.elapsed.as_millis(),
                KOOGALLERY_TIMEOUT.as_secs()
            )),
            Ok(a) if a.http_status != 200 || !a.body_sign_valid => Outcome::Wrong(format!(
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
                (ResultCode::InternalError, _) => Outcome::Retryable,
                (code @ (ResultCode::Success | ResultCode::Processing), Some(id)) => {
                    Outcome::Answered {
                        code,
                        instance_id: id,
                    }
                }
                _ => Outcome::Wrong(format!("{:?}", a.reply)),
            },
        };
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

/// Polls in flight at once, and the pause between two rounds of polls: KooGallery's own cadence
/// is not published (docs/protocol/callbacks.md §5); a gentle one leaves the host's worker the
/// store.
const POLL_CONNECTIONS: usize = 16;
const POLL_PAUSE: Duration = Duration::from_secs(1);

/// Polls queryInstance for every instance until each answers `000000` or `timeout` passes;
/// returns the ready ones, when the last became ready, and any wrong answers.
async fn wait_ready(
    sim: &Arc<Simulator>,
    ids: Vec<String>,
    connections: usize,
    timeout: Duration,
) -> (usize, Option<Duration>, Vec<String>) {
    let started = Instant::now();
    let mut pending = ids;
    let mut ready = 0;
    let mut wrong = Vec::new();
    loop {
        let next = Arc::new(AtomicUsize::new(0));
        let list = Arc::new(std::mem::take(&mut pending));
        let mut tasks = Vec::new();
        for _ in 0..connections.clamp(1, POLL_CONNECTIONS) {
            let (sim, next, list) = (sim.clone(), next.clone(), list.clone());
            tasks.push(tokio::spawn(async move {
                let (mut still, mut done, mut wrong) = (Vec::new(), 0usize, Vec::new());
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(id) = list.get(i) else { break };
                    let body = json!({"activity":"queryInstance","instanceId":id,"testFlag":"0"});
                    match sim.call(&body).await {
                        Ok(a) if a.http_status == 200 && a.body_sign_valid => {
                            match a.reply.result_code {
                                ResultCode::Success => done += 1,
                                ResultCode::Processing | ResultCode::InternalError => {
                                    still.push(id.clone());
                                }
                                _ => {
                                    wrong.push(format!("queryInstance {id}: {:?}", a.reply));
                                    still.push(id.clone());
                                }
                            }
                        }
                        Ok(a) => {
                            wrong.push(format!(
                                "queryInstance {id}: HTTP {}, Body-Sign {}",
                                a.http_status, a.body_sign_valid
                            ));
                            still.push(id.clone());
                        }
                        // KooGallery keeps polling through a failed poll.
                        Err(_) => still.push(id.clone()),
                    }
                }
                (still, done, wrong)
            }));
        }
        for t in tasks {
            if let Ok((still, done, w)) = t.await {
                pending.extend(still);
                ready += done;
                wrong.extend(w);
            }
        }
        if pending.is_empty() {
            return (ready, Some(started.elapsed()), wrong);
        }
        if started.elapsed() >= timeout {
            return (ready, None, wrong);
        }
        tokio::time::sleep(POLL_PAUSE).await;
    }
}

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
    let mut per_line: Vec<BTreeSet<String>> = vec![BTreeSet::new(); plan.lines];
    let mut latency =
        Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds");
    let mut by_outcome = BTreeMap::new();
    let mut attempts = Vec::new();
    let (mut wrong, mut wrong_examples, mut unanswered) = (0usize, Vec::new(), 0usize);
    // One example per delivery, so a delivery retried many times does not fill the list.
    let mut exemplified = BTreeSet::new();
    for task in tasks {
        let ended = task
            .await
            .map_err(|e| SimError::InvalidOptions(format!("a storm connection failed: {e}")))?;
        for (line, delivered) in ended {
            for a in delivered.attempts {
                let micros = a.latency.as_micros().min(u128::from(u64::MAX)) as u64;
                let _ = latency.record(micros.max(1));
                *by_outcome.entry(a.outcome.label()).or_insert(0u64) += 1;
                if let Outcome::Wrong(w) | Outcome::NoAnswer(w) = &a.outcome {
                    wrong += 1;
                    if wrong_examples.len() < 10 && exemplified.insert(a.delivery) {
                        wrong_examples
                            .push(format!("{} (delivery {}, line {line})", w, a.delivery));
                    }
                }
                attempts.push(a);
            }
            match delivered.answered {
                Some((_, id)) => {
                    per_line[line].insert(id);
                }
                None => unanswered += 1,
            }
        }
    }
    let elapsed = t0.elapsed();

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
    let instances: BTreeSet<String> = per_line.iter().flatten().cloned().collect();

    let (ready, all_ready_after, poll_wrong) = wait_ready(
        &sim,
        instances.iter().cloned().collect(),
        opts.connections,
        opts.ready_timeout,
    )
    .await;
    if ready < instances.len() {
        violations.push(format!(
            "{} of {} instances not ready within {} s",
            instances.len() - ready,
            instances.len(),
            opts.ready_timeout.as_secs()
        ));
    }
    if let Some(w) = poll_wrong.first() {
        violations.push(format!(
            "{} wrong queryInstance answers, e.g. {w}",
            poll_wrong.len()
        ));
    }
    tokio::time::sleep(opts.settle).await;
    let provisionings = webhook.provisionings();
    violations.extend(judge_provisionings(&provisionings, &instances, &plan.run));
    Ok(StormReport {
        plan_run: plan.run.clone(),
        deliveries: plan.deliveries.len(),
        lines: plan.lines,
        duplicates: plan.deliveries.len() - plan.lines,
        with_original: plan
            .deliveries
            .iter()
            .filter(|d| d.kind == DeliveryKind::WithOriginal)
            .count(),
        new_business_ids: plan
            .deliveries
            .iter()
            .filter(|d| d.business_id != business_id(&plan.run, d.line, 0))
            .count(),
        connections: opts.connections,
        elapsed,
        latency_us: latency,
        by_outcome,
        wrong,
        wrong_examples,
        instances: instances.len(),
        ready,
        all_ready_after,
        provisionings,
        violations,
        attempts,
    })
}

/// Exactly one provisioning (one eventId) per instance answered, and none of this storm's for
/// an instance nobody was answered. Requests repeated with the same eventId are the webhook's
/// at-least-once delivery; in a storm without failures there are none, and they are counted.
fn judge_provisionings(
    seen: &Provisionings,
    instances: &BTreeSet<String>,
    run: &str,
) -> Vec<String> {
    let mut violations = Vec::new();
    if seen.bad_signatures > 0 {
        violations.push(format!(
            "{} webhook requests with a bad signature (is KOOGALLERY_WEBHOOK_SECRET the same on both sides?)",
            seen.bad_signatures
        ));
    }
    let order_prefix = format!("CS{run}");
    let never: Vec<&String> = instances
        .iter()
        .filter(|id| !seen.by_instance.contains_key(*id))
        .collect();
    if !never.is_empty() {
        violations.push(if seen.by_instance.is_empty() {
            "no provisioning reached the webhook at all: start the host with KOOGALLERY_PROVISIONER=webhook KOOGALLERY_WEBHOOK_URL=<this receiver's URL> KOOGALLERY_WEBHOOK_SECRET=<the same secret>"
                .to_owned()
        } else {
            format!(
                "{} instances never provisioned, e.g. {}",
                never.len(),
                never[0]
            )
        });
    }
    let twice: Vec<String> = seen
        .by_instance
        .iter()
        .filter(|(id, _)| instances.contains(*id))
        .filter_map(|(id, p)| {
            let distinct: BTreeSet<&String> = p.event_ids.iter().collect();
            (distinct.len() > 1).then(|| format!("{id}: {} provisionings", distinct.len()))
        })
        .collect();
    if !twice.is_empty() {
        violations.push(format!(
            "{} instances provisioned more than once, e.g. {}",
            twice.len(),
            twice[0]
        ));
    }
    // An instance for one of this storm's orders that no delivery was answered with: a second
    // instance for a line.
    let stray: Vec<&String> = seen
        .by_instance
        .iter()
        .filter(|(id, p)| p.order_id.starts_with(&order_prefix) && !instances.contains(*id))
        .map(|(id, _)| id)
        .collect();
    if !stray.is_empty() {
        violations.push(format!(
            "{} instances provisioned that no delivery was answered with, e.g. {}",
            stray.len(),
            stray[0]
        ));
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(deliveries: usize, share: f64, seed: u64) -> StormOptions {
        StormOptions {
            deliveries,
            duplicate_share: share,
            seed,
            ..StormOptions::default()
        }
    }

    #[test]
    fn the_plan_has_the_asked_share_of_repeats_of_both_kinds() {
        let plan = Plan::new(&opts(10_000, 0.3, 7)).unwrap();
        assert_eq!(plan.deliveries.len(), 10_000);
        assert_eq!(plan.lines, 7_000);
        let originals: BTreeSet<usize> = plan
            .deliveries
            .iter()
            .filter(|d| d.kind == DeliveryKind::Original)
            .map(|d| d.line)
            .collect();
        assert_eq!(originals.len(), 7_000, "one original per line");
        let kind = |k| plan.deliveries.iter().filter(|d| d.kind == k).count();
        let (with, later) = (kind(DeliveryKind::WithOriginal), kind(DeliveryKind::Later));
        assert_eq!(with + later, 3_000);
        assert!((1_300..1_700).contains(&with), "{with}");
        let new_ids = plan
            .deliveries
            .iter()
            .filter(|d| d.business_id != business_id(&plan.run, d.line, 0))
            .count();
        assert!((1_300..1_700).contains(&new_ids), "{new_ids}");
        // Every repeat comes after its original; one "with" it comes within a few places.
        let mut first_at = HashMap::new();
        for (i, d) in plan.deliveries.iter().enumerate() {
            match d.kind {
                DeliveryKind::Original => {
                    first_at.insert(d.line, i);
                }
                DeliveryKind::WithOriginal => {
                    let at = first_at[&d.line];
                    assert!(i - at <= 8, "sent {} places after its original", i - at);
                }
                DeliveryKind::Later => assert!(first_at.contains_key(&d.line)),
            }
        }
        // Reproducible from the seed, different for another.
        let again = Plan::new(&opts(10_000, 0.3, 7)).unwrap();
        assert_eq!(plan.run, again.run);
        assert!(
            plan.deliveries
                .iter()
                .zip(&again.deliveries)
                .all(|(a, b)| a.line == b.line && a.business_id == b.business_id)
        );
        assert_ne!(Plan::new(&opts(10_000, 0.3, 8)).unwrap().run, plan.run);
        assert_eq!(plan.order_id(3).len(), 17);
    }

    #[test]
    fn bad_plans_are_refused() {
        assert!(Plan::new(&opts(0, 0.3, 1)).is_err());
        assert!(Plan::new(&opts(10, 1.0, 1)).is_err());
        assert!(Plan::new(&opts(10, -0.1, 1)).is_err());
        let one = Plan::new(&opts(1, 0.9, 1)).unwrap();
        assert_eq!((one.lines, one.deliveries.len()), (1, 1));
    }

    #[test]
    fn provisionings_are_judged_per_instance() {
        let instances: BTreeSet<String> = ["storm-R-0", "storm-R-1"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let seen = |pairs: &[(&str, &[&str])]| Provisionings {
            by_instance: pairs
                .iter()
                .map(|(id, evs)| {
                    let provisioned = Provisioned {
                        order_id: "CSR0000001".into(),
                        event_ids: evs.iter().map(|e| (*e).to_owned()).collect(),
                    };
                    ((*id).to_owned(), provisioned)
                })
                .collect(),
            ..Provisionings::default()
        };
        let ok = seen(&[("storm-R-0", &["e1"]), ("storm-R-1", &["e2", "e2"])]);
        assert!(judge_provisionings(&ok, &instances, "R").is_empty());
        assert_eq!((ok.calls(), ok.distinct()), (3, 2));
        let twice = seen(&[("storm-R-0", &["e1", "e3"]), ("storm-R-1", &["e2"])]);
        assert_eq!(judge_provisionings(&twice, &instances, "R").len(), 1);
        let missing = seen(&[("storm-R-0", &["e1"])]);
        assert_eq!(judge_provisionings(&missing, &instances, "R").len(), 1);
        let stray = seen(&[
            ("storm-R-0", &["e1"]),
            ("storm-R-1", &["e2"]),
            ("6b6f6f67-derived", &["e9"]),
        ]);
        assert_eq!(judge_provisionings(&stray, &instances, "R").len(), 1);
        let none = Provisionings::default();
        let v = judge_provisionings(&none, &instances, "R");
        assert!(v[0].contains("KOOGALLERY_PROVISIONER=webhook"), "{v:?}");
    }

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
