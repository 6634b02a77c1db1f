//! `koogallery-sim load --ceiling` as a person runs it: the bare server started as a process of its
//! own, loaded with the same requests as the URL, and the URL's figures reported as a share of its.
//! The URL here is a second bare server, so the run needs no host. Two rounds: each printed, the
//! ratio their median.

use std::net::SocketAddr;
use std::process::Command;

/// A bare server in this process (the service the load is pointed at, or its ceiling).
async fn bare_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(koogallery_sim::ceiling::serve(listener));
    addr
}

/// `koogallery-sim load --ceiling` for one second over two connections against `addr`, with
/// `extra` arguments; its output, once it has exited successfully.
async fn load(addr: SocketAddr, extra: &[&str]) -> String {
    let extra: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_koogallery-sim"))
            .args(["load", "--ceiling", "--duration", "1", "--connections", "2"])
            .args(&extra)
            .args(["--instance-id", "i-1", "--url"])
            .arg(format!("http://{addr}/produce/v2"))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_reports_the_service_as_a_share_of_the_bare_servers_figures() {
    let addr = bare_server().await;
    let stdout = load(addr, &["--rounds", "2"]).await;
    for round in ["round 1 of 2", "round 2 of 2"] {
        assert!(
            stdout.contains(&format!("# ceiling ({round}): a bare server")),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("# service ({round}): http://{addr}/produce/v2")),
            "{stdout}"
        );
    }
    assert_eq!(
        stdout.matches("\nround ").count(),
        2,
        "each round's ratio: {stdout}"
    );
    let ratio = stdout
        .lines()
        .find_map(|l| l.strip_prefix("ratio: service/ceiling "))
        .unwrap_or_else(|| panic!("no ratio: {stdout}"));
    let share: f64 = ratio.split(" %").next().unwrap().parse().unwrap();
    assert!(share > 0.0, "{ratio}");
    assert!(ratio.ends_with("(the median of 2 rounds)"), "{ratio}");
    assert!(
        stdout.matches("answers: 000000:").count() == 4,
        "every run answered: {stdout}"
    );
}

/// `--ceiling-server ADDR` loads the bare server already running there (a process the caller
/// placed, on CPUs of its own, say) in place of one started by the load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_uses_a_bare_server_already_running_when_given_one() {
    let bare_addr = bare_server().await;
    let addr = bare_server().await;
    let stdout = load(addr, &["--ceiling-server", &bare_addr.to_string()]).await;
    assert!(
        stdout.contains(&format!(
            "# ceiling: a bare server, same requests (koogallery-sim ceiling-server): http://{bare_addr}/produce/v2"
        )),
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("answers: 000000:").count(),
        2,
        "both runs answered: {stdout}"
    );
}

/// `--ceiling-server` without `--ceiling` is refused, not silently ignored.
#[test]
fn a_bare_server_address_without_the_ceiling_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_koogallery-sim"))
        .args(["load", "--ceiling-server", "127.0.0.1:9", "--key", "k"])
        .args(["--url", "http://127.0.0.1:9/produce"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("required arguments were not provided") && stderr.contains("  --ceiling\n"),
        "{stderr}"
    );
}
