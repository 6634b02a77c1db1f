//! The V1 GET caller: KooGallery's retired interface as the platform sends it
//! (docs/protocol/callbacks.md §3.6, §11; docs/protocol/decisions.md §20).
//!
//! ```text
//! GET {production URL}?activity=…&<params>&timeStamp=<yyyyMMddHHmmssSSS, UTC>&authToken=<token>
//! authToken = Base64( HMAC-SHA256( accessKey + timeStamp, "k1=v1&k2=v2…" ) )
//! ```
//!
//! The signed string covers every parameter but `authToken`, URL-decoded, sorted by name in Java
//! `TreeMap` order. Unlike the V2 signature ([`crate::platform`]), the token is the service's own
//! [`koogallery::security::v1_auth_token`], not a second implementation: what keeps both sides
//! honest is the spec vector (§14.5), which the tests below reproduce through this module's own
//! request building (query string in, URL out), and the round trip of those URLs through the
//! service's parser and verifier.
//!
//! Answers are read as every other answer (`read_answer`): any KooGallery reply is `Ok`,
//! with `Body-Sign` checked under the access key (V1 checks it too, §3.3).

use std::fmt;
use std::time::Instant;

use chrono::{DateTime, Utc};
use koogallery::security::v1_auth_token;
use reqwest::Url;
use serde_json::Value;

use crate::{Answer, SimError, Simulator, read_answer, transport_error};

/// The parameter carrying the signing time (§3.6).
pub const TIME_STAMP: &str = "timeStamp";

/// The parameter carrying the token; never part of the signed string (§3.6).
pub const AUTH_TOKEN: &str = "authToken";

/// A V1 `timeStamp`: `yyyyMMddHHmmssSSS` in UTC (GET calls; only the V1 Kit bodies use GMT+8,
/// docs/protocol/decisions.md §10).
#[must_use]
pub fn time_stamp(at: DateTime<Utc>) -> String {
    at.format("%Y%m%d%H%M%S%3f").to_string()
}

/// One V1 GET ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Request {
    /// The production URL with the parameters, `timeStamp` and `authToken` appended, in that
    /// order; values `application/x-www-form-urlencoded` (so a Base64 `+` travels as `%2B`).
    pub url: Url,
    /// The `timeStamp` as sent.
    pub time_stamp: String,
    /// The `authToken` as sent (before URL encoding).
    pub auth_token: String,
}

/// Signs `params` (not URL-encoded) with `key` at `time_stamp` and appends them to `base`
/// (existing query parameters are kept, and not signed: they are the vendor's URL, not
/// KooGallery's parameters).
///
/// # Errors
/// [`SimError::InvalidBody`] if `params` has no non-empty `activity`, or sets `timeStamp` or
/// `authToken` (the signer sets them).
pub fn sign_v1_request(
    base: &Url,
    key: &str,
    params: &[(&str, &str)],
    time_stamp: &str,
) -> Result<V1Request, SimError> {
    if !params
        .iter()
        .any(|(k, v)| *k == "activity" && !v.trim().is_empty())
    {
        return Err(SimError::InvalidBody(
            "a V1 call needs an activity parameter".to_owned(),
        ));
    }
    if let Some((k, _)) = params
        .iter()
        .find(|(k, _)| *k == TIME_STAMP || *k == AUTH_TOKEN)
    {
        return Err(SimError::InvalidBody(format!(
            "{k} is set by the V1 signer, not by the caller"
        )));
    }
    let mut signed: Vec<(&str, &str)> = params.to_vec();
    signed.push((TIME_STAMP, time_stamp));
    let auth_token = v1_auth_token(key, time_stamp, &signed);

    let mut url = base.clone();
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in &signed {
            q.append_pair(k, v);
        }
        q.append_pair(AUTH_TOKEN, &auth_token);
    }
    Ok(V1Request {
        url,
        time_stamp: time_stamp.to_owned(),
        auth_token,
    })
}

/// A body's top-level fields as V1 parameters, for callers that describe a call as a JSON object
/// (`koogallery-sim call --v1`): strings as they are, other values as compact JSON, nulls dropped
/// — the reading the service gives a V1 Kit body (`koogallery::protocol::v1::V1Params::from_body`).
///
/// # Errors
/// [`SimError::InvalidBody`] if `body` is not a JSON object.
pub fn params_of_body(body: &Value) -> Result<Vec<(String, String)>, SimError> {
    let Value::Object(map) = body else {
        return Err(SimError::InvalidBody(
            "V1 parameters come from a JSON object".to_owned(),
        ));
    };
    Ok(map
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), v)
        })
        .collect())
}

/// Overrides for one V1 call, for negative tests (stale token, forged token).
#[derive(Clone, Default)]
pub struct V1CallOptions {
    /// Sign at this time instead of now (a `timeStamp` outside the service's 15-minute window is
    /// refused with `000001`).
    pub at: Option<DateTime<Utc>>,
    /// Key to sign with instead of the access key. `Body-Sign` is still checked with the access
    /// key.
    pub key: Option<String>,
}

impl fmt::Debug for V1CallOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("V1CallOptions")
            .field("at", &self.at)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Simulator {
    /// Signs and sends one V1 GET with `params` (not URL-encoded, `activity` among them), signed
    /// now with the access key.
    ///
    /// As [`Simulator::call`], any answer that parses as a KooGallery reply is `Ok`: check
    /// [`Answer::http_status`] and [`Answer::body_sign_valid`].
    ///
    /// # Errors
    /// [`SimError::InvalidBody`] (no activity, or `timeStamp`/`authToken` among `params`),
    /// [`SimError::Http`], [`SimError::Timeout`], [`SimError::BadAnswer`].
    pub async fn call_v1(&self, params: &[(&str, &str)]) -> Result<Answer, SimError> {
        self.call_v1_with(params, V1CallOptions::default()).await
    }

    /// [`Simulator::call_v1`] at a given time or with another signing key.
    ///
    /// # Errors
    /// As [`Simulator::call_v1`].
    pub async fn call_v1_with(
        &self,
        params: &[(&str, &str)],
        opts: V1CallOptions,
    ) -> Result<Answer, SimError> {
        let step = params
            .iter()
            .find(|(k, _)| *k == "activity")
            .map_or("call", |(_, v)| *v)
            .to_owned();
        self.exchange_v1(&step, params, &opts).await
    }

    /// Signs, sends and reads one V1 call; errors name `step`.
    pub(crate) async fn exchange_v1(
        &self,
        step: &str,
        params: &[(&str, &str)],
        opts: &V1CallOptions,
    ) -> Result<Answer, SimError> {
        let at = opts.at.unwrap_or_else(unique_now);
        let key = opts.key.as_deref().unwrap_or(&self.access_key);
        let req = sign_v1_request(&self.url, key, params, &time_stamp(at))?;

        let started = Instant::now();
        // KooGallery's V1 caller sends a bare GET: no body, so no Content-Type.
        let response = self
            .client
            .get(req.url)
            .header(reqwest::header::ACCEPT, crate::request::ACCEPT)
            .send()
            .await
            .map_err(|e| transport_error(step, e))?;
        read_answer(step, response, &self.access_key, started).await
    }
}

/// Now, at least a millisecond after the previous V1 call's `timeStamp` in this process: KooGallery
/// never sends one V1 call twice, and the service refuses a repeated `authToken` as a replay, so two
/// identical calls in one millisecond (a poll right after its call) must differ.
fn unique_now() -> chrono::DateTime<Utc> {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST_MS: AtomicI64 = AtomicI64::new(0);
    let now = Utc::now().timestamp_millis();
    let ms = LAST_MS
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
            Some(now.max(last + 1))
        })
        .map_or(now, |last| now.max(last + 1));
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_else(Utc::now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;
    use koogallery::protocol::v1::V1Params;
    use koogallery::security::{KeyRing, SecretKey, SignatureError, verify_v1_auth_token};
    use serde_json::json;

    /// docs/protocol/callbacks.md §14.5.
    const KEY: &str = "TestAccessKey-0123456789abcdef";
    const TS: &str = "20230327065233980";

    fn url() -> Url {
        Url::parse("http://127.0.0.1:8080/produce").unwrap()
    }

    /// A query string as KooGallery's V1 caller would write it, decoded the way the service
    /// reads it (`%XX`, `+` as space).
    fn decoded(query: &str) -> Vec<(String, String)> {
        form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    fn borrowed(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
        pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    /// What the service makes of a URL this module built: its parameters, and whether its token
    /// verifies under `key`.
    fn service_reads(req: &V1Request, key: &str) -> (V1Params, Result<(), SignatureError>) {
        let params = V1Params::from_query(req.url.query().unwrap_or_default());
        let token = params.get(AUTH_TOKEN).unwrap_or_default().to_owned();
        let ts = params.get(TIME_STAMP).unwrap_or_default().to_owned();
        let ring = KeyRing::new(SecretKey::new(key), None);
        let verified = verify_v1_auth_token(&ring, &ts, &params.pairs(), &token).map(|_| ());
        (params, verified)
    }

    /// §14.5 row 1, from the query string of the vector to the token on the wire.
    #[test]
    fn spec_vector_14_5_row_1_through_the_request() {
        let params = decoded(
            "activity=queryInstance&instanceId=ebc28eb6-4606-4098-b4bd-c201c99a0654&testFlag=1",
        );
        let req = sign_v1_request(&url(), KEY, &borrowed(&params), TS).unwrap();
        assert_eq!(
            req.auth_token,
            "ChNSgU0K57zxxRxxkTixcfdzXNapbmec6YgAWFuNhd0="
        );
        assert_eq!(req.time_stamp, TS);
        // The parameters in the order given, then timeStamp, then the token, URL-encoded.
        assert_eq!(
            req.url.as_str(),
            "http://127.0.0.1:8080/produce?activity=queryInstance\
             &instanceId=ebc28eb6-4606-4098-b4bd-c201c99a0654&testFlag=1\
             &timeStamp=20230327065233980&authToken=ChNSgU0K57zxxRxxkTixcfdzXNapbmec6YgAWFuNhd0%3D"
        );
        let (_, verified) = service_reads(&req, KEY);
        assert_eq!(verified, Ok(()));
    }

    /// §14.5 row 2: the commas arrive as `%2C` and are signed decoded.
    #[test]
    fn spec_vector_14_5_row_2_signs_decoded_commas() {
        let params = decoded(
            "testFlag=1&instanceId=ebc28eb6-4606-4098-b4bd-c201c99a0654%2Cfe28e27e-1157-4105-8592-24cc9488db10&activity=queryInstance",
        );
        let req = sign_v1_request(&url(), KEY, &borrowed(&params), TS).unwrap();
        assert_eq!(
            req.auth_token,
            "C5GKceh57oq/LbfOasfF3v3hqZv+R3fQC2uw+EnwJgI="
        );
        // `+` and `/` of the token travel escaped, so no `+` comes back as a space.
        assert!(
            req.url
                .as_str()
                .ends_with("authToken=C5GKceh57oq%2FLbfOasfF3v3hqZv%2BR3fQC2uw%2BEnwJgI%3D"),
            "{}",
            req.url
        );
        assert!(req.url.as_str().contains("%2Cfe28e27e"), "{}", req.url);
        let (read, verified) = service_reads(&req, KEY);
        assert_eq!(verified, Ok(()));
        assert_eq!(
            read.get("instanceId"),
            Some("ebc28eb6-4606-4098-b4bd-c201c99a0654,fe28e27e-1157-4105-8592-24cc9488db10")
        );
    }

    /// Values that need escaping (Base64 of encrypted fields, spaces, non-ASCII) reach the service
    /// as signed; another key does not verify.
    #[test]
    fn escaped_values_round_trip_and_another_key_fails() {
        let params = [
            ("activity", "newInstance"),
            ("mobilePhone", "AbCdEf0123456789k+/x=="),
            ("customerName", "张 三&co"),
            ("saasExtendParams", "W3sibmFtZSI6ImEiLCJ2YWx1ZSI6ImIifV0="),
        ];
        let req = sign_v1_request(&url(), KEY, &params, TS).unwrap();
        let (read, verified) = service_reads(&req, KEY);
        assert_eq!(verified, Ok(()));
        for (k, v) in params {
            assert_eq!(read.get(k), Some(v), "{k}");
        }
        assert_eq!(
            service_reads(&req, "another-key").1,
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn the_time_stamp_is_17_digits_utc() {
        let at = Utc
            .with_ymd_and_hms(2023, 3, 27, 6, 52, 33)
            .unwrap()
            .checked_add_signed(chrono::Duration::milliseconds(980))
            .unwrap();
        assert_eq!(time_stamp(at), TS);
        assert_eq!(time_stamp(Utc::now()).len(), 17);
    }

    #[test]
    fn existing_query_is_kept() {
        let base = Url::parse("https://vendor.example/saas/produce?stage=blue").unwrap();
        let req = sign_v1_request(&base, KEY, &[("activity", "queryInstance")], TS).unwrap();
        let names: Vec<String> = req.url.query_pairs().map(|(k, _)| k.into_owned()).collect();
        assert_eq!(names, ["stage", "activity", TIME_STAMP, AUTH_TOKEN]);
        assert_eq!(req.url.path(), "/saas/produce");
    }

    #[test]
    fn bad_parameters_are_refused() {
        for params in [
            vec![("instanceId", "x")],
            vec![("activity", " ")],
            vec![("activity", "queryInstance"), (TIME_STAMP, TS)],
            vec![("activity", "queryInstance"), (AUTH_TOKEN, "t")],
        ] {
            let err = sign_v1_request(&url(), KEY, &params, TS).unwrap_err();
            assert!(matches!(err, SimError::InvalidBody(_)), "{params:?}: {err}");
        }
    }

    #[test]
    fn a_body_becomes_v1_parameters() {
        let body = json!({"activity":"upgrade","instanceId":"i-1","amount":5,"testFlag":"1",
                          "gone":null,"nested":{"a":1}});
        assert_eq!(
            params_of_body(&body).unwrap(),
            [
                ("activity", "upgrade"),
                ("instanceId", "i-1"),
                ("amount", "5"),
                ("testFlag", "1"),
                ("nested", r#"{"a":1}"#),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert!(params_of_body(&json!([1])).is_err());
    }

    #[test]
    fn options_hide_the_key() {
        let opts = V1CallOptions {
            at: None,
            key: Some("secret-key".into()),
        };
        assert!(!format!("{opts:?}").contains("secret-key"));
    }
}
