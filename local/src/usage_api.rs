//! The vendor application's usage endpoints: `POST /usage` and `GET /usage/estimate`.

use std::sync::Arc;

use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, RawQuery, State, rejection::BytesRejection},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use koogallery::{
    clock::Clock,
    config::Config,
    instance::InstanceStore,
    jobs::JobQueue,
    metering::{UsageStore, api::UsageIngestion, estimate::UsageEstimates},
    security::replay::NonceStore,
};

/// Largest `POST /usage` body: 1000 reports of a few hundred bytes each.
pub(crate) const MAX_USAGE_BODY: usize = 1 << 20;

/// The vendor app's usage endpoints: `POST /usage` (ingestion, `koogallery::metering::api`) and
/// `GET /usage/estimate`.
#[derive(Clone)]
pub struct UsageApi {
    pub ingestion: Arc<UsageIngestion>,
    pub estimates: Arc<UsageEstimates>,
}

impl UsageApi {
    /// Both endpoints, for either backend: its store (replay guard and instances), its usage store
    /// and jobs queue, with the configured usage key, package quotas and prices.
    pub fn new<S>(
        config: &Config,
        store: Arc<S>,
        usage: Arc<dyn UsageStore>,
        jobs: Arc<dyn JobQueue>,
        clock: Arc<dyn Clock>,
    ) -> Self
    where
        S: NonceStore + InstanceStore + 'static,
    {
        let metering = &config.settings.metering;
        let ingestion = UsageIngestion {
            key: config.secrets.usage.clone(),
            nonces: store.clone(),
            instances: store,
            usage,
            jobs,
            quotas: Arc::new(metering.package_quotas.clone()),
            clock,
        };
        let estimates = ingestion.estimates(metering.pricing.clone());
        Self {
            ingestion: Arc::new(ingestion),
            estimates: Arc::new(estimates),
        }
    }
}

pub fn usage_router(usage: Option<UsageApi>) -> Router {
    Router::new()
        .route("/usage", post(ingest_usage))
        .route("/usage/estimate", get(estimate_usage))
        .layer(DefaultBodyLimit::max(MAX_USAGE_BODY))
        .with_state(usage)
}

pub(crate) fn json_answer(status: u16, body: serde_json::Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

pub(crate) fn not_served() -> Response {
    json_answer(
        404,
        serde_json::json!({"error": "usage is not served by this host", "retryable": false}),
    )
}

pub(crate) async fn estimate_usage(
    State(usage): State<Option<UsageApi>>,
    headers: axum::http::HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    use koogallery::metering::api::{HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP};
    let Some(usage) = usage else {
        return not_served();
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (status, answer) = usage
        .estimates
        .handle(
            header(HEADER_TIMESTAMP),
            header(HEADER_NONCE),
            header(HEADER_SIGNATURE),
            query.as_deref().unwrap_or(""),
        )
        .await;
    json_answer(status, answer)
}

pub(crate) async fn ingest_usage(
    State(usage): State<Option<UsageApi>>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    use koogallery::metering::api::{HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP};
    let json = json_answer;
    let Some(usage) = usage.map(|u| u.ingestion) else {
        return not_served();
    };
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            return json(
                400,
                serde_json::json!({"error": format!("request body rejected: {e}"), "retryable": false}),
            );
        }
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (status, answer) = usage
        .handle(
            header(HEADER_TIMESTAMP),
            header(HEADER_NONCE),
            header(HEADER_SIGNATURE),
            &body,
        )
        .await;
    json(status, answer)
}
