//! `make run`'s process: settings and secrets from the environment, logs, the chosen backend,
//! until Ctrl-C.

use std::sync::Arc;

use crate::{LocalSettings, start};
use koogallery::{
    config::{Config, Env, catalog},
    logging::{LogFormat, LogSettings},
};

/// `make run`'s process entry: [`run_from_env`], with a failure said plainly (a bad setting names
/// its variable) and exit status 1.
pub async fn main_from_env(program: &str) -> std::process::ExitCode {
    match run_from_env().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "{program}: {}",
                koogallery::callbacks::error_chain(e.as_ref())
            );
            std::process::ExitCode::FAILURE
        }
    }
}

/// The whole local host as `make run` starts it: tracing, settings and secrets from the
/// environment, the embedded store (or, with `KOOGALLERY_BACKEND=aws`, the AWS adapters), until
/// Ctrl-C.
pub async fn run_from_env() -> Result<(), Box<dyn std::error::Error>> {
    // First of all, before keys are generated or the store opened: a SIGTERM or a SIGHUP
    // (`systemctl reload` as soon as the process exists) must never take the default action of
    // ending the process, which systemd would count as a clean exit and not restart.
    let stop = Stop::listen()?;
    let log = LogSettings::read(&Env::process())?;
    koogallery::logging::init(&log);
    let config = Config::from_env()?;
    if config.secrets.dev_keys {
        tracing::warn!(
            "using development keys: set KOOGALLERY_ACCESS_KEY and KOOGALLERY_KIT_KEY before going live"
        );
    }
    let settings = LocalSettings::from_env()?;
    if running_as_root() {
        tracing::warn!(
            "running as root: run the host as an unprivileged user (the systemd unit and the container image do)"
        );
    }
    let backend = Env::process().choice(&catalog::BACKEND, &["embedded", "aws"])?;
    if backend == "aws" {
        return run_aws_from_env(config, settings, stop).await;
    }
    let host = start(config, settings).await?;
    stop.wait().await?;
    host.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(feature = "aws")]
pub(crate) async fn run_aws_from_env(
    config: Config,
    settings: LocalSettings,
    stop: Stop,
) -> Result<(), Box<dyn std::error::Error>> {
    use crate::aws::{AwsSettings, start_aws};
    let host = start_aws(config, settings, AwsSettings::from_env(), None).await?;
    stop.wait().await?;
    host.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(not(feature = "aws"))]
pub(crate) async fn run_aws_from_env(
    _: Config,
    _: LocalSettings,
    _: Stop,
) -> Result<(), Box<dyn std::error::Error>> {
    Err("KOOGALLERY_BACKEND=aws needs the `aws` feature: use `make run-aws-local`".into())
}

/// Whether the process runs as root (the owner of `/proc/self` is the effective user).
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The signals that stop the host (SIGTERM from systemd or a container runtime, Ctrl-C), taken
/// over at the start of the process; SIGHUP is taken over at the same moment (the listener
/// reloads its certificate on it once it runs; until then it is ignored).
pub(crate) struct Stop {
    term: tokio::signal::unix::Signal,
    _hangup: tokio::signal::unix::Signal,
}

impl Stop {
    pub(crate) fn listen() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            _hangup: signal(SignalKind::hangup())?,
        })
    }

    /// Until Ctrl-C or SIGTERM.
    pub(crate) async fn wait(mut self) -> std::io::Result<()> {
        tokio::select! {
            got = tokio::signal::ctrl_c() => got?,
            _ = self.term.recv() => {}
        }
        tracing::info!(
            "stopping: no new connections; finishing the calls in flight and the current job"
        );
        Ok(())
    }
}

/// Metrics as the logs are written: EMF lines with JSON logs (as on AWS), debug lines otherwise.
pub fn local_metrics() -> Arc<dyn koogallery::metrics::Metrics> {
    let json = LogFormat::read(&Env::process()).is_ok_and(LogFormat::is_json);
    koogallery::metrics::for_log_format(json)
}
