//! The usage push (docs/protocol/openapi.md §3, docs/protocol/decisions.md §8) as a [`UsageSink`]:
//! each attempt signs the exact body bytes with the seller's interconnection key (fresh `ts` and
//! `nonce`) and the request with the AK/SK (fresh `X-Sdk-Date`), on the primary host, then the
//! fallback.

use std::sync::Arc;

use async_trait::async_trait;
use koogallery::{
    metering::{PushAnswer, PushError, UsageSink, push::PushRecord},
    protocol::openapi::{
        MKT_SUCCESS, is_retryable_code, is_retryable_gateway_code,
        usage::{self, UsagePushData},
    },
    security::{
        SecretKey,
        usage_push::{HEADER_NONCE, HEADER_SIGNATURE, HEADER_TS, sign_attempt},
    },
};

use crate::OpenApiClient;

/// Pushes usage records through the open API client.
pub struct UsagePushClient {
    pub api: Arc<OpenApiClient>,
    /// The interconnection key (商家对接密钥): the basic interfaces' access key.
    pub key: SecretKey,
}

/// The wire record of a domain record.
pub fn wire(r: &PushRecord) -> UsagePushData {
    UsagePushData {
        begin_time: r.begin.format(usage::TIME_FORMAT).to_string(),
        end_time: r.end.format(usage::TIME_FORMAT).to_string(),
        instance_id: r.instance_id.clone(),
        metering_sn: r.metering_sn.clone(),
        record_time: r.record_time.format(usage::TIME_FORMAT).to_string(),
        relate_pkg_instance: r.package.clone(),
        usage_value: r.value.normalize().to_string(),
    }
}

/// What an answer means for the pusher (docs/protocol/openapi.md §3, §8).
pub fn classify(status: u16, body: &[u8]) -> Result<PushAnswer, PushError> {
    // Some gateways answer in the query-order envelope; read either, from one parse.
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let text = |primary: &str, other: &str| {
        value[primary]
            .as_str()
            .or_else(|| value[other].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let (code, message) = (
        text("error_code", "resultCode"),
        text("error_msg", "resultMsg"),
    );
    let detail = format!("HTTP {status} {code} {message}").trim().to_owned();
    let code = code.trim();
    if code == MKT_SUCCESS && (200..300).contains(&status) {
        Ok(PushAnswer::Accepted)
    } else if usage::is_content_refusal(code) {
        Ok(PushAnswer::Refused {
            code: code.to_owned(),
            message: message.trim().to_owned(),
        })
    } else if usage::is_credentials_refusal(code)
        || (code.starts_with("APIG") && !is_retryable_gateway_code(code))
        || (code.is_empty() && matches!(status, 401 | 403))
    {
        Err(PushError::Misconfigured(detail))
    } else if is_retryable_code(code) || code.starts_with("APIG") || code.is_empty() {
        Err(PushError::Unavailable(detail))
    } else {
        // A code this release does not know: retried (and counted) rather than dropping a
        // customer's usage on a guess.
        Err(PushError::Unavailable(format!("unknown answer: {detail}")))
    }
}

#[async_trait]
impl UsageSink for UsagePushClient {
    async fn push(&self, records: &[PushRecord]) -> Result<PushAnswer, PushError> {
        let wire: Vec<UsagePushData> = records.iter().map(wire).collect();
        let body = usage::body(&wire);
        let key = self.key.expose();
        let fresh = || {
            let s = sign_attempt(key, &body, chrono::Utc::now());
            vec![
                (HEADER_TS, s.ts),
                (HEADER_NONCE, s.nonce),
                (HEADER_SIGNATURE, s.signature),
            ]
        };
        let (status, answer) = self
            .api
            .send(
                crate::Logged {
                    activity: "usagePush",
                    masked: &[],
                },
                reqwest::Method::POST,
                usage::PATH,
                "",
                &body,
                fresh,
            )
            .await
            .map_err(PushError::Unavailable)?;
        let result = classify(status, &answer);
        if let Err(PushError::Misconfigured(why)) = &result {
            tracing::error!(
                why,
                "KooGallery refused the usage push's credentials; fix KOOGALLERY_AK/KOOGALLERY_SK or the access key"
            );
        }
        result
    }
}
