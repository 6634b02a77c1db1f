//! The exchange log (docs/operations.md, "What KooGallery sent"): every call KooGallery made to the
//! production interface and every call we made (KooGallery's open API, the vendor's webhook), with
//! the request and our answer redacted ([`redact`]), kept for a retention (`KOOGALLERY_EXCHANGE_LOG_DAYS`)
//! and found by instance, by order or by time.
//!
//! The log is for people, not for the protocol: nothing reads it to decide anything, so it is
//! written off the request's path ([`ExchangeRecorder`]: a bounded channel and a writer task that
//! batches), and what a crash or a full channel loses of it is said there.
//!
//! - [`Exchange`]: one stored call; its on-disk form is [`record`] (a versioned contract).
//! - [`Capture`]: what a caller hands the recorder on its path: raw bytes, not yet redacted.
//! - [`Kept`]: an exchange as written (its record's bytes and the keys it is found by): what a
//!   store appends.
//! - [`ExchangeLog`]: the port (memory, embedded, DynamoDB), held to `exchange_log_contract`.

pub mod record;
pub mod recorder;
pub mod redact;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::storage::StoreError;

pub use record::Kept;
pub use recorder::{Capture, ExchangeRecorder, RecorderTask};

/// Who called whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// KooGallery called the production interface.
    Inbound,
    /// We called KooGallery's open API or the vendor's webhook.
    Outbound,
    /// An operator acted (a redrive, a discard, a forced reconciler pass): who, what, and what
    /// came of it.
    Operator,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
            Self::Operator => "operator",
        }
    }
}

/// One call, as kept: identifiers, the redacted request and answer, the outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    /// Unique and ordered by time within a millisecond's precision: `{at ms}-{random}`.
    pub id: String,
    pub at: DateTime<Utc>,
    pub direction: Direction,
    /// The protocol family of an inbound call (`v2_basic`, `kit`, `v1`), or the peer of an
    /// outbound one (`openapi`, `webhook`).
    pub family: String,
    /// The callback (`newInstance`, `tenantSync`, …) or, for an outbound call, what it was
    /// (`queryOrder`, `usagePush`, `provision`, `notice:frozen`, …); `-` when not known.
    pub activity: String,
    pub instance_id: Option<String>,
    pub order_id: Option<String>,
    pub tenant_id: Option<String>,
    /// The request body, redacted: JSON when it was JSON, else a short description.
    pub request: serde_json::Value,
    /// The answer's body, redacted, as `request`.
    pub response: serde_json::Value,
    /// The KooGallery result code answered (inbound) or received (outbound), when there is one.
    pub result_code: Option<String>,
    /// The HTTP status of an outbound call; inbound answers are always 200.
    pub http_status: Option<u16>,
    pub latency_ms: f64,
    /// Which key of the ring verified an inbound call (`current`, `previous`); none when the
    /// call did not verify.
    pub key: Option<String>,
    /// The attempt number of an outbound call (1 for the first).
    pub attempt: Option<u32>,
    /// KooGallery's interface debugging (`testFlag` 1).
    pub test: bool,
    /// Gone after this (the store's time to live).
    pub expires_at: DateTime<Utc>,
    /// Why the call failed before an answer, for an outbound call (a timeout, a refused
    /// connection).
    pub error: Option<String>,
}

/// Which exchanges a query asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExchangeFilter {
    All,
    Instance(String),
    Order(String),
    /// What operators did and the reconciler's passes (direction [`Direction::Operator`]).
    Actions,
}

/// A page of the log, newest first: at most `limit` exchanges strictly older than `before` (the
/// `id` of the last exchange of the previous page), none expired at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeQuery {
    pub filter: ExchangeFilter,
    pub before: Option<String>,
    pub limit: usize,
}

impl ExchangeQuery {
    /// The largest page a store answers.
    pub const MAX_LIMIT: usize = 500;

    pub fn newest(filter: ExchangeFilter, limit: usize) -> Self {
        Self {
            filter,
            before: None,
            limit,
        }
    }

    /// The limit, at least 1 and at most [`Self::MAX_LIMIT`].
    pub fn bounded_limit(&self) -> usize {
        self.limit.clamp(1, Self::MAX_LIMIT)
    }

    /// Whether `e` belongs to this page's filter (for stores that filter a scan).
    pub fn matches(&self, e: &Exchange) -> bool {
        let filtered = match &self.filter {
            ExchangeFilter::All => true,
            ExchangeFilter::Instance(id) => e.instance_id.as_deref() == Some(id),
            ExchangeFilter::Order(id) => e.order_id.as_deref() == Some(id),
            ExchangeFilter::Actions => e.direction == Direction::Operator,
        };
        filtered && self.before.as_deref().is_none_or(|b| e.id.as_str() < b)
    }
}

/// Where exchanges are kept.
#[async_trait]
pub trait ExchangeLog: Send + Sync {
    /// Keeps `records`. Appending an exchange whose `id` is kept already changes nothing (a
    /// retried batch is not doubled): the first kept is the one answered.
    async fn append(&self, records: &[Kept]) -> Result<(), StoreError>;

    /// One page, newest first ([`ExchangeQuery`]); expired exchanges are never answered, whether
    /// or not the store has deleted them yet.
    async fn find(
        &self,
        query: &ExchangeQuery,
        now: DateTime<Utc>,
    ) -> Result<Vec<Exchange>, StoreError>;
}

/// The longest retention `KOOGALLERY_EXCHANGE_LOG_DAYS` takes.
pub const MAX_RETENTION_DAYS: i64 = 400;

/// `KOOGALLERY_EXCHANGE_LOG_DAYS`: how long an exchange is kept, or `None` for no log (0).
pub fn retention(
    env: &crate::config::Env<'_>,
) -> Result<Option<chrono::Duration>, crate::config::ConfigError> {
    let setting = &crate::config::catalog::EXCHANGE_LOG_DAYS;
    let days: i64 = env.number(setting, 0)?;
    if days > MAX_RETENTION_DAYS {
        return Err(crate::config::ConfigError::invalid(
            setting.name,
            format!("at most {MAX_RETENTION_DAYS} days, got {days}"),
        ));
    }
    Ok((days > 0).then(|| chrono::Duration::days(days)))
}

/// An exchange ID: the time in milliseconds, zero-padded so IDs sort by time, and 64 random bits.
pub fn new_id(at: DateTime<Utc>) -> String {
    format!(
        "{:013}-{:016x}",
        at.timestamp_millis().max(0),
        rand::random::<u64>()
    )
}

/// The milliseconds an exchange id starts with ([`new_id`]), if it does.
pub fn id_millis(id: &str) -> Option<i64> {
    let (ms, _) = id.split_once('-')?;
    (ms.len() == 13 && ms.bytes().all(|b| b.is_ascii_digit()))
        .then(|| ms.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests;
