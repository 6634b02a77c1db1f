//! What every port failure carries: what failed, in words, and the error that caused it, kept as
//! its source. The port's error enum (`StoreError`, `QueueError`, `SecretsError`, `SealError`,
//! `MarketplaceError`, `ProvisionError`) says whether retrying can help; its [`Detail`] says why.

use std::{error::Error, fmt};

/// The error behind a failure: an SDK, I/O, HTTP or decoding error.
pub type Cause = Box<dyn Error + Send + Sync + 'static>;

/// What failed, and what caused it.
///
/// Its `Display` prints the words and then the cause's whole chain (SDK errors keep the useful part
/// in their sources), so a log line with `%error` says everything; `source()` hands the cause
/// itself to code that wants to inspect it.
#[derive(Debug)]
pub struct Detail {
    what: String,
    cause: Option<Cause>,
}

impl Detail {
    /// A failure with no underlying error (a broken invariant, an unexpected answer).
    pub fn new(what: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            cause: None,
        }
    }

    /// A failure caused by `cause`.
    pub fn caused_by(what: impl Into<String>, cause: impl Into<Cause>) -> Self {
        Self {
            what: what.into(),
            cause: Some(cause.into()),
        }
    }

    /// The words, without the cause.
    pub fn what(&self) -> &str {
        &self.what
    }
}

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)?;
        let mut printed = self.what.clone();
        let mut next: Option<&(dyn Error + 'static)> = self.cause.as_deref().map(|c| c as _);
        while let Some(e) = next {
            let text = e.to_string();
            // SDK errors often repeat their source's text in their own: print it once.
            if !printed.contains(&text) {
                write!(f, ": {text}")?;
                printed.push_str(&text);
            }
            next = e.source();
        }
        Ok(())
    }
}

impl Error for Detail {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.cause.as_deref().map(|c| c as _)
    }
}

impl From<String> for Detail {
    fn from(what: String) -> Self {
        Self::new(what)
    }
}

impl From<&str> for Detail {
    fn from(what: &str) -> Self {
        Self::new(what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("service error")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_text_has_the_whole_chain_and_the_source_is_the_cause_itself() {
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
        let detail = Detail::caused_by("DynamoDB GetItem failed", Outer(io));
        assert_eq!(
            detail.to_string(),
            "DynamoDB GetItem failed: service error: connect timed out"
        );
        let cause = detail.source().expect("the cause is kept");
        assert!(cause.downcast_ref::<Outer>().is_some(), "{cause:?}");
        assert_eq!(Detail::from("no cause").to_string(), "no cause");
        assert!(Detail::new("no cause").source().is_none());
    }

    #[test]
    fn a_cause_that_repeats_its_source_is_printed_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("timed out: connect timed out")]
        struct Repeats(#[source] std::io::Error);
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
        let detail = Detail::caused_by("SQS SendMessage failed", Repeats(io));
        assert_eq!(
            detail.to_string(),
            "SQS SendMessage failed: timed out: connect timed out"
        );
    }
}
