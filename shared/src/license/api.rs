//! The license service over HTTP, for any host (the local host's routes, a Lambda function):
//! `POST /license/activate` and `POST /license/check` with `{"license": …, "clientId": …}`, signed
//! by the vendor's software with the per-product key (`x-license-timestamp`, `x-license-nonce`,
//! `x-license-signature`: the same scheme as `POST /usage`), and `GET /license/keys`.
//!
//! Threat model: the per-product key ships inside the vendor's software, so anyone holding the
//! software can extract it; it keeps the rest of the internet off the routes (and a replayed request
//! off, by its nonce), nothing more. What protects a license is elsewhere: the code is the buyer's
//! secret, KooGallery decides whether it exists and is valid, activation happens once and only
//! records what KooGallery answered, and the token is signed by a key that never leaves this
//! service. A caller with a stolen code learns its status and can activate it early (what the
//! buyer's first use would have done); it cannot change its state or forge a token.

use serde::Deserialize;
use serde_json::json;

use super::service::{Answer, LicenseService, ServiceError};
use crate::security::{SecretKey, replay::NonceStore};

pub const HEADER_TIMESTAMP: &str = "x-license-timestamp";
pub const HEADER_NONCE: &str = "x-license-nonce";
pub const HEADER_SIGNATURE: &str = "x-license-signature";
/// Largest request body: a code and a client ID.
pub const MAX_BODY: usize = 4096;
/// Accepted clock skew of `x-license-timestamp`, both ways.
const MAX_SKEW_MS: i64 = 5 * 60 * 1000;

/// Which route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Activate,
    Check,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestBody {
    #[serde(default)]
    license: String,
    #[serde(default)]
    client_id: String,
}

/// The routes' state: the service, the per-product key and the replay guard.
pub struct LicenseApi {
    pub service: std::sync::Arc<LicenseService>,
    /// `None`: not configured; every request says so (503).
    pub client_key: Option<SecretKey>,
    pub nonces: std::sync::Arc<dyn NonceStore>,
}

impl LicenseApi {
    /// `POST /license/{activate,check}`: the HTTP status and the JSON answer.
    pub async fn handle(
        &self,
        route: Route,
        [timestamp, nonce, signature]: [Option<&str>; 3],
        body: &[u8],
    ) -> (u16, serde_json::Value) {
        let Some(key) = &self.client_key else {
            return error(
                503,
                "not_configured",
                "set KOOGALLERY_LICENSE_CLIENT_KEY to serve licenses",
            );
        };
        if body.len() > MAX_BODY {
            return error(413, "invalid_request", "request body too large");
        }
        let now = self.service.clock.now();
        if let Err(why) = verify(key.expose(), timestamp, nonce, signature, body, now) {
            return error(401, "unauthorized", why);
        }
        match self
            .nonces
            .remember(
                &format!("license:{}", nonce.unwrap_or_default().trim()),
                now,
                now + chrono::Duration::milliseconds(2 * MAX_SKEW_MS),
            )
            .await
        {
            Ok(true) => {}
            Ok(false) => return error(401, "unauthorized", "x-license-nonce was already used"),
            Err(e) => {
                tracing::warn!(error = %e, "license replay guard unavailable");
                return error(
                    503,
                    "unavailable",
                    "temporarily unavailable; try again later",
                );
            }
        }
        let Ok(req) = serde_json::from_slice::<RequestBody>(body) else {
            return error(
                400,
                "invalid_request",
                "body must be JSON {\"license\", \"clientId\"}",
            );
        };
        let answered = match route {
            Route::Activate => self.service.activate(&req.license, &req.client_id).await,
            Route::Check => self.service.check(&req.license, &req.client_id).await,
        };
        match answered {
            Ok(answer) => (200, answer_json(&answer)),
            Err(e) => {
                if let ServiceError::Unavailable(cause) = &e {
                    tracing::warn!(error = %cause, "license request not served");
                }
                error(e.status(), e.code(), &e.to_string())
            }
        }
    }

    /// `GET /license/keys`.
    pub fn keys(&self) -> serde_json::Value {
        self.service.keys.jwks()
    }
}

fn answer_json(a: &Answer) -> serde_json::Value {
    let rfc = |s: u64| {
        chrono::DateTime::from_timestamp(i64::try_from(s).unwrap_or(i64::MAX), 0)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    };
    json!({
        "token": a.token,
        "license": a.claims.code,
        "status": a.claims.status.as_str(),
        "expireTime": a.claims.exp.and_then(rfc),
        "offlineUntil": rfc(a.claims.offline_until),
    })
}

fn error(status: u16, code: &str, message: &str) -> (u16, serde_json::Value) {
    (status, json!({"error": code, "message": message}))
}

/// Checks the signature headers (constant time; the key and signature never logged).
fn verify(
    key: &str,
    timestamp: Option<&str>,
    nonce: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), &'static str> {
    let (Some(ts), Some(nonce), Some(sig)) = (timestamp, nonce, signature) else {
        return Err("x-license-timestamp, x-license-nonce and x-license-signature are required");
    };
    let ms: i64 = ts
        .trim()
        .parse()
        .map_err(|_| "x-license-timestamp must be epoch milliseconds")?;
    if now.timestamp_millis().abs_diff(ms) > MAX_SKEW_MS.unsigned_abs() {
        return Err("x-license-timestamp is more than 5 minutes from this host's clock");
    }
    if !(8..=64).contains(&nonce.trim().len()) {
        return Err("x-license-nonce must be 8 to 64 characters");
    }
    if !crate::security::usage_push::verify_usage_signature(key, ts.trim(), nonce.trim(), body, sig)
    {
        return Err("x-license-signature does not match");
    }
    Ok(())
}

/// Signs a request as the vendor's software must (tests, the simulator).
pub fn sign(
    key: &str,
    body: &[u8],
    now: chrono::DateTime<chrono::Utc>,
) -> [(&'static str, String); 3] {
    let s = crate::security::usage_push::sign_attempt(key, body, now);
    [
        (HEADER_TIMESTAMP, s.ts),
        (HEADER_NONCE, s.nonce),
        (HEADER_SIGNATURE, s.signature),
    ]
}
