//! The edge on AWS Lambda behind API Gateway (HTTP API, payload 2.0).

use std::sync::Arc;

use koogallery::{
    config::{Env, SecretPart},
    exchange::ExchangeRecorder,
};
use koogallery_aws::{
    LambdaDispatcher,
    signed::{Service, SignedClient},
};
use koogallery_lambda::{Deployment, Error, Load, flush_exchanges};
use lambda_http::{Body, Request, RequestExt, Response};

use crate::{Edge, Inbound};

/// What the edge loads: the callback keys (the basic and the Kit key rings); it enqueues nothing.
pub const LOAD: Load = Load {
    secrets: &[SecretPart::CallbackKeys],
    queue: false,
    sealer: false,
};

/// How long an invocation waits for the exchange log to take its call.
pub use koogallery_lambda::EXCHANGE_FLUSH;

/// Serves API Gateway: `POST /produce` and the Kit paths. Always HTTP 200 + `Body-Sign`.
pub async fn run(deployment: Deployment) -> Result<(), Error> {
    let (edge, exchanges) = build(&deployment, &Env::process())?;
    let (edge, exchanges) = (&edge, &exchanges);
    lambda_http::run(lambda_http::service_fn(move |req: Request| async move {
        Ok::<_, Error>(invoke(edge, exchanges, req).await)
    }))
    .await
}

/// The edge [`run`] serves, the callbacks' functions named in `env` (`KOOGALLERY_FN_<NAME>`),
/// and the recorder of its exchange log (`KOOGALLERY_EXCHANGE_LOG_DAYS`, 0 for none) on the
/// table, its writer a task of this execution environment: called within the runtime.
pub fn build(deployment: &Deployment, env: &Env) -> Result<(Edge, ExchangeRecorder), Error> {
    let dispatcher = LambdaDispatcher::from_lookup(
        SignedClient::new(&deployment.sdk, &deployment.http, Service::Lambda)?,
        |name| env.derived(name),
    )?;
    let keys = deployment.secrets.keys()?.clone();
    let exchanges = deployment.exchange_recorder();
    let edge = Edge::new(
        &deployment.settings.edge,
        keys,
        deployment.store.clone(),
        deployment.clock.clone(),
        Arc::new(dispatcher),
    )
    .with_metrics(Arc::new(koogallery::metrics::EmfStdout::from_env()))
    .with_exchange_log(exchanges.clone());
    Ok((edge, exchanges))
}

/// One invocation of [`run`]: the request through the edge, then its exchanges written before
/// the answer is returned (Lambda freezes the process then).
pub async fn invoke(edge: &Edge, exchanges: &ExchangeRecorder, req: Request) -> Response<Body> {
    let response = serve(edge, req).await;
    flush_exchanges(exchanges).await;
    response
}

/// One API Gateway request through the edge, whatever its family: the edge recognises it by method
/// and path.
pub async fn serve(edge: &Edge, req: Request) -> Response<Body> {
    let path = req.raw_http_path().to_owned();
    // The query as KooGallery sent it (an HTTP API payload 2.0 carries `rawQueryString` in the
    // URI): a V1 `authToken` covers every parameter as URL-decoded from it, so a query rebuilt from
    // API Gateway's decoded parameters (repeated names joined, `+` re-encoded) would not verify.
    // Only an event without a raw query (a REST API or a test event) is rebuilt from them.
    let query = match req.uri().query() {
        Some(raw) => raw.to_owned(),
        None => form_urlencoded::Serializer::new(String::new())
            .extend_pairs(req.query_string_parameters().iter())
            .finish(),
    };
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
