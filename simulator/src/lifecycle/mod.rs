//! The purchase lifecycle as KooGallery drives it (docs/protocol/callbacks.md §6.1–§6.7), step by
//! step.

use std::fmt;
use std::time::{Duration, Instant};

use chrono::{Months, Utc};
use koogallery::ResultCode;
use koogallery::protocol::v2_basic::{Activity, InstanceInfo};
use rand::Rng as _;
use serde_json::{Map, Value, json};

use crate::platform::credentials;
use crate::{Answer, CallOptions, KOOGALLERY_TIMEOUT, SimError, Simulator, random_nonce};

/// Start of a step note that flags an answer slower than KooGallery's limit.
const SLOW: &str = "SLOW";

/// Characters of generated order IDs (KooGallery's look like `CS2211181819B4LVS`).
const ORDER_ID_CHARS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// How far back the stale-timestamp probe goes (the accepted window is 60 s, §3.1).
const STALE_BY_MS: i64 = 10 * 60 * 1000;

/// Longest `instanceId` KooGallery accepts (§6.1).
const MAX_INSTANCE_ID: usize = 64;

/// A fresh KooGallery-looking order ID: `CS` + 15 random upper-case alphanumerics.
#[must_use]
pub fn new_order_id() -> String {
    let mut rng = rand::rng();
    let tail: String = (0..15)
        .map(|_| char::from(ORDER_ID_CHARS[rng.random_range(0..ORDER_ID_CHARS.len())]))
        .collect();
    format!("CS{tail}")
}

/// How to run [`Simulator::run_lifecycle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleOptions {
    /// The order of the purchase; the order line is `<orderId>-000001`.
    pub order_id: String,
    /// Send `"testFlag":"1"` in every body (seller-console debugging, §1).
    pub test_flag: bool,
    /// How long to poll `queryInstance` for the instance to become ready.
    pub poll_timeout: Duration,
    /// Pause between two polls.
    pub poll_interval: Duration,
}

impl Default for LifecycleOptions {
    fn default() -> Self {
        Self {
            order_id: new_order_id(),
            test_flag: false,
            poll_timeout: Duration::from_secs(30),
            poll_interval: Duration::from_millis(250),
        }
    }
}

/// One step of a lifecycle run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What the step does, e.g. `updateInstanceStatus FREEZE (repeat)`.
    pub name: String,
    /// The activity called.
    pub activity: Activity,
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

impl fmt::Display for LifecycleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let instance = if self.instance_id.is_empty() {
            "(none)"
        } else {
            &self.instance_id
        };
        writeln!(f, "instance {instance}")?;
        let rows: Vec<[String; 7]> = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                [
                    (i + 1).to_string(),
                    s.name.clone(),
                    s.activity.to_string(),
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

/// The body of one call: `activity` first, then `fields`, then `"testFlag":"1"` when set.
pub(crate) fn body(activity: Activity, fields: &[(&str, Value)], test_flag: bool) -> Value {
    let mut map = Map::new();
    map.insert("activity".to_owned(), Value::from(activity.as_str()));
    for (k, v) in fields {
        map.insert((*k).to_owned(), v.clone());
    }
    if test_flag {
        map.insert("testFlag".to_owned(), Value::from("1"));
    }
    Value::Object(map)
}

/// Note for a slow answer, if it is one.
fn slow_note(elapsed: Duration) -> Option<String> {
    (elapsed > KOOGALLERY_TIMEOUT).then(|| {
        format!(
            "{SLOW}: answered in {}, KooGallery gives up after {} s",
            fmt_elapsed(elapsed),
            KOOGALLERY_TIMEOUT.as_secs()
        )
    })
}

fn join_notes(notes: impl IntoIterator<Item = String>) -> String {
    notes
        .into_iter()
        .filter(|n| !n.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

fn codes(expected: &[ResultCode]) -> String {
    expected
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(" or ")
}

/// What is wrong with an answer before looking at its result code: HTTP status and `Body-Sign`.
fn transport_problem(answer: &Answer) -> Option<String> {
    if answer.http_status != 200 {
        return Some(format!(
            "HTTP {} (KooGallery expects 200 for every answer), resultCode {} {:?}",
            answer.http_status, answer.reply.result_code, answer.reply.result_msg
        ));
    }
    if !answer.body_sign_valid {
        return Some(
            "Body-Sign header missing or not valid for the body under the access key".to_owned(),
        );
    }
    None
}

/// The checks of a ready `queryInstance` answer: `info[0].instanceId` and `appInfo.frontEndUrl`;
/// encrypted credentials must decrypt with the access key. Returns a note (no secrets in it).
pub(crate) fn check_instance_info(
    answer: &Answer,
    instance_id: &str,
    access_key: &str,
) -> Result<String, String> {
    let info = answer
        .reply
        .fields
        .get("info")
        .ok_or("the answer has no info")?;
    let infos: Vec<InstanceInfo> =
        serde_json::from_value(info.clone()).map_err(|e| format!("info is malformed: {e}"))?;
    let first = infos.first().ok_or("info is empty")?;
    if first.instance_id != instance_id {
        return Err(format!(
            "info[0].instanceId is {:?}, expected {instance_id:?}",
            first.instance_id
        ));
    }
    let app = first
        .app_info
        .as_ref()
        .ok_or("info[0].appInfo is missing")?;
    if app.front_end_url.trim().is_empty() {
        return Err("info[0].appInfo.frontEndUrl is empty".to_owned());
    }
    let mut notes = vec![format!("frontEndUrl {}", app.front_end_url)];
    let credentials: Vec<(&str, &str)> = [
        ("userName", app.user_name.as_deref()),
        ("password", app.password.as_deref()),
    ]
    .into_iter()
    .filter_map(|(name, v)| v.map(|v| (name, v)))
    .collect();
    match answer.reply.fields.get("encryptType") {
        None | Some(Value::Null) => {
            if !credentials.is_empty() {
                notes.push("credentials in plain text (no encryptType)".to_owned());
            }
        }
        Some(raw) => {
            let wire = match raw {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let kind = credentials::KeySize::from_wire(&wire)
                .ok_or_else(|| format!("encryptType {wire:?} is neither \"1\" nor \"2\""))?;
            for (name, value) in &credentials {
                credentials::decrypt(access_key, value, kind).map_err(|e| {
                    format!("appInfo.{name} does not decrypt with the access key ({kind:?}): {e}")
                })?;
            }
            notes.push(format!(
                "encryptType {wire}: {} decrypted",
                if credentials.is_empty() {
                    "no credentials".to_owned()
                } else {
                    credentials
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(" and ")
                }
            ));
        }
    }
    Ok(notes.join(", "))
}

/// One request of the lifecycle: its activity and body.
struct Call {
    activity: Activity,
    body: Value,
}

/// One run of the lifecycle.
struct Run<'a> {
    sim: &'a Simulator,
    opts: &'a LifecycleOptions,
    report: LifecycleReport,
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
    fn body(&self, activity: Activity, fields: &[(&str, Value)]) -> Call {
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
    fn fail_last(&mut self, detail: String) -> SimError {
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
    fn note_last(&mut self, note: String) {
        if let Some(step) = self.report.steps.last_mut() {
            step.note = join_notes([std::mem::take(&mut step.note), note]);
        }
    }

    /// One call that must answer HTTP 200, a valid `Body-Sign` and one of `expected`.
    async fn expect(
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
    fn instance_id_of(&mut self, answer: &Answer) -> Result<String, SimError> {
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
    async fn poll_ready(&mut self, instance_id: &str) -> Result<(), SimError> {
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

    async fn all(&mut self) -> Result<(), SimError> {
        use ResultCode::{
            AuthenticationFailed, InstanceNotFound, InvalidParameter, Processing, Success,
        };
        let none = CallOptions::default;
        let opts = self.opts;
        if opts.order_id.trim().is_empty() {
            return Err(SimError::InvalidOptions("order_id is empty".to_owned()));
        }
        if opts.poll_interval.is_zero() {
            return Err(SimError::InvalidOptions(
                "poll_interval must be positive".to_owned(),
            ));
        }

        // §6.1 newInstance, then a KooGallery retry: same order line, new businessId.
        let order_id = opts.order_id.clone();
        let order_line_id = format!("{order_id}-000001");
        let new_instance = |sim_run: &Self| {
            sim_run.body(
                Activity::NewInstance,
                &[
                    ("orderId", Value::from(order_id.as_str())),
                    ("orderLineId", Value::from(order_line_id.as_str())),
                    (
                        "businessId",
                        Value::from(uuid::Uuid::new_v4().hyphenated().to_string()),
                    ),
                ],
            )
        };
        let b = new_instance(self);
        let answer = self
            .expect("newInstance", &b, none(), &[Success, Processing])
            .await?;
        let instance_id = self.instance_id_of(&answer)?;
        self.note_last(format!("instanceId {instance_id}"));
        self.report.instance_id.clone_from(&instance_id);

        let b = new_instance(self);
        let answer = self
            .expect(
                "newInstance retry (new businessId)",
                &b,
                none(),
                &[Success, Processing],
            )
            .await?;
        let again = self.instance_id_of(&answer)?;
        if again != instance_id {
            return Err(self.fail_last(format!(
                "a retry of the same order line got instanceId {again:?}, the first call {instance_id:?}"
            )));
        }
        self.note_last("same instanceId".to_owned());

        // §6.2 queryInstance until ready.
        self.poll_ready(&instance_id).await?;
        let id = || ("instanceId", Value::from(instance_id.as_str()));

        // §6.3 refreshInstance RENEWAL, and KooGallery's retry of it.
        let renewal_order = new_order_id();
        let expire_time = crate::openapi::time_14(
            Utc::now()
                .checked_add_months(Months::new(12))
                .unwrap_or_else(Utc::now),
        );
        let b = self.body(
            Activity::RefreshInstance,
            &[
                id(),
                ("orderId", Value::from(renewal_order.as_str())),
                (
                    "orderLineId",
                    Value::from(format!("{renewal_order}-000001")),
                ),
                ("scene", Value::from("RENEWAL")),
                ("expireTime", Value::from(expire_time.as_str())),
            ],
        );
        self.expect("refreshInstance RENEWAL", &b, none(), &[Success])
            .await?;
        self.note_last(format!("expireTime {expire_time}"));
        self.expect("refreshInstance RENEWAL (repeat)", &b, none(), &[Success])
            .await?;

        // §6.4 updateInstanceStatus: freeze, freeze again (idempotent), unfreeze.
        let status = |s: &Self, action: &str| {
            s.body(
                Activity::UpdateInstanceStatus,
                &[id(), ("status", Value::from(action))],
            )
        };
        let b = status(self, "FREEZE");
        self.expect("updateInstanceStatus FREEZE", &b, none(), &[Success])
            .await?;
        self.expect(
            "updateInstanceStatus FREEZE (repeat)",
            &b,
            none(),
            &[Success],
        )
        .await?;
        let b = status(self, "UNFREEZE");
        self.expect("updateInstanceStatus UNFREEZE", &b, none(), &[Success])
            .await?;

        // §6.6 upgradeInstance with a new order.
        let upgrade_order = new_order_id();
        let b = self.body(
            Activity::UpgradeInstance,
            &[
                id(),
                ("orderId", Value::from(upgrade_order.as_str())),
                (
                    "orderLineId",
                    Value::from(format!("{upgrade_order}-000001")),
                ),
            ],
        );
        self.expect("upgradeInstance", &b, none(), &[Success])
            .await?;

        // §6.7 changeInstanceCheck (nested productInfo: exercises nested canonicalisation).
        let b = self.body(
            Activity::ChangeInstanceCheck,
            &[
                id(),
                (
                    "productInfo",
                    json!({"productId": "OFFI000000000000SIM", "skuCode": "sim-sku-002", "linearValue": 10}),
                ),
            ],
        );
        self.expect("changeInstanceCheck", &b, none(), &[Success])
            .await?;

        let query = self.body(Activity::QueryInstance, &[id()]);
        self.expect("queryInstance (still there)", &query, none(), &[Success])
            .await?;

        // Negative probes (§3.1): replay, forged signature, stale timestamp, unknown instance.
        let nonce = random_nonce();
        let now_ms = Utc::now().timestamp_millis();
        let fixed = || CallOptions {
            nonce: Some(nonce.clone()),
            timestamp_ms: Some(now_ms),
            key: None,
        };
        self.expect(
            "queryInstance (nonce first use)",
            &query,
            fixed(),
            &[Success],
        )
        .await?;
        self.expect(
            "replayed request (same nonce)",
            &query,
            fixed(),
            &[AuthenticationFailed],
        )
        .await?;
        let forged = CallOptions {
            key: Some(format!("forged-{}", random_nonce())),
            ..CallOptions::default()
        };
        self.expect(
            "forged signature (wrong key)",
            &query,
            forged,
            &[AuthenticationFailed],
        )
        .await?;
        let stale = CallOptions {
            timestamp_ms: Some(Utc::now().timestamp_millis() - STALE_BY_MS),
            ..CallOptions::default()
        };
        self.expect(
            "stale timestamp (now - 10 min)",
            &query,
            stale,
            &[InvalidParameter],
        )
        .await?;
        let unknown = self.body(
            Activity::QueryInstance,
            &[(
                "instanceId",
                Value::from(format!("sim-unknown-{}", uuid::Uuid::new_v4().simple())),
            )],
        );
        // Debug calls answer 000000 with plausible appInfo for any ID
        // (docs/protocol/decisions.md §7): the probes must pass whatever order they replay the
        // cases in.
        let gone: &[ResultCode] = if self.opts.test_flag {
            &[Success]
        } else {
            &[InstanceNotFound]
        };
        self.expect("queryInstance (unknown instanceId)", &unknown, none(), gone)
            .await?;

        // §6.5 releaseInstance, idempotent; the instance is gone afterwards.
        let b = self.body(Activity::ReleaseInstance, &[id()]);
        self.expect("releaseInstance", &b, none(), &[Success])
            .await?;
        self.expect("releaseInstance (repeat)", &b, none(), &[Success])
            .await?;
        self.expect("queryInstance (after release)", &query, none(), gone)
            .await?;
        Ok(())
    }
}
