//! `koogallery-sim load`: many signed calls at once against a production URL, as KooGallery's
//! polling and probes make them, every request signed with a nonce of its own. Requests are signed
//! ahead by a signer task and the signing is timed apart, so the latency and throughput reported
//! are the server's: send to the last byte of the answer, over keep-alive connections.

use std::{
    collections::BTreeMap,
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use hdrhistogram::Histogram;
use reqwest::Url;
use serde_json::{Value, json};
use tokio::{sync::mpsc, time::Instant};

use crate::{SimError, Simulator, random_nonce, sign_request};

/// What the load sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadActivity {
    /// queryInstance of one ready instance: `000000` expected.
    QueryInstance,
    /// newInstance of a distinct order each time: `000004` (or `000000`) expected.
    NewInstance,
    /// Nine queryInstance calls to one newInstance.
    Mix,
}

impl std::str::FromStr for LoadActivity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "queryInstance" => Ok(Self::QueryInstance),
            "newInstance" => Ok(Self::NewInstance),
            "mix" => Ok(Self::Mix),
            other => Err(format!(
                "expected queryInstance, newInstance or mix, got {other:?}"
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub activity: LoadActivity,
    pub connections: usize,
    pub duration: Duration,
    /// Requests per second across all connections; as fast as possible when `None`.
    pub rate: Option<u64>,
    /// The instance queryInstance asks for; one is bought first when `None`.
    pub instance_id: Option<String>,
}

/// What a load run measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub requests: u64,
    pub elapsed: Duration,
    pub latency_us: Histogram<u64>,
    /// Answers by result code (`http <status>` for a non-200, `error` for a transport failure).
    pub by_code: BTreeMap<String, u64>,
    /// Answers other than the activity's expected code.
    pub unexpected: u64,
    /// Mean time to sign one request, off the measured path.
    pub signing: Duration,
}

impl LoadReport {
    pub fn requests_per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// The 99th percentile latency, in microseconds.
    pub fn p99_us(&self) -> u64 {
        self.latency_us.value_at_quantile(0.99)
    }

    /// This run as a share of `ceiling`'s, same requests: (requests/s ratio, p99 ratio).
    pub fn against(&self, ceiling: &LoadReport) -> (f64, f64) {
        (
            self.requests_per_second() / ceiling.requests_per_second().max(f64::EPSILON),
            self.p99_us() as f64 / ceiling.p99_us().max(1) as f64,
        )
    }
}

/// Rounds of the same load against a ceiling and a service, alternated (`load --ceiling
/// --rounds`): the median of each round's ratios (requests/s, p99), so that a round the machine
/// slowed for one server and not the other does not decide the figure.
pub fn median_against(rounds: &[(LoadReport, LoadReport)]) -> Option<(f64, f64)> {
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let mid = v.len() / 2;
        if v.len() % 2 == 1 {
            v[mid]
        } else {
            (v[mid - 1] + v[mid]) / 2.0
        }
    };
    if rounds.is_empty() {
        return None;
    }
    let (rates, p99s) = rounds
        .iter()
        .map(|(ceiling, service)| service.against(ceiling))
        .unzip();
    Some((median(rates), median(p99s)))
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} requests in {:.1} s: {:.0} requests/s",
            self.requests,
            self.elapsed.as_secs_f64(),
            self.requests_per_second()
        )?;
        write_latency(f, &self.latency_us)?;
        let codes: Vec<String> = self
            .by_code
            .iter()
            .map(|(code, n)| format!("{code}: {n}"))
            .collect();
        writeln!(f, "answers: {}", codes.join(", "))?;
        writeln!(
            f,
            "signing (off the measured path): {:.1} µs per request",
            self.signing.as_secs_f64() * 1e6
        )?;
        write!(f, "unexpected answers: {}", self.unexpected)
    }
}

/// One request to send, and the codes that count as expected for it.
struct Prepared {
    url: Url,
    body: Vec<u8>,
    expected: &'static [&'static str],
}

const QUERY_OK: &[&str] = &["000000"];
const NEW_OK: &[&str] = &["000004", "000000"];

fn body_for(activity: LoadActivity, n: u64, instance_id: &str) -> (Value, &'static [&'static str]) {
    let new = || {
        let order = format!("CSLOAD{}{n:010}", std::process::id());
        (
            json!({"activity":"newInstance","orderId":order,"orderLineId":format!("{order}-000001"),
                "businessId":format!("load-{order}"),"testFlag":"0"}),
            NEW_OK,
        )
    };
    match activity {
        LoadActivity::QueryInstance => (
            json!({"activity":"queryInstance","instanceId":instance_id,"testFlag":"0"}),
            QUERY_OK,
        ),
        LoadActivity::NewInstance => new(),
        LoadActivity::Mix if n % 10 == 9 => new(),
        LoadActivity::Mix => (
            json!({"activity":"queryInstance","instanceId":instance_id,"testFlag":"0"}),
            QUERY_OK,
        ),
    }
}

/// Buys one instance and waits until queryInstance answers it ready.
pub async fn ready_instance(sim: &Simulator) -> Result<String, SimError> {
    let order = format!("CSLOADQ{}", std::process::id());
    let answer = sim
        .call(&json!({"activity":"newInstance","orderId":order,"orderLineId":format!("{order}-000001"),"businessId":format!("load-q-{order}")}))
        .await?;
    let id = answer.reply.field::<String>("instanceId").ok_or_else(|| {
        SimError::InvalidOptions(format!("newInstance answered {:?}", answer.reply))
    })?;
    // Up to a minute: behind a backlog of provisioning (after a newInstance load) it takes a while.
    for _ in 0..600 {
        let a = sim
            .call(&json!({"activity":"queryInstance","instanceId":id}))
            .await?;
        if a.reply.result_code.as_str() == "000000" {
            return Ok(id);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(SimError::InvalidOptions(format!(
        "instance {id} never became ready"
    )))
}

/// Runs the load against `url` signed with `key`: per connection, a signer keeping freshly
/// signed requests ahead and a sender timing each one, until `opts.duration` is up.
pub async fn run_load(url: &str, key: &str, opts: &LoadOptions) -> Result<LoadReport, SimError> {
    if opts.connections == 0 {
        return Err(SimError::InvalidOptions("at least one connection".into()));
    }
    let sim = Simulator::new(url, key)?;
    let base = sim.url().clone();
    let instance_id = match (&opts.instance_id, opts.activity) {
        (Some(id), _) => id.clone(),
        (None, LoadActivity::NewInstance) => String::new(),
        (None, _) => ready_instance(&sim).await?,
    };

    let signing = Arc::new(SigningTime::default());
    let instance_id: Arc<str> = instance_id.into();
    let pace = opts
        .rate
        .map(|r| Duration::from_secs_f64(opts.connections as f64 / r.max(1) as f64));
    // Every client is built before the clock starts: a connection whose first turn had passed
    // while the others were built would send its missed turns at once.
    let clients = (0..opts.connections)
        .map(|_| connection_client())
        .collect::<Result<Vec<_>, _>>()?;
    let started = Instant::now();
    let deadline = started + opts.duration;
    let mut tasks = Vec::new();
    let mut signers = Vec::new();
    for (connection, client) in (0..opts.connections as u64).zip(clients) {
        let (tx, rx) = mpsc::channel::<Prepared>(64);
        let signer = Signer {
            first: connection,
            stride: opts.connections as u64,
            key: key.to_owned(),
            activity: opts.activity,
            base: base.clone(),
            instance_id: instance_id.clone(),
            signing: signing.clone(),
        };
        signers.push(tokio::spawn(signer.run(tx)));
        let schedule = pace.map(|every| {
            let first = started + first_send_offset(every, connection, opts.connections);
            (first, every)
        });
        tasks.push(tokio::spawn(send_until(client, rx, schedule, deadline)));
    }
    let mut total = Tally::new();
    for task in tasks {
        let Ok(tally) = task.await else {
            continue;
        };
        total.add(tally);
    }
    let elapsed = started.elapsed();
    for signer in signers {
        signer.abort();
    }
    Ok(LoadReport {
        requests: total.latency.len(),
        elapsed,
        latency_us: total.latency,
        by_code: total.by_code,
        unexpected: total.unexpected,
        signing: signing.mean(),
    })
}

/// Signing time and count, across the signers: kept apart so the report's latency is the
/// server's alone.
#[derive(Default)]
struct SigningTime {
    nanos: AtomicU64,
    signed: AtomicU64,
}

impl SigningTime {
    fn add(&self, spent: Duration) {
        self.nanos
            .fetch_add(spent.as_nanos() as u64, Ordering::Relaxed);
        self.signed.fetch_add(1, Ordering::Relaxed);
    }

    /// The mean time to sign one request.
    fn mean(&self) -> Duration {
        let (spent, signed) = (
            Duration::from_nanos(self.nanos.load(Ordering::Relaxed)),
            self.signed.load(Ordering::Relaxed),
        );
        spent / u32::try_from(signed.max(1)).unwrap_or(u32::MAX)
    }
}

/// One connection's signer: it signs the requests numbered `first`, `first + stride`, … (so no
/// two connections send the same order), each with a nonce and timestamp of its own.
struct Signer {
    first: u64,
    stride: u64,
    key: String,
    activity: LoadActivity,
    base: Url,
    instance_id: Arc<str>,
    signing: Arc<SigningTime>,
}

impl Signer {
    /// Signs requests into `tx` until its connection stops taking them; the channel's bound
    /// keeps it a small queue ahead of the connection.
    async fn run(self, tx: mpsc::Sender<Prepared>) {
        let mut n = self.first;
        loop {
            let (body, expected) = body_for(self.activity, n, &self.instance_id);
            n += self.stride;
            let started = std::time::Instant::now();
            let signed = sign_request(
                &self.base,
                &self.key,
                &body,
                &random_nonce(),
                chrono::Utc::now().timestamp_millis(),
            );
            self.signing.add(started.elapsed());
            let Ok(signed) = signed else { return };
            let prepared = Prepared {
                url: signed.url,
                body: signed.body,
                expected,
            };
            if tx.send(prepared).await.is_err() {
                return;
            }
        }
    }
}

/// What one connection, or the whole run, measured.
struct Tally {
    latency: Histogram<u64>,
    by_code: BTreeMap<String, u64>,
    unexpected: u64,
}

impl Tally {
    fn new() -> Self {
        Self {
            latency: Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
                .expect("valid histogram bounds"),
            by_code: BTreeMap::new(),
            unexpected: 0,
        }
    }

    /// Counts one answer `code`, which took `micros`, to a request expecting one of `expected`.
    fn record(&mut self, code: String, micros: u64, expected: &[&str]) {
        let _ = self.latency.record(micros.max(1));
        if !expected.contains(&code.as_str()) {
            self.unexpected += 1;
        }
        *self.by_code.entry(code).or_default() += 1;
    }

    fn add(&mut self, other: Self) {
        let _ = self.latency.add(&other.latency);
        for (code, n) in other.by_code {
            *self.by_code.entry(code).or_default() += n;
        }
        self.unexpected += other.unexpected;
    }
}

/// The client of one connection: it sends one request at a time, so it keeps one connection
/// alive; an answer later than 10 s counts as `error`.
fn connection_client() -> Result<reqwest::Client, SimError> {
    crate::client_builder()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(SimError::Client)
}

/// When connection `connection` of `connections`, each sending one request `every`, sends its
/// first: the connections take turns, one after another through `every`, so that a steady rate
/// arrives as a steady rate. Had they all started at once, each `every` would bring one burst of
/// `connections` requests, and the latency measured would be the time to answer a burst.
fn first_send_offset(every: Duration, connection: u64, connections: usize) -> Duration {
    let nanos = every.as_nanos() * u128::from(connection) / connections.max(1) as u128;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// One connection: sends the signed requests from `rx` over `client` (with a `schedule`, one each
/// period from its first instant on), until `deadline`, timing each from send to the last byte of
/// its answer.
async fn send_until(
    client: reqwest::Client,
    mut rx: mpsc::Receiver<Prepared>,
    schedule: Option<(Instant, Duration)>,
    deadline: Instant,
) -> Tally {
    let mut tally = Tally::new();
    let mut ticker = schedule.map(|(first, every)| tokio::time::interval_at(first, every));
    while Instant::now() < deadline {
        // A turn due after the deadline is not taken, nor waited for.
        if let Some(t) = ticker.as_mut() {
            match tokio::time::timeout_at(deadline, t.tick()).await {
                Ok(due) if due < deadline => {}
                _ => break,
            }
        }
        let Some(p) = rx.recv().await else {
            break;
        };
        let sent = Instant::now();
        let code = answer_code(&client, p.url, p.body).await;
        let micros = sent.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
        tally.record(code, micros, p.expected);
    }
    tally
}

/// Sends one request and reads its answer to the end: the answer's `resultCode`, `http <status>`
/// for a non-200, `error` for a transport failure, `unparsable` for a body without one.
async fn answer_code(client: &reqwest::Client, url: Url, body: Vec<u8>) -> String {
    let answer = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    match answer {
        Ok(r) if r.status().is_success() => match r.bytes().await {
            Ok(bytes) => serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| v["resultCode"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "unparsable".into()),
            Err(_) => "error".into(),
        },
        Ok(r) => format!("http {}", r.status().as_u16()),
        Err(_) => "error".into(),
    }
}

/// The latency line both load reports print: p50, p90, p99 and max of a histogram of microseconds.
pub(crate) fn write_latency(
    f: &mut std::fmt::Formatter<'_>,
    us: &Histogram<u64>,
) -> std::fmt::Result {
    let ms = |quantile: f64| us.value_at_quantile(quantile) as f64 / 1000.0;
    writeln!(
        f,
        "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        us.max() as f64 / 1000.0
    )
}

#[cfg(test)]
mod ratio_tests {
    use super::*;

    fn report(requests: u64, p99_us: u64) -> LoadReport {
        let mut latency_us = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        latency_us.record_n(p99_us, 100).unwrap();
        LoadReport {
            requests,
            elapsed: Duration::from_secs(1),
            latency_us,
            by_code: BTreeMap::new(),
            unexpected: 0,
            signing: Duration::ZERO,
        }
    }

    /// The median of the rounds' ratios: one round in which the ceiling ran slow moves it no
    /// further than the round next to it.
    #[test]
    fn the_rounds_report_the_median_of_their_ratios() {
        let rounds = [
            (report(1000, 1000), report(700, 2000)),
            (report(1000, 1000), report(800, 1500)),
            (report(400, 4000), report(780, 1600)), // the ceiling slowed this round
        ];
        let (rate, p99) = median_against(&rounds).unwrap();
        assert!((rate - 0.8).abs() < 0.01, "{rate}");
        assert!((p99 - 1.5).abs() < 0.01, "{p99}");
        let (rate, p99) = median_against(&rounds[..2]).unwrap();
        assert!((rate - 0.75).abs() < 0.01, "{rate}");
        assert!((p99 - 1.75).abs() < 0.01, "{p99}");
        assert!(median_against(&[]).is_none());
    }
}

#[cfg(test)]
mod schedule_tests {
    use super::*;

    /// At a fixed rate the connections' sends are spread evenly through each period: 32
    /// connections at 10 000/s send one every 100 µs, not 32 at once every 3.2 ms.
    #[test]
    fn connections_at_a_fixed_rate_take_turns_through_the_period() {
        let every = Duration::from_micros(3200);
        let offsets: Vec<Duration> = (0..32).map(|c| first_send_offset(every, c, 32)).collect();
        assert_eq!(offsets[0], Duration::ZERO);
        for pair in offsets.windows(2) {
            assert_eq!(pair[1] - pair[0], Duration::from_micros(100));
        }
        assert!(*offsets.last().unwrap() < every);
        // Two connections: the second half a period after the first.
        assert_eq!(first_send_offset(every, 1, 2), Duration::from_micros(1600));
    }

    /// A connection whose turn falls after the run's end does not send: 4 connections at 1/s
    /// take their first turns at 0, 1, 2 and 3 s, so a run of 1.5 s sends two requests. (Waiting
    /// for each turn whatever the deadline, it sent six and ran 5 s.)
    #[tokio::test]
    async fn a_turn_after_the_deadline_is_not_taken() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(crate::ceiling::serve(listener));
        let opts = LoadOptions {
            activity: LoadActivity::QueryInstance,
            connections: 4,
            duration: Duration::from_millis(1500),
            rate: Some(1),
            instance_id: Some("i-1".into()),
        };
        let report = run_load(&format!("http://{addr}/produce"), "k", &opts)
            .await
            .unwrap();
        assert_eq!(report.requests, 2, "{report}");
        assert_eq!(report.unexpected, 0, "{report}");
    }
}
