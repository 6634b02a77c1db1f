//! The edge's [`Dispatcher`] on AWS: each verified request is a synchronous (`RequestResponse`)
//! invocation of the function that serves its `activity`; the function's answer is the callback's
//! [`Reply`]. Any failure on the way (SDK error, function error, unparsable answer) answers
//! `000005` "temporary internal error; please retry" and logs the cause — never the request body,
//! which may carry credentials. The invocation is Lambda's `Invoke` through [`SignedClient`], not
//! the Lambda SDK crate ([`crate::signed`] says why).

use std::collections::HashMap;

use async_trait::async_trait;
use bytes::Bytes;
use koogallery::{
    ResultCode,
    callbacks::{Dispatcher, REGISTRY, Registration, registry::invocation},
    protocol::Reply,
    security::KeyUsed,
};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use crate::signed::{Call, DEFAULT_ATTEMPT_TIMEOUT, SignedClient, SignedError, header};

/// The dispatcher's configuration is incomplete.
#[derive(Debug, thiserror::Error)]
#[error("callback functions not configured: {} not set", .missing.join(", "))]
pub struct DispatcherConfigError {
    /// The unset environment variables.
    pub missing: Vec<String>,
}

/// Dispatches each activity to its own Lambda function.
#[derive(Debug)]
pub struct LambdaDispatcher {
    client: SignedClient,
    functions: HashMap<&'static str, String>,
}

/// How much of a function's error message goes into the log.
const MAX_LOGGED_ERROR: usize = 500;

fn retry_later() -> Reply {
    Reply::new(
        ResultCode::InternalError,
        "temporary internal error; please retry",
    )
}

/// The callback's answer from an invocation's payload. The error names the JSON problem only:
/// a reply may hold encrypted credentials.
pub(crate) fn parse_reply(payload: &[u8]) -> Result<Reply, String> {
    serde_json::from_slice(payload).map_err(|e| {
        format!(
            "answer is not a reply ({:?} error at line {}, column {}, {} bytes)",
            e.classify(),
            e.line(),
            e.column(),
            payload.len()
        )
    })
}

/// `errorType: errorMessage` of a function error payload (the runtime's error object), shortened.
pub(crate) fn describe_function_error(payload: &[u8]) -> String {
    let v: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
    let kind = v.get("errorType").and_then(Value::as_str).unwrap_or("?");
    let message = v.get("errorMessage").and_then(Value::as_str).unwrap_or("");
    let mut out = format!("{kind}: {message}");
    if out.chars().count() > MAX_LOGGED_ERROR {
        out = out.chars().take(MAX_LOGGED_ERROR).collect::<String>() + "…";
    }
    out
}

impl LambdaDispatcher {
    /// `functions` maps each registered callback's `function` to its Lambda function's name.
    pub fn new(client: SignedClient, functions: HashMap<&'static str, String>) -> Self {
        Self { client, functions }
    }

    /// Function names as `lookup` gives `KOOGALLERY_FN_NEW_INSTANCE`, `KOOGALLERY_FN_QUERY_INSTANCE`,
    /// … (one per registered callback, [`Registration::function_env_var`]; the edge's environment
    /// on Lambda); the error lists every unset one.
    pub fn from_lookup(
        client: SignedClient,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, DispatcherConfigError> {
        let mut functions = HashMap::new();
        let mut missing = Vec::new();
        for callback in &REGISTRY {
            let var = callback.function_env_var();
            match lookup(&var).filter(|v| !v.trim().is_empty()) {
                Some(name) => {
                    functions.insert(callback.function, name.trim().to_owned());
                }
                None => missing.push(var),
            }
        }
        if missing.is_empty() {
            Ok(Self::new(client, functions))
        } else {
            Err(DispatcherConfigError { missing })
        }
    }

    /// The Lambda function serving `callback`, if configured.
    pub fn function(&self, callback: &Registration) -> Option<&str> {
        self.functions.get(callback.function).map(String::as_str)
    }
}

/// The header of an invocation whose function failed (`Unhandled`, or `Handled` for an error the
/// runtime reported); the payload is then the error object.
const FUNCTION_ERROR: &str = "x-amz-function-error";

/// What a function name may hold unescaped in Invoke's path: a name, an ARN (`:`) or a qualified
/// name are all escaped but for these.
const NAME_IN_PATH: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

/// Invoke's path for `function` (its name, partial or full ARN).
pub(crate) fn invoke_path(function: &str) -> String {
    format!(
        "/2015-03-31/functions/{}/invocations",
        utf8_percent_encode(function, NAME_IN_PATH)
    )
}

impl LambdaDispatcher {
    /// A synchronous invocation of `function` with `payload`. A transport failure or a 5xx is
    /// retried even if the request may have reached the function, as the SDK retries Invoke: every
    /// callback is idempotent (KooGallery itself resends each call until it has an answer).
    async fn invoke(
        &self,
        function: &str,
        payload: Vec<u8>,
    ) -> Result<crate::signed::Answer, SignedError> {
        self.client
            .call(&Call {
                path: &invoke_path(function),
                content_type: "application/json",
                headers: &[("x-amz-invocation-type", "RequestResponse")],
                body: Bytes::from(payload),
                timeout: DEFAULT_ATTEMPT_TIMEOUT,
            })
            .await
    }
}

#[async_trait]
impl Dispatcher for LambdaDispatcher {
    async fn dispatch(&self, callback: &'static Registration, body: &Value, key: KeyUsed) -> Reply {
        let activity = callback.route.name();
        let Some(function) = self.function(callback) else {
            tracing::error!(%activity, "no function configured for this activity");
            return retry_later();
        };
        let payload = match serde_json::to_vec(&invocation(body, key)) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(%activity, error = %e, "cannot encode the request for the callback");
                return retry_later();
            }
        };
        let out = match self.invoke(function, payload).await {
            Ok(out) => out,
            Err(e) => {
                tracing::error!(%activity, function, error = %e, "callback invocation failed");
                return retry_later();
            }
        };
        let answer = out.body.as_ref();
        if let Some(kind) = header(&out.headers, FUNCTION_ERROR) {
            tracing::error!(
                %activity,
                function,
                function_error = kind,
                cause = %describe_function_error(answer),
                "callback function failed"
            );
            return retry_later();
        }
        match parse_reply(answer) {
            Ok(reply) => reply,
            Err(cause) => {
                tracing::error!(%activity, function, %cause, "callback answer unusable");
                retry_later()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signed::Service;

    fn offline_client() -> SignedClient {
        let sdk = aws_config::SdkConfig::builder()
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(
                    aws_credential_types::Credentials::for_tests(),
                ),
            )
            .build();
        SignedClient::new(
            &sdk,
            &crate::AwsHttp::new(crate::Roots::System),
            Service::Lambda,
        )
        .unwrap()
    }

    #[test]
    fn invoke_paths_escape_arns_and_qualifiers() {
        assert_eq!(
            invoke_path("kg-new-instance"),
            "/2015-03-31/functions/kg-new-instance/invocations"
        );
        assert_eq!(
            invoke_path("arn:aws:lambda:eu-west-1:123456789012:function:kg_x:live"),
            "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aeu-west-1%3A123456789012%3Afunction%3Akg_x%3Alive/invocations"
        );
    }

    #[test]
    fn from_lookup_reads_every_callback_and_names_the_missing_ones() {
        let all: HashMap<String, String> = REGISTRY
            .iter()
            .map(|r| (r.function_env_var(), format!("fn-{}", r.function)))
            .collect();
        let d = LambdaDispatcher::from_lookup(offline_client(), |k| all.get(k).cloned()).unwrap();
        let by = |a: &str| koogallery::callbacks::registry::by_activity(a).unwrap();
        assert_eq!(d.function(by("newInstance")), Some("fn-new-instance"));
        assert_eq!(
            d.function(by("changeInstanceCheck")),
            Some("fn-change-instance-check")
        );

        let partial = |k: &str| {
            (k != "KOOGALLERY_FN_QUERY_INSTANCE" && k != "KOOGALLERY_FN_UPGRADE_INSTANCE")
                .then(|| all.get(k).cloned())
                .flatten()
        };
        let err = LambdaDispatcher::from_lookup(offline_client(), partial).unwrap_err();
        assert_eq!(
            err.missing,
            [
                "KOOGALLERY_FN_QUERY_INSTANCE",
                "KOOGALLERY_FN_UPGRADE_INSTANCE"
            ]
        );
        assert_eq!(
            err.to_string(),
            "callback functions not configured: KOOGALLERY_FN_QUERY_INSTANCE, KOOGALLERY_FN_UPGRADE_INSTANCE not set"
        );
        assert!(LambdaDispatcher::from_lookup(offline_client(), |_| Some(" ".into())).is_err());
    }

    #[test]
    fn env_var_names_are_distinct() {
        let names: std::collections::HashSet<_> = REGISTRY
            .iter()
            .map(Registration::function_env_var)
            .collect();
        assert_eq!(names.len(), REGISTRY.len());
    }

    #[test]
    fn replies_parse_and_failures_do_not_echo_content() {
        let reply =
            parse_reply(br#"{"resultCode":"000000","resultMsg":"success.","instanceId":"i-1"}"#)
                .unwrap();
        assert_eq!(reply.result_code, ResultCode::Success);
        assert_eq!(reply.field::<String>("instanceId").as_deref(), Some("i-1"));
        let err = parse_reply(br#"{"resultCode":"secret-ish"}"#).unwrap_err();
        assert!(!err.contains("secret-ish"), "{err}");
        assert!(parse_reply(b"").is_err());
        assert!(parse_reply(b"null").is_err());
    }

    #[test]
    fn function_errors_are_summarised() {
        assert_eq!(
            describe_function_error(br#"{"errorType":"Panic","errorMessage":"boom"}"#),
            "Panic: boom"
        );
        assert_eq!(describe_function_error(b"garbage"), "?: ");
        let long = format!(
            r#"{{"errorType":"E","errorMessage":"{}"}}"#,
            "x".repeat(2000)
        );
        assert!(describe_function_error(long.as_bytes()).chars().count() <= MAX_LOGGED_ERROR + 1);
    }

    #[test]
    fn retry_reply_is_the_internal_error() {
        let r = retry_later();
        assert_eq!(r.result_code, ResultCode::InternalError);
        assert_eq!(r.result_msg, "temporary internal error; please retry");
    }
}
