//! The V1 family on the edge (docs/protocol/callbacks.md §3.6, §11; docs/protocol/decisions.md
//! §20): `GET {production URL}?activity=…` and the V1 Kit paths with an `authToken` header.
//! `timeStamp` within 15 minutes → `authToken` over the URL-decoded parameters in constant time
//! (current or previous key; a space read back as `+`) → translate the activity into its callback's
//! body (`protocol::v1`) → dispatch → `Body-Sign` with the key that verified it, on every answer.
//! V1 has no nonce: the verified token is remembered for twice the window instead, so a captured
//! URL cannot be replayed.

use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use koogallery::{
    ResultCode,
    callbacks::{Family, Registration, registry},
    protocol::{
        Reply,
        time::parse_compact,
        v1::{V1Params, translate},
    },
    security::{KeyRing, credential_cipher::EncryptType, verify_v1_auth_token},
};
use serde_json::Value;

use crate::{Edge, EdgeResponse, dispatch, sign_ring, verify::invalid};

/// How far a V1 `timeStamp` may be from this host's clock (docs/protocol/decisions.md §20).
pub(crate) const V1_WINDOW: Duration = Duration::minutes(15);

/// The V1 family's key ring, freshness window and the key size tried first on buyer fields.
pub(crate) struct V1Authenticator {
    pub(crate) keys: KeyRing,
    pub(crate) encryption: EncryptType,
    pub(crate) max_body_bytes: usize,
}

/// Where a V1 call came from.
pub(crate) enum V1Call<'a> {
    /// `GET {production URL}?…`: everything is in the query.
    Get { query: &'a str },
    /// `POST {production URL}/produceAPI/{name}`: the body's top-level fields, `authToken` in a
    /// header, `timeStamp` in the body in GMT+8 (docs/protocol/callbacks.md §3.6).
    Kit {
        name: &'a str,
        auth_token: Option<&'a str>,
        body: &'a [u8],
    },
}

fn auth_failed(msg: &str) -> Reply {
    Reply::new(ResultCode::AuthenticationFailed, msg)
}

impl Edge {
    pub(crate) async fn serve_v1(&self, call: V1Call<'_>) -> EdgeResponse {
        let started = Instant::now();
        // What the exchange log keeps of the request: the query of a GET, the body of a POST.
        let request: &[u8] = match &call {
            V1Call::Get { query } => query.as_bytes(),
            V1Call::Kit { body, .. } => body,
        };
        let (reply, seen) = match self.v1_verify_and_dispatch(call).await {
            Ok(done) => done,
            Err(reply) => (reply, dispatch::Seen::default()),
        };
        let response = sign_ring(&self.v1.keys, &reply, seen.key);
        self.log(Some(Family::V1), &reply, seen, request, &response, started)
            .await;
        response
    }

    async fn v1_verify_and_dispatch(
        &self,
        call: V1Call<'_>,
    ) -> Result<(Reply, dispatch::Seen), Reply> {
        let deadline = tokio::time::Instant::now() + self.dispatch_deadline;
        let (params, token, kit, parsed) = match call {
            V1Call::Get { query } => {
                let params = V1Params::from_query(query);
                let token = params.get("authToken").map(str::to_owned);
                (params, token, None, None)
            }
            V1Call::Kit {
                name,
                auth_token,
                body,
            } => {
                if body.len() > self.v1.max_body_bytes {
                    return Err(invalid(format!(
                        "request body exceeds {} bytes",
                        self.v1.max_body_bytes
                    )));
                }
                let map = match serde_json::from_slice::<Value>(body) {
                    Ok(Value::Object(map)) => map,
                    // Unsigned until parsed: the token covers the fields, so a body that is not an
                    // object cannot be verified at all.
                    _ => {
                        return Err(auth_failed(
                            "body must be a JSON object to verify authToken",
                        ));
                    }
                };
                (
                    V1Params::from_body(&map),
                    auth_token.map(str::to_owned),
                    Some(name),
                    Some(map),
                )
            }
        };
        let now = self.clock.now();
        let Some(ts) = params.text("timeStamp").map(str::to_owned) else {
            return Err(auth_failed("timeStamp is missing"));
        };
        // GET timeStamps are UTC, Kit bodies' GMT+8 (docs/protocol/decisions.md §10).
        let offset = if kit.is_some() {
            Duration::hours(8)
        } else {
            Duration::zero()
        };
        if !fresh(&ts, offset, now) {
            return Err(auth_failed(&format!(
                "timeStamp is not yyyyMMddHHmmssSSS within {} minutes of now",
                V1_WINDOW.num_minutes()
            )));
        }
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Err(auth_failed("authToken is missing"));
        };
        let matched = verify_v1_auth_token(&self.v1.keys, &ts, &params.pairs(), &token)
            .map_err(|e| auth_failed(&format!("authToken verification failed: {e}")))?;
        let key = matched.key_used();
        // V1 has no nonce: the token itself is remembered for twice the window, so a captured URL
        // cannot be replayed within it (a repeat would undo a later change: a FREEZE replayed
        // after its NORMAL, an authSync add after its delete). KooGallery's own retries are hours
        // apart, with fresh timeStamps.
        self.remember_v1_token(&token, now, deadline).await?;
        if matched.previous_key {
            tracing::warn!(
                family = "v1",
                "request signed with the previous key; finish the key rotation"
            );
        }
        let (callback, value) = match (kit, parsed) {
            (Some(name), Some(map)) => {
                let callback = registry::by_route(Family::Kit, name).ok_or_else(|| {
                    invalid(format!(
                        "unknown Kit interface {:?}",
                        name.chars().take(64).collect::<String>()
                    ))
                })?;
                (callback, Value::Object(map))
            }
            _ => {
                let (activity, body) = translate(
                    &params,
                    self.v1.keys.key(key).expose(),
                    self.v1.keys.current.expose(),
                    self.v1.encryption,
                )
                .map_err(invalid)?;
                (served_by(activity.served_by())?, body)
            }
        };
        let seen = dispatch::seen(callback, key, &value);
        let reply = self.dispatch(callback, value, key, deadline).await;
        Ok((reply, seen))
    }
}

impl Edge {
    async fn remember_v1_token(
        &self,
        token: &str,
        now: DateTime<Utc>,
        deadline: tokio::time::Instant,
    ) -> Result<(), Reply> {
        let key = format!("v1:{}", token.replace(' ', "+").trim());
        let remembered = tokio::time::timeout_at(
            deadline,
            self.nonces.remember(&key, now, now + V1_WINDOW * 2),
        )
        .await;
        match remembered {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err(auth_failed("authToken has been used already (replay)")),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "nonce store unavailable");
                Err(crate::retry_later())
            }
            Err(_) => {
                tracing::warn!("nonce store did not answer in time");
                Err(crate::retry_later())
            }
        }
    }
}

/// The callback serving a translated V1 activity: a V1-only callback, or the V2 / License one.
fn served_by(activity: &str) -> Result<&'static Registration, Reply> {
    registry::by_route(Family::V1, activity)
        .or_else(|| registry::by_route(Family::V2Basic, activity))
        .ok_or_else(|| {
            invalid(format!(
                "activity {activity} is not served by this deployment"
            ))
        })
}

/// Whether a V1 `timeStamp` (14 or 17 digits, in the zone `offset` east of UTC) is within the
/// window of `now`.
fn fresh(ts: &str, offset: Duration, now: DateTime<Utc>) -> bool {
    parse_compact(ts.trim()).is_some_and(|t| (t - offset - now).abs() <= V1_WINDOW)
}
