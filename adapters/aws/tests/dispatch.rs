//! `LambdaDispatcher` against a stand-in for Lambda's Invoke API on loopback: the request it sends
//! (path, invocation type, payload, a SigV4 signature that verifies), and what each kind of answer
//! becomes (the callback's reply; `000005` for a function error, a refused call or a garbled
//! answer; throttling retried).

mod common;

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::SystemTime,
};

use aws_credential_types::Credentials;
use aws_sigv4::{
    http_request::{SignableBody, SignableRequest, SigningSettings, sign},
    sign::v4,
};
use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, Uri},
    response::IntoResponse,
};
use koogallery::{
    ResultCode,
    callbacks::{Dispatcher, REGISTRY, registry},
    security::KeyUsed,
};
use koogallery_aws::{
    LambdaDispatcher,
    signed::{Service, SignedClient},
};
use serde_json::{Value, json};

/// An answer of the stand-in: status, extra headers, body.
type Answer = (StatusCode, Vec<(&'static str, &'static str)>, &'static str);

/// What the stand-in received, and the answers it gives in turn (then 200 with a success reply).
#[derive(Default)]
struct Lambda {
    received: Mutex<Vec<(String, HeaderMap, Bytes)>>,
    answers: Mutex<VecDeque<Answer>>,
}

async fn invoke(
    State(lambda): State<Arc<Lambda>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    lambda
        .received
        .lock()
        .unwrap()
        .push((uri.path().to_owned(), headers, body));
    let (status, extra, text) = lambda.answers.lock().unwrap().pop_front().unwrap_or((
        StatusCode::OK,
        vec![],
        r#"{"resultCode":"000000","resultMsg":"success.","instanceId":"i-1"}"#,
    ));
    let mut out = HeaderMap::new();
    for (name, value) in extra {
        out.insert(name, value.parse().unwrap());
    }
    (status, out, text)
}

const KEY_ID: &str = "AKIDTESTDISPATCH";
const SECRET: &str = "dispatch-test-secret";

async fn dispatcher(lambda: Arc<Lambda>) -> LambdaDispatcher {
    let (sdk, http) = common::stand_in(
        Router::new().fallback(invoke).with_state(lambda),
        Credentials::new(KEY_ID, SECRET, None, None, "test"),
    )
    .await;
    let names = REGISTRY
        .iter()
        .map(|r| {
            (
                r.function,
                format!("arn:aws:lambda:eu-west-1:1:function:kg-{}", r.function),
            )
        })
        .collect();
    LambdaDispatcher::new(
        SignedClient::new(&sdk, &http, Service::Lambda).unwrap(),
        names,
    )
}

/// The request's signature recomputed from what arrived, with the test's secret: equal only if
/// every signed header arrived as it was signed.
fn assert_signature_verifies(path: &str, headers: &HeaderMap, body: &[u8]) {
    let authorization = headers["authorization"].to_str().unwrap();
    let signed: Vec<&str> = authorization
        .split("SignedHeaders=")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .split(';')
        .collect();
    for must in [
        "host",
        "x-amz-date",
        "x-amz-invocation-type",
        "content-type",
    ] {
        assert!(signed.contains(&must), "{must} not signed: {authorization}");
    }
    let date = headers["x-amz-date"].to_str().unwrap();
    let time = chrono::NaiveDateTime::parse_from_str(date, "%Y%m%dT%H%M%SZ")
        .unwrap()
        .and_utc();
    let identity = Credentials::new(KEY_ID, SECRET, None, None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("eu-west-1")
        .name("lambda")
        .time(SystemTime::from(time))
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let host = headers["host"].to_str().unwrap();
    let uri = format!("http://{host}{path}");
    let signable_headers: Vec<(&str, &str)> = signed
        .iter()
        .filter(|h| **h != "x-amz-date")
        .map(|h| (*h, headers[*h].to_str().unwrap()))
        .collect();
    let request = SignableRequest::new(
        "POST",
        &uri,
        signable_headers.into_iter(),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (instructions, _) = sign(request, &params).unwrap().into_parts();
    let (expected, _) = instructions.into_parts();
    let expected = expected
        .iter()
        .find(|h| h.name() == "authorization")
        .unwrap()
        .value()
        .to_owned();
    assert_eq!(authorization, expected);
}

fn query_instance() -> &'static koogallery::callbacks::Registration {
    registry::by_activity("queryInstance").unwrap()
}

#[tokio::test]
async fn invokes_the_activity_s_function_synchronously_with_a_signed_request() {
    let lambda = Arc::new(Lambda::default());
    let d = dispatcher(lambda.clone()).await;
    let body = json!({"activity": "queryInstance", "instanceId": "i-1"});
    let reply = d.dispatch(query_instance(), &body, KeyUsed::Previous).await;
    assert_eq!(reply.result_code, ResultCode::Success);
    assert_eq!(reply.field::<String>("instanceId").as_deref(), Some("i-1"));

    let received = lambda.received.lock().unwrap();
    let (path, headers, payload) = &received[0];
    assert_eq!(
        path,
        "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aeu-west-1%3A1%3Afunction%3Akg-query-instance/invocations"
    );
    assert_eq!(headers["x-amz-invocation-type"], "RequestResponse");
    let sent: Value = serde_json::from_slice(payload).unwrap();
    assert_eq!(
        sent,
        serde_json::to_value(registry::invocation(&body, KeyUsed::Previous)).unwrap()
    );
    assert_signature_verifies(path, headers, payload);
}

#[tokio::test]
async fn function_errors_refusals_and_garbled_answers_answer_retry_later() {
    let lambda = Arc::new(Lambda::default());
    lambda.answers.lock().unwrap().extend([
        (
            StatusCode::OK,
            vec![("x-amz-function-error", "Unhandled")],
            r#"{"errorType":"Panic","errorMessage":"boom"}"#,
        ),
        (
            StatusCode::NOT_FOUND,
            vec![("x-amzn-errortype", "ResourceNotFoundException")],
            r#"{"Type":"User","message":"Function not found"}"#,
        ),
        (StatusCode::OK, vec![], "not json"),
    ]);
    let d = dispatcher(lambda.clone()).await;
    for _ in 0..3 {
        let reply = d
            .dispatch(query_instance(), &json!({}), KeyUsed::Current)
            .await;
        assert_eq!(reply.result_code, ResultCode::InternalError);
        assert_eq!(reply.result_msg, "temporary internal error; please retry");
    }
    // None of the three was retried: a function error or a missing function does not heal.
    assert_eq!(lambda.received.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn throttling_is_retried_up_to_three_attempts() {
    let lambda = Arc::new(Lambda::default());
    let throttled = (
        StatusCode::TOO_MANY_REQUESTS,
        vec![("x-amzn-errortype", "TooManyRequestsException")],
        r#"{"Type":"User","message":"Rate exceeded"}"#,
    );
    lambda
        .answers
        .lock()
        .unwrap()
        .extend([throttled.clone(), throttled.clone()]);
    let d = dispatcher(lambda.clone()).await;
    let reply = d
        .dispatch(query_instance(), &json!({}), KeyUsed::Current)
        .await;
    assert_eq!(reply.result_code, ResultCode::Success);
    assert_eq!(lambda.received.lock().unwrap().len(), 3);

    lambda
        .answers
        .lock()
        .unwrap()
        .extend([throttled.clone(), throttled.clone(), throttled]);
    let reply = d
        .dispatch(query_instance(), &json!({}), KeyUsed::Current)
        .await;
    assert_eq!(reply.result_code, ResultCode::InternalError);
    assert_eq!(lambda.received.lock().unwrap().len(), 6);
}
