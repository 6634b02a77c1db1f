//! The edge on AWS Lambda behind API Gateway (HTTP API, payload 2.0).

use std::sync::Arc;

use koogallery_aws::LambdaDispatcher;
use koogallery_lambda::{Deployment, Error};
use lambda_http::{Body, Request, RequestExt, Response, http::HeaderValue, http::header};

use crate::{Edge, EdgeResponse};

/// Serves API Gateway: `POST /produce` and the reserved Kit paths. Always HTTP 200 + `Body-Sign`.
pub async fn run(deployment: Deployment) -> Result<(), Error> {
    let dispatcher = LambdaDispatcher::from_env(aws_sdk_lambda::Client::new(&deployment.sdk))?;
    let config = deployment.services.config.clone();
    let edge = Edge::new(
        &config,
        deployment.store.clone(),
        deployment.services.clock.clone(),
        Arc::new(dispatcher),
    );
    let edge = &edge;
    lambda_http::run(lambda_http::service_fn(move |req: Request| async move {
        Ok::<_, Error>(serve(edge, req).await)
    }))
    .await
}

/// One API Gateway request through the edge.
pub async fn serve(edge: &Edge, req: Request) -> Response<Body> {
    let path = req.raw_http_path().to_owned();
    let resp = match path.split_once("/produceAPI/") {
        Some((_, rest)) => edge.handle_kit(rest.trim_start_matches("v2/")),
        None => {
            // Rebuild the query from API Gateway's decoded parameters; only signature, timestamp
            // and nonce are read from it.
            let params = req.query_string_parameters();
            let query = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(params.iter())
                .finish();
            edge.handle_basic(&query, req.body().as_ref()).await
        }
    };
    let mut response = Response::new(Body::Text(String::from_utf8_lossy(&resp.body).into_owned()));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(EdgeResponse::CONTENT_TYPE),
    );
    if let Ok(v) = HeaderValue::from_str(&resp.body_sign) {
        headers.insert("Body-Sign", v);
    }
    response
}
