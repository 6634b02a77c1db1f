//! The API Gateway's check of a vendor's open-API call, APIG app authentication
//! `SDK-HMAC-SHA256` (docs/protocol/openapi.md §1.2; vectors §10 V1–V4).
//!
//! The gateway rebuilds the canonical request from what it received and the `SignedHeaders` the
//! caller named, and compares `hex(HMAC-SHA256(SK, StringToSign))` with the `Signature`.

use chrono::{DateTime, NaiveDateTime, Utc};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::{Digest as _, Sha256};

use super::{hex_mac_matches, hmac_of};

/// The algorithm name, first word of `Authorization` and first line of the StringToSign (§1.2).
pub const ALGORITHM: &str = "SDK-HMAC-SHA256";
/// `X-Sdk-Date` format, UTC (§1.1); the usage push's times share it (§3).
pub const DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";
/// The gateway refuses a date further than this from its clock (§1.2, "signature expired").
pub const MAX_SKEW_SECS: i64 = 15 * 60;

/// RFC 3986 unreserved characters stay; everything else is percent-encoded, upper-case hex.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A request as the gateway received it. `headers` names in any case.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

impl Request<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// Why the gateway refused a call: its code (`APIG.0303` for every app-authentication failure,
/// §1.2) and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

fn refuse(message: impl Into<String>) -> Refusal {
    Refusal {
        code: "APIG.0303",
        message: message.into(),
    }
}

fn encode(s: &str) -> String {
    utf8_percent_encode(s, ENCODE).to_string()
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Step 1: each decoded path segment re-encoded, with a trailing `/`.
#[must_use]
pub fn canonical_uri(path: &str) -> String {
    let mut uri = path
        .split('/')
        .map(|segment| encode(&decode(segment)))
        .collect::<Vec<_>>()
        .join("/");
    if !uri.ends_with('/') {
        uri.push('/');
    }
    uri
}

/// Step 2: decoded pairs sorted by key then value (key case kept, decisions.md §9), re-encoded.
#[must_use]
pub fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Steps 1–6 for the headers named in `signed` (lower-case, as listed in `SignedHeaders`).
///
/// # Errors
/// The name of a signed header the request does not carry.
pub fn canonical_request(req: &Request<'_>, signed: &[&str]) -> Result<String, String> {
    let mut headers = String::new();
    for name in signed {
        let value = req
            .header(name)
            .ok_or_else(|| format!("signed header {name} is missing"))?;
        headers.push_str(&format!("{name}:{}\n", value.trim()));
    }
    let payload_hash = match req.header("x-sdk-content-sha256") {
        Some(given) => given.trim().to_owned(),
        None => hex::encode(Sha256::digest(req.body)),
    };
    Ok(format!(
        "{}\n{}\n{}\n{headers}\n{}\n{payload_hash}",
        req.method.to_ascii_uppercase(),
        canonical_uri(req.path),
        canonical_query(req.query),
        signed.join(";"),
    ))
}

/// Step 7: the StringToSign.
#[must_use]
pub fn string_to_sign(sdk_date: &str, canonical_request: &str) -> String {
    let hash = hex::encode(Sha256::digest(canonical_request.as_bytes()));
    format!("{ALGORITHM}\n{sdk_date}\n{hash}")
}

/// Step 8: lower-case hex HMAC-SHA256 of the StringToSign under the SK (no key derivation).
#[must_use]
pub fn signature(sk: &str, sdk_date: &str, canonical_request: &str) -> String {
    let sts = string_to_sign(sdk_date, canonical_request);
    hex::encode(hmac_of(sk.as_bytes(), &[sts.as_bytes()]))
}

/// The parts of `Authorization: SDK-HMAC-SHA256 Access=…, SignedHeaders=…, Signature=…`.
fn authorization(value: &str) -> Option<(&str, Vec<&str>, &str)> {
    let rest = value.trim().strip_prefix(ALGORITHM)?.trim_start();
    let (mut access, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k.trim() {
            "Access" => access = Some(v.trim()),
            "SignedHeaders" => signed = Some(v.trim().split(';').collect()),
            "Signature" => signature = Some(v.trim()),
            _ => {}
        }
    }
    Some((access?, signed?, signature?))
}

/// Verifies `req` as the gateway does at `now`, with `secret_of` giving an AK's SK: a well-formed
/// `Authorization`, a known AK, an `X-Sdk-Date` within [`MAX_SKEW_SECS`], `host` and
/// `x-sdk-date` among the signed headers, and the signature (constant-time). `Ok` is the AK.
///
/// # Errors
/// The gateway's [`Refusal`]; a mismatch quotes the canonical request with `|` for newlines, as
/// the gateway does.
pub fn verify(
    req: &Request<'_>,
    now: DateTime<Utc>,
    secret_of: impl Fn(&str) -> Option<String>,
) -> Result<String, Refusal> {
    let (access, signed, given) = req
        .header("authorization")
        .and_then(authorization)
        .ok_or_else(|| {
            refuse("Incorrect app authentication information: authorization format error")
        })?;
    let sk = secret_of(access)
        .ok_or_else(|| refuse("Incorrect app authentication information: app not found"))?;
    let date = req
        .header("x-sdk-date")
        .ok_or_else(|| refuse("Incorrect app authentication information: x-sdk-date is missing"))?;
    let at = NaiveDateTime::parse_from_str(date.trim(), DATE_FORMAT)
        .map_err(|_| refuse(format!("Incorrect app authentication information: x-sdk-date {date:?} is not yyyyMMddTHHmmssZ")))?
        .and_utc();
    if (now - at).num_seconds().abs() > MAX_SKEW_SECS {
        return Err(refuse(
            "Incorrect app authentication information: signature expired",
        ));
    }
    for needed in ["host", "x-sdk-date"] {
        if !signed.contains(&needed) {
            return Err(refuse(format!(
                "Incorrect app authentication information: {needed} is not signed"
            )));
        }
    }
    let canonical = canonical_request(req, &signed)
        .map_err(|e| refuse(format!("Incorrect app authentication information: {e}")))?;
    let sts = string_to_sign(date.trim(), &canonical);
    if hex_mac_matches(sk.as_bytes(), &[sts.as_bytes()], given) {
        Ok(access.to_owned())
    } else {
        Err(refuse(format!(
            "Incorrect app authentication information: verify signature fail, canonicalRequest:{}",
            canonical.replace('\n', "|")
        )))
    }
}

#[cfg(test)]
#[path = "apig_tests.rs"]
mod tests;
