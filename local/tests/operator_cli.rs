//! `koogallery-admin`'s operator commands as a real process against a host started here: the
//! buyer-calls scenario in three commands (find the instance by its order, read it, redrive what
//! the worker gave up on), each as a person reads it and with `--json`; and the failures (a
//! wrong token, no selection for a redrive) as exit status 1, never a panic.

use std::{process::Output, sync::Arc, time::Duration};

use koogallery::{
    config::Config,
    testing::{Scripted, ScriptedProvisioner},
};
use koogallery_local::{LocalSettings, start_with};

fn admin(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_koogallery-admin"))
        .args(args)
        .env_remove("KOOGALLERY_ADMIN_TOKEN")
        .env_remove("KOOGALLERY_ADMIN_API_URL")
        .env("USER", "ops-tester")
        .output()
        .expect("koogallery-admin runs")
}

fn ok(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&ok(out)).unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_buyer_calls_and_three_commands_find_read_and_redrive() {
    let data = tempfile::tempdir().unwrap();
    let mut config = Config::with_keys("cli-access-key", "cli-kit-key");
    config.settings.worker.provisioning_deadline = Duration::from_millis(1200);
    config.settings.worker.backoff_base = Duration::from_millis(20);
    config.settings.worker.backoff_max = Duration::from_millis(100);
    let provisioner = Arc::new(ScriptedProvisioner::new(vec![Scripted::Transient; 1000]));
    let host = start_with(
        config,
        LocalSettings::on_loopback(data.path()),
        Some(provisioner),
    )
    .await
    .expect("host starts");
    let sim = koogallery_sim::Simulator::new(&host.produce_url(), "cli-access-key").unwrap();
    sim.call(&serde_json::json!({"activity":"newInstance","orderId":"CSCLI1","orderLineId":"CSCLI1-000001","businessId":"cli-1"}))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while host.backend.queue.dead_letters().unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no dead letter");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let url = format!("http://{}", host.addr);
    let dir = data.path().to_str().unwrap().to_owned();
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--url", &url, "--data-dir", &dir]);
        let args: Vec<String> = all.iter().map(|s| s.to_string()).collect();
        async move {
            tokio::task::spawn_blocking(move || {
                admin(&args.iter().map(String::as_str).collect::<Vec<_>>())
            })
            .await
            .unwrap()
        }
    };

    // 1. Which instance.
    let listed = ok(&run(&["instances", "--order", "CSCLI1"]).await);
    assert!(
        listed.contains("cli-1") && listed.contains("failed"),
        "{listed}"
    );
    let listed = json(&run(&["instances", "--order", "CSCLI1", "--json"]).await);
    assert_eq!(listed["instances"][0]["instance_id"], "cli-1");

    // 2. What happened.
    let page = ok(&run(&["instance", "cli-1"]).await);
    assert!(page.contains("state failed"), "{page}");
    assert!(page.contains("provisioning_failed"), "{page}");
    assert!(
        page.contains("koogallery-admin redrive"),
        "names the next command: {page}"
    );
    assert!(
        page.contains("newInstance"),
        "the exchange KooGallery made: {page}"
    );
    for none in [
        "kit tenants: none",
        "sso sessions: none",
        "license codes: none",
    ] {
        assert!(page.contains(none), "{none}: {page}");
    }
    let detail = json(&run(&["instance", "cli-1", "--json"]).await);
    assert_eq!(detail["kit_tenants"], serde_json::json!([]), "{detail}");
    let dead = json(&run(&["dead-letters", "--instance", "cli-1", "--json"]).await);
    let id = dead["dead_letters"][0]["id"].as_str().unwrap().to_owned();

    // 3. Redrive (the order failed: the job goes again and does nothing more), then its repeat.
    let done = json(&run(&["redrive", "--instance", "cli-1", "--json"]).await);
    assert_eq!(done["redriven"], serde_json::json!([id]));
    let again = ok(&run(&["redrive", &id]).await);
    assert!(
        again.contains("already gone") && again.contains(&id),
        "{again}"
    );

    // The action is kept with the operator's name (the log is written off the request's path:
    // within its writer's next tick).
    let mut polls = 0;
    let who = loop {
        let log = json(&run(&["exchanges", "--instance", "cli-1", "--json"]).await);
        let redrive = log["exchanges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["activity"] == "redrive")
            .map(|x| x["request"]["who"].as_str().unwrap().to_owned());
        match redrive {
            Some(who) => break who,
            None if polls < 50 => polls += 1,
            None => panic!("the redrive kept: {log}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(who.starts_with("ops-tester"), "{who}");
    assert!(ok(&run(&["usage", "cli-1"]).await).contains("no usage"));
    assert!(ok(&run(&["reconcile"]).await).contains("re-queued"));

    // Failures: exit 1 with {"error": …}.
    let wrong = admin(&["instances", "--url", &url, "--json"]);
    assert_eq!(wrong.status.code(), Some(1), "{wrong:?}");
    let none = admin(&["redrive", "--url", &url, "--data-dir", &dir]);
    assert_eq!(none.status.code(), Some(1), "{none:?}");
    assert!(!String::from_utf8_lossy(&none.stderr).contains("panicked"));
    let forbidden = std::process::Command::new(env!("CARGO_BIN_EXE_koogallery-admin"))
        .args(["instances", "--url", &url, "--json"])
        .env("KOOGALLERY_ADMIN_TOKEN", "not-the-token-of-this-host")
        .env_remove("KOOGALLERY_ADMIN_API_URL")
        .output()
        .unwrap();
    assert_eq!(forbidden.status.code(), Some(1));
    let error = serde_json::from_slice::<serde_json::Value>(&forbidden.stdout).unwrap();
    assert!(error["error"].as_str().unwrap().contains("403"), "{error}");
    host.shutdown().await;
}
