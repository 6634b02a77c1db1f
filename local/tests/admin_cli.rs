//! The `koogallery-admin` binary as a real process, against a host started in this test: a backup
//! and a restore with `--json`, and the failures (a damaged archive, a directory that already
//! holds a store, an unreachable host, a command line it cannot read) as exit status 1 with
//! `{"error": …}` on stdout, never a panic.

use std::{path::Path, process::Output};

use koogallery::config::Config;
use koogallery_local::{LocalSettings, start_with};

fn admin(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_koogallery-admin"))
        .args(args)
        // Nothing from the environment of whoever runs the tests.
        .env_remove("KOOGALLERY_ADMIN_TOKEN")
        .env_remove("KOOGALLERY_ADMIN_API_URL")
        .output()
        .expect("koogallery-admin runs")
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn failed_with(out: &Output, words: &str) {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let error = json(out)["error"].as_str().unwrap_or_default().to_owned();
    assert!(error.contains(words), "{error:?} does not say {words:?}");
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_as_a_process() {
    let (data, out, fresh) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let settings = LocalSettings::on_loopback(data.path());
    let host = start_with(
        Config::with_keys("cli-access-key", "cli-kit-key"),
        settings,
        None,
    )
    .await
    .expect("host starts");
    let url = format!("http://{}", host.addr);
    let file = out.path().join("backup.tar");
    let backup = {
        let args: Vec<String> = [
            "backup",
            "--to",
            path(&file),
            "--url",
            &url,
            "--data-dir",
            path(data.path()),
            "--json",
        ]
        .map(str::to_owned)
        .into();
        tokio::task::spawn_blocking(move || {
            admin(&args.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .await
        .unwrap()
    };
    assert!(backup.status.success(), "{backup:?}");
    let report = json(&backup);
    assert_eq!(report["manifest"]["format"], "koogallery-backup/1");
    assert_eq!(report["manifest"]["files"][0]["name"], "koogallery.redb");
    assert_eq!(report["bytes"], std::fs::metadata(&file).unwrap().len());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The host's own directory: its store is in use.
    let in_use = admin(&[
        "restore",
        "--from",
        path(&file),
        "--data-dir",
        path(data.path()),
        "--force",
        "--json",
    ]);
    failed_with(&in_use, "in use");
    host.shutdown().await;

    // An unreachable host.
    let down = admin(&[
        "backup",
        "--to",
        path(&out.path().join("x.tar")),
        "--url",
        &url,
        "--data-dir",
        path(data.path()),
        "--json",
    ]);
    failed_with(&down, "cannot reach");

    let restored = admin(&[
        "restore",
        "--from",
        path(&file),
        "--data-dir",
        path(fresh.path()),
        "--json",
    ]);
    assert!(restored.status.success(), "{restored:?}");
    let names = json(&restored)["files"].clone();
    assert!(
        names
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "credentials.key"),
        "{names}"
    );
    assert!(fresh.path().join("koogallery.redb").exists());

    let again = admin(&[
        "restore",
        "--from",
        path(&file),
        "--data-dir",
        path(fresh.path()),
        "--json",
    ]);
    failed_with(&again, "--force");

    let mut damaged = std::fs::read(&file).unwrap();
    let last = damaged.len() - 2048;
    // Inside the last file's bytes or the tar's end: refused either way, nothing written.
    let at = damaged[..last].iter().rposition(|b| *b != 0).unwrap();
    damaged[at] ^= 0x01;
    let damaged_file = out.path().join("damaged.tar");
    std::fs::write(&damaged_file, &damaged).unwrap();
    let empty = tempfile::tempdir().unwrap();
    let refused = admin(&[
        "restore",
        "--from",
        path(&damaged_file),
        "--data-dir",
        path(empty.path()),
        "--json",
    ]);
    failed_with(&refused, "checksum");
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);

    // A command line it cannot read: status 1 too, with what is missing on stderr.
    let unreadable = admin(&["restore", "--from"]);
    assert_eq!(unreadable.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unreadable.stderr).contains("--from"));
}
