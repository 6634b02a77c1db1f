//! `make run`: the production interface on 127.0.0.1:$PORT, data in $KOOGALLERY_DATA_DIR.
//! `make run-aws-local`: the same on the AWS adapters against the emulator (`KOOGALLERY_BACKEND=aws`).

use koogallery::config::Config;
use koogallery_local::{LocalSettings, init_tracing, start};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // A bad setting names its variable: say it plainly, not as a Debug dump.
            eprintln!(
                "koogallery-local: {}",
                koogallery::callbacks::error_chain(e.as_ref())
            );
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    init_tracing()?;
    let config = Config::from_env()?;
    if config.secrets.dev_keys {
        tracing::warn!(
            "using development keys: set KOOGALLERY_ACCESS_KEY and KOOGALLERY_KIT_KEY before going live"
        );
    }
    let settings = LocalSettings::from_env()?;
    let backend = koogallery::config::Env::process().choice(
        "KOOGALLERY_BACKEND",
        "embedded",
        &["embedded", "aws"],
    )?;
    if backend == "aws" {
        return run_aws(config, settings).await;
    }
    let host = start(config, settings).await?;
    tokio::signal::ctrl_c().await?;
    tracing::info!("shutting down");
    host.shutdown().await;
    Ok(())
}

#[cfg(feature = "aws")]
async fn run_aws(
    config: Config,
    settings: LocalSettings,
) -> Result<(), Box<dyn std::error::Error>> {
    use koogallery_local::aws::{AwsSettings, start_aws};
    let host = start_aws(config, settings, AwsSettings::from_env(), None).await?;
    tokio::signal::ctrl_c().await?;
    tracing::info!("shutting down");
    host.shutdown().await;
    Ok(())
}

#[cfg(not(feature = "aws"))]
async fn run_aws(_: Config, _: LocalSettings) -> Result<(), Box<dyn std::error::Error>> {
    Err("KOOGALLERY_BACKEND=aws needs the `aws` feature: use `make run-aws-local`".into())
}
