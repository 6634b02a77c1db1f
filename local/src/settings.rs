//! The local host's own settings (where to listen, where the data lives) and why a start failed.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use crate::server::TlsFiles;

use koogallery::config::{ConfigError, Env, catalog};

/// More open connections than a process can have file descriptors for is a typing error.
const MAX_CONNECTIONS: usize = 1_000_000;
/// A stop that waits longer than an hour for a job is not a stop.
const MAX_SHUTDOWN_GRACE: Duration = Duration::from_secs(3600);

/// Local-only settings: where to listen and where the data lives.
#[derive(Debug, Clone)]
pub struct LocalSettings {
    pub listen: SocketAddr,
    /// HTTPS from these PEM files (`KOOGALLERY_TLS_CERT`, `KOOGALLERY_TLS_KEY`); `None`: HTTP.
    pub tls: Option<TlsFiles>,
    /// Connections open at once (`KOOGALLERY_MAX_CONNECTIONS`).
    pub max_connections: usize,
    /// On SIGTERM, how long the worker may take to finish (`KOOGALLERY_SHUTDOWN_GRACE_SECS`).
    pub shutdown_grace: Duration,
    pub data_dir: PathBuf,
    /// Single sign-on for 联营 products, when `KOOGALLERY_SSO_ISSUER` is set.
    pub sso: Option<SsoHostSettings>,
}

/// What the host needs to serve SSO (docs/protocol/decisions.md §19).
#[derive(Debug, Clone)]
pub struct SsoHostSettings {
    pub provider: sso::ProviderSettings,
    /// The OIDC clients: a file's path, or the file's JSON inline; read at start.
    pub clients: String,
}

impl SsoHostSettings {
    /// `KOOGALLERY_SSO_ISSUER` (unset: `None`), `KOOGALLERY_SSO_APP_ID` (then required),
    /// `KOOGALLERY_SSO_UNIFIED_LOGIN_URL` and `KOOGALLERY_OIDC_CLIENTS`.
    pub fn read(env: &Env<'_>, data_dir: &std::path::Path) -> Result<Option<Self>, ConfigError> {
        let Some(provider) = sso::ProviderSettings::from_env(env)? else {
            return Ok(None);
        };
        let clients = env.get(&catalog::OIDC_CLIENTS).unwrap_or_else(|| {
            data_dir
                .join(sso::clients::CLIENTS_FILE)
                .display()
                .to_string()
        });
        Ok(Some(Self { provider, clients }))
    }
}

impl LocalSettings {
    /// Plain HTTP on 127.0.0.1 and a port the OS picks, data in `data_dir`, every other setting at
    /// its default (tests, examples).
    pub fn on_loopback(data_dir: impl Into<PathBuf>) -> Self {
        let mut settings = Self::read(&Env::empty()).expect("the catalog's defaults are valid");
        settings.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        settings.data_dir = data_dir.into();
        settings
    }

    /// `KOOGALLERY_LISTEN`, else `PORT` (default 8080) on 127.0.0.1, and `KOOGALLERY_DATA_DIR`
    /// (default `.data/`).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(&Env::process())
    }

    pub fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let port: u16 = env.number(&catalog::PORT, 0)?;
        let data_dir = PathBuf::from(env.text(&catalog::DATA_DIR).unwrap_or_default());
        // Loopback unless an address is given: a server opts in to being reachable.
        let listen = match env.get(&catalog::LISTEN) {
            Some(addr) => addr.trim().parse().map_err(|e| {
                ConfigError::invalid(
                    catalog::LISTEN.name,
                    format!("{addr:?} is not an address and port such as 0.0.0.0:8080: {e}"),
                )
            })?,
            None => SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let tls = match (env.get(&catalog::TLS_CERT), env.get(&catalog::TLS_KEY)) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.into(),
                key: key.into(),
            }),
            (Some(_), None) => {
                return Err(ConfigError::invalid(
                    catalog::TLS_KEY.name,
                    "is not set, but KOOGALLERY_TLS_CERT is: set both or neither",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    catalog::TLS_CERT.name,
                    "is not set, but KOOGALLERY_TLS_KEY is: set both or neither",
                ));
            }
        };
        let max_connections: usize = env.number(&catalog::MAX_CONNECTIONS, 1)?;
        if max_connections > MAX_CONNECTIONS {
            return Err(ConfigError::invalid(
                catalog::MAX_CONNECTIONS.name,
                format!("at most {MAX_CONNECTIONS}, got {max_connections}"),
            ));
        }
        let shutdown_grace = env.secs(&catalog::SHUTDOWN_GRACE_SECS, 0)?;
        if shutdown_grace > MAX_SHUTDOWN_GRACE {
            return Err(ConfigError::invalid(
                catalog::SHUTDOWN_GRACE_SECS.name,
                format!(
                    "at most {} s (systemd's stop timeout must exceed it), got {}",
                    MAX_SHUTDOWN_GRACE.as_secs(),
                    shutdown_grace.as_secs()
                ),
            ));
        }
        Ok(Self {
            listen,
            tls,
            max_connections,
            shutdown_grace,
            sso: SsoHostSettings::read(env, &data_dir)?,
            data_dir,
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
    #[error("TLS: {0}")]
    Tls(#[from] crate::server::TlsError),
    #[error("AWS resources: {0}")]
    Aws(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_listens_on_loopback_unless_an_address_is_given() {
        let read = |vars: &[(&str, &str)]| {
            let env = Env::from_fn(|name| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            });
            LocalSettings::read(&env).map(|s| s.listen.to_string())
        };
        assert_eq!(read(&[]).unwrap(), "127.0.0.1:8080");
        assert_eq!(read(&[("PORT", "9000")]).unwrap(), "127.0.0.1:9000");
        assert_eq!(
            read(&[("KOOGALLERY_LISTEN", "0.0.0.0:8443")]).unwrap(),
            "0.0.0.0:8443"
        );
        let e = read(&[("KOOGALLERY_LISTEN", "everywhere")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("KOOGALLERY_LISTEN"), "{e}");
    }

    #[test]
    fn limits_out_of_range_are_refused_at_start_not_at_the_first_stop() {
        let read = |name: &str, value: &str| {
            let (name, value) = (name.to_owned(), value.to_owned());
            LocalSettings::read(&Env::from_fn(move |k| (k == name).then(|| value.clone())))
        };
        for (name, value) in [
            ("KOOGALLERY_SHUTDOWN_GRACE_SECS", "18446744073709551615"),
            ("KOOGALLERY_SHUTDOWN_GRACE_SECS", "3601"),
            ("KOOGALLERY_MAX_CONNECTIONS", "2305843009213693952"),
            ("KOOGALLERY_MAX_CONNECTIONS", "0"),
        ] {
            let e = read(name, value).expect_err(value).to_string();
            assert!(e.contains(name), "{e}");
        }
        let ok = read("KOOGALLERY_SHUTDOWN_GRACE_SECS", "3600").expect("an hour");
        assert_eq!(ok.shutdown_grace, Duration::from_secs(3600));
    }
}
