//! What the buyer gets: how to reach the instance ([`AccessInfo`]) with its password as kept
//! ([`Credential`]), or why provisioning failed for good ([`Failure`]).

use crate::ResultCode;

/// How the buyer reaches the instance: what the provisioner created and queryInstance hands out
/// (as `appInfo`, docs/protocol/callbacks.md §6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessInfo {
    pub front_end_url: String,
    pub admin_url: Option<String>,
    pub user_name: Option<String>,
    pub password: Option<Credential>,
    pub memo: Option<String>,
}

/// A password as the instance keeps it: plain as the vendor answered it, sealed once the worker
/// stores it (`security::at_rest`), and opened only to answer queryInstance. Records written before
/// sealing hold plain ones. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    Plain(String),
    Sealed(String),
}

impl Credential {
    pub fn plain(value: impl Into<String>) -> Self {
        Self::Plain(value.into())
    }

    /// The plain text, when it is not sealed.
    pub fn as_plain(&self) -> Option<&str> {
        match self {
            Self::Plain(p) => Some(p),
            Self::Sealed(_) => None,
        }
    }
}

/// What a provisioner answers is plain.
impl From<&str> for Credential {
    fn from(value: &str) -> Self {
        Self::Plain(value.to_owned())
    }
}

impl From<String> for Credential {
    fn from(value: String) -> Self {
        Self::Plain(value)
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Plain(_) => "Plain(<redacted>)",
            Self::Sealed(_) => "Sealed(<redacted>)",
        })
    }
}

/// Why provisioning ended for good; `code` is what queryInstance answers
/// (docs/protocol/decisions.md §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: ResultCode,
    pub message: String,
}
