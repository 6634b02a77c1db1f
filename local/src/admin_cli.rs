//! `koogallery-admin`: backups of the local host's data directory, and the operator's commands
//! (`operator_cli`: instances, dead letters, redrives, usage, the exchange log, the reconciler).
//!
//! - `backup --to FILE` asks the running host for an archive (`POST /admin/backup`), verifies
//!   every checksum of its manifest, and writes FILE atomically, owner-only.
//! - `restore --from FILE --data-dir DIR [--force]` verifies the archive whole before writing
//!   anything, refuses a store in use by a running host (redb's lock) and, without `--force`, a
//!   data directory that already holds a store or key files; with `--force` those are moved aside
//!   to `DIR/pre-restore-<timestamp>/`, never deleted.
//!
//! `--json` gives machine-readable output on stdout (an error as `{"error": …}`); any failure
//! exits with status 1.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::{Parser, Subcommand};
use koogallery::config::{Env, catalog};
use serde::Serialize;

use crate::{
    AdminToken,
    backup_archive::{ArchiveError, KEY_FILES, Manifest, STORE_FILE, read_archive, verify_archive},
};

/// The local host's operator tool: backups, and what the operator console shows and does.
#[derive(Debug, Parser)]
#[command(name = "koogallery-admin", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Takes a backup from the running host and writes it to FILE (owner-only).
    Backup(BackupArgs),
    /// Restores a backup into a data directory (the host stopped).
    Restore(RestoreArgs),
    /// Instances by customer, order, state, product or SKU, and time; newest first.
    Instances(crate::operator_cli::InstancesArgs),
    /// One instance: its record, history, outbox, claims, dead letters, usage and exchanges; its
    /// 联营 tenants (apps, users), their SSO sessions and its order's License codes (masked).
    Instance(crate::operator_cli::InstanceArgs),
    /// The exchange log: calls KooGallery made, calls we made, operators' actions; newest first.
    Exchanges(crate::operator_cli::ExchangesArgs),
    /// What the worker gave up on.
    DeadLetters(crate::operator_cli::DeadLettersArgs),
    /// Puts dead letters back on the queue, oldest first (one, an instance's, or all).
    Redrive(crate::operator_cli::RedriveArgs),
    /// Removes a dead letter for good, with a reason kept in the exchange log.
    Discard(crate::operator_cli::DiscardArgs),
    /// An instance's usage windows: what was ingested, pushed, and what KooGallery answered.
    Usage(crate::operator_cli::InstanceArgs),
    /// Runs a reconciler pass now and says what it found and re-queued.
    Reconcile(crate::operator_cli::ReconcileArgs),
    /// The reconciler's last passes, scheduled or forced: when, by whom, what each found.
    Passes(crate::operator_cli::PassesArgs),
    /// The admin function's console in a browser (`--aws --url <AdminUrl>`): a proxy on
    /// 127.0.0.1 that signs each request with your AWS credentials, opened by a one-time link.
    Console(ConsoleArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct ConsoleArgs {
    /// The port on 127.0.0.1 (default: one the OS picks).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    #[command(flatten)]
    pub host: HostArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BackupArgs {
    /// Where to write the archive (a tar).
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
    #[command(flatten)]
    pub host: HostArgs,
}

/// How a command reaches the running host, and how it answers.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct HostArgs {
    /// The host's URL (default: KOOGALLERY_ADMIN_API_URL, else http://127.0.0.1:$PORT).
    #[arg(long)]
    pub url: Option<String>,
    /// The host's data directory, to read its admin-token file (default: KOOGALLERY_ADMIN_TOKEN,
    /// else the admin-token of KOOGALLERY_DATA_DIR).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// A PEM CA certificate (or bundle) to trust besides the system's, for a host serving TLS
    /// with its own CA.
    #[arg(long, value_name = "PEM")]
    pub ca_cert: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// The admin function on AWS (`--url` is the stack output AdminUrl): every call signed with
    /// the caller's AWS credentials (SigV4, the default credential chain), no admin token.
    #[arg(long)]
    pub aws: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RestoreArgs {
    /// The archive to restore.
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,
    /// The data directory to restore into.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Restore over an existing store: its files are moved to DIR/pre-restore-<timestamp>/.
    #[arg(long)]
    pub force: bool,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Usage(String),
    #[error("no admin token: {0}")]
    Token(String),
    #[error("cannot reach the host at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("the host refused it (HTTP {status}): {message}")]
    Refused { status: u16, message: String },
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the store in {0} is in use (a running host holds it): stop the host before restoring")]
    InUse(String),
    #[error("{dir} already holds {files}: restore refused (--force moves them aside first)")]
    NotEmpty { dir: String, files: String },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> AdminError {
    let what = what.into();
    move |source| AdminError::Io { what, source }
}

/// What `backup` wrote.
#[derive(Debug, Serialize)]
pub struct BackupReport {
    pub file: PathBuf,
    pub bytes: u64,
    pub manifest: Manifest,
}

/// What `restore` wrote.
#[derive(Debug, Serialize)]
pub struct RestoreReport {
    pub data_dir: PathBuf,
    pub files: Vec<String>,
    /// Where the data directory's earlier files went (`--force`).
    pub moved_aside: Option<PathBuf>,
    pub manifest: Manifest,
}

/// The host's URL: `--url`, else `KOOGALLERY_ADMIN_API_URL`, else loopback on `PORT`.
pub(crate) fn host_url(args: &HostArgs, env: &Env<'_>) -> Result<String, AdminError> {
    if let Some(url) = args
        .url
        .clone()
        .or_else(|| env.get(&catalog::ADMIN_API_URL))
    {
        return Ok(url.trim().trim_end_matches('/').to_owned());
    }
    let port: u16 = env
        .number(&catalog::PORT, 1)
        .map_err(|e| AdminError::Usage(e.to_string()))?;
    Ok(format!("http://127.0.0.1:{port}"))
}

/// The token: the `admin-token` of `--data-dir`, else `KOOGALLERY_ADMIN_TOKEN`, else the
/// `admin-token` of `KOOGALLERY_DATA_DIR`.
fn token(args: &HostArgs, env: &Env<'_>) -> Result<AdminToken, AdminError> {
    let from_file = |dir: &Path| {
        let path = dir.join(crate::admin::TOKEN_FILE);
        AdminToken::read(&path)
            .map_err(|e| AdminError::Token(format!("cannot read {}: {e}", path.display())))
    };
    if let Some(dir) = &args.data_dir {
        return from_file(dir);
    }
    if let Some(token) = env.get(&catalog::ADMIN_TOKEN) {
        return AdminToken::read_str(&token)
            .ok_or_else(|| AdminError::Token(format!("{} is empty", catalog::ADMIN_TOKEN.name)));
    }
    from_file(&PathBuf::from(
        env.text(&catalog::DATA_DIR).unwrap_or_default(),
    ))
}

/// The HTTP client a command uses: `--ca-cert` trusted besides the system's roots.
pub(crate) fn client(
    args: &HostArgs,
    timeout: std::time::Duration,
) -> Result<reqwest::Client, AdminError> {
    koogallery_openapi::install_tls_provider();
    let mut client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(timeout);
    if let Some(pem) = &args.ca_cert {
        let bytes = std::fs::read(pem).map_err(io(format!("cannot read {}", pem.display())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&bytes)
            .ok()
            .filter(|certs| !certs.is_empty())
            .ok_or_else(|| {
                AdminError::Usage(format!(
                    "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                    pem.display()
                ))
            })?;
        client = client.tls_certs_merge(certs);
    }
    client
        .build()
        .map_err(|e| AdminError::Usage(format!("cannot build the HTTP client: {e}")))
}

/// The host's URL and token for `args` (see [`host_url`] and [`token`]).
pub(crate) fn reach(args: &HostArgs, env: &Env<'_>) -> Result<(String, AdminToken), AdminError> {
    Ok((host_url(args, env)?, token(args, env)?))
}

/// `koogallery-admin console --aws`: the signing proxy in front of the admin function
/// (`console_proxy`), until interrupted.
pub async fn console(args: &ConsoleArgs, env: &Env<'_>) -> Result<(), AdminError> {
    if !args.host.aws {
        return Err(AdminError::Usage(format!(
            "console --aws --url <AdminUrl> serves the admin function's console; the local host serves its own at {}/admin/",
            host_url(&args.host, env)?
        )));
    }
    if args.host.url.is_none() && env.get(&catalog::ADMIN_API_URL).is_none() {
        return Err(AdminError::Usage(
            "console --aws needs --url: the stack output AdminUrl".into(),
        ));
    }
    #[cfg(feature = "aws")]
    {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
        koogallery_openapi::install_tls_provider();
        let client = client
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| AdminError::Usage(format!("cannot build the HTTP client: {e}")))?;
        crate::console_proxy::serve(&host_url(&args.host, env)?, args.port, client).await
    }
    #[cfg(not(feature = "aws"))]
    {
        Err(AdminError::Usage(crate::operator_cli::NO_AWS.into()))
    }
}

/// `koogallery-admin backup`: downloads an archive, verifies it, writes it to `--to`.
pub async fn backup(args: &BackupArgs, env: &Env<'_>) -> Result<BackupReport, AdminError> {
    if args.host.aws {
        return Err(AdminError::Usage(
            "--aws: backups are the local host's (on AWS the table has its own: docs/deploy.md)"
                .into(),
        ));
    }
    let url = host_url(&args.host, env)?;
    let token = token(&args.host, env)?;
    let client = client(&args.host, std::time::Duration::from_secs(3600))?;
    let endpoint = format!("{url}/admin/backup");
    let unreachable = |e: reqwest::Error| AdminError::Unreachable {
        url: endpoint.clone(),
        // The TLS or connection reason is in a source.
        detail: koogallery::callbacks::error_chain(&e),
    };
    let mut answer = client
        .post(&endpoint)
        .bearer_auth(token.expose())
        .send()
        .await
        .map_err(unreachable)?;
    let status = answer.status();
    if !status.is_success() {
        let body = answer.bytes().await.map_err(unreachable)?;
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
        return Err(AdminError::Refused {
            status: status.as_u16(),
            message,
        });
    }
    // Streamed into a temporary file beside FILE (owner-only), verified from there, then renamed.
    let dir = parent_dir(&args.to);
    let what = || format!("cannot write {}", args.to.display());
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(io(what()))?;
    let mut bytes = 0u64;
    while let Some(chunk) = answer.chunk().await.map_err(unreachable)? {
        tmp.write_all(&chunk).map_err(io(what()))?;
        bytes += chunk.len() as u64;
    }
    tmp.flush().map_err(io(what()))?;
    let written = tmp.reopen().map_err(io(what()))?;
    let manifest = verify_archive(std::io::BufReader::new(written))?;
    tmp.as_file().sync_all().map_err(io(what()))?;
    tmp.persist(&args.to).map_err(|e| io(what())(e.error))?;
    sync_dir(dir)?;
    Ok(BackupReport {
        file: args.to.clone(),
        bytes,
        manifest,
    })
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes the names created in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), AdminError> {
    #[cfg(unix)]
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("cannot sync {}", dir.display())))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Whether the store file at `path` is held by a running host: redb locks an open file, so
/// opening it fails with `DatabaseAlreadyOpen`. Opened read-only, so the probe never writes to a
/// store it then moves aside.
fn store_in_use(path: &Path) -> Result<bool, AdminError> {
    if !path.exists() {
        return Ok(false);
    }
    match redb::ReadOnlyDatabase::open(path) {
        Ok(db) => {
            drop(db);
            Ok(false)
        }
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => Ok(true),
        // Cannot tell (no permission, a failing disk): not a reason to write over it.
        Err(redb::DatabaseError::Storage(redb::StorageError::Io(e))) => Err(io(format!(
            "cannot tell whether {} is in use",
            path.display()
        ))(e)),
        // Not a store redb can open (damaged, another file): it is moved aside like any other.
        Err(_) => Ok(false),
    }
}

/// `koogallery-admin restore`: verifies the archive whole, then writes its files into
/// `--data-dir`.
pub fn restore(args: &RestoreArgs) -> Result<RestoreReport, AdminError> {
    let open = || {
        std::fs::File::open(&args.from)
            .map(std::io::BufReader::new)
            .map_err(io(format!("cannot read {}", args.from.display())))
    };
    // First pass: the whole archive verified before anything is written.
    let manifest = verify_archive(open()?)?;
    let dir = &args.data_dir;
    std::fs::create_dir_all(dir).map_err(io(format!("cannot create {}", dir.display())))?;
    let store = dir.join(STORE_FILE);
    if store_in_use(&store)? {
        return Err(AdminError::InUse(dir.display().to_string()));
    }
    // Everything a restore would write or that belongs to the store it replaces.
    let present: Vec<&str> = std::iter::once(STORE_FILE)
        .chain(KEY_FILES.iter().copied())
        .filter(|name| dir.join(name).exists())
        .collect();
    if !present.is_empty() && !args.force {
        return Err(AdminError::NotEmpty {
            dir: dir.display().to_string(),
            files: present.join(", "),
        });
    }
    // Second pass: each file into a temporary file of DIR (owner-only), checked again as it is
    // read; only when all are there and match are they renamed into place.
    let mut extracted: Vec<(String, tempfile::NamedTempFile)> = Vec::new();
    let again = read_archive(open()?, |name, chunk| {
        if extracted.last().is_none_or(|(last, _)| last != name) {
            let tmp = tempfile::Builder::new()
                .prefix(".restore-")
                .tempfile_in(dir)?;
            extracted.push((name.to_owned(), tmp));
        }
        match extracted.last_mut() {
            Some((_, tmp)) => tmp.write_all(chunk),
            None => Ok(()),
        }
    })?;
    if again != manifest {
        return Err(AdminError::Usage(format!(
            "{} changed while it was restored",
            args.from.display()
        )));
    }
    for (name, tmp) in &mut extracted {
        tmp.flush()
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(io(format!("cannot write {name} in {}", dir.display())))?;
    }
    let mut moved_aside = None;
    // What this restore changed in DIR so far, undone if a later step fails: DIR is then as it
    // was, never half the backup and half what was there.
    let mut moved: Vec<&str> = Vec::new();
    let mut written: Vec<String> = Vec::new();
    let undo = |aside: Option<&Path>, moved: &[&str], written: &[String]| {
        for name in written {
            let _ = std::fs::remove_file(dir.join(name));
        }
        if let Some(aside) = aside {
            for name in moved {
                let _ = std::fs::rename(aside.join(name), dir.join(name));
            }
            let _ = std::fs::remove_dir(aside);
        }
    };
    if !present.is_empty() {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        let aside = dir.join(format!("pre-restore-{stamp}"));
        std::fs::create_dir(&aside).map_err(io(format!("cannot create {}", aside.display())))?;
        for name in &present {
            if let Err(e) = std::fs::rename(dir.join(name), aside.join(name)) {
                undo(Some(&aside), &moved, &written);
                return Err(io(format!(
                    "cannot move {} to {} (nothing restored; what was moved is back)",
                    dir.join(name).display(),
                    aside.display()
                ))(e));
            }
            moved.push(name);
        }
        sync_dir(&aside)?;
        moved_aside = Some(aside);
    }
    let mut files = Vec::new();
    for (name, tmp) in extracted {
        let path = dir.join(&name);
        if let Err(e) = tmp.persist_noclobber(&path) {
            // A host restarted meanwhile (and wrote a key file), a full disk: back to the start.
            undo(moved_aside.as_deref(), &moved, &written);
            return Err(io(format!(
                "cannot write {} (nothing restored; the files that were there are back)",
                path.display()
            ))(e.error));
        }
        written.push(name.clone());
        files.push(name);
    }
    sync_dir(dir)?;
    Ok(RestoreReport {
        data_dir: dir.clone(),
        files,
        moved_aside,
        manifest,
    })
}

/// Prints the outcome (as JSON with `--json`) and returns the exit status.
pub(crate) fn finish<T: Serialize>(
    json: bool,
    outcome: Result<T, AdminError>,
    human: impl FnOnce(&T) -> String,
) -> ExitCode {
    match outcome {
        Ok(report) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            } else {
                println!("{}", human(&report));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            if json {
                println!("{}", serde_json::json!({ "error": e.to_string() }));
            }
            eprintln!("koogallery-admin: {e}");
            ExitCode::FAILURE
        }
    }
}

fn summary(manifest: &Manifest) -> String {
    let files: Vec<String> = manifest
        .files
        .iter()
        .map(|f| format!("{} ({} bytes)", f.name, f.size))
        .collect();
    format!(
        "{}; {} rows in {} tables, taken {} by host {}",
        files.join(", "),
        manifest.tables.values().sum::<u64>(),
        manifest.tables.len(),
        manifest.created_at,
        manifest.host_version
    )
}

/// The `koogallery-admin` program. A command line it cannot read exits with status 1 as any
/// other failure (`--help` and `--version` with 0).
pub fn main() -> ExitCode {
    match Cli::try_parse() {
        Ok(cli) => run(cli, &Env::process()),
        Err(e) => {
            let _ = e.print();
            if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli, env: &Env<'_>) -> ExitCode {
    match cli.command {
        Command::Console(args) => {
            let outcome = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(io("cannot start the runtime"))
                .and_then(|rt| rt.block_on(console(&args, env)));
            finish(args.host.json, outcome, |()| {
                "console proxy stopped".to_owned()
            })
        }
        Command::Backup(args) => {
            let outcome = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(io("cannot start the runtime"))
                .and_then(|rt| rt.block_on(backup(&args, env)));
            finish(args.host.json, outcome, |r| {
                format!(
                    "backup written to {} ({} bytes): {}\nit holds the store and its keys: keep it as secret as they are",
                    r.file.display(),
                    r.bytes,
                    summary(&r.manifest)
                )
            })
        }
        Command::Instances(a) => crate::operator_cli::run(
            &a.host.clone(),
            env,
            crate::operator_cli::Call::Instances(a),
        ),
        Command::Instance(a) => {
            crate::operator_cli::run(&a.host.clone(), env, crate::operator_cli::Call::Instance(a))
        }
        Command::Exchanges(a) => crate::operator_cli::run(
            &a.host.clone(),
            env,
            crate::operator_cli::Call::Exchanges(a),
        ),
        Command::DeadLetters(a) => crate::operator_cli::run(
            &a.host.clone(),
            env,
            crate::operator_cli::Call::DeadLetters(a),
        ),
        Command::Redrive(a) => {
            crate::operator_cli::run(&a.host.clone(), env, crate::operator_cli::Call::Redrive(a))
        }
        Command::Discard(a) => {
            crate::operator_cli::run(&a.host.clone(), env, crate::operator_cli::Call::Discard(a))
        }
        Command::Usage(a) => {
            crate::operator_cli::run(&a.host.clone(), env, crate::operator_cli::Call::Usage(a))
        }
        Command::Reconcile(a) => crate::operator_cli::run(
            &a.host.clone(),
            env,
            crate::operator_cli::Call::Reconcile(a),
        ),
        Command::Passes(a) => {
            crate::operator_cli::run(&a.host.clone(), env, crate::operator_cli::Call::Passes(a))
        }
        Command::Restore(args) => finish(args.json, restore(&args), |r| {
            let aside = r
                .moved_aside
                .as_ref()
                .map(|p| format!("\nthe earlier files are in {}", p.display()))
                .unwrap_or_default();
            format!(
                "restored into {}: {}{aside}",
                r.data_dir.display(),
                summary(&r.manifest)
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(to: &Path) -> BackupArgs {
        BackupArgs {
            to: to.to_owned(),
            host: HostArgs {
                json: true,
                ..HostArgs::default()
            },
        }
    }

    fn env(vars: &'static [(&'static str, &'static str)]) -> Env<'static> {
        Env::from_fn(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn the_url_is_the_flag_else_the_setting_else_loopback_on_port() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = args(&dir.path().join("b.tar"));
        assert_eq!(
            host_url(&a.host, &env(&[])).unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            host_url(&a.host, &env(&[("PORT", "9001")])).unwrap(),
            "http://127.0.0.1:9001"
        );
        let set = env(&[("KOOGALLERY_ADMIN_API_URL", "https://host.example:8443/")]);
        assert_eq!(
            host_url(&a.host, &set).unwrap(),
            "https://host.example:8443"
        );
        a.host.url = Some("http://10.0.0.5:8080".into());
        assert_eq!(host_url(&a.host, &set).unwrap(), "http://10.0.0.5:8080");
    }

    #[test]
    fn the_token_is_the_data_dirs_file_else_the_setting_else_the_default_dirs_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("admin-token"), "from-the-file\n").unwrap();
        let mut a = args(&dir.path().join("b.tar"));
        let set = env(&[("KOOGALLERY_ADMIN_TOKEN", "from-the-setting")]);
        assert_eq!(token(&a.host, &set).unwrap().expose(), "from-the-setting");
        a.host.data_dir = Some(dir.path().to_owned());
        assert_eq!(token(&a.host, &set).unwrap().expose(), "from-the-file");
        a.host.data_dir = Some(dir.path().join("missing"));
        let e = token(&a.host, &set).unwrap_err().to_string();
        assert!(e.contains("admin-token"), "{e}");
    }

    #[tokio::test]
    async fn a_ca_cert_that_is_not_a_certificate_is_refused_before_any_call() {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("ca.pem");
        std::fs::write(&pem, "not a certificate").unwrap();
        let mut a = args(&dir.path().join("b.tar"));
        a.host.ca_cert = Some(pem);
        // Port 9 (discard) on loopback: never reached, the certificate fails first.
        a.host.url = Some("https://127.0.0.1:9".into());
        let e = backup(&a, &env(&[("KOOGALLERY_ADMIN_TOKEN", "some-token-value")]))
            .await
            .unwrap_err();
        assert!(matches!(e, AdminError::Usage(_)), "{e}");
        assert!(!dir.path().join("b.tar").exists());
    }
}
