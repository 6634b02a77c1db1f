//! The edge on AWS Lambda behind API Gateway (HTTP API, payload 2.0).

use std::sync::Arc;

use koogallery::config::SecretPart;
use koogallery_aws::{
    LambdaDispatcher,
    signed::{Service, SignedClient},
};
use koogallery_lambda::{Deployment, Error, Load};
use lambda_http::{Body, Request, RequestExt, Response};

use crate::{Edge, Inbound};

/// What the edge loads: the callback keys (the basic and the Kit key rings); it enqueues nothing.
pub const LOAD: Load = Load {
    secrets: &[SecretPart::CallbackKeys],
    queue: false,
    sealer: false,
};

/// Serves API Gateway: `POST /produce` and the Kit paths. Always HTTP 200 + `Body-Sign`.
pub async fn run(deployment: Deployment) -> Result<(), Error> {
    let dispatcher = LambdaDispatcher::from_env(SignedClient::new(
        &deployment.sdk,
        &deployment.http,
        Service::Lambda,
    )?)?;
    let keys = deployment.secrets.keys()?.clone();
    let edge = Edge::new(
        &deployment.settings.edge,
        keys,
        deployment.store.clone(),
        deployment.clock.clone(),
        Arc::new(dispatcher),
    )
    .with_metrics(Arc::new(koogallery::metrics::EmfStdout::from_env()));
    let edge = &edge;
    lambda_http::run(lambda_http::service_fn(move |req: Request| async move {
        Ok::<_, Error>(serve(edge, req).await)
    }))
    .await
}

/// One API Gateway request through the edge, whatever its family: the edge recognises it by method
/// and path.
pub async fn serve(edge: &Edge, req: Request) -> Response<Body> {
    let path = req.raw_http_path().to_owned();
    // Rebuild the query from API Gateway's decoded parameters; only the signature parameters are
    // read from it.
    let params = req.query_string_parameters();
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter())
        .finish();
    edge.handle(Inbound {
        method: req.method(),
        path: &path,
        query: &query,
        headers: req.headers(),
        body: req.body().as_ref(),
    })
    .await
    .into_http()
}
