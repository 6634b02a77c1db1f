//! `koogallery-admin`'s operator commands (docs/operations.md, "The operator console"): the
//! operator API (`/admin/api/…`) from a terminal. Every command takes `--json`, which prints the
//! API's answer as it came (`"v": 1`); without it, a table or a summary for a person.
//!
//! The buyer calls, "I paid an hour ago and can't log in":
//!
//! ```text
//! koogallery-admin instances --customer <customerId>    # which instance, in which state
//! koogallery-admin instance <instanceId>                # what happened, what is owed, what KooGallery sent,
//!                                                       # its 联营 tenants and users, SSO sessions, License codes
//! koogallery-admin redrive --instance <instanceId>      # what the worker gave up on goes again, in order
//! ```

use std::process::ExitCode;

use koogallery::config::Env;
use serde_json::{Value, json};

use crate::admin_cli::{AdminError, HostArgs, client, finish, reach};

/// How long an operator call may take (a listing scans the store).
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Debug, Clone, clap::Args)]
pub struct InstancesArgs {
    /// The buyer's customer ID (from the order, once Query Order was read).
    #[arg(long)]
    pub customer: Option<String>,
    /// The order ID.
    #[arg(long)]
    pub order: Option<String>,
    /// provisioning, active, frozen, failed or released.
    #[arg(long)]
    pub state: Option<String>,
    /// A product ID or a SKU code.
    #[arg(long)]
    pub product: Option<String>,
    /// Created at or after (RFC 3339, e.g. 2026-12-05T08:00:00Z).
    #[arg(long)]
    pub since: Option<String>,
    /// Created before (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// At most this many (1 to 1000).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    #[command(flatten)]
    pub host: HostArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct InstanceArgs {
    /// The instance ID.
    pub instance_id: String,
    #[command(flatten)]
    pub host: HostArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ExchangesArgs {
    #[arg(long)]
    pub instance: Option<String>,
    #[arg(long)]
    pub order: Option<String>,
    /// Older than this exchange ID (the last of the previous page).
    #[arg(long)]
    pub before: Option<String>,
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    #[command(flatten)]
    pub host: HostArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DeadLettersArgs {
    #[arg(long)]
    pub instance: Option<String>,
    /// Those whose reason contains this.
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub host: HostArgs,
}

#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["id", "instance", "all"])))]
pub struct RedriveArgs {
    /// One dead letter, by its ID.
    pub id: Option<String>,
    /// Every dead letter of this instance.
    #[arg(long)]
    pub instance: Option<String>,
    /// Every dead letter.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub host: HostArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DiscardArgs {
    /// The dead letter's ID.
    pub id: String,
    /// Why (kept in the exchange log with who discarded it).
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub host: HostArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ReconcileArgs {
    #[command(flatten)]
    pub host: HostArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PassesArgs {
    /// Passes to show, newest first.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    #[command(flatten)]
    pub host: HostArgs,
}

/// One operator command.
#[derive(Debug)]
pub enum Call {
    Instances(InstancesArgs),
    Instance(InstanceArgs),
    Exchanges(ExchangesArgs),
    DeadLetters(DeadLettersArgs),
    Redrive(RedriveArgs),
    Discard(DiscardArgs),
    Usage(InstanceArgs),
    Reconcile(ReconcileArgs),
    Passes(PassesArgs),
}

/// The operator's name sent with every call, kept with its actions: `$USER@host`.
/// (The login's own variables, read as any variable is, through `Env`.)
fn operator_name(env: &Env<'_>) -> String {
    let user = env
        .derived("USER")
        .or_else(|| env.derived("LOGNAME"))
        .unwrap_or_else(|| "someone".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    if host.is_empty() {
        user
    } else {
        format!("{user}@{host}")
    }
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    let mut q = form_urlencoded_serializer();
    for (k, v) in pairs {
        if let Some(v) = v {
            q.append_pair(k, v);
        }
    }
    q.finish()
}

fn form_urlencoded_serializer() -> url::form_urlencoded::Serializer<'static, String> {
    url::form_urlencoded::Serializer::new(String::new())
}

fn path_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Calls the operator API: `GET path` or `POST path` with `body`; the answer's JSON.
pub async fn call(
    host: &HostArgs,
    env: &Env<'_>,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value, AdminError> {
    let (url, token) = if host.aws {
        if host.url.is_none()
            && env
                .get(&koogallery::config::catalog::ADMIN_API_URL)
                .is_none()
        {
            return Err(AdminError::Usage(
                "--aws needs --url: the stack output AdminUrl (the admin function's URL)".into(),
            ));
        }
        (crate::admin_cli::host_url(host, env)?, None)
    } else {
        let (url, token) = reach(host, env)?;
        (url, Some(token))
    };
    let client = client(host, TIMEOUT)?;
    let endpoint = format!("{url}{path}");
    let unreachable = |e: reqwest::Error| AdminError::Unreachable {
        url: endpoint.clone(),
        detail: koogallery::callbacks::error_chain(&e),
    };
    let mut request = client
        .request(method, &endpoint)
        .header(::admin::OPERATOR_HEADER, operator_name(env));
    if let Some(token) = &token {
        request = request.bearer_auth(token.expose());
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    if !body.is_empty() {
        request = request
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone());
    }
    let mut request = request.build().map_err(unreachable)?;
    if host.aws {
        sign(&url, &mut request, body.as_bytes()).await?;
    }
    let answer = client.execute(request).await.map_err(unreachable)?;
    let status = answer.status();
    let bytes = answer.bytes().await.map_err(unreachable)?;
    let value: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({ "error": String::from_utf8_lossy(&bytes).chars().take(300).collect::<String>() }));
    if !status.is_success() {
        return Err(AdminError::Refused {
            status: status.as_u16(),
            message: value
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("no reason given")
                .to_owned(),
        });
    }
    Ok(value)
}

/// Signs `request` with the caller's AWS credentials (`--aws`).
#[cfg(feature = "aws")]
async fn sign(url: &str, request: &mut reqwest::Request, body: &[u8]) -> Result<(), AdminError> {
    crate::aws_signing::Signer::for_url(url)
        .await?
        .sign(request, body)
        .await
}

#[cfg(not(feature = "aws"))]
async fn sign(_: &str, _: &mut reqwest::Request, _: &[u8]) -> Result<(), AdminError> {
    Err(AdminError::Usage(NO_AWS.into()))
}

/// What `--aws` answers in a build without it.
#[cfg(not(feature = "aws"))]
pub(crate) const NO_AWS: &str = "--aws: this koogallery-admin is built without AWS support; build it with `cargo build --release -p koogallery-local --features aws`";

/// Runs one operator command and prints its answer.
pub fn run(host: &HostArgs, env: &Env<'_>, c: Call) -> ExitCode {
    let outcome = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AdminError::Usage(format!("cannot start the runtime: {e}")))
        .and_then(|rt| rt.block_on(answer(host, env, &c)));
    finish(host.json, outcome, |v| human(&c, v))
}

async fn answer(host: &HostArgs, env: &Env<'_>, c: &Call) -> Result<Value, AdminError> {
    use reqwest::Method;
    match c {
        Call::Instances(a) => {
            let q = query(&[
                ("customer", a.customer.clone()),
                ("order", a.order.clone()),
                ("state", a.state.clone()),
                ("product", a.product.clone()),
                ("since", a.since.clone()),
                ("until", a.until.clone()),
                ("limit", Some(a.limit.to_string())),
            ]);
            call(
                host,
                env,
                Method::GET,
                &format!("/admin/api/instances?{q}"),
                None,
            )
            .await
        }
        Call::Instance(a) => {
            call(
                host,
                env,
                Method::GET,
                &format!("/admin/api/instances/{}", path_segment(&a.instance_id)),
                None,
            )
            .await
        }
        Call::Usage(a) => {
            let page = call(
                host,
                env,
                Method::GET,
                &format!("/admin/api/instances/{}", path_segment(&a.instance_id)),
                None,
            )
            .await?;
            Ok(json!({ "v": page["v"], "instance_id": a.instance_id, "usage": page["usage"] }))
        }
        Call::Exchanges(a) => {
            let q = query(&[
                ("instance", a.instance.clone()),
                ("order", a.order.clone()),
                ("before", a.before.clone()),
                ("limit", Some(a.limit.to_string())),
            ]);
            call(
                host,
                env,
                Method::GET,
                &format!("/admin/api/exchanges?{q}"),
                None,
            )
            .await
        }
        Call::DeadLetters(a) => {
            let q = query(&[
                ("instance", a.instance.clone()),
                ("reason", a.reason.clone()),
            ]);
            call(
                host,
                env,
                Method::GET,
                &format!("/admin/api/dead-letters?{q}"),
                None,
            )
            .await
        }
        Call::Redrive(a) => {
            let body = match (&a.id, &a.instance, a.all) {
                (Some(id), _, _) => json!({ "id": id }),
                (None, Some(i), _) => json!({ "instance": i }),
                _ => json!({ "all": true }),
            };
            call(
                host,
                env,
                Method::POST,
                "/admin/api/dead-letters/redrive",
                Some(body),
            )
            .await
        }
        Call::Discard(a) => {
            call(
                host,
                env,
                Method::POST,
                "/admin/api/dead-letters/discard",
                Some(json!({ "id": a.id, "reason": a.reason })),
            )
            .await
        }
        Call::Reconcile(_) => call(host, env, Method::POST, "/admin/api/reconcile", None).await,
        Call::Passes(a) => {
            let q = query(&[("limit", Some(a.limit.to_string()))]);
            call(
                host,
                env,
                Method::GET,
                &format!("/admin/api/reconcile?{q}"),
                None,
            )
            .await
        }
    }
}

fn text<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("-")
}

/// `none` for an empty list, else nothing (the rows follow).
fn none_if_empty(list: &[Value]) -> &'static str {
    if list.is_empty() { "none" } else { "" }
}

/// An instance page's 联营 tenants, SSO sessions and License codes, as the API shows them (login
/// IDs, `sid`s, masked codes; never a secret).
fn accounts(v: &Value) -> Vec<String> {
    let empty = Vec::new();
    let list = |v: &Value, k: &str| v.get(k).and_then(Value::as_array).unwrap_or(&empty).clone();
    let mut out = Vec::new();
    let tenants = list(v, "kit_tenants");
    out.push(format!("kit tenants: {}", none_if_empty(&tenants)));
    for t in &tenants {
        out.push(format!(
            "  tenant {}  code {}  order {}  auth centre {}  departments {}",
            text(t, "tenant_id"),
            text(t, "tenant_code"),
            text(t, "order_id"),
            text(t, "domain_name"),
            t["department_count"]
        ));
        for a in list(t, "apps") {
            out.push(format!(
                "    app {}  client {}",
                text(&a, "app_id"),
                text(&a, "client_id")
            ));
        }
        for u in list(t, "users") {
            let status = if u["revoked"] == true {
                "revoked"
            } else if u["enabled"] == false {
                "disabled"
            } else {
                "may sign in"
            };
            out.push(format!(
                "    user {}  app {}{}  org {}  role {}  {status}",
                text(&u, "user_name"),
                text(&u, "app_id"),
                if u["app_synced"] == false {
                    " (not synced)"
                } else {
                    ""
                },
                text(&u, "org_code"),
                text(&u, "role"),
            ));
        }
    }
    let sessions = list(v, "sso_sessions");
    out.push(format!("sso sessions: {}", none_if_empty(&sessions)));
    for s in &sessions {
        out.push(format!(
            "  {}  tenant {}  app {}  user {}  signed in {}  ends {}",
            text(s, "sid"),
            text(s, "tenant_id"),
            text(s, "app_id"),
            text(s, "user_name"),
            text(s, "auth_time"),
            text(s, "refresh_expires_at")
        ));
    }
    let codes = list(v, "license_codes");
    out.push(format!("license codes: {}", none_if_empty(&codes)));
    for l in &codes {
        let activation = &l["activation"];
        out.push(format!(
            "  {}  {}  expires {}  {}",
            text(l, "code"),
            text(l, "status"),
            text(l, "expire_time"),
            if activation.is_null() {
                "not activated".to_owned()
            } else {
                format!(
                    "activated {} by {}",
                    text(activation, "at"),
                    text(activation, "client_id")
                )
            }
        ));
    }
    out
}

/// What a person reads.
fn human(c: &Call, v: &Value) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    let empty = Vec::new();
    let list = |k: &str| v.get(k).and_then(Value::as_array).unwrap_or(&empty).clone();
    match c {
        Call::Instances(_) => {
            let instances = list("instances");
            if instances.is_empty() {
                line("no instance matches".into());
            }
            for i in &instances {
                line(format!(
                    "{:<36} {:<12} order {} customer {} sku {} created {}{}",
                    text(i, "instance_id"),
                    text(i, "state"),
                    text(i, "order_id"),
                    text(i, "customer_id"),
                    text(i, "sku_code"),
                    text(i, "created_at"),
                    match (i["notices_pending"].as_u64(), i["outbox_parked"].as_bool()) {
                        (Some(n), Some(true)) if n > 0 => format!(" ({n} notices PARKED)"),
                        (Some(n), _) if n > 0 => format!(" ({n} notices pending)"),
                        _ => String::new(),
                    }
                ));
            }
        }
        Call::Instance(_) => {
            let s = &v["summary"];
            let r = &v["instance"];
            line(format!(
                "instance {}  state {}{}",
                text(s, "instance_id"),
                text(s, "state"),
                if s["test"] == true { " (debug)" } else { "" }
            ));
            line(format!(
                "order    {} / {}",
                text(s, "order_id"),
                text(s, "order_line_id")
            ));
            line(format!(
                "customer {}  product {}  sku {}",
                text(s, "customer_id"),
                text(s, "product_id"),
                text(s, "sku_code")
            ));
            line(format!(
                "created  {}  updated {}",
                text(s, "created_at"),
                text(s, "updated_at")
            ));
            line(format!("provisioning {}", r["provisioning"]));
            line(format!(
                "outbox   pending {} {}",
                r["pending_notices"], r["outbox"]
            ));
            if !r["failure"].is_null() {
                line(format!("failure  {}", r["failure"]));
            }
            line("history:".into());
            for e in list("history") {
                line(format!(
                    "  {} #{} {} {} -> {}",
                    text(&e, "at"),
                    e["seq"],
                    e["kind"]["type"].as_str().unwrap_or("-"),
                    e["from"].as_str().unwrap_or("-"),
                    text(&e, "to")
                ));
            }
            let dead = list("dead_letters");
            line(format!(
                "dead letters: {}",
                if dead.is_empty() {
                    "none".to_owned()
                } else {
                    String::new()
                }
            ));
            for d in &dead {
                line(format!(
                    "  {} {} ({}): {}  -> koogallery-admin redrive {}",
                    text(d, "id"),
                    text(d, "subject"),
                    text(d, "at"),
                    text(d, "reason"),
                    text(d, "id")
                ));
            }
            for l in accounts(v) {
                line(l);
            }
            let exchanges = list("exchanges");
            line(format!(
                "exchanges (newest first): {}",
                if v["exchange_log"] == false {
                    "the log is off".to_owned()
                } else if exchanges.is_empty() {
                    "none".to_owned()
                } else {
                    String::new()
                }
            ));
            for x in exchanges.iter().take(20) {
                line(format!(
                    "  {} {:<8} {:<22} {} {}",
                    text(x, "at"),
                    text(x, "direction"),
                    text(x, "activity"),
                    x["result_code"].as_str().unwrap_or(""),
                    x["error"].as_str().unwrap_or("")
                ));
            }
        }
        Call::Usage(_) => {
            let usage = list("usage");
            if usage.is_empty() {
                line("no usage reported".into());
            }
            for w in &usage {
                line(format!(
                    "{} total {} ({} reports) {}{}",
                    w["start"].as_str().unwrap_or("-"),
                    w["total"],
                    w["reports"],
                    text(w, "window_state"),
                    w.get("code")
                        .and_then(Value::as_str)
                        .map(|c| format!(" {c}"))
                        .unwrap_or_default()
                ));
            }
        }
        Call::Exchanges(_) => {
            for x in list("exchanges") {
                line(format!(
                    "{} {} {:<8} {:<22} {:<8} instance {} order {}",
                    text(&x, "id"),
                    text(&x, "at"),
                    text(&x, "direction"),
                    text(&x, "activity"),
                    x["result_code"].as_str().unwrap_or("-"),
                    text(&x, "instance_id"),
                    text(&x, "order_id")
                ));
            }
        }
        Call::DeadLetters(_) => {
            let dead = list("dead_letters");
            if dead.is_empty() {
                line("no dead letters".into());
            }
            for d in &dead {
                line(format!(
                    "{} {} ({} attempts, {}): {}",
                    text(d, "id"),
                    text(d, "subject"),
                    d["attempts"],
                    text(d, "at"),
                    text(d, "reason")
                ));
            }
        }
        Call::Redrive(_) => line(format!(
            "redriven: {}; already gone: {}",
            v["redriven"], v["gone"]
        )),
        Call::Discard(_) => line(format!(
            "discarded: {}; already gone: {}",
            v["discarded"], v["gone"]
        )),
        Call::Reconcile(_) => line(format!(
            "re-queued: stuck provisioning {}, undelivered notices {}; parked outboxes {}",
            v["stuck_provisioning"], v["undelivered_notices"], v["parked_outboxes"]
        )),
        Call::Passes(_) => {
            let passes = v["passes"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            if passes.is_empty() {
                line("no reconciler pass kept".into());
            }
            for p in passes {
                line(format!(
                    "{}  by {}  stuck provisioning {}  undelivered notices {}  parked outboxes {}",
                    text(p, "at"),
                    text(p, "who"),
                    p["stuck_provisioning"],
                    p["undelivered_notices"],
                    p["parked_outboxes"]
                ));
            }
        }
    }
    out.trim_end().to_owned()
}
