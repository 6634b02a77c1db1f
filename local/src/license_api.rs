//! The license service's routes for the vendor's software (`koogallery::license::api`):
//! `POST /license/activate`, `POST /license/check`, `GET /license/keys`; the vendor's back end's
//! `POST /license/upload` (`koogallery::license::upload`, docs/protocol/openapi.md §4); and the
//! daily usage statistics pass the local host runs on a timer.

use std::sync::Arc;

use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State, rejection::BytesRejection},
    response::Response,
    routing::{get, post},
};
use koogallery::{
    config::{ConfigError, Env, catalog},
    license::{
        LicenseMarketplace,
        api::{HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP, LicenseApi, MAX_BODY, Route},
        service::TokenKeys,
        upload::{MAX_UPLOAD_BODY, UploadApi},
    },
};

use crate::{LocalSettings, StartError, json_answer};

/// The token keys: `KOOGALLERY_LICENSE_SIGNING_KEY` (and `…_PREVIOUS`), or else
/// `license-signing.key` in the data directory, generated on first start, owner-only. Back it up
/// with the store: the vendor's software holds its public half.
pub fn local_token_keys(settings: &LocalSettings) -> Result<Arc<TokenKeys>, StartError> {
    let env = Env::process();
    let invalid =
        |name: &'static str| move |e: String| StartError::Config(ConfigError::invalid(name, e));
    let current = match env.get(&catalog::LICENSE_SIGNING_KEY) {
        Some(text) => TokenKeys::secret_from_base64(&text)
            .map_err(invalid(catalog::LICENSE_SIGNING_KEY.name))?,
        None => TokenKeys::secret_from_key_file(
            &crate::keys::data_dir(settings)?.join("license-signing.key"),
        )
        .map_err(invalid(catalog::LICENSE_SIGNING_KEY.name))?,
    };
    let previous = env
        .get(&catalog::LICENSE_SIGNING_KEY_PREVIOUS)
        .map(|t| TokenKeys::secret_from_base64(&t))
        .transpose()
        .map_err(invalid(catalog::LICENSE_SIGNING_KEY_PREVIOUS.name))?;
    Ok(Arc::new(TokenKeys::from_secrets(current, previous)))
}

/// The state of the `/license/*` routes: the software's routes and the vendor's upload.
#[derive(Clone)]
pub struct LicenseRoutes {
    pub api: Arc<LicenseApi>,
    pub upload: Arc<UploadApi>,
}

pub fn license_router(routes: Option<LicenseRoutes>) -> Router {
    let (api, upload) = routes.map(|r| (r.api, r.upload)).unzip();
    // Two routers, so each body limit fits its route: a code and a client ID for the software's,
    // a file for the upload.
    let software = Router::new()
        .route("/license/activate", post(activate))
        .route("/license/check", post(check))
        .route("/license/keys", get(keys))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(api);
    let vendor = Router::new()
        .route("/license/upload", post(upload_route))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BODY))
        .with_state(upload);
    software.merge(vendor)
}

/// `POST /license/upload`, signed with the usage key (`x-usage-*`).
async fn upload_route(
    State(upload): State<Option<Arc<UploadApi>>>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    use koogallery::metering::api::{HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP};
    let Some(upload) = upload else {
        return not_served();
    };
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            return json_answer(
                e.status().as_u16(),
                serde_json::json!({"error": "invalid_request",
                    "message": format!("request body rejected: {e}"), "retryable": false}),
            );
        }
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (status, answer) = upload
        .handle(
            [
                header(HEADER_TIMESTAMP),
                header(HEADER_NONCE),
                header(HEADER_SIGNATURE),
            ],
            &body,
        )
        .await;
    json_answer(status, answer)
}

fn not_served() -> Response {
    json_answer(
        404,
        serde_json::json!({"error": "not_served", "message": "licenses are not served by this host"}),
    )
}

async fn serve(
    api: Option<Arc<LicenseApi>>,
    route: Route,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    let Some(api) = api else {
        return not_served();
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (status, answer) = api
        .handle(
            route,
            [
                header(HEADER_TIMESTAMP),
                header(HEADER_NONCE),
                header(HEADER_SIGNATURE),
            ],
            &body,
        )
        .await;
    json_answer(status, answer)
}

async fn activate(
    State(api): State<Option<Arc<LicenseApi>>>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    serve(api, Route::Activate, headers, body).await
}

async fn check(
    State(api): State<Option<Arc<LicenseApi>>>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    serve(api, Route::Check, headers, body).await
}

async fn keys(State(api): State<Option<Arc<LicenseApi>>>) -> Response {
    match api {
        Some(api) => json_answer(200, api.keys()),
        None => not_served(),
    }
}

/// The license service over `licenses` on either backend: KooGallery's License API with the
/// configured AK/SK (or [`UnconfiguredLicenseApi`]), the token keys, the replay guard and the jobs
/// queue of the callbacks; and the upload route over the same License API, authenticated with the
/// usage key.
pub fn license_api(
    config: &koogallery::config::Config,
    settings: &LocalSettings,
    licenses: Arc<dyn koogallery::license::LicenseStore>,
    nonces: Arc<dyn koogallery::security::replay::NonceStore>,
    jobs: Arc<dyn koogallery::jobs::JobQueue>,
    clock: Arc<dyn koogallery::clock::Clock>,
    exchanges: &koogallery::exchange::ExchangeRecorder,
) -> Result<(LicenseRoutes, Arc<dyn LicenseMarketplace>), StartError> {
    let marketplace = koogallery_openapi::license_marketplace(
        &config.settings.marketplace,
        config.secrets.open_api.as_ref(),
        exchanges,
    )?;
    let service = koogallery::license::service::LicenseService::new(
        licenses,
        marketplace.clone(),
        jobs,
        local_token_keys(settings)?,
        clock.clone(),
        config.settings.license_offline,
    )
    .with_metrics(crate::local_metrics());
    let upload = UploadApi {
        marketplace: marketplace.clone(),
        key: config.secrets.usage.clone(),
        nonces: nonces.clone(),
        clock,
    };
    let api = LicenseApi {
        service: Arc::new(service),
        client_key: config.secrets.license_client.clone(),
        nonces,
    };
    let routes = LicenseRoutes {
        api: Arc::new(api),
        upload: Arc::new(upload),
    };
    Ok((routes, marketplace))
}

/// The local stand-in for the daily schedule of the usage statistics
/// (docs/protocol/openapi.md §5.3): a pass every hour reports each finished day once.
pub(crate) async fn report_usage_every(
    licenses: Arc<dyn koogallery::license::LicenseStore>,
    marketplace: Arc<dyn LicenseMarketplace>,
    clock: Arc<dyn koogallery::clock::Clock>,
    metrics: Arc<dyn koogallery::metrics::Metrics>,
    stopped: tokio::sync::watch::Receiver<bool>,
) {
    let (licenses, marketplace, clock, metrics) = (&licenses, &marketplace, &clock, &metrics);
    crate::schedule::every(
        std::time::Duration::from_secs(3600),
        stopped,
        move || async move {
            // Logged and counted inside; the next pass retries whatever this one left.
            let _ = koogallery::license::service::usage_pass(
                licenses.as_ref(),
                marketplace.as_ref(),
                clock.now(),
                metrics.as_ref(),
            )
            .await;
        },
    )
    .await
}
