//! `make run`'s process: settings and secrets from the environment, logs, the chosen backend,
//! until Ctrl-C or SIGTERM.

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
/// Ctrl-C or SIGTERM (then it shuts the host down and returns `Ok`: exit status 0).
pub async fn run_from_env() -> Result<(), Box<dyn std::error::Error>> {
    let log = LogSettings::read(&Env::process())?;
    koogallery::logging::init(&log);
    let config = Config::from_env()?;
    if config.secrets.dev_keys {
        tracing::warn!(
            "using development keys: set KOOGALLERY_ACCESS_KEY and KOOGALLERY_KIT_KEY before going live"
        );
    }
    let settings = LocalSettings::from_env()?;
    let backend = Env::process().choice(&catalog::BACKEND, &["embedded", "aws"])?;
    if backend == "aws" {
        return run_aws_from_env(config, settings).await;
    }
    let host = start(config, settings).await?;
    stop_signal().await?;
    tracing::info!("shutting down");
    host.shutdown().await;
    Ok(())
}

#[cfg(feature = "aws")]
pub(crate) async fn run_aws_from_env(
    config: Config,
    settings: LocalSettings,
) -> Result<(), Box<dyn std::error::Error>> {
    use crate::aws::{AwsSettings, start_aws};
    let host = start_aws(config, settings, AwsSettings::from_env(), None).await?;
    stop_signal().await?;
    tracing::info!("shutting down");
    host.shutdown().await;
    Ok(())
}

#[cfg(not(feature = "aws"))]
pub(crate) async fn run_aws_from_env(
    _: Config,
    _: LocalSettings,
) -> Result<(), Box<dyn std::error::Error>> {
    Err("KOOGALLERY_BACKEND=aws needs the `aws` feature: use `make run-aws-local`".into())
}

/// Ctrl-C, or SIGTERM: how systemd (`systemctl stop`) and a container runtime stop the host.
async fn stop_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        tokio::select! {
            ctrl_c = tokio::signal::ctrl_c() => ctrl_c,
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await
}

/// Metrics as the logs are written: EMF lines with JSON logs (as on AWS), debug lines otherwise.
pub fn local_metrics() -> Arc<dyn koogallery::metrics::Metrics> {
    let json = LogFormat::read(&Env::process()).is_ok_and(LogFormat::is_json);
    koogallery::metrics::for_log_format(json)
}
