//! The license service on AWS Lambda (docs/protocol/openapi.md §4, §5): API Gateway's
//! `POST /license/activate`, `POST /license/check`, `GET /license/keys` (the vendor's software) and
//! `POST /license/upload` (the vendor's back end), HTTP API payload 2.0. The logic is
//! `koogallery::license::{api, upload, service}`, the same as the local host's; every answer is JSON
//! with its status.

use std::sync::Arc;

use koogallery::{
    config::SecretPart,
    license::{
        api::{HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP, LicenseApi, Route},
        service::{LicenseService, TokenKeys},
        upload::UploadApi,
    },
    metering::api as usage_api,
};
use koogallery_lambda::{Deployment, Error, Load};
use lambda_http::{
    Body, Request, Response,
    http::{HeaderValue, Method, StatusCode, header::CONTENT_TYPE},
};
use serde_json::{Value, json};

/// The license keys, the seller's AK/SK (KooGallery's License API) and the usage key (the upload
/// route); the jobs queue (the events an activation produces).
pub const LOAD: Load = Load {
    secrets: &[SecretPart::License, SecretPart::OpenApi, SecretPart::Usage],
    queue: true,
    sealer: false,
};

/// The routes' state.
pub struct Routes {
    pub api: LicenseApi,
    pub upload: UploadApi,
    /// Where the calls to KooGallery's License API are kept; written before each answer.
    pub exchanges: koogallery::exchange::ExchangeRecorder,
}

/// The service over the deployment: license codes and nonces on the table, KooGallery's License
/// API with the AK/SK (or, without one, an API that says so), the token keys from the license keys
/// secret (a deployment without a signing key refuses to start: no token could be verified).
pub fn routes(deployment: &Deployment) -> Result<Routes, Error> {
    let secrets = &deployment.secrets;
    let license = secrets
        .license
        .clone()
        .ok_or("the license keys secret (KOOGALLERY_LICENSE_SECRET_ID) has no licenseSigningKey")?;
    let secret = |k: &koogallery::security::SecretKey| {
        TokenKeys::secret_from_base64(k.expose()).map_err(|e| format!("licenseSigningKey: {e}"))
    };
    let keys = TokenKeys::from_secrets(
        secret(&license.signing)?,
        license.signing_previous.as_ref().map(secret).transpose()?,
    );
    let exchanges = deployment.exchange_recorder();
    let marketplace = koogallery_openapi::license_marketplace(
        &deployment.settings.marketplace,
        secrets.open_api.as_ref(),
        &exchanges,
    )?;
    let service = LicenseService::new(
        deployment.licenses(),
        marketplace.clone(),
        deployment.job_queue()?,
        Arc::new(keys),
        deployment.clock.clone(),
        deployment.settings.license_offline,
    )
    .with_metrics(Arc::new(koogallery::metrics::EmfStdout::from_env()));
    if license.client.is_none() {
        tracing::warn!(
            "the license keys secret has no licenseClientKey: /license/activate and /license/check answer 503 until it is written there"
        );
    }
    Ok(Routes {
        api: LicenseApi {
            service: Arc::new(service),
            client_key: license.client,
            nonces: deployment.store.clone(),
        },
        upload: UploadApi {
            marketplace,
            key: secrets.usage.clone(),
            nonces: deployment.store.clone(),
            clock: deployment.clock.clone(),
        },
        exchanges,
    })
}

pub async fn run(deployment: Deployment) -> Result<(), Error> {
    let routes = routes(&deployment)?;
    let routes = &routes;
    lambda_http::run(lambda_http::service_fn(move |req: Request| async move {
        let response = route(routes, req).await;
        koogallery_lambda::flush_exchanges(&routes.exchanges).await;
        Ok::<_, Error>(response)
    }))
    .await
}

/// One request, by method and path (any stage prefix).
pub async fn route(routes: &Routes, req: Request) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let body = req.body().as_ref();
    let (status, json) = match (req.method(), path.rsplit('/').next().unwrap_or("")) {
        (&Method::GET, "keys") => (200, routes.api.keys()),
        (&Method::POST, name @ ("activate" | "check")) => {
            let route = if name == "activate" {
                Route::Activate
            } else {
                Route::Check
            };
            routes
                .api
                .handle(
                    route,
                    [
                        header(HEADER_TIMESTAMP),
                        header(HEADER_NONCE),
                        header(HEADER_SIGNATURE),
                    ],
                    body,
                )
                .await
        }
        (&Method::POST, "upload") => {
            routes
                .upload
                .handle(
                    [
                        header(usage_api::HEADER_TIMESTAMP),
                        header(usage_api::HEADER_NONCE),
                        header(usage_api::HEADER_SIGNATURE),
                    ],
                    body,
                )
                .await
        }
        _ => (
            404,
            json!({"error": "not_served", "message": "no such license route"}),
        ),
    };
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
mod tests {
    use std::sync::Arc;

    use koogallery::{
        clock::SystemClock,
        license::{
            api::LicenseApi,
            service::{LicenseService, TokenKeys},
            upload::UploadApi,
        },
        security::SecretKey,
        testing::{
            MemoryQueue, MemoryStore,
            license::{MemoryLicenses, ScriptedLicenseMarketplace},
        },
    };
    use lambda_http::{Body, Request, http::Method};

    use super::{Routes, route};

    fn routes() -> Routes {
        let market = Arc::new(ScriptedLicenseMarketplace::default());
        let nonces = Arc::new(MemoryStore::new());
        let service = LicenseService::new(
            Arc::new(MemoryLicenses::default()),
            market.clone(),
            Arc::new(MemoryQueue::new()),
            Arc::new(TokenKeys::from_secrets([3; 32], None)),
            Arc::new(SystemClock),
            chrono::Duration::days(7),
        );
        Routes {
            api: LicenseApi {
                service: Arc::new(service),
                client_key: Some(SecretKey::new("k")),
                nonces: nonces.clone(),
            },
            upload: UploadApi {
                marketplace: market,
                key: None,
                nonces,
                clock: Arc::new(SystemClock),
            },
            exchanges: koogallery::exchange::ExchangeRecorder::off(),
        }
    }

    async fn call(method: Method, path: &str) -> (u16, serde_json::Value) {
        let req = lambda_http::http::Request::builder()
            .method(method)
            .uri(format!("https://api.example.com{path}"))
            .body(Body::from("{}"))
            .unwrap();
        let resp = route(&routes(), Request::from(req)).await;
        let status = resp.status().as_u16();
        let body = match resp.body() {
            Body::Text(t) => t.clone(),
            _ => String::new(),
        };
        (status, serde_json::from_str(&body).unwrap())
    }

    /// Each route answers by method and path (any stage prefix), JSON with its status.
    #[tokio::test]
    async fn routes_answer_by_method_and_path() {
        let (status, keys) = call(Method::GET, "/prod/license/keys").await;
        assert_eq!(status, 200);
        assert_eq!(keys["keys"][0]["crv"], "Ed25519");
        assert_eq!(
            call(Method::POST, "/license/check").await.0,
            401,
            "unsigned"
        );
        assert_eq!(
            call(Method::POST, "/license/upload").await.0,
            503,
            "no usage key"
        );
        assert_eq!(call(Method::POST, "/license/other").await.0, 404);
        assert_eq!(call(Method::GET, "/license/check").await.0, 404);
    }
}
