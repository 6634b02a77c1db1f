//! The local host's own settings (where to listen, where the data lives) and why a start failed.

use std::{net::SocketAddr, path::PathBuf};

use koogallery::config::{ConfigError, Env, catalog};

/// Local-only settings: where to listen and where the data lives.
#[derive(Debug, Clone)]
pub struct LocalSettings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
}

impl LocalSettings {
    /// `PORT` (default 8080) on 127.0.0.1 and `KOOGALLERY_DATA_DIR` (default `.data/`).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(&Env::process())
    }

    pub fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let port: u16 = env.number(&catalog::PORT, 0)?;
        Ok(Self {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            data_dir: PathBuf::from(env.text(&catalog::DATA_DIR).unwrap_or_default()),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the data store in {dir}: {source}")]
    Store {
        dir: String,
        source: koogallery::StoreError,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("AWS resources: {0}")]
    Aws(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
}
