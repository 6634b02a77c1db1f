//! Usage ingestion on AWS Lambda: API Gateway's `POST /usage` (HTTP API, payload 2.0),
//! where the vendor's application reports usage signed with the usage key, and its read-only
//! `GET /usage/estimate` (bill estimates, `koogallery::metering::estimate`). The logic is
//! [`UsageIngestion`] (`koogallery::metering::api`), the same as the local host's: the signature,
//! the nonce on the DynamoDB replay guard, then the all-or-nothing batch. Every answer is JSON
//! with its status; nothing here answers a bare 500.

use std::sync::Arc;

use koogallery::config::SecretPart;
use koogallery::metering::{
    UsageStore,
    api::{HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP, UsageIngestion},
    estimate::UsageEstimates,
};
use koogallery_lambda::{Deployment, Error, Load};
use lambda_http::{
    Body, Request, Response,
    http::{HeaderValue, StatusCode, header::CONTENT_TYPE},
};
use serde_json::{Value, json};

/// What the function loads: the usage key, from its own secret (this function faces the
/// internet: it holds no other key), and the jobs queue (a used-up package's `quotaExhausted`).
pub const LOAD: Load = Load {
    secrets: &[SecretPart::Usage],
    queue: true,
    sealer: false,
};

/// The largest body taken, as on the local host: 1000 reports of a few hundred bytes each.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The ingestion service over the deployment: the usage key from the usage key secret
/// (`usageKey`), nonces and instances on the table, the jobs queue, the package quotas from the settings.
pub fn ingestion(
    deployment: &Deployment,
    usage: Arc<dyn UsageStore>,
) -> Result<UsageIngestion, Error> {
    let secrets = &deployment.secrets;
    if secrets.usage.is_none() {
        tracing::warn!(
            "the usage key secret (KOOGALLERY_USAGE_KEY_SECRET_ID) has no usageKey: POST /usage answers 503 until it is written there"
        );
    }
    Ok(UsageIngestion {
        key: secrets.usage.clone(),
        nonces: deployment.store.clone(),
        instances: deployment.store.clone(),
        usage,
        jobs: deployment.job_queue()?,
        quotas: Arc::new(deployment.settings.metering.package_quotas.clone()),
        clock: deployment.clock.clone(),
    })
}

/// Serves API Gateway's `POST /usage` and `GET /usage/estimate`.
pub async fn run(deployment: Deployment, usage: Arc<dyn UsageStore>) -> Result<(), Error> {
    let ingestion = ingestion(&deployment, usage)?;
    let estimates = ingestion.estimates(deployment.settings.metering.pricing.clone());
    let (ingestion, estimates) = (&ingestion, &estimates);
    lambda_http::run(lambda_http::service_fn(move |req: Request| async move {
        Ok::<_, Error>(route(ingestion, estimates, req).await)
    }))
    .await
}

/// A GET is an estimate (the only GET route), anything else a batch.
pub async fn route(
    ingestion: &UsageIngestion,
    estimates: &UsageEstimates,
    req: Request,
) -> Response<Body> {
    if req.method() != lambda_http::http::Method::GET {
        return serve(ingestion, req).await;
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    // The raw query as sent: it is what the app signed.
    let query = req.uri().query().unwrap_or("");
    let (status, json) = estimates
        .handle(
            header(HEADER_TIMESTAMP),
            header(HEADER_NONCE),
            header(HEADER_SIGNATURE),
            query,
        )
        .await;
    answer(status, &json)
}

/// One request: its status and JSON answer (`{"applied":…,"duplicates":…}` or
/// `{"error":…,"retryable":…}`).
pub async fn serve(ingestion: &UsageIngestion, req: Request) -> Response<Body> {
    let body = req.body().as_ref();
    if body.len() > MAX_BODY_BYTES {
        return answer(
            413,
            &json!({
                "error": format!("the body is larger than {MAX_BODY_BYTES} bytes: send at most 1000 reports per batch"),
                "retryable": false,
            }),
        );
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let (status, json) = ingestion
        .handle(
            header(HEADER_TIMESTAMP),
            header(HEADER_NONCE),
            header(HEADER_SIGNATURE),
            body,
        )
        .await;
    if (400..500).contains(&status) {
        // The reason only (an index and a rule, or the header at fault); never a header's value.
        tracing::info!(status, error = %json["error"], "usage batch refused");
    }
    answer(status, &json)
}

fn answer(status: u16, json: &Value) -> Response<Body> {
    let mut response = Response::new(Body::from(json.to_string()));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests;
