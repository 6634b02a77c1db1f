//! Signed AWS API calls for the services a function calls one or two operations of, without that
//! service's SDK crate: Lambda's `Invoke` (the edge, [`crate::dispatch`]) and KMS's
//! `GenerateDataKey` and `Decrypt` ([`crate::kms`]).
//!
//! Why not the SDK crates: `aws-sdk-lambda` and `aws-sdk-kms` were the two slowest units of the
//! Lambda build (each carries every operation of its service), and every callback function linked
//! KMS's client. What they did for these three operations is small and kept here: Signature
//! Version 4 by `aws-sigv4` (the SDK's own signer), credentials and region from the deployment's
//! [`SdkConfig`] (cached until five minutes before they expire, as the SDK's identity cache does),
//! the endpoint from `AWS_ENDPOINT_URL` or the service's regional name, the same HTTPS client as
//! the SDK's clients ([`AwsHttp`]), a timeout per attempt, and the SDK's standard retry of transient failures (3 attempts; connection failures,
//! throttling and 5xx answers) with [`Backoff`]'s jitter.

use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::{
    Credentials,
    provider::{ProvideCredentials, SharedCredentialsProvider},
};
use aws_sigv4::{
    http_request::{SignableBody, SignableRequest, SigningSettings, sign},
    sign::v4,
};
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, header::CONTENT_TYPE};
use http_body_util::BodyExt;
use koogallery::{
    failure::Detail,
    retry::{Backoff, Jitter},
};

use crate::http::{AwsHttp, CONNECT_TIMEOUT, HttpError};

/// An AWS service called through [`SignedClient`]: its signing name, which is also the first label
/// of its regional endpoint (`kms.eu-west-1.amazonaws.com`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Lambda,
    Kms,
}

impl Service {
    pub fn signing_name(self) -> &'static str {
        match self {
            Service::Lambda => "lambda",
            Service::Kms => "kms",
        }
    }
}

/// Attempts per call (the SDK's standard retry mode).
const ATTEMPTS: u32 = 3;
/// Between attempts: short, since the edge answers KooGallery within its deadline.
const RETRY_BACKOFF: Backoff = Backoff {
    first: Duration::from_millis(100),
    max: Duration::from_secs(1),
    jitter: Jitter::Equal,
};
/// Credentials closer than this to their expiry are fetched again.
const CREDENTIALS_MARGIN: Duration = Duration::from_secs(300);
/// Each attempt's limit when the caller gives none: above Lambda's 5 s callback budget, so a
/// callback function's answer is never cut short by this client.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

/// A call failed.
#[derive(Debug, thiserror::Error)]
pub enum SignedError {
    /// No region, credentials or endpoint to call with: a deployment fault.
    #[error("{0}")]
    Config(Detail),
    /// The request could not be sent or its answer not read (connection, TLS, timeout), or the
    /// credentials could not be fetched.
    #[error("{0}")]
    Transport(Detail),
    /// The service answered with an error.
    #[error("{service} answered HTTP {status} {code}: {message}")]
    Service {
        service: &'static str,
        status: u16,
        /// The error's type, e.g. `InvalidCiphertextException` (its namespace removed).
        code: String,
        message: String,
    },
}

impl SignedError {
    /// Worth another attempt: a transport failure, throttling or a server error.
    pub fn is_retryable(&self) -> bool {
        match self {
            SignedError::Config(_) => false,
            SignedError::Transport(_) => true,
            SignedError::Service { status, code, .. } => {
                *status >= 500
                    || *status == 429
                    || code.contains("Throttl")
                    || code.contains("TooManyRequests")
            }
        }
    }

    /// The service's error type, when the service answered one.
    pub fn code(&self) -> Option<&str> {
        match self {
            SignedError::Service { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// One operation's request: a `POST` of `body` to `path` with these extra headers.
pub struct Call<'a> {
    pub path: &'a str,
    pub content_type: &'static str,
    pub headers: &'a [(&'static str, &'a str)],
    pub body: Bytes,
    /// The limit of each attempt.
    pub timeout: Duration,
}

/// A successful (2xx) answer. Its body may hold a plaintext data key: `Debug` prints its length
/// only.
pub struct Answer {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer")
            .field("headers", &self.headers)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

/// A signing client of one AWS service, built once per execution environment.
pub struct SignedClient {
    service: Service,
    region: String,
    /// Scheme and authority, no trailing slash.
    endpoint: String,
    credentials: SharedCredentialsProvider,
    cached: tokio::sync::Mutex<Option<Credentials>>,
    http: AwsHttp,
}

impl std::fmt::Debug for SignedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedClient")
            .field("service", &self.service)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// The service's regional endpoint: `https://{service}.{region}.amazonaws.com`, `.com.cn` in the
/// China regions.
pub fn regional_endpoint(service: Service, region: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://{}.{region}.{suffix}", service.signing_name())
}

impl SignedClient {
    /// The client of `service` with `sdk`'s region and credentials, at `AWS_ENDPOINT_URL` when
    /// `sdk` has one (the emulator) and at the regional endpoint otherwise, over `http` (the
    /// client `sdk` was built with, so that both share one connection pool).
    pub fn new(sdk: &SdkConfig, http: &AwsHttp, service: Service) -> Result<Self, SignedError> {
        let region = sdk
            .region()
            .map(|r| r.as_ref().to_owned())
            .ok_or_else(|| SignedError::Config("no AWS region (AWS_REGION) is set".into()))?;
        let credentials = sdk
            .credentials_provider()
            .ok_or_else(|| SignedError::Config("no AWS credentials provider".into()))?;
        let endpoint = match sdk.endpoint_url() {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => regional_endpoint(service, &region),
        };
        Ok(Self {
            service,
            region,
            endpoint,
            credentials,
            cached: tokio::sync::Mutex::new(None),
            http: http.clone(),
        })
    }

    /// Sends `call`, retrying transient failures; a non-2xx answer is [`SignedError::Service`].
    pub async fn call(&self, call: &Call<'_>) -> Result<Answer, SignedError> {
        let mut attempt = 1;
        loop {
            match self.attempt(call).await {
                Err(e) if e.is_retryable() && attempt < ATTEMPTS => {
                    tracing::debug!(service = self.service.signing_name(), attempt, error = %e, "AWS call retried");
                    tokio::time::sleep(RETRY_BACKOFF.delay(attempt)).await;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn attempt(&self, call: &Call<'_>) -> Result<Answer, SignedError> {
        let request = self.signed_request(call).await?;
        let service = self.service.signing_name();
        // The whole exchange, head and body, within the attempt's limit.
        let exchange = async {
            let response = self
                .http
                .send(request, Some(CONNECT_TIMEOUT), None)
                .await
                .map_err(|e| match e {
                    HttpError::Tls(_) => SignedError::Config(Detail::caused_by("HTTPS", e)),
                    e => SignedError::Transport(Detail::caused_by(
                        format!("{service} request failed"),
                        e,
                    )),
                })?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| {
                    SignedError::Transport(Detail::caused_by(
                        format!("{service} answer unreadable"),
                        e,
                    ))
                })?
                .to_bytes();
            Ok::<_, SignedError>((parts, body))
        };
        let (parts, body) = tokio::time::timeout(call.timeout, exchange)
            .await
            .map_err(|_| {
                SignedError::Transport(
                    format!("{service} did not answer within {:?}", call.timeout).into(),
                )
            })??;
        if parts.status.is_success() {
            Ok(Answer {
                headers: parts.headers,
                body,
            })
        } else {
            let (code, message) = service_error(&parts.headers, &body);
            Err(SignedError::Service {
                service,
                status: parts.status.as_u16(),
                code,
                message,
            })
        }
    }

    async fn signed_request(&self, call: &Call<'_>) -> Result<Request<SdkBody>, SignedError> {
        let credentials = self.credentials().await?;
        let uri = format!("{}{}", self.endpoint, call.path);
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(&uri)
            .header(CONTENT_TYPE, call.content_type);
        for (name, value) in call.headers {
            request = request.header(*name, *value);
        }
        let mut request = request
            .body(SdkBody::from(call.body.clone()))
            .map_err(|e| SignedError::Config(Detail::caused_by("request not buildable", e)))?;
        let identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(self.service.signing_name())
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| SignedError::Config(Detail::caused_by("signing parameters", e)))?
            .into();
        let headers = request
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap_or_default()));
        let signable = SignableRequest::new("POST", &uri, headers, SignableBody::Bytes(&call.body))
            .map_err(|e| SignedError::Config(Detail::caused_by("request not signable", e)))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| SignedError::Config(Detail::caused_by("signing failed", e)))?
            .into_parts();
        instructions.apply_to_request_http1x(&mut request);
        Ok(request)
    }

    async fn credentials(&self) -> Result<Credentials, SignedError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref().filter(|c| {
            c.expiry()
                .is_none_or(|at| at > SystemTime::now() + CREDENTIALS_MARGIN)
        }) {
            return Ok(c.clone());
        }
        let fresh = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| SignedError::Transport(Detail::caused_by("AWS credentials", e)))?;
        *cached = Some(fresh.clone());
        Ok(fresh)
    }
}

/// The error's type and message from an AWS JSON error answer: the type from `x-amzn-ErrorType`
/// (before any `:`) or the body's `__type`/`code` (after any `#`), the message from the body's
/// `message`/`Message`.
pub(crate) fn service_error(headers: &HeaderMap, body: &[u8]) -> (String, String) {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let field = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| json.get(n).and_then(serde_json::Value::as_str))
            .map(str::to_owned)
    };
    // Either source may carry a namespace (`aws.protocols#`) or a URI suffix (`:http://…`): the
    // type is what lies between.
    let code = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| field(&["__type", "code", "Code"]))
        .map(|c| {
            let c = c.split(':').next().unwrap_or(&c);
            c.rsplit('#').next().unwrap_or(c).to_owned()
        })
        .unwrap_or_else(|| "UnknownError".to_owned());
    let message = field(&["message", "Message"]).unwrap_or_default();
    (code, message)
}

/// A header's value as text, when present and readable.
pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v: &HeaderValue| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regional_endpoints_follow_the_partition() {
        assert_eq!(
            regional_endpoint(Service::Kms, "eu-west-1"),
            "https://kms.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            regional_endpoint(Service::Lambda, "cn-north-1"),
            "https://lambda.cn-north-1.amazonaws.com.cn"
        );
    }

    #[test]
    fn service_errors_name_their_type_without_namespace() {
        let mut headers = HeaderMap::new();
        let body = br#"{"__type":"com.amazonaws.kms#InvalidCiphertextException","message":"bad"}"#;
        assert_eq!(
            service_error(&headers, body),
            ("InvalidCiphertextException".into(), "bad".into())
        );
        assert_eq!(
            service_error(
                &headers,
                br#"{"__type":"aws.protocols#ThrottlingException:http://x/"}"#
            )
            .0,
            "ThrottlingException"
        );
        headers.insert(
            "x-amzn-ErrorType",
            HeaderValue::from_static("TooManyRequestsException:http://internal.amazon.com/"),
        );
        assert_eq!(
            service_error(&headers, br#"{"Type":"User","message":"Rate exceeded"}"#),
            ("TooManyRequestsException".into(), "Rate exceeded".into())
        );
        assert_eq!(
            service_error(&HeaderMap::new(), b"<html>"),
            ("UnknownError".into(), String::new())
        );
    }

    #[test]
    fn only_transient_failures_are_retried() {
        let service = |status, code: &str| SignedError::Service {
            service: "kms",
            status,
            code: code.into(),
            message: String::new(),
        };
        assert!(service(500, "KMSInternalException").is_retryable());
        assert!(service(429, "TooManyRequestsException").is_retryable());
        assert!(service(400, "ThrottlingException").is_retryable());
        assert!(!service(400, "InvalidCiphertextException").is_retryable());
        assert!(!service(404, "ResourceNotFoundException").is_retryable());
        assert!(SignedError::Transport("reset".into()).is_retryable());
        assert!(!SignedError::Config("no region".into()).is_retryable());
    }
}
