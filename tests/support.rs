//! Helpers for the end-to-end tests: a local host on a free port in a temporary data directory.

use std::{path::Path, sync::Arc, time::Duration};

use koogallery::{
    ResultCode, config::Config, protocol::Reply, provisioning::Provisioner, testing::SignedVendor,
};
use koogallery_local::{LocalSettings, RunningHost, start_with};
use koogallery_sim::Simulator;

pub mod node;
pub mod packaged;
pub mod proxy;
pub mod sso_bed;

pub const KEY: &str = "e2e-access-key";

pub fn config() -> Config {
    let mut c = Config::with_keys(KEY, "e2e-kit-key");
    c.settings.worker.backoff_base = Duration::from_millis(20);
    c.settings.worker.backoff_max = Duration::from_millis(200);
    c
}

/// The simulator's open API for AK `e2e-ak`, and `cfg` pointed at it (the fallback host only when
/// `fallback`), each request given `timeout`.
pub async fn with_openapi(
    mut cfg: Config,
    fallback: bool,
    timeout: Duration,
) -> (koogallery_sim::openapi::OpenApiSim, Config) {
    let openapi = koogallery_sim::openapi::OpenApiSim::start(
        std::collections::HashMap::from([("e2e-ak".to_owned(), "e2e-sk".to_owned())]),
        "127.0.0.1:0".parse().expect("addr"),
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("the open API simulator starts");
    cfg.secrets.open_api = Some(koogallery::config::OpenApiKeys {
        ak: "e2e-ak".into(),
        sk: koogallery::security::SecretKey::new("e2e-sk"),
    });
    cfg.settings.marketplace = koogallery::config::MarketplaceSettings::OpenApi {
        primary: openapi.primary_url().parse().expect("a URL"),
        fallback: fallback.then(|| openapi.fallback_url().parse().expect("a URL")),
        timeout,
    };
    (openapi, cfg)
}

pub async fn host(
    dir: &Path,
    config: Config,
    provisioner: Option<Arc<dyn Provisioner>>,
) -> RunningHost {
    let settings = LocalSettings::on_loopback(dir);
    start_with(config, settings, provisioner)
        .await
        .expect("local host starts")
}

pub fn simulator(host: &RunningHost) -> Simulator {
    Simulator::new(&host.produce_url(), KEY).expect("simulator")
}

/// Sends 16 concurrent newInstance calls for one order line, each with its own businessId, and
/// asserts that every answer is signed, in progress or done, and names the same instance: its ID.
pub async fn sixteen_concurrent_duplicates(sim: Arc<Simulator>, order_id: &str) -> String {
    let mut calls = Vec::new();
    for i in 0..16 {
        let (sim, order_id) = (sim.clone(), order_id.to_owned());
        calls.push(tokio::spawn(async move {
            let body = serde_json::json!({"activity":"newInstance","orderId":order_id,
                "orderLineId":format!("{order_id}-000001"),"businessId":format!("biz-{i}-{order_id}")});
            sim.call(&body).await.expect("newInstance answered")
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    for c in calls {
        let a = c.await.expect("call task");
        assert!(a.body_sign_valid, "every answer carries a valid Body-Sign");
        assert!(
            matches!(
                a.reply.result_code,
                ResultCode::Processing | ResultCode::Success
            ),
            "{:?}",
            a.reply
        );
        ids.insert(a.reply.field::<String>("instanceId").expect("instanceId"));
    }
    assert_eq!(ids.len(), 1, "one instanceId for every duplicate");
    ids.into_iter().next().expect("one id")
}

/// Polls queryInstance until it answers `code` (about 10 s at most).
pub async fn wait_for(sim: &Simulator, id: &str, code: ResultCode) -> Reply {
    for _ in 0..400 {
        let a = sim
            .call(&serde_json::json!({"activity":"queryInstance","instanceId":id}))
            .await
            .expect("queryInstance answered");
        if a.reply.result_code == code {
            return a.reply;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("instance {id} never answered {code}");
}

/// One request the scripted vendor received, and what it answered.
#[derive(Debug, Clone)]
pub struct Received {
    /// Its signature verified under [`WEBHOOK_SECRET`] (a request that failed was answered 401).
    pub signed: bool,
    pub event: String,
    pub event_id: String,
    pub seq: u64,
    pub instance_id: String,
    pub state: String,
    pub status: u16,
    /// The whole event as sent.
    pub body: serde_json::Value,
}

/// How the scripted vendor behaves right now.
#[derive(Debug, Default)]
pub struct VendorScript {
    /// Answer every request with HTTP 503.
    pub down: bool,
    /// Answer this many more requests for the named event with HTTP 500.
    pub fail_next: std::collections::BTreeMap<String, u32>,
    /// Hold every provision request this long before answering.
    pub provision_delay: Duration,
    /// Hold every provision request until this is set back to `false` (after any delay).
    pub hold_provisions: bool,
}

/// The vendor's webhook, inside the test (a [`SignedVendor`]): records everything it receives,
/// answers a request whose signature does not verify with 401 and the others from its script
/// (credentials for a provision). Its readers ([`Vendor::all`], [`Vendor::received_for`],
/// [`Vendor::accepted`]) fail the test if any request so far was not signed.
pub struct Vendor {
    pub url: String,
    /// Requests that reached the vendor, counted on arrival (before any delay).
    pub arrived: Arc<std::sync::atomic::AtomicUsize>,
    pub script: Arc<std::sync::Mutex<VendorScript>>,
    endpoint: SignedVendor,
}

pub const WEBHOOK_SECRET: &str = "e2e-webhook-secret";

impl Vendor {
    pub async fn start() -> Self {
        let script = Arc::new(std::sync::Mutex::new(VendorScript::default()));
        let s = script.clone();
        let endpoint = SignedVendor::start(WEBHOOK_SECRET, move |v| {
            let script = s.clone();
            async move {
                let event = v["event"].as_str().unwrap_or_default().to_owned();
                let (status, delay) = {
                    let mut sc = script.lock().unwrap();
                    let down = sc.down;
                    let failing = sc.fail_next.get_mut(&event).filter(|n| **n > 0);
                    let status = if down {
                        503
                    } else if let Some(n) = failing {
                        *n -= 1;
                        500
                    } else {
                        200
                    };
                    let delay = if event == "provision" {
                        sc.provision_delay
                    } else {
                        Duration::ZERO
                    };
                    (status, delay)
                };
                tokio::time::sleep(delay).await;
                while event == "provision" && script.lock().unwrap().hold_provisions {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                let instance_id = v["instanceId"].as_str().unwrap_or_default();
                let answer = if event == "provision" {
                    serde_json::json!({"frontEndUrl": format!("https://vendor.example/{instance_id}"),
                        "userName": "owner", "password": format!("pw-{instance_id}")})
                } else {
                    serde_json::json!({"resultCode": "000000"})
                };
                (status, answer.to_string())
            }
        })
        .await;
        Self {
            url: endpoint.url.clone(),
            arrived: endpoint.arrived.clone(),
            script,
            endpoint,
        }
    }

    pub fn set(&self, f: impl FnOnce(&mut VendorScript)) {
        f(&mut self.script.lock().unwrap());
    }

    /// Everything the vendor received so far, in the order it answered. Fails the test if a
    /// request was not signed.
    pub fn all(&self) -> Vec<Received> {
        self.endpoint
            .requests()
            .into_iter()
            .map(|r| {
                let v = r.event.unwrap_or_default();
                let text = |field: &str| v[field].as_str().unwrap_or_default().to_owned();
                Received {
                    signed: r.signed,
                    event: text("event"),
                    event_id: text("eventId"),
                    seq: v["seq"].as_u64().unwrap_or_default(),
                    instance_id: text("instanceId"),
                    state: text("state"),
                    status: r.status,
                    body: v,
                }
            })
            .collect()
    }

    /// What the vendor received for one instance, in the order it answered ([`Vendor::all`]'s
    /// check included).
    pub fn received_for(&self, instance_id: &str) -> Vec<Received> {
        self.all()
            .into_iter()
            .filter(|r| r.instance_id == instance_id)
            .collect()
    }

    /// The events the vendor accepted (HTTP 200) for one instance, in order.
    pub fn accepted(&self, instance_id: &str) -> Vec<String> {
        self.received_for(instance_id)
            .into_iter()
            .filter(|r| r.status == 200)
            .map(|r| r.event)
            .collect()
    }

    /// Settings and secrets that point the local host's webhook provisioner here, with fast
    /// retries for a test.
    pub fn config(&self) -> Config {
        webhook_config(&self.url)
    }
}

/// Waits (up to `limit`) until `check` holds.
pub async fn eventually(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// [`config`] with the webhook provisioner pointed at `url`, signing with [`WEBHOOK_SECRET`].
pub fn webhook_config(url: &str) -> Config {
    let mut c = config();
    c.settings.provisioner = koogallery::config::ProvisionerSettings::Webhook {
        url: url.to_owned(),
        timeout: Duration::from_secs(10),
        event_version: 2,
    };
    c.secrets.webhook = Some(koogallery::security::SecretKey::new(WEBHOOK_SECRET));
    c
}

/// A name no other test or run uses (tables, queues, orders).
pub fn unique() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "{:x}{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// The local host on the AWS adapters with a table and queues of its own and its own data
/// directory (removed with the returned guard), reaching the emulator at `endpoint` (a test's
/// proxy) or else at `AWS_ENDPOINT_URL`.
pub async fn aws_host(
    config: Config,
    provisioner: Option<Arc<dyn Provisioner>>,
    endpoint: Option<&str>,
) -> (koogallery_local::aws::RunningAwsHost, tempfile::TempDir) {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "AWS_ENDPOINT_URL is not set: run through `make test`, which starts the emulator"
    );
    let data = tempfile::tempdir().expect("a data directory for this test");
    let name = format!("e2e-{}", unique());
    let aws = koogallery_local::aws::AwsSettings {
        table: name.clone(),
        queue: name,
    };
    let settings = LocalSettings::on_loopback(data.path());
    let sdk = match endpoint {
        Some(url) => koogallery_aws::sdk_config_at(url).await,
        None => koogallery_aws::sdk_config().await,
    };
    let host = koogallery_local::aws::start_aws_with(config, settings, aws, provisioner, sdk)
        .await
        .expect("host on the AWS adapters starts");
    (host, data)
}

/// `make run`'s process (the `e2e-host` binary), for the crash tests. It binds a port of its own
/// (`PORT=0`) and reports it in its "local host ready" log line (JSON lines on its stdout, read
/// here), so a restart never waits for a port another process may have taken since, and a test
/// never reaches another test's host (they all answer on the same key). Killed when dropped.
pub struct ChildHost {
    child: std::process::Child,
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// Every line it has written to its stdout so far.
    lines: Arc<std::sync::Mutex<Vec<String>>>,
}

impl ChildHost {
    /// Spawns `command` (the `e2e-host` binary and its settings; its port, log settings and
    /// stdout are set here) and waits until the host reports where it listens.
    pub async fn start(mut command: std::process::Command) -> Self {
        command
            .env("PORT", "0")
            .env("KOOGALLERY_LOG_FORMAT", "json")
            .env("RUST_LOG", "warn,koogallery_local=info")
            .stdout(std::process::Stdio::piped());
        let mut child = command.spawn().expect("host starts");
        let stdout = child.stdout.take().expect("the host's stdout is piped");
        let (ready, reported) = tokio::sync::oneshot::channel();
        let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = lines.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut ready = Some(ready);
            // Every line is read, after the address too, so the host never blocks on a full pipe.
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = ready_addr(&line)
                    && let Some(ready) = ready.take()
                {
                    let _ = ready.send(addr);
                }
                kept.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        let addr = match tokio::time::timeout(Duration::from_secs(60), reported).await {
            Ok(Ok(addr)) => addr,
            Ok(Err(_)) => panic!("the host exited before it was ready (its stderr says why)"),
            Err(_) => panic!("the host did not report its address within 60 s"),
        };
        Self { child, addr, lines }
    }

    /// Its log so far, one JSON line per entry.
    pub fn log(&self) -> String {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }

    /// Sends it a signal by name (`HUP`, `TERM`).
    pub fn signal(&self, name: &str) {
        let sent = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -{name}");
    }

    /// Waits (up to `limit`) for it to exit on its own, after a signal; its exit status.
    pub async fn exit_within(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            if tokio::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("did not exit within {limit:?}:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills it with SIGKILL, and reaps it.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

impl Drop for ChildHost {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The address in the local host's "ready" log line (a JSON line), if `line` is that line.
fn ready_addr(line: &str) -> Option<std::net::SocketAddr> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = &v["fields"];
    if !fields["message"].as_str()?.starts_with("local host ready") {
        return None;
    }
    fields["addr"].as_str()?.parse().ok()
}
