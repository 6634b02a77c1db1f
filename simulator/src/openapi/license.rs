//! License 2.0 on the simulator's open API (docs/protocol/openapi.md §5: activate v1 and v2,
//! query (heartbeat v1), software usage statistics v2; §4: string / file-stream upload), behind
//! the same APIG gateway as the other APIs (§1; the upload's signature covers the exact multipart
//! bytes).
//!
//! Test codes, as the seller console issues them for debugging (deterministic, no set-up):
//! - `PLTEST…`: a known code, `ALIVE`; activated once, at `real_effect_time` or now, it expires
//!   [`TEST_VALIDITY_DAYS`] later; product [`TEST_PRODUCT_ID`], order `CSTEST` + the rest of the
//!   code, amount 1. A second activation answers success with the same information.
//! - `PLNOTYET…`: `92020004` (not yet delivered to the buyer), HTTP 200.
//! - any other code: `92020005` (does not exist), HTTP 200.
//!
//! Control routes (unsigned, local only, like `/_sim/faults`): `POST /_sim/license/{code}/status`
//! `{"status":"EXPIRED"}` changes a code's status; `GET /_sim/license/{code}` shows it;
//! `POST /_sim/license/faults` queues [`LicenseFault`]s for the next License calls;
//! `GET /_sim/license/usage` and `GET /_sim/uploads` list what was received.

use std::collections::{HashMap, VecDeque};

use axum::{
    Json,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::{HostState, answer, gateway::gateway, time_14};

/// KooGallery's own paths (docs/protocol/openapi.md §4, §5), not the service's constants, so a
/// wrong path on either side shows.
pub const LICENSE_ACTIVATE_V1_PATH: &str = "/api/mkp-openapi-public/global/v1/license/activate";
pub const LICENSE_ACTIVATE_V2_PATH: &str = "/api/mkp-openapi-public/global/v2/license/activate";
pub const LICENSE_HEARTBEAT_V1_PATH: &str = "/api/mkp-openapi-public/global/v1/license/heartbeat";
pub const LICENSE_USAGE_V2_PATH: &str =
    "/api/mkp-openapi-public/global/v2/license/software-usage-info";
/// The upload route, in axum's syntax.
pub const UPLOAD_ROUTE: &str = "/api/mkp-openapi-public/global/v1/market-event/{event_id}/file";

/// The gateway's limit on an app-authenticated body (§1.2).
pub const MAX_UPLOAD_BYTES: usize = 12 * 1024 * 1024;

/// Codes starting with this are known and alive (the seller console's debugging codes).
pub const TEST_CODE_PREFIX: &str = "PLTEST";
/// Codes starting with this are not yet delivered to the buyer (`92020004`).
pub const NOT_YET_CODE_PREFIX: &str = "PLNOTYET";
pub const TEST_PRODUCT_ID: &str = "00301-TEST";
pub const TEST_VALIDITY_DAYS: i64 = 30;

const SUCCESS: &str = "92020000";
const UNAUTHORIZED_OR_INTERNAL: &str = "92020001";
const INVALID: &str = "92020002";
const NOT_YET_DELIVERED: &str = "92020004";
const NOT_FOUND: &str = "92020005";

/// A license code as KooGallery keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimLicense {
    pub code: String,
    /// `ALIVE`, `EXPIRED`, `RELEASED` (or whatever a test set).
    pub status: String,
    pub activate_time: Option<DateTime<Utc>>,
    pub expire_time: Option<DateTime<Utc>>,
    pub product_id: String,
    pub order_id: String,
    pub amount: u64,
}

impl SimLicense {
    /// The test code `code` before activation.
    fn test(code: &str) -> Self {
        Self {
            code: code.to_owned(),
            status: "ALIVE".into(),
            activate_time: None,
            expire_time: None,
            product_id: TEST_PRODUCT_ID.into(),
            order_id: format!("CSTEST{}", &code[TEST_CODE_PREFIX.len()..]),
            amount: 1,
        }
    }

    /// Its status now: an alive code past its expiry has expired.
    fn status_at(&self, now: DateTime<Utc>) -> &str {
        match self.expire_time {
            Some(t) if self.status == "ALIVE" && t <= now => "EXPIRED",
            _ => &self.status,
        }
    }

    /// `license_code_info` (docs/protocol/openapi.md §5.1), before it is encoded as a string.
    fn code_info(&self, now: DateTime<Utc>) -> Value {
        json!({
            "status": self.status_at(now),
            "expire_time": self.expire_time.map(time_14).unwrap_or_default(),
            "product_id": self.product_id,
            "order_id": self.order_id,
            "amount": self.amount,
        })
    }

    /// The query's LicenseInfo (docs/protocol/openapi.md §5.2); `activate_time` is empty before
    /// activation.
    fn info(&self, now: DateTime<Utc>) -> Value {
        json!({
            "license_code": self.code,
            "status": self.status_at(now),
            "activate_time": self.activate_time.map(time_14).unwrap_or_default(),
            "expire_time": self.expire_time.map(time_14).unwrap_or_default(),
            "product_id": self.product_id,
            "order_id": self.order_id,
            "amount": self.amount,
        })
    }
}

/// What the next License calls meet (`POST /_sim/license/faults`), `count` calls each (default 1),
/// after the gateway's own checks and faults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum LicenseFault {
    /// This HTTP status; 502–504 (a host to fall back from) with no body, others with
    /// `92020001`.
    Status {
        status: u16,
        #[serde(default = "one")]
        count: u32,
    },
    /// This `error_code` with this HTTP status (e.g. `92020001` with 500, an internal error).
    Code {
        code: String,
        status: u16,
        #[serde(default = "one")]
        count: u32,
    },
}

fn one() -> u32 {
    1
}

/// One code's usage as reported (docs/protocol/openapi.md §5.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LicenseUsage {
    pub license: String,
    pub ids: Vec<String>,
    pub active_num: Option<u64>,
}

/// An upload as received (docs/protocol/openapi.md §4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimUpload {
    pub event_id: String,
    /// `CHARACTERS` or `FILE`.
    pub kind: String,
    pub characters: Option<String>,
    pub file_name: Option<String>,
    pub sha256: Option<String>,
    /// The file, base64.
    pub file_base64: Option<String>,
}

/// The License state the simulator keeps.
#[derive(Default)]
pub(super) struct Licenses {
    codes: HashMap<String, SimLicense>,
    faults: VecDeque<LicenseFault>,
    usage: Vec<LicenseUsage>,
    uploads: Vec<SimUpload>,
}

/// Why a code cannot be served: its error code (with HTTP 200, §5.4).
enum Unknown {
    NotYet,
    NotFound,
}

impl Licenses {
    /// The code's record: kept, or a test code seen for the first time.
    fn lookup(&mut self, code: &str) -> Result<&mut SimLicense, Unknown> {
        if !self.codes.contains_key(code) {
            if code.starts_with(NOT_YET_CODE_PREFIX) {
                return Err(Unknown::NotYet);
            }
            if !code.starts_with(TEST_CODE_PREFIX) {
                return Err(Unknown::NotFound);
            }
            self.codes.insert(code.to_owned(), SimLicense::test(code));
        }
        self.codes.get_mut(code).ok_or(Unknown::NotFound)
    }

    pub(super) fn set_status(&mut self, code: &str, status: &str) -> Result<(), String> {
        let status = status.trim();
        if status.is_empty() {
            return Err("status is empty".into());
        }
        match self.lookup(code) {
            Ok(l) => {
                l.status = status.to_owned();
                Ok(())
            }
            Err(_) => Err(format!("{code} is not a {TEST_CODE_PREFIX}… code")),
        }
    }

    pub(super) fn get(&mut self, code: &str) -> Option<SimLicense> {
        self.lookup(code).ok().cloned()
    }

    pub(super) fn inject(&mut self, fault: LicenseFault) {
        let count = match &fault {
            LicenseFault::Status { count, .. } | LicenseFault::Code { count, .. } => *count,
        };
        for _ in 0..count {
            self.faults.push_back(fault.clone());
        }
    }

    pub(super) fn usage(&self) -> Vec<LicenseUsage> {
        self.usage.clone()
    }

    pub(super) fn uploads(&self) -> Vec<SimUpload> {
        self.uploads.clone()
    }
}

fn license_error(status: u16, code: &str, message: impl Into<String>) -> Response {
    answer(
        status,
        json!({"error_code": code, "error_msg": message.into()}),
    )
}

/// A refusal of the request's content, answered in an envelope (kept small, unlike a
/// `Response`, for the checks' `Result`s).
struct Refusal {
    status: u16,
    code: &'static str,
    message: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        license_error(self.status, self.code, self.message)
    }
}

fn invalid(message: impl Into<String>) -> Refusal {
    Refusal {
        status: 400,
        code: INVALID,
        message: message.into(),
    }
}

fn unknown(u: &Unknown) -> Response {
    match u {
        Unknown::NotYet => license_error(
            200,
            NOT_YET_DELIVERED,
            "the buyer has not received the license code",
        ),
        Unknown::NotFound => license_error(200, NOT_FOUND, "license code does not exist"),
    }
}

fn success(data: Value) -> Response {
    answer(
        200,
        json!({"error_code": SUCCESS, "error_msg": "success", "data": data}),
    )
}

/// The gateway (signature, a down primary, its faults), then the next License fault.
async fn license_gateway(
    state: &HostState,
    method: &Method,
    uri: &Uri,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), Response> {
    gateway(
        state,
        method,
        uri,
        query,
        headers,
        body,
        ("error_code", "error_msg"),
    )
    .await?;
    let fault = state
        .inner
        .licenses
        .lock()
        .ok()
        .and_then(|mut l| l.faults.pop_front());
    match fault {
        Some(LicenseFault::Status { status, .. }) if (502..=504).contains(&status) => {
            Err(StatusCode::from_u16(status)
                .unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
                .into_response())
        }
        Some(LicenseFault::Status { status, .. }) => Err(license_error(
            status,
            UNAUTHORIZED_OR_INTERNAL,
            "simulated failure",
        )),
        Some(LicenseFault::Code { code, status, .. }) => {
            Err(license_error(status, &code, "simulated failure"))
        }
        None => Ok(()),
    }
}

/// A mandatory `license` (at most 64 characters).
fn license_field(value: &Value) -> Result<String, Refusal> {
    match value.as_str().map(str::trim) {
        Some(c) if !c.is_empty() && c.chars().count() <= 64 => Ok(c.to_owned()),
        _ => Err(invalid("license must be a string of 1 to 64 characters")),
    }
}

/// The optional `real_effect_time` (UTC `yyyyMMddHHmmss`).
fn effect_time(body: &Value) -> Result<Option<DateTime<Utc>>, Refusal> {
    match &body["real_effect_time"] {
        Value::Null => Ok(None),
        Value::String(s) => NaiveDateTime::parse_from_str(s, "%Y%m%d%H%M%S")
            .map(|t| Some(t.and_utc()))
            .map_err(|_| invalid("real_effect_time must be yyyyMMddHHmmss")),
        _ => Err(invalid("real_effect_time must be a string")),
    }
}

fn json_body(body: &[u8]) -> Result<Value, Refusal> {
    serde_json::from_slice(body).map_err(|e| invalid(format!("the body is not JSON: {e}")))
}

/// Activates `code` once (a repeat changes nothing) and answers its `license_code_info`, or why
/// not.
fn activate_one(
    state: &HostState,
    code: &str,
    at: Option<DateTime<Utc>>,
) -> Result<Value, Unknown> {
    let now = Utc::now();
    let mut licenses = state.inner.licenses.lock().map_err(|_| Unknown::NotFound)?;
    let l = licenses.lookup(code)?;
    if l.activate_time.is_none() {
        let start = at.unwrap_or(now);
        l.activate_time = Some(start);
        l.expire_time = Some(start + Duration::days(TEST_VALIDITY_DAYS));
    }
    Ok(l.code_info(now))
}

macro_rules! try_answer {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(refused) => return refused.into_response(),
        }
    };
}

pub(super) async fn activate_v1(
    State(state): State<HostState>,
    method: Method,
    uri: Uri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = query.unwrap_or_default();
    try_answer!(license_gateway(&state, &method, &uri, &query, &headers, &body).await);
    let request = try_answer!(json_body(&body));
    let code = try_answer!(license_field(&request["license"]));
    let at = try_answer!(effect_time(&request));
    match activate_one(&state, &code, at) {
        // A JSON string inside `data` (docs/protocol/openapi.md §5.1): parsed twice by clients.
        Ok(info) => success(json!({"license_code_info": info.to_string()})),
        Err(u) => unknown(&u),
    }
}

/// v2 batch activation. Its answer shape is UNCONFIRMED (§5.1); the simulator answers `data` as
/// an array of `{"license", "error_code", "error_msg", "license_code_info"}` (the info as a JSON
/// string, as v1 sends it; only on success), one per code, in the order asked.
pub(super) async fn activate_v2(
    State(state): State<HostState>,
    method: Method,
    uri: Uri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = query.unwrap_or_default();
    try_answer!(license_gateway(&state, &method, &uri, &query, &headers, &body).await);
    let request = try_answer!(json_body(&body));
    let Some(list) = request["license_list"]
        .as_array()
        .filter(|l| (1..=100).contains(&l.len()))
    else {
        return invalid("license_list must hold 1 to 100 codes").into_response();
    };
    let codes: Vec<String> = try_answer!(list.iter().map(license_field).collect());
    let at = try_answer!(effect_time(&request));
    let results: Vec<Value> = codes
        .iter()
        .map(|code| match activate_one(&state, code, at) {
            Ok(info) => json!({
                "license": code, "error_code": SUCCESS, "error_msg": "success",
                "license_code_info": info.to_string(),
            }),
            Err(Unknown::NotYet) => json!({
                "license": code, "error_code": NOT_YET_DELIVERED,
                "error_msg": "the buyer has not received the license code",
            }),
            Err(Unknown::NotFound) => json!({
                "license": code, "error_code": NOT_FOUND, "error_msg": "license code does not exist",
            }),
        })
        .collect();
    success(Value::Array(results))
}

/// Query (formerly heartbeat, v1): `data` is the code's LicenseInfo.
pub(super) async fn heartbeat_v1(
    State(state): State<HostState>,
    method: Method,
    uri: Uri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = query.unwrap_or_default();
    try_answer!(license_gateway(&state, &method, &uri, &query, &headers, &body).await);
    let request = try_answer!(json_body(&body));
    let code = try_answer!(license_field(&request["license"]));
    let info = state
        .inner
        .licenses
        .lock()
        .map_err(|_| Unknown::NotFound)
        .and_then(|mut l| l.lookup(&code).map(|l| l.info(Utc::now())));
    match info {
        Ok(info) => success(info),
        Err(u) => unknown(&u),
    }
}

/// One `usage_info` entry, checked (§5.3): a code, 1 to 100 entries of exactly one of `id` (1 to
/// 256 characters) or `active_num` (at most 9 digits).
fn usage_entry(entry: &Value) -> Result<LicenseUsage, Refusal> {
    let license = license_field(&entry["license"])?;
    let Some(items) = entry["software_usage_Info"]
        .as_array()
        .filter(|i| (1..=100).contains(&i.len()))
    else {
        return Err(invalid(
            "software_usage_Info must hold 1 to 100 entries for every license",
        ));
    };
    let mut usage = LicenseUsage {
        license,
        ids: Vec::new(),
        active_num: None,
    };
    for item in items {
        match (item.get("id"), item.get("active_num")) {
            (Some(Value::String(id)), None) if (1..=256).contains(&id.chars().count()) => {
                usage.ids.push(id.clone());
            }
            (None, Some(n)) if n.as_u64().is_some_and(|n| n <= 999_999_999) => {
                usage.active_num = Some(usage.active_num.unwrap_or(0) + n.as_u64().unwrap_or(0));
            }
            _ => {
                return Err(invalid(
                    "each software_usage_Info entry needs exactly one of id (1 to 256 characters) or active_num (at most 9 digits)",
                ));
            }
        }
    }
    Ok(usage)
}

/// Software usage statistics (v2). Per-code failures are answered with HTTP 200 under
/// `data.check_fail_list` (the real field is UNCONFIRMED, §5.3), each `{"license", "error_code",
/// "error_msg"}`; the other codes' usage is recorded.
pub(super) async fn software_usage(
    State(state): State<HostState>,
    method: Method,
    uri: Uri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = query.unwrap_or_default();
    try_answer!(license_gateway(&state, &method, &uri, &query, &headers, &body).await);
    let request = try_answer!(json_body(&body));
    let Some(entries) = request["usage_info"]
        .as_array()
        .filter(|l| (1..=100).contains(&l.len()))
    else {
        return invalid("usage_info must hold 1 to 100 codes").into_response();
    };
    let usages: Vec<LicenseUsage> = try_answer!(entries.iter().map(usage_entry).collect());
    let Ok(mut licenses) = state.inner.licenses.lock() else {
        return license_error(500, UNAUTHORIZED_OR_INTERNAL, "internal error");
    };
    let mut failed = Vec::new();
    for usage in usages {
        let refusal = match licenses.lookup(&usage.license) {
            Ok(l) if l.activate_time.is_some() => None,
            Ok(_) => Some((INVALID, "license code not activated")),
            Err(Unknown::NotYet) => Some((
                NOT_YET_DELIVERED,
                "the buyer has not received the license code",
            )),
            Err(Unknown::NotFound) => Some((NOT_FOUND, "license code does not exist")),
        };
        match refusal {
            Some((code, message)) => failed
                .push(json!({"license": usage.license, "error_code": code, "error_msg": message})),
            None => licenses.usage.push(usage),
        }
    }
    success(json!({"check_fail_list": failed}))
}

/// One part of a `multipart/form-data` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    /// As written in `Content-Disposition` (not percent-decoded).
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub data: Vec<u8>,
}

/// The `boundary` parameter of a `multipart/form-data` content type.
pub fn boundary_of(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_owned())
            .filter(|b| !b.is_empty())
    })
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// A quoted or bare parameter `name` of a header value (`form-data; name="x"; filename="y"`).
fn header_param(value: &str, name: &str) -> Option<String> {
    let mut rest = value;
    while let Some(i) = rest.find(';') {
        rest = rest[i + 1..].trim_start();
        let (key, after) = rest.split_once('=')?;
        let (v, tail) = match after.strip_prefix('"') {
            Some(q) => {
                let end = q.find('"')?;
                (&q[..end], &q[end + 1..])
            }
            None => {
                let end = after.find(';').unwrap_or(after.len());
                (after[..end].trim(), &after[end..])
            }
        };
        if key.trim().eq_ignore_ascii_case(name) {
            return Some(v.to_owned());
        }
        rest = tail;
    }
    None
}

/// The parts of a `multipart/form-data` body (RFC 7578), strictly: CRLF line ends, a closing
/// delimiter, each part with a `Content-Disposition: form-data; name=…`.
///
/// # Errors
/// What is malformed.
pub fn parse_multipart(boundary: &str, body: &[u8]) -> Result<Vec<Part>, String> {
    let delimiter = format!("--{boundary}");
    let next = format!("\r\n--{boundary}");
    let mut at =
        find(body, delimiter.as_bytes(), 0).ok_or("no boundary in the body")? + delimiter.len();
    let mut parts = Vec::new();
    loop {
        match body.get(at..at + 2) {
            Some(b"--") => return Ok(parts),
            Some(b"\r\n") => at += 2,
            _ => return Err("a boundary not followed by CRLF or --".into()),
        }
        let head_end = find(body, b"\r\n\r\n", at).ok_or("a part without a blank line")?;
        let head = std::str::from_utf8(&body[at..head_end]).map_err(|_| "a header not UTF-8")?;
        let mut part = Part {
            name: String::new(),
            filename: None,
            content_type: None,
            data: Vec::new(),
        };
        let mut named = false;
        for line in head.split("\r\n") {
            let (k, v) = line.split_once(':').ok_or("a header line without ':'")?;
            if k.trim().eq_ignore_ascii_case("content-disposition") {
                if !v.trim_start().starts_with("form-data") {
                    return Err("a part that is not form-data".into());
                }
                part.name = header_param(v, "name").ok_or("a part without a name")?;
                part.filename = header_param(v, "filename");
                named = true;
            } else if k.trim().eq_ignore_ascii_case("content-type") {
                part.content_type = Some(v.trim().to_owned());
            }
        }
        if !named {
            return Err("a part without Content-Disposition".into());
        }
        let data_start = head_end + 4;
        let data_end = find(body, next.as_bytes(), data_start).ok_or("no closing boundary")?;
        part.data = body[data_start..data_end].to_vec();
        parts.push(part);
        at = data_end + next.len();
    }
}

fn upload_invalid(message: impl Into<String>) -> Refusal {
    Refusal {
        status: 400,
        code: "MKT.0101",
        message: message.into(),
    }
}

/// The upload's checks (§4), `Ok` with what to record.
fn check_upload(event_id: &str, headers: &HeaderMap, body: &[u8]) -> Result<SimUpload, Refusal> {
    if event_id.is_empty() || event_id.chars().count() > 64 {
        return Err(upload_invalid("event_id must have 1 to 64 characters"));
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let boundary = boundary_of(content_type).ok_or_else(|| {
        upload_invalid("Content-Type must be multipart/form-data with a boundary")
    })?;
    let parts = parse_multipart(&boundary, body).map_err(upload_invalid)?;
    let part = |name: &str| parts.iter().find(|p| p.name == name);
    let request: Value = part("isvUpdateFileReq")
        .and_then(|p| serde_json::from_slice(&p.data).ok())
        .filter(Value::is_object)
        .ok_or_else(|| upload_invalid("isvUpdateFileReq must be a JSON object part"))?;
    let text = |k: &str| request[k].as_str().map(str::to_owned);
    let file = part("file");
    let mut upload = SimUpload {
        event_id: event_id.to_owned(),
        kind: text("type").unwrap_or_default(),
        characters: None,
        file_name: None,
        sha256: None,
        file_base64: None,
    };
    match upload.kind.as_str() {
        "CHARACTERS" => {
            let characters = text("characters")
                .filter(|c| (1..=1024).contains(&c.chars().count()))
                .ok_or_else(|| upload_invalid("characters must have 1 to 1024 characters"))?;
            if file.is_some() {
                return Err(upload_invalid("a CHARACTERS upload has no file part"));
            }
            upload.characters = Some(characters);
        }
        "FILE" => {
            let file = file.ok_or_else(|| upload_invalid("a FILE upload needs the file part"))?;
            // `file_name` may be in the JSON or the part's filename (UNCONFIRMED, §4): either.
            let name = text("file_name")
                .or_else(|| file.filename.clone())
                .filter(|n| (1..=1024).contains(&n.chars().count()))
                .ok_or_else(|| upload_invalid("file_name must have 1 to 1024 characters"))?;
            let declared = text("sha256").ok_or_else(|| upload_invalid("sha256 is mandatory"))?;
            let actual = hex::encode(Sha256::digest(&file.data));
            if !declared.eq_ignore_ascii_case(&actual) {
                return Err(upload_invalid("sha256 does not match the file"));
            }
            upload.file_name = Some(name);
            upload.sha256 = Some(actual);
            upload.file_base64 = Some(base64::engine::general_purpose::STANDARD.encode(&file.data));
        }
        _ => return Err(upload_invalid("type must be CHARACTERS or FILE")),
    }
    Ok(upload)
}

/// String / file-stream upload (§4): the APIG signature over the exact multipart bytes, the type
/// rules, the file's SHA-256. Answers in §8's codes (`MKT.0000`, `MKT.0101`), as §4 says.
pub(super) async fn upload(
    State(state): State<HostState>,
    Path(event_id): Path<String>,
    method: Method,
    uri: Uri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = query.unwrap_or_default();
    try_answer!(license_gateway(&state, &method, &uri, &query, &headers, &body).await);
    let upload = try_answer!(check_upload(&event_id, &headers, &body));
    if let Ok(mut l) = state.inner.licenses.lock() {
        l.uploads.push(upload);
    }
    answer(
        200,
        json!({"error_code": "MKT.0000", "error_msg": "success"}),
    )
}

#[derive(Deserialize)]
pub(super) struct StatusChange {
    status: String,
}

pub(super) async fn set_status(
    State(state): State<HostState>,
    Path(code): Path<String>,
    Json(change): Json<StatusChange>,
) -> Response {
    let result = state
        .inner
        .licenses
        .lock()
        .map_err(|_| "poisoned".to_owned())
        .and_then(|mut l| l.set_status(&code, &change.status));
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => (StatusCode::NOT_FOUND, e).into_response(),
    }
}

pub(super) async fn show(State(state): State<HostState>, Path(code): Path<String>) -> Response {
    match state
        .inner
        .licenses
        .lock()
        .ok()
        .and_then(|mut l| l.get(&code))
    {
        Some(l) => answer(200, json!(l)),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

pub(super) async fn inject_fault(
    State(state): State<HostState>,
    Json(fault): Json<LicenseFault>,
) -> StatusCode {
    if let Ok(mut l) = state.inner.licenses.lock() {
        l.inject(fault);
    }
    StatusCode::NO_CONTENT
}

pub(super) async fn usage_received(State(state): State<HostState>) -> Response {
    let usage = state
        .inner
        .licenses
        .lock()
        .map(|l| l.usage())
        .unwrap_or_default();
    answer(200, json!(usage))
}

pub(super) async fn uploads_received(State(state): State<HostState>) -> Response {
    let uploads = state
        .inner
        .licenses
        .lock()
        .map(|l| l.uploads())
        .unwrap_or_default();
    answer(200, json!(uploads))
}
