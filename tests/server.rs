//! The packaged host as a server: the binary from `make dist`'s tarball (not `cargo run`), over
//! HTTPS with a certificate authority made here, its certificate swapped on SIGHUP while calls
//! arrive, and a SIGTERM while it provisions that loses nothing across a restart.
//!
//! `make test` builds the tarball first and names its folder in `KOOGALLERY_DIST_DIR`; without it
//! these tests fail, saying so (`make unit` skips them: they are ignored).

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use koogallery::ResultCode;
use koogallery_e2e::{ChildHost, KEY, Vendor, WEBHOOK_SECRET, eventually, unique};
use koogallery_sim::{CallOptions, LifecycleOptions, Simulator};
use serde_json::json;

/// The folder the tarball is unpacked in, once per test process.
static UNPACKED: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();

/// `bin/koogallery-local` of the tarball `make dist` built for this machine.
fn packaged_host() -> PathBuf {
    UNPACKED
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("temp dir");
            let (unpacked, _, _) = koogallery_e2e::packaged::unpack(dir.path());
            (dir, unpacked.join("bin"))
        })
        .1
        .join("koogallery-local")
}

/// A certificate authority of this test process, trusted by its simulator.
struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

fn test_ca() -> &'static TestCa {
    static CA: OnceLock<TestCa> = OnceLock::new();
    CA.get_or_init(|| {
        let key = rcgen::KeyPair::generate().expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "koogallery test CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let cert = params.self_signed(&key).expect("CA certificate");
        let pem = cert.pem();
        koogallery_sim::trust_roots(pem.as_bytes()).expect("the simulator trusts the CA");
        TestCa {
            issuer: rcgen::Issuer::new(params, key),
            pem,
        }
    })
}

impl TestCa {
    /// A server certificate for localhost and 127.0.0.1: (certificate PEM, key PEM, DER).
    fn issue(&self) -> (String, String, Vec<u8>) {
        let key = rcgen::KeyPair::generate().expect("server key");
        let params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("params");
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }
}

/// Writes a file whole, as a renewal tool would: a temporary file renamed over the old one.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// The packaged host as a process ([`ChildHost`]: a port of its own, its log kept), on `data` with
/// the test's keys and `vars`.
async fn start_packaged(data: &Path, vars: &[(&str, String)]) -> ChildHost {
    let mut command = Command::new(packaged_host());
    command
        .env_clear()
        .env("KOOGALLERY_DATA_DIR", data)
        .env("KOOGALLERY_ACCESS_KEY", KEY)
        .env("KOOGALLERY_KIT_KEY", "e2e-kit-key")
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())));
    ChildHost::start(command).await
}

/// The certificate a fresh HTTPS connection to the host is given (DER).
async fn presented_certificate(port: u16) -> Vec<u8> {
    let ca = reqwest::Certificate::from_pem(test_ca().pem.as_bytes()).expect("CA");
    let client = reqwest::Client::builder()
        .add_root_certificate(ca)
        .tls_info(true)
        .build()
        .expect("client");
    let answer = client
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .expect("an HTTPS answer");
    answer
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("the peer's certificate")
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the tarball of `make dist` (make test builds it)"]
async fn the_packaged_host_serves_koogallery_over_tls_and_swaps_its_certificate_on_sighup_without_a_failed_call()
 {
    let ca = test_ca();
    let dir = tempfile::tempdir().expect("temp dir");
    let tls = dir.path().join("tls");
    std::fs::create_dir_all(&tls).expect("tls dir");
    let (cert_a, key_a, der_a) = ca.issue();
    let (cert_path, key_path) = (tls.join("cert.pem"), tls.join("key.pem"));
    replace(&cert_path, &cert_a);
    replace(&key_path, &key_a);
    let mut host = start_packaged(
        &dir.path().join("data"),
        &[
            ("KOOGALLERY_TLS_CERT", cert_path.display().to_string()),
            ("KOOGALLERY_TLS_KEY", key_path.display().to_string()),
        ],
    )
    .await;
    let port = host.addr.port();
    let url = format!("https://localhost:{port}/produce");

    // The whole lifecycle over HTTPS, the certificate verified against the test CA.
    let sim = Simulator::new(&url, KEY).expect("simulator");
    let opts = LifecycleOptions {
        order_id: format!("TLS{}", unique()),
        ..LifecycleOptions::default()
    };
    let (report, outcome) = sim.run_lifecycle_report(&opts).await;
    assert!(outcome.is_ok(), "lifecycle over TLS: {outcome:?}\n{report}");
    assert_eq!(presented_certificate(port).await, der_a);

    // An operator's backup over the same TLS, with the packaged admin command trusting the CA.
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).expect("write the CA");
    let archive = dir.path().join("backup.tar");
    let backup = Command::new(packaged_host().with_file_name("koogallery-admin"))
        .env_clear()
        .arg("backup")
        .arg("--url")
        .arg(format!("https://localhost:{port}"))
        .arg("--ca-cert")
        .arg(&ca_file)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--to")
        .arg(&archive)
        .arg("--json")
        .output()
        .expect("koogallery-admin runs");
    assert!(
        backup.status.success(),
        "backup over TLS: {}{}",
        String::from_utf8_lossy(&backup.stdout),
        String::from_utf8_lossy(&backup.stderr)
    );
    assert!(std::fs::metadata(&archive).expect("the archive").len() > 0);

    // A client that does not trust the CA is refused: the host does not fall back to anything.
    let untrusting = reqwest::Client::builder().build().expect("client");
    assert!(
        untrusting
            .get(format!("https://localhost:{port}/healthz"))
            .send()
            .await
            .is_err(),
        "a client without the CA must not connect"
    );
    // TLS 1.2 is still served for older clients; nothing older exists in rustls.
    let tls12 = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).expect("CA"))
        .max_tls_version(reqwest::tls::Version::TLS_1_2)
        .build()
        .expect("client");
    let answer = tls12
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .expect("TLS 1.2");
    assert!(answer.status().is_success());

    // Traffic on four connections that each reconnect every few calls, while the certificate is
    // swapped: every call must get a signed answer.
    let stop = Arc::new(AtomicBool::new(false));
    let (calls, failures) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut senders = Vec::new();
    for _ in 0..4 {
        let (url, stop, calls, failures) =
            (url.clone(), stop.clone(), calls.clone(), failures.clone());
        senders.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                // A new simulator is a new client: a new connection, a new handshake.
                let sim = Simulator::new(&url, KEY).expect("simulator");
                for _ in 0..5 {
                    let answer = sim
                        .call(&json!({"activity": "queryInstance", "instanceId": "none-such"}))
                        .await;
                    calls.fetch_add(1, Ordering::SeqCst);
                    match answer {
                        Ok(a) if a.body_sign_valid && a.http_status == 200 => {}
                        other => {
                            failures.fetch_add(1, Ordering::SeqCst);
                            eprintln!("failed call: {other:?}");
                        }
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (cert_b, key_b, der_b) = ca.issue();
    replace(&key_path, &key_b);
    replace(&cert_path, &cert_b);
    host.signal("HUP");
    let swapped = Instant::now() + Duration::from_secs(10);
    while presented_certificate(port).await != der_b {
        assert!(
            Instant::now() < swapped,
            "SIGHUP did not swap the certificate"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A renewal that left a broken file: the reload fails, the certificate in use stays.
    std::fs::write(&cert_path, "not a certificate").expect("write");
    host.signal("HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for s in senders {
        s.await.expect("sender");
    }
    assert_eq!(presented_certificate(port).await, der_b);
    assert!(
        host.log().contains("certificate not reloaded"),
        "the failed reload is logged"
    );
    let (calls, failures) = (
        calls.load(Ordering::SeqCst),
        failures.load(Ordering::SeqCst),
    );
    assert!(calls > 40, "too little traffic to tell: {calls} calls");
    assert_eq!(
        failures, 0,
        "{failures} of {calls} calls failed around the swap"
    );

    host.signal("TERM");
    let status = host.exit_within(Duration::from_secs(10)).await;
    assert!(status.success(), "exit on SIGTERM: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the tarball of `make dist` (make test builds it)"]
async fn a_sigterm_while_the_packaged_host_provisions_loses_nothing_across_a_restart() {
    let vendor = Vendor::start().await;
    // The vendor's webhook holds the provision: the worker is mid-job when SIGTERM comes.
    vendor.set(|s| s.hold_provisions = true);
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let vars = [
        ("KOOGALLERY_PROVISIONER", "webhook".to_owned()),
        ("KOOGALLERY_WEBHOOK_URL", vendor.url.clone()),
        ("KOOGALLERY_WEBHOOK_SECRET", WEBHOOK_SECRET.to_owned()),
    ];
    let mut host = start_packaged(&data, &vars).await;
    let sim = Simulator::new(&format!("http://{}/produce", host.addr), KEY).expect("simulator");
    let order_id = format!("TERM{}", unique());
    let new_instance = json!({
        "activity": "newInstance",
        "orderId": order_id,
        "orderLineId": format!("{order_id}-000001"),
        "businessId": unique(),
    });
    let (nonce, timestamp_ms) = (unique(), chrono::Utc::now().timestamp_millis());
    let options = || CallOptions {
        nonce: Some(nonce.clone()),
        timestamp_ms: Some(timestamp_ms),
        key: None,
    };
    let first = sim
        .call_with(&new_instance, options())
        .await
        .expect("newInstance answered");
    assert_eq!(first.reply.result_code, ResultCode::Processing, "{first:?}");
    let instance_id: String = first.reply.field("instanceId").expect("an instanceId");
    let arrived = vendor.arrived.clone();
    eventually(
        Duration::from_secs(10),
        "the provision reaches the vendor",
        || arrived.load(Ordering::SeqCst) >= 1,
    )
    .await;

    host.signal("TERM");
    // The host waits for its worker: the webhook answers a moment later, within the grace.
    tokio::time::sleep(Duration::from_millis(300)).await;
    vendor.set(|s| s.hold_provisions = false);
    let status = host.exit_within(Duration::from_secs(15)).await;
    assert!(
        status.success(),
        "exit on SIGTERM: {status}\n{}",
        host.log()
    );
    drop(host);

    let host = start_packaged(&data, &vars).await;
    let sim = Simulator::new(&format!("http://{}/produce", host.addr), KEY).expect("simulator");
    // The nonce of the call before the stop is still remembered: its replay is refused.
    let replay = sim
        .call_with(&new_instance, options())
        .await
        .expect("answered");
    assert_ne!(
        replay.reply.result_code,
        ResultCode::Success,
        "a replayed nonce after a restart: {replay:?}"
    );
    let ready = koogallery_e2e::wait_for(&sim, &instance_id, ResultCode::Success).await;
    let info: Vec<serde_json::Value> = ready.field("info").expect("info");
    assert_eq!(
        info[0]["appInfo"]["frontEndUrl"],
        format!("https://vendor.example/{instance_id}"),
        "{ready:?}"
    );
    let provisions = vendor
        .received_for(&instance_id)
        .into_iter()
        .filter(|r| r.event == "provision" && r.status == 200)
        .count();
    assert_eq!(provisions, 1, "provisioned once, finished before the stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the tarball of `make dist` (make test builds it)"]
async fn a_sighup_while_the_packaged_host_starts_does_not_end_it() {
    // `systemctl reload` may come while the host still generates its keys (a first start takes
    // a few hundred milliseconds): SIGHUP's default action would end the process, and systemd
    // would take that for a clean exit and not restart it.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = Command::new("sh");
    command
        .arg("-c")
        // The shell's pid becomes the host's at exec; the signal comes 30 ms later.
        .arg(r#"(sleep 0.03; kill -HUP $$) & exec "$0""#)
        .arg(packaged_host())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("KOOGALLERY_DATA_DIR", dir.path().join("data"))
        .env("KOOGALLERY_ACCESS_KEY", KEY)
        .env("KOOGALLERY_KIT_KEY", "e2e-kit-key");
    let mut host = ChildHost::start(command).await;
    let sim = Simulator::new(&format!("http://{}/produce", host.addr), KEY).expect("simulator");
    let answer = sim
        .call(&json!({"activity": "queryInstance", "instanceId": "none-such"}))
        .await
        .expect("it serves after the SIGHUP");
    assert!(answer.body_sign_valid);
    host.signal("TERM");
    let status = host.exit_within(Duration::from_secs(10)).await;
    assert!(status.success(), "exit on SIGTERM: {status}");
}
