//! The API Gateway `SDK-HMAC-SHA256` signature of every call to KooGallery's open API (spec openapi
//! §1, docs/protocol/decisions.md §9): [`sign`] for the client, [`verify`] for the simulator (and
//! anything that plays the gateway). The §10 vectors are the unit tests.
//!
//! Canonical request: method, the canonical URI (each path segment decoded then encoded with only
//! RFC 3986 unreserved characters kept, a trailing `/` added), the query pairs sorted by key then
//! value with their case kept (docs/protocol/decisions.md §9), every signed header as
//! `name:trimmed-value`, the signed header names, and the hex SHA-256 of the body. The signature is
//! the hex HMAC-SHA256 of `SDK-HMAC-SHA256\n{X-Sdk-Date}\n{hex sha256(canonical request)}` keyed
//! with the SK itself.

use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::{Digest, Sha256};

pub const ALGORITHM: &str = "SDK-HMAC-SHA256";
pub const HEADER_SDK_DATE: &str = "x-sdk-date";
pub const HEADER_CONTENT_SHA256: &str = "x-sdk-content-sha256";
/// `yyyyMMdd'T'HHmmss'Z'`.
pub const SDK_DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";
/// The gateway refuses a signature more than this far from its clock
/// (docs/protocol/openapi.md §1.2).
pub const MAX_SKEW_SECS: i64 = 15 * 60;

/// Everything but RFC 3986's unreserved characters is percent-encoded (upper-case hex).
const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn escape(s: &str) -> String {
    utf8_percent_encode(s, ESCAPED).to_string()
}

/// What is signed of a request. `headers` are the headers that will be sent, `host` and
/// `x-sdk-date` included (any case); `query` is the raw query string, without `?`.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// `Authorization` and its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub signed_headers: String,
    pub signature: String,
    pub authorization: String,
}

/// Step 1: each segment decoded, re-encoded, then a trailing `/`.
pub fn canonical_uri(path: &str) -> String {
    let mut out: String = path
        .split('/')
        .map(|segment| escape(&percent_decode_str(segment).decode_utf8_lossy()))
        .collect::<Vec<_>>()
        .join("/");
    if !out.ends_with('/') {
        out.push('/');
    }
    out
}

/// Step 2: pairs decoded, sorted by key then value (case kept), re-encoded.
pub fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Signed header names (lower-case, sorted) and the canonical header lines.
fn canonical_headers(headers: &[(&str, &str)]) -> (String, String) {
    let mut lower: Vec<(String, &str)> = headers
        .iter()
        .filter(|(name, _)| !name.eq_ignore_ascii_case("authorization"))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim()))
        .collect();
    lower.sort_by(|a, b| a.0.cmp(&b.0));
    let lines: String = lower
        .iter()
        .map(|(name, value)| format!("{name}:{value}\n"))
        .collect();
    let names = lower
        .iter()
        .map(|(name, _)| name.as_str())
        .collect::<Vec<_>>()
        .join(";");
    (names, lines)
}

fn header<'a>(headers: &[(&str, &'a str)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

/// Step 6: the canonical request over exactly the headers given.
pub fn canonical_request(req: &Request<'_>) -> (String, String) {
    let (signed_headers, header_lines) = canonical_headers(req.headers);
    let payload_hash = match header(req.headers, HEADER_CONTENT_SHA256) {
        Some(given) => given.trim().to_owned(),
        None => hex::encode(Sha256::digest(req.body)),
    };
    let canonical = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method.to_ascii_uppercase(),
        canonical_uri(req.path),
        canonical_query(req.query),
        header_lines,
        signed_headers,
        payload_hash
    );
    (canonical, signed_headers)
}

/// Steps 7 and 8: the MAC of the string to sign for `canonical` at `sdk_date`, keyed with `sk`.
fn mac_of(sk: &str, sdk_date: &str, canonical: &str) -> Hmac<Sha256> {
    let string_to_sign = format!(
        "{ALGORITHM}\n{sdk_date}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut mac = crate::security::hmac_sha256(sk.as_bytes());
    mac.update(string_to_sign.as_bytes());
    mac
}

/// The hex signature of `canonical` at `sdk_date` under `sk`.
pub fn signature_of(sk: &str, sdk_date: &str, canonical: &str) -> String {
    hex::encode(mac_of(sk, sdk_date, canonical).finalize().into_bytes())
}

/// Signs `req` (whose headers include `host` and `x-sdk-date`) as access key `ak` / secret `sk`.
pub fn sign(ak: &str, sk: &str, req: &Request<'_>) -> Signature {
    let sdk_date = header(req.headers, HEADER_SDK_DATE).unwrap_or_default();
    let (canonical, signed_headers) = canonical_request(req);
    let signature = signature_of(sk, sdk_date, &canonical);
    Signature {
        authorization: format!(
            "{ALGORITHM} Access={ak}, SignedHeaders={signed_headers}, Signature={signature}"
        ),
        signed_headers,
        signature,
    }
}

/// `X-Sdk-Date` for `now`.
pub fn sdk_date(now: DateTime<Utc>) -> String {
    now.format(SDK_DATE_FORMAT).to_string()
}

/// Why the gateway refused a request; `code` and `message` as API Gateway answers them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} {message}")]
pub struct Refused {
    pub code: &'static str,
    pub message: String,
}

fn refused(message: impl Into<String>) -> Refused {
    Refused {
        code: "APIG.0303",
        message: message.into(),
    }
}

/// What the gateway does: parse `Authorization`, find the SK of its access key (`secret_of`),
/// check `X-Sdk-Date` within 15 minutes of `now`, and recompute the signature over the headers the
/// client says it signed. The comparison is constant-time.
pub fn verify(
    req: &Request<'_>,
    now: DateTime<Utc>,
    secret_of: impl Fn(&str) -> Option<String>,
) -> Result<(), Refused> {
    let authorization = Authorization::of(req.headers)?;
    let sk = secret_of(authorization.access)
        .ok_or_else(|| refused("Incorrect app authentication information: app not found"))?;
    let sdk_date = fresh_sdk_date(req.headers, now)?;
    let chosen = signed_headers(req.headers, authorization.signed_headers)?;
    let (canonical, _) = canonical_request(&Request {
        headers: &chosen,
        ..*req
    });
    let matches = hex::decode(authorization.signature)
        .is_ok_and(|tag| mac_of(&sk, sdk_date, &canonical).verify_slice(&tag).is_ok());
    if matches {
        Ok(())
    } else {
        Err(refused(format!(
            "Incorrect app authentication information: verify signature fail, canonicalRequest:{}",
            canonical.replace('\n', "|")
        )))
    }
}

/// The parts of an `Authorization` header: `SDK-HMAC-SHA256 Access=…, SignedHeaders=…,
/// Signature=…`.
struct Authorization<'a> {
    access: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

impl<'a> Authorization<'a> {
    /// The request's `Authorization`, refused when missing, of another algorithm, or without one
    /// of its three parts.
    fn of(headers: &[(&str, &'a str)]) -> Result<Self, Refused> {
        let authorization = header(headers, "authorization").ok_or_else(|| {
            refused("Incorrect app authentication information: authorization missing")
        })?;
        let rest = authorization.strip_prefix(ALGORITHM).ok_or_else(|| {
            refused("Incorrect app authentication information: unsupported algorithm")
        })?;
        let mut access = None;
        let mut signed = None;
        let mut given = None;
        for part in rest.split(',') {
            let part = part.trim();
            if let Some(v) = part.strip_prefix("Access=") {
                access = Some(v);
            } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
                signed = Some(v);
            } else if let Some(v) = part.strip_prefix("Signature=") {
                given = Some(v);
            }
        }
        let (Some(access), Some(signed_headers), Some(signature)) = (access, signed, given) else {
            return Err(refused(
                "Incorrect app authentication information: malformed authorization",
            ));
        };
        Ok(Self {
            access,
            signed_headers,
            signature,
        })
    }
}

/// The request's `X-Sdk-Date`, refused when missing, unreadable, or more than
/// [`MAX_SKEW_SECS`] from `now`: the gateway's guard against a replayed request.
fn fresh_sdk_date<'a>(headers: &[(&str, &'a str)], now: DateTime<Utc>) -> Result<&'a str, Refused> {
    let sdk_date = header(headers, HEADER_SDK_DATE)
        .ok_or_else(|| refused("Incorrect app authentication information: x-sdk-date missing"))?;
    let at = NaiveDateTime::parse_from_str(sdk_date, SDK_DATE_FORMAT)
        .map_err(|_| refused("Incorrect app authentication information: bad x-sdk-date"))?
        .and_utc();
    if (now - at).num_seconds().abs() > MAX_SKEW_SECS {
        return Err(refused(
            "Incorrect app authentication information: signature expired",
        ));
    }
    Ok(sdk_date)
}

/// The headers the client says it signed (`SignedHeaders`, `;`-separated), with their values:
/// the signature is recomputed over exactly these. `host` and `x-sdk-date` must be among them,
/// and every one must be present.
fn signed_headers<'a>(
    headers: &[(&str, &'a str)],
    signed: &'a str,
) -> Result<Vec<(&'a str, &'a str)>, Refused> {
    let names: Vec<&str> = signed.split(';').collect();
    if !names.contains(&"host") || !names.contains(&HEADER_SDK_DATE) {
        return Err(refused(
            "Incorrect app authentication information: host and x-sdk-date must be signed",
        ));
    }
    let mut chosen = Vec::with_capacity(names.len());
    for name in names {
        let value = header(headers, name).ok_or_else(|| {
            refused(format!(
                "Incorrect app authentication information: signed header {name} missing"
            ))
        })?;
        chosen.push((name, value));
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests;
