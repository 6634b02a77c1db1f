//! Every AWS call of each Lambda function the edge dispatches to, and of the edge itself, counted
//! on the wire (`koogallery_aws::AwsCalls`) on the emulator. A callback function is built as
//! `serve_callback` builds it (`CallbackFunction::load` over `load_from`: the settings read, the
//! secrets fetched), the edge as its `main.rs` does (`edge::lambda::build`), and each is invoked in
//! process: a callback with the body the edge passes on, the edge with a request signed as
//! KooGallery signs it, its Lambda Invoke answered by a stand-in that runs the callback's function
//! in process and passes every other call on to the emulator. Cold is the load and the first
//! invocation of a new execution environment; warm is each next invocation, the same work on
//! another instance (or code, or tenant). docs/architecture.md ("AWS calls per callback") says
//! why no count can be fewer; BENCHMARKS.md ("What a callback costs on AWS") prices them.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use aws_smithy_types::body::SdkBody;
use axum::response::IntoResponse;
use lambda_http::RequestExt;

use koogallery::{
    ResultCode,
    config::{Env, SecretPart, catalog},
    instance::{Credential, Instance, InstanceStore, Outcome},
    security::at_rest::CredentialSealer,
    testing::sample_access,
};
use koogallery_aws::{
    AwsCalls, AwsHttp, DynamoStore, KmsSealer, Roots,
    calls::Counted,
    signed::{Call, DEFAULT_ATTEMPT_TIMEOUT, Service, SignedClient},
};
use koogallery_lambda::{CallbackFunction, ReconcilerFunction, load_from};
use serde_json::{Value, json};

/// The basic and Kit keys of the deployment's secret.
const ACCESS_KEY: &str = "test-access-key";
/// The key the vendor's app signs its usage reports with.
const USAGE_KEY: &str = "test-usage-key";

/// A deployment on the emulator as the template makes one: the table, the jobs queue, the
/// callback keys' and the Kit RSA key's secrets, the credentials key; and the environment the
/// template gives a callback function.
struct Deployment {
    env: HashMap<String, String>,
    /// The jobs queue, for taking the jobs the worker is given (not counted).
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    /// The deployment's table, for setting up what a call finds (its calls are not counted).
    store: DynamoStore,
    /// Seals a password as the worker does (not counted).
    sealer: KmsSealer,
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// The emulator's variables (`scripts/emulator.sh` sets them), or a panic saying how to get them.
fn emulator_env() -> HashMap<String, String> {
    let vars: HashMap<String, String> = ["AWS_ENDPOINT_URL", "AWS_REGION"]
        .into_iter()
        .filter_map(|k| Env::process().derived(k).map(|v| (k.to_owned(), v)))
        .collect();
    assert!(
        vars.contains_key("AWS_ENDPOINT_URL") && vars.contains_key("AWS_REGION"),
        "these tests need the AWS emulator: run them with `bash scripts/emulator.sh run cargo test \
         -p koogallery-e2e --test aws_calls -- --include-ignored`"
    );
    vars
}

impl Deployment {
    async fn new() -> Self {
        let mut env = emulator_env();
        let sdk = koogallery_aws::sdk_config().await;
        let table = unique("calls");
        koogallery_aws::bootstrap::ensure_table(&aws_sdk_dynamodb::Client::new(&sdk), &table)
            .await
            .unwrap();
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let (queue_url, dlq_url) = koogallery_aws::bootstrap::ensure_queues(
            &sqs,
            &unique("calls"),
            koogallery_aws::bootstrap::REDRIVE_MAX_RECEIVES,
        )
        .await
        .unwrap();
        let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
        let secret = |value: String| {
            let secrets = secrets.clone();
            async move {
                secrets
                    .create_secret()
                    .name(unique("calls"))
                    .secret_string(value)
                    .send()
                    .await
                    .unwrap()
                    .arn()
                    .unwrap()
                    .to_owned()
            }
        };
        let keys =
            secret(json!({"accessKey": ACCESS_KEY, "kitKey": "test-kit-key"}).to_string()).await;
        let kit_rsa = koogallery::testing::test_client_secret_key()
            .to_pkcs8_pem()
            .unwrap();
        let kit_rsa = secret(json!({"kitRsaPrivateKey": kit_rsa.as_str()}).to_string()).await;
        let http = AwsHttp::new(Roots::System);
        let kms = || SignedClient::new(&sdk, &http, Service::Kms).unwrap();
        let created = kms()
            .call(&Call {
                path: "/",
                content_type: "application/x-amz-json-1.1",
                headers: &[("x-amz-target", "TrentService.CreateKey")],
                body: bytes::Bytes::from_static(b"{}"),
                timeout: DEFAULT_ATTEMPT_TIMEOUT,
            })
            .await
            .unwrap();
        let created: Value = serde_json::from_slice(&created.body).unwrap();
        let key_id = created["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
        let open_api = secret(json!({"ak": "test-ak", "sk": "test-sk"}).to_string()).await;
        let webhook = secret(json!({"webhookSecret": "test-webhook-secret"}).to_string()).await;
        let usage = secret(json!({"usageKey": USAGE_KEY}).to_string()).await;
        for (setting, value) in [
            (&catalog::TABLE, table.clone()),
            (&catalog::QUEUE_URL, queue_url.clone()),
            (&catalog::DLQ_URL, dlq_url),
            (&catalog::CREDENTIALS_KEY_ID, key_id.clone()),
            // The worker's, as the template sets them; the static provisioner (the default) and
            // no marketplace to call (its AK/SK held all the same, as on AWS).
            (&catalog::WORKER_TIMEOUT_SECS, "120".to_owned()),
            (
                &catalog::JOBS_MAX_RECEIVE_COUNT,
                koogallery_aws::bootstrap::REDRIVE_MAX_RECEIVES.to_string(),
            ),
            (
                &catalog::JOBS_RETENTION_SECS,
                koogallery_aws::bootstrap::JOBS_RETENTION_SECS.to_string(),
            ),
            // The template's default (its WorkerBackoffMaxSecs): the catalog's own is a host's,
            // with no queue limits to fit.
            (&catalog::WORKER_BACKOFF_MAX_SECS, "600".to_owned()),
            (&catalog::MARKETPLACE, "offline".to_owned()),
        ] {
            env.insert(setting.name.to_owned(), value);
        }
        for (part, secret) in [
            (SecretPart::CallbackKeys, keys),
            (SecretPart::KitRsa, kit_rsa),
            (SecretPart::OpenApi, open_api),
            (SecretPart::Webhook, webhook),
            (SecretPart::Usage, usage),
        ] {
            env.insert(part.env_var().to_owned(), secret);
        }
        Self {
            sqs,
            queue_url,
            env,
            store: DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table),
            sealer: KmsSealer::new(kms(), key_id),
        }
    }

    /// The callback function `function` in a new execution environment whose every AWS call
    /// `calls` counts.
    async fn function(&self, function: &str, calls: &AwsCalls) -> CallbackFunction {
        load_function(&self.env, function, calls).await
    }

    /// An instance as the worker leaves it: provisioned, its password sealed by KMS.
    async fn active_instance(&self, id: &str) {
        let now = chrono::Utc::now();
        let order = format!("O-{id}");
        let (mut instance, created) = Instance::new_provisioning(
            &order.as_str().into(),
            &format!("{order}-000001").into(),
            id,
            false,
            now,
        );
        let mut access = sample_access(id);
        access.password = Some(Credential::Sealed(
            self.sealer.seal(id, "S3cret!pass").await.unwrap(),
        ));
        let activated = match instance.activate(access, now) {
            Ok(Outcome::Changed(ev)) => ev,
            other => panic!("a new instance must activate: {other:?}"),
        };
        self.store
            .create_for_order_line(&instance, &[created, activated])
            .await
            .unwrap();
    }

    /// Calls `function` as set-up, in an execution environment of its own whose calls are not
    /// counted.
    async fn set_up(&self, function: &str, body: Value) {
        let loaded = load_function(&self.env, function, &AwsCalls::new()).await;
        answered(function, &loaded.invoke(body).await);
    }

    /// The next job on the queue as the SQS event source hands it to the worker (one record).
    async fn next_job(&self) -> aws_lambda_events::event::sqs::SqsEvent {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .wait_time_seconds(5)
            .send()
            .await
            .unwrap();
        let message = received.messages().first().expect("a job on the queue");
        let attributes: HashMap<String, String> = message
            .attributes()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
            .collect();
        serde_json::from_value(json!({"Records": [{
            "messageId": message.message_id(),
            "receiptHandle": message.receipt_handle(),
            "body": message.body(),
            "attributes": attributes,
            "messageAttributes": {},
            "eventSource": "aws:sqs",
        }]}))
        .unwrap()
    }

    /// The environment the template gives a function.
    fn environment(&self) -> Env<'static> {
        env_of(&self.env)
    }
}

/// `vars` as a function's environment.
fn env_of(vars: &HashMap<String, String>) -> Env<'static> {
    let vars = vars.clone();
    Env::from_fn(move |k| vars.get(k).cloned())
}

/// The callback function `function` on the environment `vars`, every AWS call counted in `calls`.
async fn load_function(
    vars: &HashMap<String, String>,
    function: &str,
    calls: &AwsCalls,
) -> CallbackFunction {
    let env = env_of(vars);
    let http = AwsHttp::counting(Roots::System, calls);
    CallbackFunction::load(function, |load| load_from(load, &env, http))
        .await
        .unwrap_or_else(|e| panic!("{function} does not load: {e}"))
}

/// What one case sets up before a call and the body the edge passes on, for subject `id`.
async fn prepare(d: &Deployment, function: &str, id: &str) -> Value {
    let kit_time = chrono::Utc::now().format("%Y%m%d%H%M%S%3f").to_string();
    let tenant = |flag: i64| {
        json!({"instanceId": id, "orderId": format!("O-{id}"), "tenantId": format!("T-{id}"),
               "tenantCode": "code-1", "name": "华为软件技术有限公司", "domainName": "tenant.example.com",
               "flag": flag, "testFlag": 0, "timeStamp": kit_time})
    };
    // A Kit sync finds its tenant synced already (all but tenantSync itself), and a
    // singleOrgSync the tenant's departments (an allOrgSync comes first).
    if function != "tenant-sync" && kit(function) {
        d.set_up("tenant-sync", tenant(1)).await;
    }
    if function == "single-org-sync" {
        d.set_up("all-org-sync", all_org(id, &kit_time)).await;
    }
    match function {
        "new-instance" => {
            json!({"activity": "newInstance", "orderId": format!("O-{id}"),
                   "orderLineId": format!("O-{id}-000001"), "businessId": id,
                   "customerId": "c-1", "productId": "p-1", "skuCode": "s-1"})
        }
        "query-instance" => {
            d.active_instance(id).await;
            json!({"activity": "queryInstance", "instanceId": id})
        }
        "refresh-instance" => {
            d.active_instance(id).await;
            json!({"activity": "refreshInstance", "instanceId": id, "orderId": format!("R-{id}"),
                   "orderLineId": format!("R-{id}-000001"), "scene": "RENEWAL",
                   "expireTime": "20991231000000"})
        }
        "update-instance-status" => {
            d.active_instance(id).await;
            json!({"activity": "updateInstanceStatus", "instanceId": id, "status": "FREEZE"})
        }
        "release-instance" => {
            d.active_instance(id).await;
            json!({"activity": "releaseInstance", "instanceId": id, "orderId": format!("O-{id}")})
        }
        "upgrade-instance" => {
            d.active_instance(id).await;
            json!({"activity": "upgradeInstance", "instanceId": id, "orderId": format!("U-{id}"),
                   "orderLineId": format!("U-{id}-000001")})
        }
        "change-instance-check" => {
            d.active_instance(id).await;
            json!({"activity": "changeInstanceCheck", "instanceId": id,
                   "productInfo": {"productId": "P2", "skuCode": "S2", "linearValue": 10}})
        }
        "order-notify" => {
            json!({"activity": "orderNotify", "orderId": format!("N-{id}"),
                   "orderLineId": format!("N-{id}-000001"), "testFlag": "0"})
        }
        "tenant-sync" => tenant(1),
        "application-sync" => {
            let key = koogallery::testing::test_client_secret_key();
            let secret = koogallery::security::kit_client_secret::encrypt_for(
                &key.public_key_pem(),
                "client-secret-value",
                koogallery::security::kit_client_secret::OaepVariant::Sha256Mgf1Sha1,
            )
            .unwrap();
            json!({"instanceId": id, "tenantId": format!("T-{id}"), "appId": format!("A-{id}"),
                   "clientId": "client-1", "clientSecret": secret, "flag": 1, "testFlag": 0,
                   "timeStamp": kit_time})
        }
        "auth-sync" => {
            let users: Vec<Value> = (0..3)
                .map(|i| {
                    json!({"userName": format!("user{i}@tenant"), "name": "王伟",
                                "orgCode": "D1", "role": if i == 0 { "admin" } else { "user" },
                                "enable": "true"})
                })
                .collect();
            json!({"instanceId": id, "tenantId": format!("T-{id}"), "appId": format!("A-{id}"),
                   "userList": users, "currentSyncTime": kit_time, "flag": 1, "testFlag": 0,
                   "timeStamp": kit_time})
        }
        "single-org-sync" => {
            json!({"instanceId": id, "tenantId": format!("T-{id}"), "orgCode": "D2",
                   "orgName": "产品部", "parentCode": "D1", "flag": 1, "testFlag": 0,
                   "timeStamp": kit_time})
        }
        "all-org-sync" => all_org(id, &kit_time),
        "refresh-license-code" => license_renewal(id),
        "update-license-code-status" | "release-license-code" => {
            d.set_up("refresh-license-code", license_renewal(id)).await;
            if function == "release-license-code" {
                json!({"activity": "releaseLicenseCode", "license": format!("PL{id}"),
                       "orderId": format!("L-{id}")})
            } else {
                json!({"activity": "updateLicenseCodeStatus", "license": format!("PL{id}"),
                       "status": "FREEZE"})
            }
        }
        "get-license" => {
            let order = format!("G-{id}");
            json!({"activity": "getLicense",
                   "license": koogallery::protocol::v1::legacy_license_code(ACCESS_KEY, &order),
                   "orderId": order, "businessId": id, "productId": "p-1", "customerId": "c-1",
                   "expireTime": "20991231000000", "amount": "3"})
        }
        other => panic!("no case for {other}"),
    }
}

fn kit(function: &str) -> bool {
    matches!(
        function,
        "tenant-sync" | "application-sync" | "auth-sync" | "single-org-sync" | "all-org-sync"
    )
}

/// An allOrgSync of three departments.
fn all_org(id: &str, kit_time: &str) -> Value {
    let department = |code: &str, parent: &str| json!({"orgCode": code, "orgName": format!("研发{code}部"), "parentCode": parent});
    json!({"instanceId": id, "tenantId": format!("T-{id}"),
           "orgInfoList": [department("D1", ""), department("D2", "D1"), department("D3", "D1")],
           "testFlag": 0, "timeStamp": kit_time})
}

fn license_renewal(id: &str) -> Value {
    json!({"activity": "refreshLicenseCode", "scene": "RENEWAL", "orderId": format!("L-{id}"),
           "orderLineId": format!("L-{id}-000001"), "license": format!("PL{id}"),
           "expireTime": "20991231000000"})
}

/// The call succeeded: newInstance answers that the instance is being provisioned.
fn answered(function: &str, answer: &koogallery::protocol::Reply) {
    assert!(
        matches!(
            answer.result_code,
            ResultCode::Success | ResultCode::Processing
        ),
        "{function}: {answer:?}"
    );
}

/// One function's calls: cold (the load, then the first call) and warm (each next call).
struct Case {
    function: &'static str,
    cold: Counted,
    warm: Counted,
}

fn case<const C: usize, const W: usize>(
    function: &'static str,
    cold: [(&str, &str, u64); C],
    warm: [(&str, &str, u64); W],
) -> Case {
    Case {
        function,
        cold: cold.into(),
        warm: warm.into(),
    }
}

const DDB: &str = "dynamodb";
const SQS: &str = "sqs";
const KMS: &str = "kms";
const SECRETS: (&str, &str, u64) = ("secretsmanager", "GetSecretValue", 1);
const ENQUEUE: (&str, &str, u64) = (SQS, "SendMessage", 1);

/// The calls each function makes, cold and warm: docs/architecture.md ("AWS calls per
/// callback") has the same table, and why none can be fewer.
fn cases() -> Vec<Case> {
    let change = [(DDB, "GetItem", 1), (DDB, "TransactWriteItems", 1), ENQUEUE];
    let license = [(DDB, "GetItem", 1), (DDB, "PutItem", 1), ENQUEUE];
    vec![
        case(
            "new-instance",
            [SECRETS, (DDB, "TransactWriteItems", 1), ENQUEUE],
            [(DDB, "TransactWriteItems", 1), ENQUEUE],
        ),
        case(
            "query-instance",
            [SECRETS, (DDB, "BatchGetItem", 1), (KMS, "Decrypt", 1)],
            [(DDB, "BatchGetItem", 1), (KMS, "Decrypt", 1)],
        ),
        case("refresh-instance", change, change),
        case("update-instance-status", change, change),
        case("release-instance", change, change),
        case("upgrade-instance", change, change),
        case(
            "change-instance-check",
            [(DDB, "GetItem", 1)],
            [(DDB, "GetItem", 1)],
        ),
        case(
            "order-notify",
            [(DDB, "PutItem", 1), ENQUEUE],
            [(DDB, "PutItem", 1), ENQUEUE],
        ),
        case("tenant-sync", change, change),
        case(
            "application-sync",
            [
                SECRETS,
                (DDB, "GetItem", 1),
                (DDB, "TransactWriteItems", 1),
                (KMS, "GenerateDataKey", 1),
                ENQUEUE,
            ],
            [
                (DDB, "GetItem", 1),
                (DDB, "TransactWriteItems", 1),
                (KMS, "GenerateDataKey", 1),
                ENQUEUE,
            ],
        ),
        case(
            "auth-sync",
            [
                (DDB, "BatchWriteItem", 1),
                (DDB, "GetItem", 1),
                (DDB, "TransactWriteItems", 1),
                ENQUEUE,
            ],
            [
                (DDB, "BatchWriteItem", 1),
                (DDB, "GetItem", 1),
                (DDB, "TransactWriteItems", 1),
                ENQUEUE,
            ],
        ),
        case(
            "single-org-sync",
            [
                (DDB, "BatchGetItem", 2),
                (DDB, "TransactWriteItems", 1),
                (DDB, "BatchWriteItem", 1),
                ENQUEUE,
            ],
            [
                (DDB, "BatchGetItem", 2),
                (DDB, "TransactWriteItems", 1),
                (DDB, "BatchWriteItem", 1),
                ENQUEUE,
            ],
        ),
        case(
            "all-org-sync",
            [
                (DDB, "BatchGetItem", 1),
                (DDB, "Query", 1),
                (DDB, "TransactWriteItems", 1),
                ENQUEUE,
            ],
            [
                (DDB, "BatchGetItem", 1),
                (DDB, "Query", 1),
                (DDB, "TransactWriteItems", 1),
                ENQUEUE,
            ],
        ),
        case("refresh-license-code", license, license),
        case("update-license-code-status", license, license),
        case("release-license-code", license, license),
        case("get-license", license, license),
    ]
}

/// Warm invocations per function: the counts of each are held to the case; their times are
/// printed (BENCHMARKS.md, "What a callback costs on AWS").
const WARM_RUNS: usize = 5;

/// The CPU time this thread has used: the test's runtime is single-threaded, so between two
/// readings it is the handler's own work (parsing, signing, the SDK, the HTTP client), none of
/// the emulator's.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock ID is a constant the OS knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn each_callback_function_makes_the_fewest_aws_calls_cold_and_warm() {
    let d = Deployment::new().await;
    let cases = cases();
    let mut wrong = Vec::new();
    for callback in koogallery::callbacks::registry::REGISTRY.iter() {
        let function = callback.function;
        let case = cases.iter().find(|c| c.function == function);
        let calls = AwsCalls::new();
        let body = prepare(&d, function, &unique("i")).await;
        let loaded = d.function(function, &calls).await;
        answered(function, &loaded.invoke(body).await);
        let cold = calls.take();
        if case.is_none_or(|c| c.cold != cold) {
            wrong.push(format!("{function} cold: {cold}"));
        }
        let (mut wall, mut cpu) = (Vec::new(), Vec::new());
        for _ in 0..WARM_RUNS {
            let id = unique("i");
            let body = prepare(&d, function, &id).await;
            calls.take();
            let (started, cpu_before) = (Instant::now(), thread_cpu());
            let answer = loaded.invoke(body.clone()).await;
            cpu.push(thread_cpu() - cpu_before);
            wall.push(started.elapsed());
            answered(function, &answer);
            let warm = calls.take();
            if case.is_none_or(|c| c.warm != warm) {
                wrong.push(format!("{function} warm: {warm}"));
            }
            if function == "query-instance" {
                // KooGallery polls an instance until it is ready: the next poll of the same
                // instance finds its data key cached.
                answered(function, &loaded.invoke(body).await);
                let again = calls.take();
                let read: Counted = [(DDB, "BatchGetItem", 1)].into();
                if again != read {
                    wrong.push(format!("{function} polled again: {again}"));
                }
            }
        }
        eprintln!(
            "{function}: warm invocation on the emulator {:?} (median of {WARM_RUNS}), the handler's CPU {:?}",
            median(wall),
            median(cpu)
        );
    }
    wrong.dedup();
    assert!(wrong.is_empty(), "counts differ:\n{}", wrong.join("\n"));
}

/// Lambda's `Invoke` of the callback functions, which the emulator lacks: served here by each
/// function loaded in process, every other call passed on to the emulator.
#[derive(Clone)]
struct LambdaStandIn {
    emulator: String,
    http: AwsHttp,
    /// By name: the stand-in's functions are named after the registry's.
    functions: Arc<HashMap<&'static str, CallbackFunction>>,
}

impl LambdaStandIn {
    /// Serves on loopback every callback function, loaded on `vars` and counted in `calls`;
    /// returns its URL. It runs on a thread and a runtime of its own, so the CPU time of the
    /// test's thread is the edge's alone.
    fn start(vars: HashMap<String, String>, calls: AwsCalls) -> String {
        let (url_tx, url_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let mut functions = HashMap::new();
                for callback in koogallery::callbacks::registry::REGISTRY.iter() {
                    let loaded = load_function(&vars, callback.function, &calls).await;
                    functions.insert(callback.function, loaded);
                }
                let stand_in = Self {
                    emulator: vars["AWS_ENDPOINT_URL"].clone(),
                    http: AwsHttp::new(Roots::System),
                    functions: Arc::new(functions),
                };
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                url_tx
                    .send(format!("http://{}", listener.local_addr().unwrap()))
                    .unwrap();
                let app = axum::Router::new()
                    .fallback(move |req: axum::extract::Request| stand_in.clone().serve(req));
                axum::serve(listener, app).await.unwrap();
            });
        });
        url_rx.recv().unwrap()
    }

    async fn serve(self, req: axum::extract::Request) -> axum::response::Response {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        let invoked = parts
            .uri
            .path()
            .strip_prefix("/2015-03-31/functions/")
            .and_then(|p| p.strip_suffix("/invocations"));
        if let Some(function) = invoked {
            let reply = self.functions[function]
                .invoke(serde_json::from_slice(&body).unwrap())
                .await;
            return axum::Json(reply).into_response();
        }
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut forward = http::Request::builder()
            .method(parts.method)
            .uri(format!("{}{path}", self.emulator));
        for (name, value) in parts
            .headers
            .iter()
            .filter(|(n, _)| *n != http::header::HOST)
        {
            forward = forward.header(name, value);
        }
        let answer = self
            .http
            .send(forward.body(SdkBody::from(body)).unwrap(), None, None)
            .await
            .unwrap();
        answer.map(axum::body::Body::new)
    }
}

/// `body` as KooGallery sends a V2 basic call: `POST /produce?signature&timestamp&nonce`, as API
/// Gateway hands it to the edge.
fn signed_request(body: &Value) -> lambda_http::Request {
    use koogallery::security::v2_basic::{basic_signature, canonical_payload};
    let body = serde_json::to_vec(body).unwrap();
    let timestamp = chrono::Utc::now().timestamp_millis().to_string();
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let payload = canonical_payload(&body).unwrap();
    let signature =
        basic_signature(ACCESS_KEY, &nonce, &timestamp, payload.as_bytes()).to_uppercase();
    http::Request::post(format!(
        "https://api.example.com/produce?signature={signature}&timestamp={timestamp}&nonce={nonce}"
    ))
    .header("content-type", "application/json")
    .body(lambda_http::Body::from(body))
    .unwrap()
    .with_raw_http_path("/produce")
}

/// The edge's calls, cold and warm: the same whatever the callback (here queryInstance, the call
/// KooGallery makes most), which costs its function's calls besides (the other test).
fn edge_case() -> Case {
    // The nonce, and the exchange under its instance's and its day's partitions (a call with an
    // order adds its order's).
    let put = (DDB, "PutItem", 1 + 2);
    case(
        "edge",
        [SECRETS, put, ("lambda", "Invoke", 1)],
        [put, ("lambda", "Invoke", 1)],
    )
}

#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn the_edge_makes_the_fewest_aws_calls_cold_and_warm() {
    let d = Deployment::new().await;
    let callbacks = AwsCalls::new();
    let mut vars = d.env.clone();
    vars.insert(
        "AWS_ENDPOINT_URL".to_owned(),
        LambdaStandIn::start(d.env.clone(), callbacks.clone()),
    );
    callbacks.take();
    for callback in koogallery::callbacks::registry::REGISTRY.iter() {
        vars.insert(callback.function_env_var(), callback.function.to_owned());
    }
    let env = env_of(&vars);
    let calls = AwsCalls::new();
    let deployment = load_from(
        edge::lambda::LOAD,
        &env,
        AwsHttp::counting(Roots::System, &calls),
    )
    .await
    .unwrap();
    let (edge, exchanges) = edge::lambda::build(&deployment, &env).unwrap();
    let expected = edge_case();
    let mut wrong = Vec::new();

    let body = prepare(&d, "query-instance", &unique("i")).await;
    let answer = edge::lambda::invoke(&edge, &exchanges, signed_request(&body)).await;
    assert_eq!(answer.status(), 200);
    let reply: Value = serde_json::from_slice(answer.body().as_ref()).unwrap();
    assert_eq!(reply["resultCode"], "000000", "{reply}");
    let cold = calls.take();
    if cold != expected.cold {
        wrong.push(format!("edge cold: {cold}"));
    }
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..WARM_RUNS {
        let request = signed_request(&prepare(&d, "query-instance", &unique("i")).await);
        calls.take();
        let (started, cpu_before) = (Instant::now(), thread_cpu());
        let answer = edge::lambda::invoke(&edge, &exchanges, request).await;
        cpu.push(thread_cpu() - cpu_before);
        wall.push(started.elapsed());
        let reply: Value = serde_json::from_slice(answer.body().as_ref()).unwrap();
        assert_eq!(reply["resultCode"], "000000", "{reply}");
        let warm = calls.take();
        if warm != expected.warm {
            wrong.push(format!("edge warm: {warm}"));
        }
    }
    // The callback's calls are its function's, counted apart: each invocation a queryInstance's
    // warm calls (the function was loaded before the edge's first call).
    let polls = 1 + WARM_RUNS as u64;
    assert_eq!(
        callbacks.take(),
        Counted::from([(DDB, "BatchGetItem", polls), (KMS, "Decrypt", polls)])
    );
    eprintln!(
        "edge: warm invocation on the emulator {:?} (median of {WARM_RUNS}; the callback's function in it), the handler's CPU {:?}",
        median(wall),
        median(cpu)
    );
    wrong.dedup();
    assert!(wrong.is_empty(), "counts differ:\n{}", wrong.join("\n"));
}

/// A pass of the reconciler (the scheduled function), cold and warm, over a table holding one
/// instance being provisioned: unsettled, and too recent to be re-queued.
#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn a_reconciler_pass_makes_the_fewest_aws_calls_cold_and_warm() {
    let d = Deployment::new().await;
    let id = unique("i");
    d.set_up("new-instance", prepare(&d, "new-instance", &id).await)
        .await;
    let env = d.environment();
    let calls = AwsCalls::new();
    let http = AwsHttp::counting(Roots::System, &calls);
    let pass = ReconcilerFunction::new(
        load_from(ReconcilerFunction::LOAD, &env, http)
            .await
            .unwrap(),
    )
    .unwrap();
    let report = pass.invoke().await.unwrap();
    assert_eq!(report["stuckProvisioning"], json!([]), "{report}");
    let cold = calls.take();
    pass.invoke().await.unwrap();
    let warm = calls.take();
    let expected = reconciler_case();
    assert_eq!(
        (cold.to_string(), warm.to_string()),
        (expected.cold.to_string(), expected.warm.to_string())
    );
}

/// The reconciler's calls: the same cold and warm (it holds no secret).
fn reconciler_case() -> Case {
    // Every shard of the sparse unsettled index, and the legacy index of earlier releases' records.
    let queries = u64::from(koogallery_aws::dynamo::keys::UNSETTLED_SHARDS) + 1;
    let pass = [
        (DDB, "Query", queries),
        // The unsettled instances found, by one batched read.
        (DDB, "BatchGetItem", 1),
        // The pass kept in the exchange log: under the actions' and the day's partitions.
        (DDB, "PutItem", 2),
    ];
    case("reconciler", pass, pass)
}

/// The provision worker's job (the SQS event source's batch of one), cold and warm: a new
/// instance provisioned by the static provisioner, its `provision` notice drained.
#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn the_provision_worker_makes_the_fewest_aws_calls_cold_and_warm() {
    let d = Deployment::new().await;
    let env = d.environment();
    let calls = AwsCalls::new();
    let mut counted = Vec::new();
    let mut worker = None;
    for _ in 0..2 {
        let id = unique("i");
        d.set_up("new-instance", prepare(&d, "new-instance", &id).await)
            .await;
        let job = d.next_job().await;
        calls.take();
        if worker.is_none() {
            let http = AwsHttp::counting(Roots::System, &calls);
            let deployment = load_from(provision_worker::lambda::LOAD, &env, http)
                .await
                .unwrap();
            worker = Some(
                provision_worker::lambda::WorkerFunction::new(&deployment, &env)
                    .await
                    .unwrap(),
            );
        }
        let answer = worker.as_ref().unwrap().invoke(job).await;
        assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
        counted.push(calls.take().to_string());
    }
    let job = [
        // The claim read, then saved with its event; the order kept on the record; the answer
        // saved with its event and the `provision` notice; the outbox read to drain it.
        (DDB, "GetItem", 2),
        (DDB, "TransactWriteItems", 2),
        (DDB, "PutItem", 1),
    ];
    let warm: Counted = job.into();
    let mut cold = warm.clone();
    // The open API's AK/SK and the webhook's secret, once per execution environment.
    cold.0.insert(
        ("secretsmanager".to_owned(), "GetSecretValue".to_owned()),
        2,
    );
    assert_eq!(counted, [cold.to_string(), warm.to_string()]);
}

/// The usage ingestion function (`POST /usage`, the vendor's app reporting usage), cold and warm:
/// a signed batch of one report, for one instance, then for the same instance again.
#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn usage_ingestion_makes_the_fewest_aws_calls_cold_and_warm() {
    let d = Deployment::new().await;
    let env = d.environment();
    let calls = AwsCalls::new();
    let http = AwsHttp::counting(Roots::System, &calls);
    let deployment = load_from(usage_ingest::LOAD, &env, http).await.unwrap();
    // As its main.rs builds it.
    let ingestion = usage_ingest::ingestion(&deployment, deployment.usage_store()).unwrap();
    let estimates = ingestion.estimates(deployment.settings.metering.pricing.clone());
    let mut counted = Vec::new();
    let id = unique("i");
    d.active_instance(&id).await;
    for _ in 0..2 {
        let body = json!({"records": [{
            "instanceId": id,
            "quantity": "1.5",
            "occurredAt": chrono::Utc::now().to_rfc3339(),
            "idempotencyKey": unique("report"),
        }]})
        .to_string();
        let mut request = http::Request::post("https://api.example.com/usage");
        for (name, value) in
            koogallery::metering::api::sign(USAGE_KEY, body.as_bytes(), chrono::Utc::now())
        {
            request = request.header(name, value);
        }
        let request = request.body(lambda_http::Body::from(body)).unwrap();
        let answer = usage_ingest::route(&ingestion, &estimates, request).await;
        let answer: Value = serde_json::from_slice(answer.body().as_ref()).unwrap();
        assert_eq!(answer, json!({"applied": 1, "duplicates": 0}));
        counted.push(calls.take().to_string());
    }
    let report: Counted = [
        // The instances named (their packages decide which windows count), then the windows,
        // idempotency keys and usage totals the batch touches.
        (DDB, "BatchGetItem", 2),
        // The nonce.
        (DDB, "PutItem", 1),
        // The windows, keys and total written together.
        (DDB, "TransactWriteItems", 1),
    ]
    .into();
    let mut first = report.clone();
    // The usage key, once per execution environment; and an instance's first report, whose total
    // is not stored yet: built from its windows (a table from before totals has some).
    for (op, n) in [("secretsmanager", "GetSecretValue"), (DDB, "Query")] {
        first.0.insert((op.to_owned(), n.to_owned()), 1);
    }
    assert_eq!(counted, [first.to_string(), report.to_string()]);
}

/// A usage batch of `n` reports for `id` as a message body of the usage queue (`UsageBatch`,
/// unsigned: IAM on the queue decides who may send).
fn usage_batch(id: &str, n: usize, at: chrono::DateTime<chrono::Utc>) -> String {
    let records: Vec<Value> = (0..n)
        .map(|_| {
            json!({"instanceId": id, "quantity": "1.5", "occurredAt": at.to_rfc3339(),
                   "idempotencyKey": unique("report")})
        })
        .collect();
    json!({ "records": records }).to_string()
}

/// The usage queue's function (the SQS event source's batch: one message, a usage batch of three
/// reports for one instance), cold and warm: then another such message for the same instance.
#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn the_usage_queue_makes_the_fewest_aws_calls_cold_and_warm() {
    let d = Deployment::new().await;
    let (queue_url, dlq_url) = koogallery_aws::bootstrap::ensure_queues(
        &d.sqs,
        &unique("usage"),
        koogallery_aws::bootstrap::REDRIVE_MAX_RECEIVES,
    )
    .await
    .unwrap();
    let mut vars = d.env.clone();
    vars.insert(catalog::USAGE_QUEUE_URL.name.to_owned(), queue_url);
    vars.insert(catalog::USAGE_DLQ_URL.name.to_owned(), dlq_url);
    let env = env_of(&vars);
    let id = unique("i");
    d.active_instance(&id).await;
    let calls = AwsCalls::new();
    let http = AwsHttp::counting(Roots::System, &calls);
    let deployment = load_from(usage_queue::lambda::LOAD, &env, http)
        .await
        .unwrap();
    // As its main.rs builds it.
    let function =
        usage_queue::lambda::QueueFunction::new(&deployment, deployment.usage_store(), &env)
            .unwrap();
    let mut counted = Vec::new();
    for _ in 0..2 {
        let event = serde_json::from_value(json!({"Records": [{
            "messageId": unique("m"),
            "receiptHandle": unique("r"),
            "body": usage_batch(&id, 3, chrono::Utc::now()),
            "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": {},
            "eventSource": "aws:sqs",
        }]}))
        .unwrap();
        let answer = function.invoke(event).await;
        assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
        counted.push(calls.take().to_string());
    }
    let batch: Counted = [
        // As usage-ingest's batch, without the nonce: the instances named, then the windows,
        // idempotency keys and total the batch touches; all written in one transaction.
        (DDB, "BatchGetItem", 2),
        (DDB, "TransactWriteItems", 1),
    ]
    .into();
    let mut first = batch.clone();
    // No secret to load (IAM on the queue authorizes senders); the instance's first reports, its
    // total built from its windows (a table from before totals has some).
    first.0.insert((DDB.to_owned(), "Query".to_owned()), 1);
    // A refused batch would add the dead letter's SendMessage; an ingested one is acknowledged by
    // leaving it out of the answer (the event source deletes it).
    assert_eq!(counted, [first.to_string(), batch.to_string()]);
}

impl Deployment {
    /// A pay-per-use instance started five hours ago, with usage reported in its hour two hours
    /// ago: closed, past its grace, due to be pushed. Reported as the app would have then, not
    /// counted.
    async fn closed_hour(&self, id: &str) {
        let hour = koogallery::metering::window_start(chrono::Utc::now());
        let (instance, created) = Instance::new_provisioning(
            &format!("P-{id}").as_str().into(),
            &format!("P-{id}-000001").into(),
            id,
            false,
            hour - chrono::Duration::hours(5),
        );
        self.store
            .create_for_order_line(&instance, &[created])
            .await
            .unwrap();
        let at = hour - chrono::Duration::minutes(90);
        let reports =
            koogallery::metering::api::UsageBatch::parse(usage_batch(id, 1, at).as_bytes())
                .unwrap()
                .into_reports();
        koogallery::metering::ingest::ingest_batch(
            &self.store,
            &koogallery_aws::DynamoUsageStore::from(&self.store),
            &koogallery_aws::SqsQueue::new(self.sqs.clone(), self.queue_url.clone()),
            &Default::default(),
            &reports,
            at + chrono::Duration::minutes(1),
        )
        .await
        .unwrap();
    }
}

/// A pass of the usage push (the scheduled function), cold and warm, each finding one closed hour
/// of one pay-per-use instance due: sealed, pushed to the open API (the simulator's, not counted)
/// and accepted; then a pass finding nothing due.
#[tokio::test]
#[ignore = "needs the AWS emulator; `make test` starts it"]
async fn a_usage_push_pass_makes_the_fewest_aws_calls_cold_and_warm() {
    let d = Deployment::new().await;
    let openapi = koogallery_sim::openapi::OpenApiSim::start(
        HashMap::from([("test-ak".to_owned(), "test-sk".to_owned())]),
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    // The push's body is signed with the basic interfaces' key.
    openapi.set_interconnection_key(ACCESS_KEY);
    let mut vars = d.env.clone();
    for (setting, value) in [
        (&catalog::MARKETPLACE, "openapi".to_owned()),
        (&catalog::OPENAPI_URL, openapi.primary_url()),
        (&catalog::OPENAPI_FALLBACK_URL, "none".to_owned()),
    ] {
        vars.insert(setting.name.to_owned(), value);
    }
    let env = env_of(&vars);
    let calls = AwsCalls::new();
    let mut function = None;
    let mut counted = Vec::new();
    let mut pushed = Vec::new();
    for _ in 0..2 {
        let id = unique("i");
        d.closed_hour(&id).await;
        if function.is_none() {
            let http = AwsHttp::counting(Roots::System, &calls);
            let deployment = load_from(usage_push::lambda::LOAD, &env, http)
                .await
                .unwrap();
            // As its main.rs builds it.
            function = Some(
                usage_push::lambda::PushFunction::new(&deployment, deployment.usage_store())
                    .unwrap(),
            );
        }
        // An invocation's deadline: a minute away.
        let deadline = chrono::Utc::now() + chrono::Duration::minutes(1);
        let report = function
            .as_ref()
            .unwrap()
            .invoke(Some(deadline))
            .await
            .unwrap();
        assert_eq!(
            [&report["sealed"], &report["pushes"], &report["accepted"]],
            [&json!(1), &json!(1), &json!(1)],
            "{report}"
        );
        counted.push(calls.take().to_string());
        pushed.push(id);
    }
    // Then a pass with nothing due, as most are: the claim, the index found empty, the release.
    let function = function.unwrap();
    let report = function
        .invoke(Some(chrono::Utc::now() + chrono::Duration::minutes(1)))
        .await
        .unwrap();
    assert_eq!(report["pushes"], 0, "{report}");
    let idle: Counted = [(DDB, "PutItem", 2), (DDB, "Query", 1)].into();
    counted.push(calls.take().to_string());
    let accepted: Vec<String> = openapi
        .usage()
        .0
        .into_iter()
        .map(|r| r.instance_id)
        .collect();
    assert_eq!(accepted, pushed);
    let pass: Counted = [
        // The due index (keys only), then the windows it names and their instances (the record
        // of an instance's first or last hour begins at its start or ends at its release).
        (DDB, "Query", 1),
        (DDB, "BatchGetItem", 2),
        // The push claimed and given up; the window sealed before the push (a retry sends the
        // same record), then accepted; the push kept in the exchange log under its day.
        (DDB, "PutItem", 5),
    ]
    .into();
    let mut cold = pass.clone();
    // The callback keys (the basic key signs the push's body) and the open API's AK/SK, once per
    // execution environment.
    cold.0.insert(
        ("secretsmanager".to_owned(), "GetSecretValue".to_owned()),
        2,
    );
    assert_eq!(
        counted,
        [cold.to_string(), pass.to_string(), idle.to_string()]
    );
}
