//! The admin function's handler on the DynamoDB/SQS emulator: a function URL's event, as Lambda
//! hands it over with the IAM caller in its request context, lists an instance from the table and
//! redrives a dead letter from the jobs queue's DLQ back onto the queue; the redrive is kept in
//! the exchange log with the caller's ARN. The instance's page carries its 联营 tenant and its
//! order's License code (masked), read from the same table.
#![cfg(feature = "lambda")]

use std::sync::Arc;

use admin::{
    Auth, Console,
    lambda::{caller, handle, operator},
    routes,
};
use koogallery::{
    clock::SystemClock,
    config::{Env, OpenApiAccess, Settings},
    exchange::{ExchangeFilter, ExchangeQuery},
    instance::{Instance, InstanceStore},
    jobs::Job,
    order::{OrderId, OrderLineId},
};
use koogallery_aws::{
    DynamoStore,
    bootstrap::{ensure_queues, ensure_table},
};
use lambda_http::{Body, Request};

const ARN: &str = "arn:aws:sts::123456789012:assumed-role/operators/alice";

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A function URL's event (payload 2.0) with `AuthType: AWS_IAM`.
fn event(method: &str, path: &str, query: &str, body: &str) -> Request {
    let event = serde_json::json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
        "headers": {"host": "abc.lambda-url.eu-west-1.on.aws", "content-type": "application/json"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "abc",
            "authorizer": {"iam": {"accessKey": "AKIAEXAMPLE", "accountId": "123456789012",
                "callerId": "AROAEXAMPLE:alice", "cognitoIdentity": null, "principalOrgId": null,
                "userArn": ARN, "userId": "AROAEXAMPLE:alice"}},
            "domainName": "abc.lambda-url.eu-west-1.on.aws", "domainPrefix": "abc",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "192.0.2.1", "userAgent": "koogallery-admin"},
            "requestId": unique("r"), "routeKey": "$default", "stage": "$default",
            "time": "05/Dec/2026:22:00:00 +0000", "timeEpoch": 1_796_508_000_000_i64
        },
        "body": body, "isBase64Encoded": false
    });
    lambda_http::request::from_str(&event.to_string()).expect("a function URL event")
}

fn json(response: &lambda_http::Response<Body>) -> serde_json::Value {
    serde_json::from_slice(response.body().as_ref()).expect("JSON")
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn the_handler_lists_an_instance_and_redrives_a_dead_letter() {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok_and(|v| !v.trim().is_empty()),
        "AWS_ENDPOINT_URL is not set: run under scripts/emulator.sh run"
    );
    let config = koogallery_aws::sdk_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let table = unique("koogallery-admin");
    ensure_table(&dynamo, &table).await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&config);
    let (queue_url, dlq_url) = ensure_queues(&sqs, &unique("jobs"), 3).await.unwrap();
    let store = Arc::new(DynamoStore::new(dynamo, table));

    let instance_id = unique("i");
    let (i, ev) = Instance::new_provisioning(
        &OrderId::new("CS2612052200ADM"),
        &OrderLineId::new("CS2612052200ADM-000001"),
        &instance_id,
        false,
        chrono::Utc::now(),
    );
    store.create_for_order_line(&i, &[ev]).await.unwrap();
    let job = Job::Provision {
        instance_id: instance_id.as_str().into(),
    };
    let dead_id = sqs
        .send_message()
        .queue_url(&dlq_url)
        .message_body(serde_json::to_string(&job).unwrap())
        .send()
        .await
        .unwrap()
        .message_id()
        .unwrap()
        .to_owned();

    let settings = Settings::read(
        &Env::from_fn(|name| (name == "KOOGALLERY_EXCHANGE_LOG_DAYS").then(|| "14".to_owned())),
        OpenApiAccess {
            held: false,
            offline_by_default: true,
        },
    )
    .unwrap();
    // A Kit tenant of the instance and a License code of its order, on the same table.
    {
        use koogallery::{
            directory::{DirectoryChange, TenantDirectory, TenantKey},
            license::{License, LicenseCode, LicenseStore, Origin},
            testing::directory::{sample_app, sample_tenant},
        };
        let now = chrono::Utc::now();
        let directory = koogallery_aws::DynamoDirectory::from(store.as_ref());
        let key = TenantKey::new(instance_id.as_str(), "tenant-adm");
        for change in [
            DirectoryChange::PutTenant(sample_tenant("Acme", now)),
            DirectoryChange::PutApp(sample_app("app-adm", now)),
        ] {
            directory.apply(&key, &change, now).await.unwrap();
        }
        let mut license = License::new(
            LicenseCode::parse("PLADMIN000000001").unwrap(),
            Origin::Marketplace,
            false,
            now,
        );
        license.order_id = Some("CS2612052200ADM".into());
        license.version = 1;
        koogallery_aws::DynamoLicenses::from(store.as_ref())
            .put(&license)
            .await
            .unwrap();
    }
    let (operator, recorder, writer) = operator(
        store,
        sqs.clone(),
        &queue_url,
        &dlq_url,
        &settings,
        Arc::new(SystemClock),
    );
    tokio::spawn(writer.expect("the exchange log is on").run());
    let operator = Arc::new(operator);
    let router = routes(Console {
        operator: operator.clone(),
        auth: Auth::Iam,
    });

    let listing = event("GET", "/admin/api/instances", "", "");
    assert_eq!(caller(&listing).map(|c| c.0).as_deref(), Some(ARN));
    let answer = handle(&router, listing).await;
    assert_eq!(answer.status(), 200, "{:?}", answer.body());
    let listed = json(&answer);
    assert!(
        listed.to_string().contains(&instance_id),
        "the instance is listed: {listed}"
    );

    let detail = handle(
        &router,
        event(
            "GET",
            &format!("/admin/api/instances/{instance_id}"),
            "",
            "",
        ),
    )
    .await;
    assert_eq!(detail.status(), 200, "{:?}", detail.body());
    let detail = json(&detail);
    assert_eq!(
        detail["kit_tenants"][0]["tenant_id"], "tenant-adm",
        "{detail}"
    );
    assert_eq!(
        detail["kit_tenants"][0]["apps"][0]["client_id"],
        "client-app-adm"
    );
    assert_eq!(detail["license_codes"][0]["code"], "PLAD…(16)", "{detail}");
    assert!(!detail.to_string().contains("PLADMIN000000001"));

    let page = handle(&router, event("GET", "/admin/dead-letters", "", "")).await;
    assert_eq!(page.status(), 200);
    let html = String::from_utf8_lossy(page.body().as_ref()).into_owned();
    assert!(html.contains(&dead_id), "{html}");

    let body = serde_json::json!({ "id": dead_id }).to_string();
    let answer = handle(
        &router,
        event("POST", "/admin/api/dead-letters/redrive", "", &body),
    )
    .await;
    assert_eq!(answer.status(), 200, "{:?}", answer.body());
    assert_eq!(json(&answer)["redriven"], serde_json::json!([dead_id]));

    // Back on the jobs queue, gone from the DLQ.
    let received = sqs
        .receive_message()
        .queue_url(&queue_url)
        .wait_time_seconds(2)
        .send()
        .await
        .unwrap();
    let bodies: Vec<Job> = received
        .messages()
        .iter()
        .filter_map(|m| serde_json::from_str(m.body()?).ok())
        .collect();
    assert_eq!(bodies, [job]);
    let after = handle(&router, event("GET", "/admin/api/dead-letters", "", "")).await;
    assert!(!json(&after).to_string().contains(&dead_id));

    // Kept with who asked.
    recorder.flush().await;
    let kept = operator
        .exchanges(&ExchangeQuery::newest(ExchangeFilter::All, 10))
        .await
        .unwrap();
    let redrive = kept
        .iter()
        .find(|e| e.activity == "redrive")
        .unwrap_or_else(|| panic!("the redrive is kept: {kept:#?}"));
    assert!(
        redrive.request["who"].as_str().unwrap().starts_with(ARN),
        "{:?}",
        redrive.request
    );

    // Without the IAM caller (not through the function URL): refused.
    let mut bare = event("GET", "/admin/api/instances", "", "");
    *bare.extensions_mut() = Default::default();
    let refused = handle(&router, bare).await;
    assert_eq!(refused.status(), 401);
}
