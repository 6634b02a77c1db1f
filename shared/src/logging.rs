//! Logs, set up the same way in every process: a `RUST_LOG` filter that must parse, and JSON lines
//! on Lambda (which stamps each line itself) or, on a host, JSON or compact text as
//! `KOOGALLERY_LOG_FORMAT` says. Keys, signatures and credentials are never logged.

use crate::config::{ConfigError, Env, catalog};

/// How lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Compact human-readable lines (`make run`).
    Text,
    /// JSON lines with a timestamp (a host whose logs are collected).
    Json,
    /// JSON lines without a timestamp or colour: Lambda stamps each line.
    Lambda,
}

impl LogFormat {
    /// A host's: `KOOGALLERY_LOG_FORMAT`, `text` or `json`.
    pub fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(match env.choice(&catalog::LOG_FORMAT, &["text", "json"])? {
            "json" => Self::Json,
            _ => Self::Text,
        })
    }

    /// Lines are JSON, so metrics go out as EMF lines beside them.
    pub fn is_json(self) -> bool {
        !matches!(self, Self::Text)
    }
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
    /// `RUST_LOG`'s directives, checked.
    pub filter: String,
}

impl LogSettings {
    /// A host's: `KOOGALLERY_LOG_FORMAT` (`text` or `json`) and `RUST_LOG`.
    pub fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        Self::with_format(env, LogFormat::read(env)?)
    }

    /// A Lambda function's: always [`LogFormat::Lambda`], and `RUST_LOG`.
    pub fn lambda(env: &Env<'_>) -> Result<Self, ConfigError> {
        Self::with_format(env, LogFormat::Lambda)
    }

    fn with_format(env: &Env<'_>, format: LogFormat) -> Result<Self, ConfigError> {
        let filter = env.text(&catalog::RUST_LOG).unwrap_or_default();
        tracing_subscriber::EnvFilter::try_new(&filter)
            .map_err(|e| ConfigError::invalid(catalog::RUST_LOG.name, e.to_string()))?;
        Ok(Self { format, filter })
    }
}

/// Installs the process's subscriber; a second call (tests starting several hosts) keeps the
/// first.
pub fn init(settings: &LogSettings) {
    use tracing_subscriber::{EnvFilter, fmt};
    let filter = EnvFilter::try_new(&settings.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = match settings.format {
        LogFormat::Text => fmt().compact().with_env_filter(filter).try_init(),
        LogFormat::Json => fmt()
            .json()
            .with_env_filter(filter)
            .with_current_span(false)
            .try_init(),
        LogFormat::Lambda => fmt()
            .json()
            .with_env_filter(filter)
            .with_current_span(false)
            .with_ansi(false)
            .without_time()
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_that_does_not_parse_stops_start_up_named() {
        let env = Env::from_fn(|k| (k == "RUST_LOG").then(|| "info,=[".to_owned()));
        let err = LogSettings::read(&env).unwrap_err();
        assert!(err.to_string().starts_with("RUST_LOG:"), "{err}");
        let env = Env::from_fn(|k| (k == "KOOGALLERY_LOG_FORMAT").then(|| "xml".to_owned()));
        assert!(LogSettings::read(&env).is_err());
        let defaults = LogSettings::read(&Env::empty()).unwrap();
        assert_eq!(
            (defaults.format, defaults.filter.as_str()),
            (LogFormat::Text, "info")
        );
        assert_eq!(
            LogSettings::lambda(&Env::empty()).unwrap().format,
            LogFormat::Lambda
        );
    }
}
