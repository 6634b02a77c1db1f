//! The string / file-stream upload (字符串/文件流上传, docs/protocol/openapi.md §4) for the vendor's
//! own back end: `POST /license/upload` takes a string or a file for a KooGallery marketplace event
//! (e.g. a license delivered to the buyer) and sends it with the seller's AK/SK through
//! [`LicenseMarketplace::upload`].
//!
//! ```text
//! POST /license/upload
//! x-usage-timestamp / x-usage-nonce / x-usage-signature   (the usage key's scheme, `POST /usage`)
//!
//! {"eventId": "…", "characters": "…"}
//! {"eventId": "…", "fileName": "license.lic", "contentBase64": "…"}
//! ```
//! Answers: 200 `{"uploaded": true}`; 400 bad input; 401 unsigned, badly signed or replayed;
//! 413 over [`MAX_UPLOAD_BODY`]; 502 KooGallery refused (its message); 503 unreachable, not
//! configured, or the replay guard down (retry).
//!
//! Why the usage key and not the license client key: this route sends whatever it is given to
//! KooGallery in the seller's name, so only the vendor's back end may call it. The client key
//! ships inside the buyer's software (see [`super::api`]'s threat model) and would let any buyer
//! deliver files as the seller; the usage key stays on the vendor's servers.

use std::sync::Arc;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};

use super::marketplace::{LicenseApiError, LicenseMarketplace, Upload};
use crate::clock::Clock;
use crate::metering::api::{ApiError, authenticate};
use crate::security::{SecretKey, replay::NonceStore};

/// Largest request body: an 8 MiB file (as base64, about 6 MiB of file) and its JSON. KooGallery's
/// gateway takes 12 MiB of multipart (§1.2), so anything this route takes fits.
pub const MAX_UPLOAD_BODY: usize = 8 * 1024 * 1024;
/// `event_id`'s length (§4).
pub const MAX_EVENT_ID_LEN: usize = 64;
/// `characters`' and `file_name`'s length (§4).
pub const MAX_TEXT_LEN: usize = 1024;

/// The route's state: where uploads go, the usage key that authenticates the vendor's back end,
/// the replay guard (shared with `POST /usage`: one nonce space for the key) and the clock.
pub struct UploadApi {
    pub marketplace: Arc<dyn LicenseMarketplace>,
    /// `None`: not configured; every request says so (503).
    pub key: Option<SecretKey>,
    pub nonces: Arc<dyn NonceStore>,
    pub clock: Arc<dyn Clock>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UploadRequest {
    event_id: String,
    characters: Option<String>,
    file_name: Option<String>,
    content_base64: Option<String>,
}

/// The body's event ID and upload, checked against §4's limits before anything is sent.
///
/// # Errors
/// What is wrong, in words for the 400 answer.
pub fn parse_request(body: &[u8]) -> Result<(String, Upload), String> {
    let req: UploadRequest = serde_json::from_slice(body).map_err(|e| {
        format!(
            "body must be JSON {{\"eventId\", \"characters\"}} or \
             {{\"eventId\", \"fileName\", \"contentBase64\"}}: {e}"
        )
    })?;
    let event_id = req.event_id.trim().to_owned();
    let upload = match (req.characters, req.file_name, req.content_base64) {
        (Some(characters), None, None) => Upload::Characters(characters),
        (None, Some(name), Some(content)) => Upload::File {
            name,
            bytes: base64::engine::general_purpose::STANDARD
                .decode(content.trim())
                .map_err(|e| format!("contentBase64 is not base64: {e}"))?,
        },
        _ => {
            return Err("give either characters, or fileName and contentBase64 (not both)".into());
        }
    };
    check(&event_id, &upload)?;
    Ok((event_id, upload))
}

/// §4's limits, shared by the route and `koogallery-local license-upload`.
///
/// # Errors
/// What is wrong, in words.
pub fn check(event_id: &str, upload: &Upload) -> Result<(), String> {
    let len = |s: &str| s.chars().count();
    if event_id.is_empty() || len(event_id) > MAX_EVENT_ID_LEN {
        return Err(format!(
            "eventId must have 1 to {MAX_EVENT_ID_LEN} characters"
        ));
    }
    match upload {
        Upload::Characters(c) if c.is_empty() || len(c) > MAX_TEXT_LEN => Err(format!(
            "characters must have 1 to {MAX_TEXT_LEN} characters"
        )),
        Upload::File { name, .. } if name.trim().is_empty() || len(name) > MAX_TEXT_LEN => {
            Err(format!("fileName must have 1 to {MAX_TEXT_LEN} characters"))
        }
        Upload::File { bytes, .. } if bytes.is_empty() => {
            Err("the file is empty: nothing to deliver".into())
        }
        _ => Ok(()),
    }
}

/// What KooGallery's answer to an upload means for the caller: the HTTP status and the JSON
/// answer. A refusal (502) is final; unreachable or not configured (503) may pass later.
#[must_use]
pub fn outcome(result: Result<(), LicenseApiError>) -> (u16, Value) {
    match result {
        Ok(()) => (200, json!({"uploaded": true})),
        Err(LicenseApiError::Unavailable(detail)) => error(
            503,
            "unavailable",
            &format!("KooGallery's open API is unavailable: {detail}"),
        ),
        Err(e) => error(502, "refused", &e.to_string()),
    }
}

/// A short description of an upload for logs and the command's output: never its content (the
/// characters may well be a license).
#[must_use]
pub fn describe(upload: &Upload) -> String {
    match upload {
        Upload::Characters(c) => format!("CHARACTERS ({} characters)", c.chars().count()),
        Upload::File { name, bytes } => {
            use sha2::Digest as _;
            format!(
                "FILE {name:?} ({} bytes, sha256 {})",
                bytes.len(),
                hex::encode(sha2::Sha256::digest(bytes))
            )
        }
    }
}

impl UploadApi {
    /// `POST /license/upload` with the signature headers (`x-usage-timestamp`, `-nonce`,
    /// `-signature`, in that order): the HTTP status and the JSON answer.
    pub async fn handle(&self, headers: [Option<&str>; 3], body: &[u8]) -> (u16, Value) {
        if body.len() > MAX_UPLOAD_BODY {
            return error(
                413,
                "invalid_request",
                "request body too large (8 MiB at most)",
            );
        }
        let now = self.clock.now();
        if let Err(e) =
            authenticate(self.key.as_ref(), self.nonces.as_ref(), headers, body, now).await
        {
            return match e {
                ApiError::NotConfigured => error(
                    503,
                    "not_configured",
                    "set KOOGALLERY_USAGE_KEY to accept uploads",
                ),
                ApiError::Unauthorized(why) => error(401, "unauthorized", why),
                // The replay guard unreachable: nothing the caller did.
                e => {
                    tracing::warn!(error = %e, "license upload not authenticated: replay guard unavailable");
                    error(
                        503,
                        "unavailable",
                        "temporarily unavailable; try again later",
                    )
                }
            };
        }
        let (event_id, upload) = match parse_request(body) {
            Ok(r) => r,
            Err(why) => return error(400, "invalid_request", &why),
        };
        let result = self.marketplace.upload(&event_id, &upload).await;
        match &result {
            Ok(()) => {
                tracing::info!(event_id, upload = %describe(&upload), "upload delivered to KooGallery")
            }
            Err(e) => {
                tracing::warn!(event_id, upload = %describe(&upload), error = %e, "upload not delivered")
            }
        }
        outcome(result)
    }
}

fn error(status: u16, code: &str, message: &str) -> (u16, Value) {
    (
        status,
        json!({"error": code, "message": message, "retryable": status == 503}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_a_string_or_a_file_never_both() {
        let (id, up) = parse_request(br#"{"eventId":" ev-1 ","characters":"KEY-123"}"#).unwrap();
        assert_eq!(
            (id.as_str(), up),
            ("ev-1", Upload::Characters("KEY-123".into()))
        );
        let (_, up) =
            parse_request(br#"{"eventId":"e","fileName":"a.lic","contentBase64":"aGk="}"#).unwrap();
        assert_eq!(
            up,
            Upload::File {
                name: "a.lic".into(),
                bytes: b"hi".to_vec()
            }
        );
        for bad in [
            r#"{"eventId":"e"}"#,
            r#"{"eventId":"e","characters":"x","fileName":"a","contentBase64":"aGk="}"#,
            r#"{"eventId":"e","fileName":"a"}"#,
            r#"{"eventId":"e","fileName":"a","contentBase64":"***"}"#,
            r#"{"eventId":"e","fileName":"a","contentBase64":""}"#,
            r#"{"eventId":"","characters":"x"}"#,
            r#"{"eventId":"e","characters":""}"#,
            r#"{"eventId":"e","characters":"x","extra":1}"#,
            "not json",
        ] {
            assert!(parse_request(bad.as_bytes()).is_err(), "{bad}");
        }
        let long = format!(r#"{{"eventId":"e","characters":"{}"}}"#, "x".repeat(1025));
        assert!(parse_request(long.as_bytes()).is_err());
        let long_id = format!(r#"{{"eventId":"{}","characters":"x"}}"#, "e".repeat(65));
        assert!(parse_request(long_id.as_bytes()).is_err());
    }

    #[test]
    fn refusals_are_502_and_outages_503() {
        use crate::failure::Detail;
        assert_eq!(outcome(Ok(())), (200, json!({"uploaded": true})));
        let (status, body) = outcome(Err(LicenseApiError::Invalid(Detail::new("MKT.0101 bad"))));
        assert_eq!(status, 502);
        assert!(body["message"].as_str().unwrap().contains("MKT.0101 bad"));
        let (status, body) = outcome(Err(LicenseApiError::Unavailable(Detail::new("down"))));
        assert_eq!((status, body["retryable"].as_bool()), (503, Some(true)));
    }

    #[test]
    fn descriptions_never_hold_the_characters() {
        let d = describe(&Upload::Characters("PLSECRET-LICENSE".into()));
        assert!(!d.contains("PLSECRET"), "{d}");
        let d = describe(&Upload::File {
            name: "a.lic".into(),
            bytes: b"hi".to_vec(),
        });
        assert!(d.contains("8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4"));
    }
}
