//! `make run`: the production interface on 127.0.0.1:$PORT, data in $KOOGALLERY_DATA_DIR.

use koogallery::config::Config;
use koogallery_local::{LocalSettings, init_tracing, start};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_tracing();
    let config = Config::from_env()?;
    if config.dev_keys {
        tracing::warn!(
            "using development keys: set KOOGALLERY_ACCESS_KEY and KOOGALLERY_KIT_KEY before going live"
        );
    }
    let host = start(config, LocalSettings::from_env()?).await?;
    tokio::signal::ctrl_c().await?;
    tracing::info!("shutting down");
    host.shutdown().await;
    Ok(())
}
