//! Backups of the local host (`POST /admin/backup`, `koogallery-admin backup`/`restore`): taken
//! while calls arrive, restored into a fresh data directory, served again with the same answers;
//! the admin API's refusals; restore refusing a damaged archive, a store in use and (without
//! `--force`) a store already there.

use std::{path::Path, sync::Arc, time::Duration};

use koogallery::{ResultCode, config::Env};
use koogallery_e2e::{config, eventually, host, simulator, wait_for};
use koogallery_local::admin_cli::{AdminError, BackupArgs, HostArgs, RestoreArgs, backup, restore};
use koogallery_local::backup_archive::{ArchiveError, STORE_FILE};
use serde_json::json;

fn backup_args(h: &koogallery_local::RunningHost, data_dir: &Path, to: &Path) -> BackupArgs {
    BackupArgs {
        to: to.to_path_buf(),
        host: HostArgs {
            url: Some(format!("http://{}", h.addr)),
            data_dir: Some(data_dir.to_path_buf()),
            ..HostArgs::default()
        },
    }
}

fn restore_args(from: &Path, data_dir: &Path, force: bool) -> RestoreArgs {
    RestoreArgs {
        from: from.to_path_buf(),
        data_dir: data_dir.to_path_buf(),
        force,
        json: false,
    }
}

/// Buys an instance for `order` and waits until it is provisioned; its ID.
async fn provisioned(sim: &koogallery_sim::Simulator, order: &str) -> String {
    let a = sim
        .call(&json!({"activity":"newInstance","orderId":order,
            "orderLineId":format!("{order}-000001"),"businessId":format!("biz-{order}")}))
        .await
        .expect("newInstance answered");
    let id: String = a.reply.field("instanceId").expect("instanceId");
    wait_for(sim, &id, ResultCode::Success).await;
    id
}

/// The offset in the archive of the store file's first byte: the manifest's header and its data
/// (padded to 512 bytes), then the store file's header.
fn store_data_offset(archive: &[u8]) -> usize {
    let size_field = std::str::from_utf8(&archive[124..136]).unwrap();
    let manifest_size =
        usize::from_str_radix(size_field.trim_matches(|c: char| c == '\0' || c == ' '), 8).unwrap();
    let store_header = 512 + manifest_size.div_ceil(512) * 512;
    assert_eq!(
        &archive[store_header..store_header + STORE_FILE.len()],
        STORE_FILE.as_bytes()
    );
    store_header + 512
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_while_calls_arrive_restores_into_a_host_that_answers_the_same() {
    let (dir, out, restored) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let h = host(dir.path(), config(), None).await;
    let sim = Arc::new(simulator(&h));
    let mut before = Vec::new();
    for i in 0..5 {
        let id = provisioned(&sim, &format!("CSBACKUP{i:04}")).await;
        let answer = sim
            .call(&json!({"activity":"queryInstance","instanceId":id}))
            .await
            .unwrap();
        before.push((id, answer.reply));
    }
    // Calls keep arriving while the backup is taken.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let (sim, stop) = (sim.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let order = format!("CSBACKUPLIVE{n:04}");
                let a = sim
                    .call(&json!({"activity":"newInstance","orderId":order,
                        "orderLineId":format!("{order}-000001"),"businessId":format!("biz-{order}")}))
                    .await
                    .expect("newInstance answered");
                assert!(a.body_sign_valid);
                n += 1;
            }
            n
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let file = out.path().join("koogallery.tar");
    let report = backup(&backup_args(&h, dir.path(), &file), &Env::empty())
        .await
        .expect("backup taken");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let during = traffic.await.unwrap();
    assert!(during > 0, "calls arrived while the backup was taken");
    h.shutdown().await;

    assert_eq!(report.manifest.format, "koogallery-backup/1");
    assert!(
        report.manifest.tables["instances"] >= 5,
        "{:?}",
        report.manifest
    );
    let names: Vec<&str> = report
        .manifest
        .files
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    for name in [
        STORE_FILE,
        "credentials.key",
        "kit-rsa-key.pem",
        "admin-token",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    assert_eq!(std::fs::metadata(&file).unwrap().len(), report.bytes);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the archive holds secrets: owner-only");
    }
    // The temporary files in the data directory (the copy, the archive) are gone once sent.
    let leftovers = || -> Vec<String> {
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".backup-"))
            .collect()
    };
    eventually(Duration::from_secs(5), "no temporary file left", || {
        leftovers().is_empty()
    })
    .await;

    let restored_report = restore(&restore_args(&file, restored.path(), false)).expect("restored");
    assert!(restored_report.moved_aside.is_none());
    for name in &names {
        assert_eq!(
            std::fs::read(restored.path().join(name)).unwrap().len() as u64,
            report
                .manifest
                .files
                .iter()
                .find(|f| f.name == *name)
                .unwrap()
                .size
        );
    }
    let h2 = host(restored.path(), config(), None).await;
    let sim2 = simulator(&h2);
    for (id, reply) in &before {
        let again = sim2
            .call(&json!({"activity":"queryInstance","instanceId":id}))
            .await
            .unwrap();
        assert_eq!(&again.reply, reply, "{id} answers as before the backup");
    }
    // The restored host keeps the admin token of the backed-up one.
    assert_eq!(
        std::fs::read(restored.path().join("admin-token")).unwrap(),
        std::fs::read(dir.path().join("admin-token")).unwrap()
    );
    h2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_refuses_a_missing_or_a_wrong_token() {
    let (dir, out) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let h = host(dir.path(), config(), None).await;
    let url = format!("http://{}/admin/backup", h.addr);
    let http = reqwest::Client::new();

    let none = http.post(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let body: serde_json::Value = none.json().await.unwrap();
    assert!(body["error"].is_string(), "{body}");

    let wrong = http
        .post(&url)
        .bearer_auth("not-the-token-of-this-host")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    let body: serde_json::Value = wrong.json().await.unwrap();
    assert!(body["error"].is_string(), "{body}");

    // Not GET: the route is POST only.
    let token = std::fs::read_to_string(dir.path().join("admin-token")).unwrap();
    let get = http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_ne!(get.status(), 200);

    // koogallery-admin with another host's token (KOOGALLERY_ADMIN_TOKEN) says why, writes nothing.
    let file = out.path().join("refused.tar");
    let mut args = backup_args(&h, dir.path(), &file);
    args.host.data_dir = None;
    let env = Env::from_fn(|name| {
        (name == "KOOGALLERY_ADMIN_TOKEN").then(|| "another-hosts-admin-token".to_owned())
    });
    let e = backup(&args, &env).await.unwrap_err();
    assert!(matches!(e, AdminError::Refused { status: 403, .. }), "{e}");
    assert!(!file.exists());

    // The right token.
    let ok = http
        .post(&url)
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["content-type"], "application/x-tar");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_a_damaged_archive_a_store_in_use_and_a_store_already_there() {
    let (dir, out, target) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let h = host(dir.path(), config(), None).await;
    let sim = simulator(&h);
    provisioned(&sim, "CSBACKUPDMG0001").await;
    let file = out.path().join("koogallery.tar");
    backup(&backup_args(&h, dir.path(), &file), &Env::empty())
        .await
        .expect("backup taken");

    // One byte of the store file flipped: refused before anything is written.
    let archive = std::fs::read(&file).unwrap();
    let mut damaged = archive.clone();
    damaged[store_data_offset(&archive) + 100] ^= 0x01;
    let damaged_file = out.path().join("damaged.tar");
    std::fs::write(&damaged_file, &damaged).unwrap();
    let e = restore(&restore_args(&damaged_file, target.path(), true)).unwrap_err();
    assert!(
        matches!(&e, AdminError::Archive(ArchiveError::Checksum { name }) if name == STORE_FILE),
        "{e}"
    );
    assert_eq!(
        std::fs::read_dir(target.path()).unwrap().count(),
        0,
        "nothing written"
    );

    // The running host's own data directory: its store is in use, even with --force.
    let before: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    for force in [false, true] {
        let e = restore(&restore_args(&file, dir.path(), force)).unwrap_err();
        assert!(matches!(e, AdminError::InUse(_)), "{e}");
    }
    let after: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before.len(), after.len(), "nothing moved or written");
    h.shutdown().await;

    // A directory that holds a store: refused without --force; with it, the old files are moved
    // aside, never deleted.
    restore(&restore_args(&file, target.path(), false)).expect("restored into an empty dir");
    let e = restore(&restore_args(&file, target.path(), false)).unwrap_err();
    assert!(matches!(e, AdminError::NotEmpty { .. }), "{e}");
    let old_store = std::fs::read(target.path().join(STORE_FILE)).unwrap();
    let again = restore(&restore_args(&file, target.path(), true)).expect("forced");
    let aside = again.moved_aside.expect("the old files moved aside");
    assert!(
        aside
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("pre-restore-")
    );
    assert_eq!(std::fs::read(aside.join(STORE_FILE)).unwrap(), old_store);
    assert!(aside.join("credentials.key").exists());
    assert!(target.path().join(STORE_FILE).exists());
}
