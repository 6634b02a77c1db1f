//! Single sign-on on AWS Lambda: API Gateway (HTTP API, payload 2.0) routes [`crate::PATHS`] here;
//! the provider runs on the deployment's table (sessions, grants, clients and signing keys in
//! `DynamoSso`, the tenant directory in `DynamoDirectory`) and seals with KMS.

use std::sync::Arc;

use koogallery::config::{ConfigError, Env, catalog};
use koogallery_lambda::{Deployment, Error, Load};
use lambda_http::{Body, Request, Response};

use crate::{Provider, ProviderSettings};

/// No secret: the auth centre's client secrets are sealed in the directory, the signing keys in
/// the table, both opened with KMS. The jobs queue: the delivery of `sessionsEnded` events.
pub const LOAD: Load = Load {
    secrets: &[],
    queue: true,
    sealer: true,
};

/// The stores and keys on the deployment's table, sealed with KMS.
fn parts(deployment: &Deployment) -> Result<crate::build::Parts, Error> {
    let sealer = deployment.sealer.clone().ok_or_else(|| {
        ConfigError::invalid(
            catalog::CREDENTIALS_KEY_ID.name,
            "single sign-on seals with KMS",
        )
    })?;
    let directory = Arc::new(koogallery_aws::DynamoDirectory::from(
        deployment.store.as_ref(),
    ));
    Ok(crate::build::Parts {
        directory: directory.clone(),
        locator: directory,
        store: Arc::new(koogallery_aws::DynamoSso::from(deployment.store.as_ref())),
        sealer,
        clock: deployment.clock.clone(),
        metrics: Arc::new(koogallery::metrics::EmfStdout::from_env()),
        jobs: deployment.job_queue().ok(),
    })
}

/// The provider over the deployment, with the configured clients (the SSO function).
///
/// # Errors
/// A setting, the clients, or the HTTP client.
pub async fn provider(deployment: &Deployment) -> Result<Provider, Error> {
    let env = Env::process();
    let settings = ProviderSettings::from_env(&env)?
        .ok_or_else(|| ConfigError::not_set(&catalog::SSO_ISSUER))?;
    let clients = match env.get(&catalog::OIDC_CLIENTS) {
        Some(value) => crate::clients::clients_from(&value)
            .map_err(|e| ConfigError::invalid(catalog::OIDC_CLIENTS.name, e))?,
        None => Vec::new(),
    };
    Ok(crate::build::provider(settings, Some(&clients), parts(deployment)?).await?)
}

/// The provider the worker ends sessions with, when SSO is on (`KOOGALLERY_SSO_ISSUER` set): the
/// clients are left as the SSO function keeps them.
///
/// # Errors
/// A setting, or the HTTP client.
pub async fn for_worker(deployment: &Deployment, env: &Env<'_>) -> Result<Option<Provider>, Error> {
    let Some(settings) = ProviderSettings::from_env(env)? else {
        return Ok(None);
    };
    Ok(Some(
        crate::build::provider(settings, None, parts(deployment)?).await?,
    ))
}

/// Serves API Gateway's SSO routes.
pub async fn run(deployment: Deployment) -> Result<(), Error> {
    let provider = provider(&deployment).await?;
    let provider = &provider;
    lambda_http::run(lambda_http::service_fn(move |req: Request| async move {
        Ok::<_, Error>(serve(provider, req).await)
    }))
    .await
}

/// One request: the raw query as sent, the body's bytes.
pub async fn serve(provider: &Provider, req: Request) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body: &[u8] = body.as_ref();
    let answer = provider
        .handle(&crate::Request {
            method: &parts.method,
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or(""),
            headers: &parts.headers,
            body,
        })
        .await;
    answer.into_http::<String>().map(Body::from)
}
