//! The API gateway in front of the simulator's open API (docs/protocol/openapi.md §0, §8): every
//! request is noted, checked against its APIG signature (`APIG.0303`), refused while the primary
//! host is down, and meets the next injected [`Fault`].

use std::{sync::atomic::Ordering, time::Duration};

use axum::{
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use super::{HostState, answer, mkt_status};
use crate::platform::apig;

/// What the next request meets, in order of injection.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Fault {
    /// Answer this HTTP status with an `MKT.0999` body (502–504: with no body, as a proxy would).
    Status { status: u16 },
    /// Wait this long before answering.
    Slow { millis: u64 },
    /// Answer this `MKT.*` code (with its documented HTTP status).
    Mkt { code: String },
    /// Do the work (a usage push is accepted), then hold the answer this long: past the client's
    /// timeout the answer is lost, and the client cannot know it succeeded.
    LostAnswer { millis: u64 },
    /// Answer this `MKT.*` code to every request for this long, from the request that meets it
    /// (KooGallery refusing everything for a while, e.g. `MKT.0100`), then recover.
    MktFor { code: String, millis: u64 },
}

/// A request the simulator received, for assertions.
#[derive(Debug, Clone)]
pub struct Seen {
    pub host: &'static str,
    pub path: String,
    pub query: String,
    pub host_header: String,
    pub authorized: bool,
}

/// The gateway's part, shared by every API: note the request, refuse a down primary or a bad
/// signature, apply the next injected fault. `Err` is the answer to send instead.
pub(super) async fn gateway(
    state: &HostState,
    method: &Method,
    uri: &Uri,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
    envelope: (&str, &str),
) -> Result<(), Response> {
    let verified = verify_and_note(state, method, uri, query, headers, body);
    if state.name == "primary" && state.inner.primary_down.load(Ordering::SeqCst) {
        return Err(StatusCode::SERVICE_UNAVAILABLE.into_response());
    }
    if let Err(refused) = verified {
        return Err(answer(
            401,
            json!({"error_code": refused.code, "error_msg": refused.message}),
        ));
    }
    meet_fault(state, envelope).await
}

/// Checks the request's APIG signature and notes the request, with whether it was authorized.
fn verify_and_note(
    state: &HostState,
    method: &Method,
    uri: &Uri,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<String, apig::Refusal> {
    let pairs: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let borrowed: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let verified = apig::verify(
        &apig::Request {
            method: method.as_str(),
            path: uri.path(),
            query,
            headers: &borrowed,
            body,
        },
        Utc::now(),
        |ak| state.inner.keys.get(ak).cloned(),
    );
    if let Ok(mut seen) = state.inner.seen.lock() {
        seen.push(Seen {
            host: state.name,
            path: uri.path().to_owned(),
            query: query.to_owned(),
            host_header: headers
                .get("host")
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            authorized: verified.is_ok(),
        });
    }
    verified
}

/// A refusal in progress (`MktFor`) or the next injected fault, answered in the API's own
/// envelope (`envelope`: its code and message fields).
async fn meet_fault(state: &HostState, envelope: (&str, &str)) -> Result<(), Response> {
    let (code_field, msg_field) = envelope;
    let refusing = state.inner.refusing.lock().ok().and_then(|mut r| {
        r.take_if(|(_, until)| *until <= std::time::Instant::now());
        r.as_ref().map(|(code, _)| code.clone())
    });
    if let Some(code) = refusing {
        return Err(answer(
            mkt_status(&code),
            json!({code_field: code, msg_field: "simulated: refusing every request for a while"}),
        ));
    }
    let fault = state
        .inner
        .faults
        .lock()
        .ok()
        .and_then(|mut f| f.pop_front());
    match fault {
        Some(Fault::Status { status }) if (502..=504).contains(&status) => {
            Err(StatusCode::from_u16(status)
                .unwrap_or(StatusCode::BAD_GATEWAY)
                .into_response())
        }
        Some(Fault::Status { status }) => Err(answer(
            status,
            json!({code_field: "MKT.0999", msg_field: "simulated internal error"}),
        )),
        Some(Fault::Mkt { code }) => Err(answer(
            mkt_status(&code),
            json!({code_field: code, msg_field: "simulated"}),
        )),
        Some(Fault::Slow { millis }) => {
            tokio::time::sleep(Duration::from_millis(millis)).await;
            Ok(())
        }
        Some(Fault::LostAnswer { millis }) => {
            state.inner.hold_answer_ms.store(millis, Ordering::SeqCst);
            Ok(())
        }
        Some(Fault::MktFor { code, millis }) => {
            let until = std::time::Instant::now() + Duration::from_millis(millis);
            if let Ok(mut r) = state.inner.refusing.lock() {
                *r = Some((code.clone(), until));
            }
            Err(answer(
                mkt_status(&code),
                json!({code_field: code, msg_field: "simulated: refusing every request for a while"}),
            ))
        }
        None => Ok(()),
    }
}
