//! Handing a verified callback to what serves it: the [`Handler`] each registry line builds, the
//! [`Dispatcher`] port (in process locally, the callback's own function on AWS), and the
//! invocation payload the edge sends that function, with the key that verified the request
//! (docs/protocol/decisions.md §13).

use std::collections::HashMap;

use async_trait::async_trait;
use serde_json::Value;

use super::{REGISTRY, Registration, Resources};
use crate::{callbacks::Callback, config::ConfigError, protocol::Reply, security::KeyUsed};

/// A callback behind the registry: a verified body in, the reply out.
#[async_trait]
pub trait Handler: Send + Sync {
    /// `key` is the key that verified the request (docs/protocol/decisions.md §13).
    async fn call(&self, body: &Value, key: KeyUsed) -> Reply;
}

struct Served<C> {
    name: &'static str,
    callback: C,
}

#[async_trait]
impl<C: Callback> Handler for Served<C> {
    async fn call(&self, body: &Value, key: KeyUsed) -> Reply {
        crate::callbacks::serve(self.name, &self.callback, body, key).await
    }
}

pub(super) type Build = fn(&'static str, &Resources) -> Result<Box<dyn Handler>, ConfigError>;

pub(super) fn build<C: Callback>(
    name: &'static str,
    resources: &Resources,
) -> Result<Box<dyn Handler>, ConfigError> {
    let callback = C::from_resources(resources)?;
    Ok(Box::new(Served { name, callback }))
}

/// Hands a verified request to the callback that serves it: an in-process call locally, a
/// synchronous invocation of that callback's own function on AWS.
#[async_trait]
pub trait Dispatcher: Send + Sync {
    /// `key` is the key that verified the request: the callback answers with it
    /// (docs/protocol/decisions.md §13).
    async fn dispatch(&self, callback: &'static Registration, body: &Value, key: KeyUsed) -> Reply;
}

/// The payload the edge invokes a callback's function with on AWS: the verified body as it came,
/// or, for a request verified with the previous key, `{"verifiedWith":"previous","body":…}` so the
/// callback answers with that key (docs/protocol/decisions.md §13). The bare form is what earlier
/// releases sent, so a function and an edge of different releases understand each other during a
/// deployment. It borrows the body: serialising it sends the request without copying it first.
pub fn invocation(body: &Value, key: KeyUsed) -> Invocation<'_> {
    match key {
        KeyUsed::Current => Invocation::Bare(body),
        KeyUsed::Previous => Invocation::VerifiedWithPrevious {
            verified_with: "previous",
            body,
        },
    }
}

/// An invocation payload, see [`invocation`].
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
pub enum Invocation<'a> {
    Bare(&'a Value),
    VerifiedWithPrevious {
        #[serde(rename = "verifiedWith")]
        verified_with: &'static str,
        body: &'a Value,
    },
}

/// The verified body and the key that verified it, from an invocation payload of either form.
pub fn from_invocation(payload: Value) -> (Value, KeyUsed) {
    match payload {
        Value::Object(mut m)
            if m.get("verifiedWith").and_then(Value::as_str) == Some("previous")
                && m.get("body").is_some_and(Value::is_object) =>
        {
            let body = m.remove("body").unwrap_or(Value::Null);
            (body, KeyUsed::Previous)
        }
        other => (other, KeyUsed::Current),
    }
}

/// Every registered callback in this process (the local host, tests, benchmarks).
pub struct InProcessDispatcher {
    handlers: HashMap<&'static str, Box<dyn Handler>>,
}

impl InProcessDispatcher {
    pub fn build(resources: &Resources) -> Result<Self, ConfigError> {
        let handlers = REGISTRY
            .iter()
            .map(|r| Ok((r.function, r.handler(resources)?)))
            .collect::<Result<_, ConfigError>>()?;
        Ok(Self { handlers })
    }
}

#[async_trait]
impl Dispatcher for InProcessDispatcher {
    async fn dispatch(&self, callback: &'static Registration, body: &Value, key: KeyUsed) -> Reply {
        match self.handlers.get(callback.function) {
            Some(h) => h.call(body, key).await,
            None => Reply::new(
                crate::ResultCode::InternalError,
                "temporary internal error; please retry",
            ),
        }
    }
}
