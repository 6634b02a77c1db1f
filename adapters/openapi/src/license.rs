//! KooGallery's License 2.0 open API (docs/protocol/openapi.md §5: activate v1 and v2, query,
//! software usage statistics; §4: string / file-stream upload) as a [`LicenseMarketplace`] on the
//! open API client: every call APIG-signed, primary host then the fallback re-signed (§0, §1).
//!
//! Answers carry `error_code`/`error_msg`; success is `"92020000"` and several failures come with
//! HTTP 200, so the code decides before the status ([`classify`]). Where the spec marks a shape
//! UNCONFIRMED, what is read is liberal and what is sent is strict; each choice is said where made.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use koogallery::{
    failure::Detail,
    license::{
        LicenseApiError, LicenseCode, LicenseInfo, LicenseMarketplace, RemoteStatus, SoftwareUsage,
        Upload, UsageReport,
        usage::{MAX_CODES_PER_CALL, MAX_IDS_PER_CODE},
    },
    protocol::{
        openapi::{MKT_SUCCESS, is_retryable_code, is_retryable_gateway_code},
        time::{format_14, parse_compact},
    },
};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use crate::OpenApiClient;

/// Success of every License API (docs/protocol/openapi.md §5).
pub const LICENSE_SUCCESS: &str = "92020000";
/// `92020001`: unauthorised with HTTP 403, internal error with HTTP 500 (§5.4).
pub const LICENSE_UNAUTHORIZED_OR_INTERNAL: &str = "92020001";
pub const LICENSE_INVALID: &str = "92020002";
pub const LICENSE_NOT_YET_DELIVERED: &str = "92020004";
pub const LICENSE_NOT_FOUND: &str = "92020005";

pub const ACTIVATE_V1_PATH: &str = "/api/mkp-openapi-public/global/v1/license/activate";
pub const ACTIVATE_V2_PATH: &str = "/api/mkp-openapi-public/global/v2/license/activate";
pub const HEARTBEAT_V1_PATH: &str = "/api/mkp-openapi-public/global/v1/license/heartbeat";
pub const USAGE_V2_PATH: &str = "/api/mkp-openapi-public/global/v2/license/software-usage-info";

/// Most codes per v2 activation (§5.1).
pub const MAX_CODES_PER_BATCH: usize = 100;
/// Largest `active_num` (an integer of at most 9 digits, §5.3).
pub const MAX_ACTIVE_NUM: u64 = 999_999_999;
/// Longest event ID, `characters`, `file_name` (§4).
pub const MAX_EVENT_ID_LEN: usize = 64;
pub const MAX_CHARACTERS_LEN: usize = 1024;
pub const MAX_FILE_NAME_LEN: usize = 1024;
/// The gateway's limit on an app-authenticated body (§1.2): a larger upload is refused here.
pub const MAX_BODY_BYTES: usize = 12 * 1024 * 1024;

/// Only RFC 3986 unreserved characters stay in the event ID's path segment: the APIG canonical
/// URI re-encodes the same way, so what is signed is what is sent.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The upload's path for `event_id` (§4), percent-encoded; refused when empty or over 64
/// characters.
pub fn upload_path(event_id: &str) -> Result<String, LicenseApiError> {
    if event_id.is_empty() || event_id.chars().count() > MAX_EVENT_ID_LEN {
        return Err(LicenseApiError::Invalid(
            format!("event_id must have 1 to {MAX_EVENT_ID_LEN} characters").into(),
        ));
    }
    Ok(format!(
        "/api/mkp-openapi-public/global/v1/market-event/{}/file",
        utf8_percent_encode(event_id, PATH_SEGMENT)
    ))
}

fn text(value: &Value, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| match value.get(*k)? {
        Value::String(s) => Some(s.trim().to_owned()),
        // Liberal: a code or an ID sent as a number.
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// What an answer means (docs/protocol/openapi.md §5.4, §8): `Ok` with the parsed body on
/// success (`92020000`, or `MKT.0000` which the upload's §8 codes use), else the error class. The
/// code is read before the status, since several failures come with HTTP 200.
pub fn classify(status: u16, body: &[u8]) -> Result<Value, LicenseApiError> {
    let value: Value = serde_json::from_slice(body).unwrap_or_default();
    // Liberal: the query-order envelope (`resultCode`) is read too, as a gateway may answer in it.
    let code = text(&value, &["error_code", "resultCode"]).unwrap_or_default();
    let message = text(&value, &["error_msg", "resultMsg"]).unwrap_or_default();
    let detail = || format!("HTTP {status} {code} {message}").trim().to_owned();
    let success = code == LICENSE_SUCCESS || code == MKT_SUCCESS;
    if success && (200..300).contains(&status) {
        return Ok(value);
    }
    Err(match code.as_str() {
        LICENSE_NOT_FOUND => LicenseApiError::NotFound,
        LICENSE_NOT_YET_DELIVERED => LicenseApiError::NotYetDelivered,
        LICENSE_INVALID => LicenseApiError::Invalid(detail().into()),
        // The same code means "unauthorised" with 403 and "internal error" with 500 (sic, §5.4).
        LICENSE_UNAUTHORIZED_OR_INTERNAL if (400..500).contains(&status) => {
            LicenseApiError::Unauthorized(detail().into())
        }
        LICENSE_UNAUTHORIZED_OR_INTERNAL => LicenseApiError::Unavailable(detail().into()),
        c if c.starts_with("APIG") => {
            if is_retryable_gateway_code(c) {
                LicenseApiError::Unavailable(detail().into())
            } else {
                // APIG.0301/0303…: the gateway refused our AK/SK or signature.
                LicenseApiError::Unauthorized(detail().into())
            }
        }
        c if is_retryable_code(c) => LicenseApiError::Unavailable(detail().into()),
        "MKT.0102" | "MKT.0150" | "MKT.0151" | "MKT.0154" => {
            LicenseApiError::Unauthorized(detail().into())
        }
        "MKT.0100" | "MKT.0101" | "MKT.0199" => LicenseApiError::Invalid(detail().into()),
        _ => match status {
            429 => LicenseApiError::Unavailable(detail().into()),
            401 | 403 => LicenseApiError::Unauthorized(detail().into()),
            400..=499 => LicenseApiError::Invalid(detail().into()),
            // 5xx, and a 2xx whose code this release does not know (or a success code on a
            // failure status): retried rather than taken as an answer it cannot read.
            _ => LicenseApiError::Unavailable(format!("unexpected answer: {}", detail()).into()),
        },
    })
}

/// An object given as itself or as a JSON string holding it (`license_code_info` is documented
/// as a string to parse a second time, §5.1; an object is accepted too, in case the gateway or a
/// later version stops double-encoding: be liberal).
fn object_of(value: &Value) -> Option<Map<String, Value>> {
    match value {
        Value::Object(m) => Some(m.clone()),
        Value::String(s) => match serde_json::from_str(s).ok()? {
            Value::Object(m) => Some(m),
            _ => None,
        },
        _ => None,
    }
}

fn time_of(info: &Value, key: &str) -> Option<DateTime<Utc>> {
    parse_compact(&text(info, &[key])?)
}

/// `amount`: a number or a numeric string (the docs do not say which).
fn amount_of(info: &Value) -> Option<u64> {
    match info.get("amount")? {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A LicenseInfo object (activation's `license_code_info`, the query's `data`); unknown fields
/// ignored, a missing `status` kept as an unknown one.
pub fn license_info(info: &Map<String, Value>) -> LicenseInfo {
    let info = Value::Object(info.clone());
    LicenseInfo {
        status: RemoteStatus::parse(&text(&info, &["status"]).unwrap_or_default()),
        expire_time: time_of(&info, "expire_time"),
        product_id: text(&info, &["product_id"]).filter(|s| !s.is_empty()),
        order_id: text(&info, &["order_id"]).filter(|s| !s.is_empty()),
        amount: amount_of(&info),
        activate_time: time_of(&info, "activate_time"),
    }
}

fn unreadable(what: &str) -> LicenseApiError {
    LicenseApiError::Unavailable(format!("success answer without a readable {what}").into())
}

/// v1 activation's `data.license_code_info`, parsed twice.
pub fn activation_info(answer: &Value) -> Result<LicenseInfo, LicenseApiError> {
    answer["data"]
        .get("license_code_info")
        .and_then(object_of)
        .map(|m| license_info(&m))
        .ok_or_else(|| unreadable("data.license_code_info"))
}

/// The code an entry of a batch answer names.
fn code_of(entry: &Value) -> Option<String> {
    text(entry, &["license", "license_code", "licenseCode"])
}

/// One code's part of a v2 answer: its own `error_code` if any (HTTP 200 for its status), else
/// its info, nested in `license_code_info` or given flat.
fn batch_entry(entry: &Value) -> Result<LicenseInfo, LicenseApiError> {
    if let Some(code) = text(entry, &["error_code"]).filter(|c| !c.is_empty()) {
        let per_code = serde_json::to_vec(entry).unwrap_or_default();
        if code != LICENSE_SUCCESS {
            classify(200, &per_code)?;
        }
    }
    if let Some(info) = entry.get("license_code_info") {
        return object_of(info)
            .map(|m| license_info(&m))
            .ok_or_else(|| unreadable("license_code_info"));
    }
    match entry {
        Value::Object(m) if m.contains_key("status") => Ok(license_info(m)),
        // Keyed by code, the value may be `license_code_info` itself, as a string.
        Value::String(_) => object_of(entry)
            .map(|m| license_info(&m))
            .ok_or_else(|| unreadable("license_code_info")),
        _ => Err(unreadable("license information")),
    }
}

/// v2 activation's answer, one result per code asked, in order. The shape is UNCONFIRMED
/// (§5.1): `data` is read as an array of per-code objects (naming their code in `license` or
/// `license_code`), or as an object holding such an array under any name, or as an object keyed
/// by code. A code the answer does not mention is `Unavailable` (asked again later).
pub fn batch_results(
    codes: &[LicenseCode],
    answer: &Value,
) -> Vec<(LicenseCode, Result<LicenseInfo, LicenseApiError>)> {
    let data = &answer["data"];
    let list = match data {
        Value::Array(a) => Some(a.clone()),
        Value::Object(m) => m
            .values()
            .find_map(|v| {
                v.as_array()
                    .filter(|a| a.iter().any(|e| code_of(e).is_some()))
            })
            .cloned(),
        _ => None,
    };
    let entry = |code: &LicenseCode| -> Option<Value> {
        match &list {
            Some(list) => list
                .iter()
                .find(|e| code_of(e).as_deref() == Some(code.as_str()))
                .cloned(),
            None => data.get(code.as_str()).cloned(),
        }
    };
    codes
        .iter()
        .map(|code| {
            let result = match entry(code) {
                Some(e) => batch_entry(&e).map_err(|e| mask_codes(e, std::slice::from_ref(code))),
                None => Err(LicenseApiError::Unavailable(
                    "the batch answer does not mention this code".into(),
                )),
            };
            (code.clone(), result)
        })
        .collect()
}

/// The query's `data`: a LicenseInfo object (a JSON string holding one is accepted too).
pub fn query_info(answer: &Value) -> Result<LicenseInfo, LicenseApiError> {
    object_of(&answer["data"])
        .map(|m| license_info(&m))
        .ok_or_else(|| unreadable("data"))
}

/// The usage-statistics body (§5.3): per code either its client IDs or `active_num`, under the
/// documented (sic) `software_usage_Info`.
pub fn usage_body(usage: &[SoftwareUsage]) -> Value {
    let entries: Vec<Value> = usage
        .iter()
        .map(|u| {
            let items: Vec<Value> = match u {
                SoftwareUsage::Clients { ids, .. } => {
                    ids.iter().map(|id| json!({"id": id})).collect()
                }
                SoftwareUsage::Count { active_num, .. } => vec![json!({"active_num": active_num})],
            };
            json!({"license": u.code().as_str(), "software_usage_Info": items})
        })
        .collect();
    json!({"usage_info": entries})
}

/// The codes a usage answer refused. The field is UNCONFIRMED (`data.check_fail_…`, §5.3): every
/// array under `data` whose name starts with `check_fail` is read, each object naming its code
/// (`license`, `license_code`) and a message (`error_msg`, `message`, `msg`, `reason`, or its
/// `error_code`). An entry without a readable code cannot be attributed and is skipped.
pub fn usage_refusals(answer: &Value) -> UsageReport {
    let mut refused = Vec::new();
    if let Some(data) = answer["data"].as_object() {
        for (_, list) in data.iter().filter(|(k, _)| k.starts_with("check_fail")) {
            for entry in list.as_array().into_iter().flatten() {
                let Some(code) = code_of(entry).and_then(|c| LicenseCode::parse(&c).ok()) else {
                    tracing::warn!("a usage refusal names no license code; skipped");
                    continue;
                };
                let message = text(entry, &["error_msg", "message", "msg", "reason"])
                    .or_else(|| text(entry, &["error_code"]))
                    .unwrap_or_default();
                let message = message.replace(code.as_str(), &code.masked());
                refused.push((code, message));
            }
        }
    }
    UsageReport { refused }
}

/// The `isvUpdateFileReq` JSON part of an upload (§4). `file_name` is sent both here and as the
/// file part's filename: where KooGallery reads it is UNCONFIRMED.
fn upload_request(upload: &Upload) -> Value {
    match upload {
        Upload::Characters(c) => json!({"type": "CHARACTERS", "characters": c}),
        Upload::File { name, bytes } => json!({
            "type": "FILE",
            "file_name": name,
            "sha256": hex::encode(Sha256::digest(bytes)),
        }),
    }
}

/// Checks an upload against §4's limits before anything is sent.
pub fn check_upload(upload: &Upload) -> Result<(), LicenseApiError> {
    let invalid = |m: String| Err(LicenseApiError::Invalid(m.into()));
    match upload {
        Upload::Characters(c) if c.is_empty() || c.chars().count() > MAX_CHARACTERS_LEN => invalid(
            format!("characters must have 1 to {MAX_CHARACTERS_LEN} characters"),
        ),
        Upload::File { name, .. }
            if name.is_empty() || name.chars().count() > MAX_FILE_NAME_LEN =>
        {
            invalid(format!(
                "file_name must have 1 to {MAX_FILE_NAME_LEN} characters"
            ))
        }
        _ => Ok(()),
    }
}

/// A part's name or filename inside its quoted `Content-Disposition` parameter: `"`, CR and LF
/// percent-encoded as browsers do (WHATWG multipart/form-data), so no name can break the header.
fn quoted(s: &str) -> String {
    s.replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// The upload's `multipart/form-data` body with `boundary` (§4): the `isvUpdateFileReq` JSON
/// part, then for a file the `file` part. Built as bytes, so the APIG signature covers exactly
/// what is sent (reqwest's multipart streams a body that could not be hashed first).
pub fn multipart_body(boundary: &str, upload: &Upload) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"isvUpdateFileReq\"\r\n\
             Content-Type: application/json\r\n\r\n{}\r\n",
            upload_request(upload)
        )
        .as_bytes(),
    );
    if let Upload::File { name, bytes } = upload {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n",
                quoted(name)
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

/// A boundary that does not occur in `bytes` (a random one practically never does; checked
/// anyway, since a file that held it would be cut short).
fn boundary_for(bytes: &[u8]) -> String {
    loop {
        let boundary = format!("----KooGalleryUpload{}", uuid::Uuid::new_v4().simple());
        if !bytes
            .windows(boundary.len())
            .any(|w| w == boundary.as_bytes())
        {
            return boundary;
        }
    }
}

fn too_many(what: &str, n: usize, max: usize) -> LicenseApiError {
    LicenseApiError::Invalid(format!("{n} {what}; at most {max} per call").into())
}

/// `e` with every code of `codes` masked in its words: KooGallery's `error_msg` may echo a code,
/// and errors end in logs, which never show a whole code (`LicenseCode::masked`).
pub fn mask_codes(e: LicenseApiError, codes: &[LicenseCode]) -> LicenseApiError {
    let mask = |d: Detail| -> Detail {
        codes
            .iter()
            .fold(d.what().to_owned(), |w, c| {
                w.replace(c.as_str(), &c.masked())
            })
            .into()
    };
    match e {
        LicenseApiError::Invalid(d) => LicenseApiError::Invalid(mask(d)),
        LicenseApiError::Unauthorized(d) => LicenseApiError::Unauthorized(mask(d)),
        LicenseApiError::Unavailable(d) => LicenseApiError::Unavailable(mask(d)),
        other => other,
    }
}

impl OpenApiClient {
    /// One License call: `body` POSTed on the primary host then the fallback, classified; the
    /// `codes` it names are masked in an error's words and in the exchange log, where the call
    /// is kept as `what` (`licenseActivate`, …).
    async fn license_call(
        &self,
        path: &str,
        content_type: &str,
        body: &[u8],
        what: &'static str,
        codes: &[LicenseCode],
    ) -> Result<Value, LicenseApiError> {
        let logged = crate::Logged {
            activity: what,
            masked: codes,
        };
        let (status, answer) = self
            .send_typed(
                logged,
                reqwest::Method::POST,
                path,
                "",
                content_type,
                body,
                Vec::new,
            )
            .await
            .map_err(|m| LicenseApiError::Unavailable(m.into()))?;
        let result = classify(status, &answer).map_err(|e| mask_codes(e, codes));
        if let Err(LicenseApiError::Unauthorized(e)) = &result {
            tracing::error!(call = what, error = %e, "KooGallery refused our License API credentials; fix KOOGALLERY_AK/KOOGALLERY_SK");
        }
        result
    }

    async fn license_json(
        &self,
        path: &str,
        body: &Value,
        what: &'static str,
        codes: &[LicenseCode],
    ) -> Result<Value, LicenseApiError> {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        self.license_call(path, crate::JSON, &bytes, what, codes)
            .await
    }
}

/// `real_effect_time` when given (UTC `yyyyMMddHHmmss`, §5.1); absent otherwise (strict: no
/// `null` sent).
fn with_effect_time(mut body: Value, real_effect_time: Option<DateTime<Utc>>) -> Value {
    if let (Some(t), Some(m)) = (real_effect_time, body.as_object_mut()) {
        m.insert("real_effect_time".into(), Value::String(format_14(t)));
    }
    body
}

#[async_trait]
impl LicenseMarketplace for OpenApiClient {
    async fn activate(
        &self,
        code: &LicenseCode,
        real_effect_time: Option<DateTime<Utc>>,
    ) -> Result<LicenseInfo, LicenseApiError> {
        let body = with_effect_time(json!({"license": code.as_str()}), real_effect_time);
        let answer = self
            .license_json(
                ACTIVATE_V1_PATH,
                &body,
                "licenseActivate",
                std::slice::from_ref(code),
            )
            .await
            .inspect_err(
                |e| tracing::info!(code = code.masked(), error = %e, "License activation failed"),
            )?;
        activation_info(&answer)
    }

    async fn activate_batch(
        &self,
        codes: &[LicenseCode],
        real_effect_time: Option<DateTime<Utc>>,
    ) -> Result<Vec<(LicenseCode, Result<LicenseInfo, LicenseApiError>)>, LicenseApiError> {
        if codes.len() > MAX_CODES_PER_BATCH {
            return Err(too_many("codes", codes.len(), MAX_CODES_PER_BATCH));
        }
        if codes.is_empty() {
            return Ok(Vec::new());
        }
        let list: Vec<&str> = codes.iter().map(LicenseCode::as_str).collect();
        let body = with_effect_time(json!({"license_list": list}), real_effect_time);
        let answer = self
            .license_json(ACTIVATE_V2_PATH, &body, "licenseActivateBatch", codes)
            .await?;
        Ok(batch_results(codes, &answer))
    }

    async fn query(&self, code: &LicenseCode) -> Result<LicenseInfo, LicenseApiError> {
        let answer = self
            .license_json(
                HEARTBEAT_V1_PATH,
                &json!({"license": code.as_str()}),
                "licenseQuery",
                std::slice::from_ref(code),
            )
            .await
            .inspect_err(
                |e| tracing::info!(code = code.masked(), error = %e, "License query failed"),
            )?;
        query_info(&answer)
    }

    async fn report_usage(&self, usage: &[SoftwareUsage]) -> Result<UsageReport, LicenseApiError> {
        if usage.len() > MAX_CODES_PER_CALL {
            return Err(too_many("codes", usage.len(), MAX_CODES_PER_CALL));
        }
        if let Some(u) = usage.iter().find(
            |u| matches!(u, SoftwareUsage::Clients { ids, .. } if ids.is_empty() || ids.len() > MAX_IDS_PER_CODE),
        ) {
            return Err(LicenseApiError::Invalid(
                format!("code {} must list 1 to {MAX_IDS_PER_CODE} client IDs", u.code().masked()).into(),
            ));
        }
        if let Some(u) = usage.iter().find(
            |u| matches!(u, SoftwareUsage::Count { active_num, .. } if *active_num > MAX_ACTIVE_NUM),
        ) {
            return Err(LicenseApiError::Invalid(
                format!("code {}: active_num has at most 9 digits", u.code().masked()).into(),
            ));
        }
        if usage.is_empty() {
            return Ok(UsageReport::default());
        }
        let usage_codes: Vec<LicenseCode> = usage.iter().map(|u| u.code().clone()).collect();
        let answer = self
            .license_json(
                USAGE_V2_PATH,
                &usage_body(usage),
                "licenseUsage",
                &usage_codes,
            )
            .await?;
        Ok(usage_refusals(&answer))
    }

    async fn upload(&self, event_id: &str, upload: &Upload) -> Result<(), LicenseApiError> {
        let path = upload_path(event_id)?;
        check_upload(upload)?;
        let boundary = boundary_for(match upload {
            Upload::File { bytes, .. } => bytes,
            Upload::Characters(c) => c.as_bytes(),
        });
        let body = multipart_body(&boundary, upload);
        if body.len() > MAX_BODY_BYTES {
            return Err(LicenseApiError::Invalid(
                format!(
                    "{} bytes; the gateway takes at most {MAX_BODY_BYTES}",
                    body.len()
                )
                .into(),
            ));
        }
        let content_type = format!("multipart/form-data; boundary={boundary}");
        self.license_call(&path, &content_type, &body, "licenseUpload", &[])
            .await
            .map(|_| ())
    }
}
