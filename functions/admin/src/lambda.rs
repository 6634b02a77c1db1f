//! The admin function on AWS Lambda: the console's routes in [`Auth::Iam`] mode behind a
//! function URL with `AuthType: AWS_IAM` (payload 2.0). The operator reads and acts on the
//! deployment's own resources: the table (instances, their listing, usage windows, the exchange
//! log, an instance's 联营 tenants, their SSO sessions and its order's License codes), the jobs
//! queue's dead letters (`KOOGALLERY_DLQ_URL`), and a reconciler pass on the jobs
//! queue (`KOOGALLERY_QUEUE_URL`). Every action is kept in the exchange log, written before the
//! invocation returns.

use std::sync::Arc;

use axum::Router;
use http_body_util::BodyExt;
use koogallery::{
    clock::Clock,
    config::{Env, Settings, catalog},
    exchange::{ExchangeRecorder, RecorderTask},
    operator::Operator,
};
use koogallery_aws::{
    DynamoDirectory, DynamoExchangeLog, DynamoLicenses, DynamoSso, DynamoStore, DynamoUsageStore,
    SqsDeadLetters, SqsQueue,
};
use koogallery_lambda::{Deployment, Error, Load};
use lambda_http::{Body, Request, RequestExt, Response, request::RequestContext};

use crate::{Auth, Console, IamCaller, routes};

/// What the admin function loads: the table and the jobs queue; no secret.
pub const LOAD: Load = Load {
    secrets: &[],
    queue: true,
    sealer: false,
};

/// The operator over the deployment's adapters, the recorder its actions go to, and the
/// recorder's writer (to be spawned).
pub fn operator(
    store: Arc<DynamoStore>,
    sqs: aws_sdk_sqs::Client,
    queue_url: &str,
    dlq_url: &str,
    settings: &Settings,
    clock: Arc<dyn Clock>,
) -> (Operator, ExchangeRecorder, Option<RecorderTask>) {
    let (exchanges, recorder, writer) = match settings.exchange_log {
        Some(retention) => {
            // As `Deployment::exchange_recorder`, keeping the log too: the console reads it.
            let (log, recorder, writer) = DynamoExchangeLog::recording(&store, retention);
            (
                Some(log as Arc<dyn koogallery::exchange::ExchangeLog>),
                recorder,
                Some(writer),
            )
        }
        None => (None, ExchangeRecorder::off(), None),
    };
    let queue = Arc::new(SqsQueue::new(sqs.clone(), queue_url));
    let reconciler = koogallery::reconciler::Reconciler {
        store: store.clone(),
        queue,
        clock: clock.clone(),
        settings: settings.worker,
        metrics: Arc::new(koogallery::metrics::EmfStdout::from_env()),
    };
    let operator = Operator {
        instances: store.clone(),
        listing: store.clone(),
        dead_letters: Arc::new(SqsDeadLetters::new(sqs, dlq_url, queue_url)),
        exchanges,
        recorder: recorder.clone(),
        usage: Some(Arc::new(DynamoUsageStore::from(store.as_ref()))),
        reconciler: Some(Arc::new(reconciler)),
        kit_tenants: Arc::new(DynamoDirectory::from(store.as_ref())),
        sso_sessions: Arc::new(DynamoSso::from(store.as_ref())),
        licenses: Arc::new(DynamoLicenses::from(store.as_ref())),
        clock,
    };
    (operator, recorder, writer)
}

/// Serves the function URL: every request through the console's routes in IAM mode.
pub async fn run(deployment: Deployment) -> Result<(), Error> {
    let env = Env::process();
    let queue_url = env.required(&catalog::QUEUE_URL)?;
    let dlq_url = env.required(&catalog::DLQ_URL)?;
    let (operator, recorder, writer) = operator(
        deployment.store.clone(),
        aws_sdk_sqs::Client::new(&deployment.sdk),
        &queue_url,
        &dlq_url,
        &deployment.settings,
        deployment.clock.clone(),
    );
    if let Some(writer) = writer {
        tokio::spawn(writer.run());
    }
    let router = routes(Console {
        operator: Arc::new(operator),
        auth: Auth::Iam,
    });
    let (router, recorder) = (&router, &recorder);
    lambda_http::run(lambda_http::service_fn(move |req: Request| async move {
        let response = handle(router, req).await;
        // The process is frozen once the answer is returned: the actions are written first.
        koogallery_lambda::flush_exchanges(recorder).await;
        Ok::<_, Error>(response)
    }))
    .await
}

/// The IAM principal the function URL authenticated: `requestContext.authorizer.iam.userArn`.
pub fn caller(request: &Request) -> Option<IamCaller> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => context
            .authorizer
            .as_ref()?
            .iam
            .as_ref()?
            .user_arn
            .clone()
            .filter(|arn| !arn.is_empty())
            .map(IamCaller),
        _ => None,
    }
}

/// One request through `router`, with its [`IamCaller`] (none, and the routes refuse it, when the
/// request did not come through an IAM-authenticated function URL).
pub async fn handle(router: &Router, request: Request) -> Response<Body> {
    let caller = caller(&request);
    let (parts, body) = request.into_parts();
    let mut request = axum::http::Request::from_parts(parts, axum::body::Body::from(body.to_vec()));
    request.extensions_mut().remove::<IamCaller>();
    if let Some(caller) = caller {
        request.extensions_mut().insert(caller);
    }
    let response = match tower_service::Service::call(&mut router.clone(), request).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let (parts, body) = response.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            tracing::error!(error = %e, "the answer's body could not be read");
            return Response::builder()
                .status(500)
                .body(Body::Empty)
                .expect("a bare 500");
        }
    };
    let body = match String::from_utf8(bytes.to_vec()) {
        Ok(text) if text.is_empty() => Body::Empty,
        Ok(text) => Body::Text(text),
        Err(e) => Body::Binary(e.into_bytes()),
    };
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A function URL's event (payload 2.0) as Lambda hands it over with `AuthType: AWS_IAM`.
    pub(crate) fn event(method: &str, path: &str, user_arn: Option<&str>, body: &str) -> Request {
        let authorizer = match user_arn {
            Some(arn) => serde_json::json!({"iam": {
                "accessKey": "AKIAEXAMPLE", "accountId": "123456789012", "callerId": "AIDAEXAMPLE",
                "cognitoIdentity": null, "principalOrgId": null, "userArn": arn, "userId": "AIDAEXAMPLE"
            }}),
            None => serde_json::Value::Null,
        };
        let event = serde_json::json!({
            "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
            "headers": {"host": "abc.lambda-url.eu-west-1.on.aws", "content-type": "application/json"},
            "requestContext": {
                "accountId": "123456789012", "apiId": "abc", "authorizer": authorizer,
                "domainName": "abc.lambda-url.eu-west-1.on.aws", "domainPrefix": "abc",
                "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                         "sourceIp": "192.0.2.1", "userAgent": "test"},
                "requestId": "r-1", "routeKey": "$default", "stage": "$default",
                "time": "05/Dec/2026:22:00:00 +0000", "timeEpoch": 1_796_508_000_000_i64
            },
            "body": body, "isBase64Encoded": false
        });
        lambda_http::request::from_str(&event.to_string()).expect("a function URL event")
    }

    #[test]
    fn the_caller_is_the_iam_user_arn_of_the_request_context() {
        let arn = "arn:aws:sts::123456789012:assumed-role/ops/alice";
        assert_eq!(
            caller(&event("GET", "/admin/api/instances", Some(arn), "")),
            Some(IamCaller(arn.into()))
        );
        assert_eq!(
            caller(&event("GET", "/admin/api/instances", None, "")),
            None
        );
    }
}
