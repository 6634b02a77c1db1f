//! The headless-browser tests' Node side: the prerequisites (`node`, Debian's Chromium, the
//! packages of `tests/browser`, which `scripts/browser.sh` installs) and a child process with a
//! time limit.

use std::{
    io::Read as _,
    path::Path,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

const CHROMIUM: &str = "/usr/bin/chromium";
const HOW: &str = "run scripts/browser.sh (make test runs it)";

/// `node`, Chromium and the Node `packages` of `project` are there, or the test fails saying how
/// to get them.
pub fn prerequisites(project: &Path, packages: &[&str]) {
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        other => panic!("`node --version` failed ({other:?}): install Node.js 20+, then {HOW}"),
    }
    assert!(Path::new(CHROMIUM).exists(), "{CHROMIUM} is missing: {HOW}");
    for package in packages {
        assert!(
            project.join("node_modules").join(package).is_dir(),
            "{} has no {package}: {HOW}",
            project.join("node_modules").display()
        );
    }
}

/// Runs `cmd` with its output captured; past `timeout` it is killed and the test fails. (std's
/// process on a blocking thread: tokio's `process` feature is not enabled in this workspace.)
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node starts");
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for node") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let (out, err) = (stdout.join().unwrap(), stderr.join().unwrap());
            panic!(
                "the script took longer than {timeout:?} (killed)\n--- stdout\n{}\n--- stderr\n{}",
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&err)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// Runs `script` of `project` (`tests/browser`) with `node`, its settings in `envs` and a
/// Chromium profile of its own (playwright-core makes it under `TMPDIR`), killed past `timeout`.
/// Prints what it printed and how long it took; fails the test if it failed. Its stdout.
pub async fn run_script(
    project: &Path,
    script: &str,
    envs: &[(&str, String)],
    timeout: Duration,
) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let mut node = Command::new("node");
    node.arg(project.join(script))
        .current_dir(project)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .env("TMPDIR", tmp.path());
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || run_with_timeout(node, timeout))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("--- {script} stdout\n{stdout}");
    println!(
        "--- {script} stderr\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("--- {script} took {:?}", started.elapsed());
    assert!(out.status.success(), "{script} failed: {}", out.status);
    stdout
}
