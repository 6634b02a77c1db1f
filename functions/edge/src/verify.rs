//! Verifying a request before anything is written (docs/protocol/callbacks.md §3.1, §3.2, §5;
//! docs/protocol/decisions.md §1–3, §13): size limit → timestamp window → signature over the raw
//! bytes (current or previous key) → nonce replay guard, each family in its own order of checks.

use chrono::{DateTime, Utc};
use koogallery::{
    ResultCode,
    protocol::{Reply, time::parse_request_timestamp},
    security::{CanonicalError, Matched, parse_body},
};
use serde_json::{Map, Value};

use crate::authenticator::{Authenticator, CredentialNames, Credentials};
use crate::{Edge, retry_later};

/// Longest accepted nonce: documented ones are 16–64 characters.
const MAX_NONCE_LEN: usize = 128;

/// A request whose signature matched: its nonce (not yet remembered), the time it was checked
/// at, the key that matched, and its body parsed once.
pub(crate) struct Verified {
    pub(crate) nonce: String,
    pub(crate) now: DateTime<Utc>,
    pub(crate) matched: Matched,
    pub(crate) parsed: Result<Map<String, Value>, CanonicalError>,
}

/// `000002`, with what is wrong.
pub(crate) fn invalid(msg: String) -> Reply {
    Reply::new(ResultCode::InvalidParameter, msg)
}

/// `000001`, with what is wrong.
fn auth_failed(msg: &str) -> Reply {
    Reply::new(ResultCode::AuthenticationFailed, msg)
}

impl Edge {
    /// The checks up to the signature: size, timestamp, nonce present, signature matched.
    pub(crate) fn verify(
        &self,
        auth: &Authenticator,
        credentials: Credentials,
        body: &[u8],
    ) -> Result<Verified, Reply> {
        let CredentialNames {
            signature: sig_name,
            nonce: nonce_name,
            ..
        } = auth.names;

        if body.len() > auth.max_body_bytes {
            return Err(invalid(format!(
                "request body exceeds {} bytes",
                auth.max_body_bytes
            )));
        }
        // Each family's own order of checks, as its official sample has it: a basic call without
        // a signature is 000001 first (§3.1); a Kit call checks its timestamp and nonce, then
        // x-sign (§3.2). Missing or stale timestamps and missing nonces are 000002 in both.
        if auth.signature_checked_first && credentials.signature.is_none() {
            return Err(auth_failed(&format!("{sig_name} is missing")));
        }
        let (ts_raw, now) = self.fresh(auth, credentials.timestamp)?;
        let Some(nonce) = credentials.nonce else {
            return Err(invalid(format!("{nonce_name} is missing")));
        };
        if nonce.len() > MAX_NONCE_LEN {
            return Err(invalid(format!("{nonce_name} is too long")));
        }
        let Some(signature) = credentials.signature else {
            return Err(auth_failed(&format!("{sig_name} is missing")));
        };
        // One parse serves the canonical payload and, once the signature matched, the dispatch.
        // The signature covers the exact timestamp string received, not its parsed value.
        let parsed = parse_body(body);
        let matched = (auth.verify)(
            &auth.keys,
            &nonce,
            &ts_raw,
            &signature,
            body,
            parsed.as_ref().ok(),
        )
        .map_err(|e| auth_failed(&format!("signature verification failed: {e}")))?;
        if matched.previous_key {
            tracing::warn!(
                family = auth.family.name(),
                "request signed with the previous key; finish the key rotation"
            );
        }
        Ok(Verified {
            nonce,
            now,
            matched,
            parsed,
        })
    }

    /// The request's timestamp: present, epoch milliseconds, and within the family's window of
    /// this host's clock. Returns it as received (the signature covers that string) and the time
    /// it was checked at.
    fn fresh(
        &self,
        auth: &Authenticator,
        timestamp: Option<String>,
    ) -> Result<(String, DateTime<Utc>), Reply> {
        let ts_name = auth.names.timestamp;
        let Some(ts_raw) = timestamp else {
            return Err(invalid(format!("{ts_name} is missing")));
        };
        let Some(ts_ms) = parse_request_timestamp(&ts_raw) else {
            return Err(invalid(format!(
                "{ts_name} {:?} is not epoch milliseconds",
                ts_raw.chars().take(32).collect::<String>()
            )));
        };
        let now = self.clock.now();
        // Unsigned distance: no overflow whatever the parser lets through (today at most 13
        // digits).
        if now.timestamp_millis().abs_diff(ts_ms) > auth.window_ms.unsigned_abs() {
            return Err(invalid(format!(
                "{ts_name} is outside the accepted window of {} s",
                auth.window_ms / 1000
            )));
        }
        Ok((ts_raw, now))
    }

    /// The replay guard: remembers the nonce in the family's namespace, within `deadline`.
    pub(crate) async fn remember_nonce(
        &self,
        auth: &Authenticator,
        nonce: &str,
        now: DateTime<Utc>,
        deadline: tokio::time::Instant,
    ) -> Result<(), Reply> {
        // The basic family's namespace is empty: its nonces are remembered as received, with no
        // copy on the hot path.
        let nonce_key = if auth.nonce_namespace.is_empty() {
            std::borrow::Cow::Borrowed(nonce)
        } else {
            std::borrow::Cow::Owned(format!("{}{nonce}", auth.nonce_namespace))
        };
        let remembered = tokio::time::timeout_at(
            deadline,
            self.nonces.remember(&nonce_key, now, now + self.nonce_ttl),
        )
        .await;
        match remembered {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => return Err(auth_failed("nonce has been used already (replay)")),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "nonce store unavailable");
                return Err(retry_later());
            }
            Err(_) => {
                tracing::warn!(
                    deadline_ms = self.dispatch_deadline.as_millis() as u64,
                    "nonce store did not answer in time"
                );
                return Err(retry_later());
            }
        }
        Ok(())
    }
}
