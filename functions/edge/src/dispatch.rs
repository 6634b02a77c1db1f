//! Routing a verified request through the callback registry (family and name → callback,
//! docs/protocol/callbacks.md §6, §9) and dispatching it under the edge's deadline: a callback
//! that does not answer in time gets KooGallery a signed, retryable `000005` (§5).

use koogallery::{
    callbacks::{Family, Registration, registry},
    protocol::{Reply, request::test_flag_of},
    security::{CanonicalError, KeyUsed},
};
use serde_json::{Map, Value};

use crate::verify::invalid;
use crate::{Edge, retry_later};

/// What the log line reports about a verified request (identifiers only, never credentials).
#[derive(Debug, Default)]
pub(crate) struct Seen {
    pub(crate) callback: Option<&'static Registration>,
    /// The key that verified the request: the answer is signed with it
    /// (docs/protocol/decisions.md §13).
    pub(crate) key: KeyUsed,
    pub(crate) instance_id: Option<String>,
    pub(crate) order_id: Option<String>,
    pub(crate) tenant_id: Option<String>,
    pub(crate) test: bool,
    /// The path of a request no family serves (the exchange log keeps it as its activity).
    pub(crate) path: Option<String>,
}

/// The callback a verified body goes to: by Kit path for the Kit family, by `activity` otherwise.
pub(crate) fn route(
    family: Family,
    path_name: Option<&str>,
    parsed: Result<Map<String, Value>, CanonicalError>,
) -> Result<(&'static Registration, Value), Reply> {
    let value = match parsed {
        // Only a V1 translation sets the V1 context (`protocol::v1::V1_CONTEXT`).
        Ok(mut map) => {
            map.remove(koogallery::protocol::v1::V1_CONTEXT);
            Value::Object(map)
        }
        Err(CanonicalError::InvalidJson(e)) => {
            return Err(invalid(format!("body is not valid JSON: {e}")));
        }
        Err(CanonicalError::NotAnObject) => {
            return Err(invalid("body must be a JSON object".into()));
        }
    };
    let callback = match (family, path_name) {
        (Family::Kit, Some(name)) => registry::by_route(Family::Kit, name).ok_or_else(|| {
            invalid(format!(
                "unknown Kit interface {:?}",
                name.chars().take(64).collect::<String>()
            ))
        })?,
        _ => match value.get("activity") {
            None | Some(Value::Null) => return Err(invalid("activity is missing".into())),
            Some(Value::String(s)) => registry::by_activity(s.trim())
                .ok_or_else(|| invalid(format!("unknown activity {s:?}")))?,
            Some(other) => {
                return Err(invalid(format!("activity must be a string, got {other}")));
            }
        },
    };
    Ok((callback, value))
}

/// What the log line reports of a routed request: its callback, the key that verified it, and
/// its identifiers.
pub(crate) fn seen(callback: &'static Registration, key: KeyUsed, value: &Value) -> Seen {
    let text = |k: &str| {
        value
            .get(k)
            .and_then(Value::as_str)
            // The first 200 characters, copied at once.
            .map(|s| match s.char_indices().nth(200) {
                Some((end, _)) => s[..end].to_owned(),
                None => s.to_owned(),
            })
    };
    Seen {
        callback: Some(callback),
        key,
        instance_id: text("instanceId"),
        order_id: text("orderId"),
        tenant_id: text("tenantId"),
        // The same reading as the callbacks' (an invalid flag is theirs to refuse).
        test: test_flag_of(value.get("testFlag")).unwrap_or(false),
        path: None,
    }
}

impl Edge {
    /// Hands the request to its callback and waits for the reply until `deadline`.
    pub(crate) async fn dispatch(
        &self,
        callback: &'static Registration,
        value: Value,
        key: KeyUsed,
        deadline: tokio::time::Instant,
    ) -> Reply {
        // A callback that does not answer in time gets a signed, retryable 000005 from the edge:
        // KooGallery retries, and never sees the gateway's unsigned timeout. For a callback that
        // writes, the deadline ends the wait, not the callback: it runs on as a task of its own,
        // so a write and its enqueue (newInstance's record, then its job) are never cut apart,
        // and the retry finds the work done (or under way) instead of a record whose job was
        // never sent. A callback that only reads (queryInstance, KooGallery's poll) leaves
        // nothing half-done when dropped at the deadline, so it runs on the request's own task:
        // no task to spawn and join on every poll. Either way a panic is a signed 000005 too.
        let activity = callback.route.name();
        let answered = if callback.needs.store.writes() {
            let dispatcher = self.dispatcher.clone();
            let dispatched =
                tokio::spawn(async move { dispatcher.dispatch(callback, &value, key).await });
            tokio::time::timeout_at(deadline, dispatched)
                .await
                .map(|joined| joined.map_err(|e| e.to_string()))
        } else {
            use futures_util::FutureExt;
            let inline =
                std::panic::AssertUnwindSafe(self.dispatcher.dispatch(callback, &value, key))
                    .catch_unwind();
            tokio::time::timeout_at(deadline, inline)
                .await
                .map(|caught| caught.map_err(|_| "the callback panicked".to_owned()))
        };
        match answered {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => {
                tracing::error!(activity, error = %e, "callback failed");
                retry_later()
            }
            Err(_) => {
                tracing::warn!(
                    activity,
                    deadline_ms = self.dispatch_deadline.as_millis() as u64,
                    writes = callback.needs.store.writes(),
                    "callback did not answer in time"
                );
                retry_later()
            }
        }
    }
}
