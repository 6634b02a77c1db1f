//! Plays KooGallery's 联营 Kit syncs (docs/protocol/callbacks.md §3.2, §9): each call POSTed to
//! `{production URL}/produceAPI/v2/{name}` with `x-sign`, `x-timestamp` and `x-nonce` made with the
//! Kit key, the answer's `Body-Sign` checked with the same key; realistic bodies (Chinese names, a
//! 500-user authSync, a deep department tree sent parents-after-children, a `clientSecret`
//! encrypted with the service's own public key as the platform does); and the whole 联营 purchase.

use std::time::Instant;

use rand::seq::SliceRandom as _;
use reqwest::Url;
use serde_json::{Value, json};

use crate::platform::{basic_sign::canonical_payload, client_secret, kit_sign::x_sign};
use crate::{Answer, SimError, random_nonce, snippet};

/// The Kit sub-path KooGallery appends to the production URL (docs/protocol/callbacks.md §9).
pub const KIT_PATH: &str = "/produceAPI/v2/";
/// The development Kit key of the local host.
pub const DEFAULT_KIT_KEY: &str = "dev-kit-key-change-me";

/// KooGallery's Kit side, as seen by one production URL.
pub struct KitSimulator {
    client: reqwest::Client,
    url: Url,
    kit_key: String,
}

impl std::fmt::Debug for KitSimulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KitSimulator")
            .field("url", &self.url.as_str())
            .field("kit_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// `timeStamp` of a Kit body: `yyyyMMddHHmmssSSS` in GMT+8 (docs/protocol/callbacks.md §9).
pub fn kit_time_stamp() -> String {
    (chrono::Utc::now() + chrono::Duration::hours(8))
        .format("%Y%m%d%H%M%S%3f")
        .to_string()
}

impl KitSimulator {
    /// A Kit simulator for the production URL `url` (`…/produce`) and the Kit key.
    ///
    /// # Errors
    /// As [`crate::Simulator::new`].
    pub fn new(url: &str, kit_key: &str) -> Result<Self, SimError> {
        let basic = crate::Simulator::new(url, kit_key)?;
        Ok(Self {
            client: basic.client.clone(),
            url: basic.url.clone(),
            kit_key: kit_key.to_owned(),
        })
    }

    fn kit_url(&self, name: &str) -> Result<Url, SimError> {
        let mut url = self.url.clone();
        url.set_query(None);
        let path = format!("{}{KIT_PATH}{name}", url.path().trim_end_matches('/'));
        url.set_path(&path);
        Ok(url)
    }

    /// The service's Kit public key (`GET /kit/public-key` beside the production URL), PEM.
    ///
    /// # Errors
    /// [`SimError::Http`] or [`SimError::BadAnswer`] when it is not served.
    pub async fn public_key(&self) -> Result<String, SimError> {
        let step = "kit public key";
        let mut url = self.url.clone();
        url.set_query(None);
        url.set_path("/kit/public-key");
        let resp = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| SimError::Http(step.into(), e))?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .map_err(|e| SimError::Http(step.into(), e))?;
        if status != 200 || !text.contains("BEGIN PUBLIC KEY") {
            return Err(SimError::BadAnswer {
                step: step.into(),
                detail: format!("HTTP {status}: {}", snippet(text.as_bytes())),
            });
        }
        Ok(text)
    }

    /// Signs and POSTs one Kit call as KooGallery does (upper-case hex `x-sign` over the canonical
    /// payload, ms timestamp, fresh nonce). Any KooGallery reply is `Ok`; `body_sign_valid` says
    /// whether `Body-Sign` verifies with the Kit key.
    ///
    /// # Errors
    /// [`SimError::InvalidBody`] (not an object), [`SimError::Http`], [`SimError::BadAnswer`].
    pub async fn call(&self, name: &str, body: &Value) -> Result<Answer, SimError> {
        self.call_signed(name, body, &self.kit_key, &random_nonce())
            .await
    }

    /// [`Self::call`] signed with `key` and `nonce` (negative tests).
    ///
    /// # Errors
    /// As [`Self::call`].
    pub async fn call_signed(
        &self,
        name: &str,
        body: &Value,
        key: &str,
        nonce: &str,
    ) -> Result<Answer, SimError> {
        let Value::Object(map) = body else {
            return Err(SimError::InvalidBody("a Kit body is a JSON object".into()));
        };
        let bytes = serde_json::to_vec(body).map_err(|e| SimError::InvalidBody(e.to_string()))?;
        let ts = chrono::Utc::now().timestamp_millis().to_string();
        let sign = x_sign(key, nonce, &ts, &canonical_payload(map));
        let started = Instant::now();
        let resp = self
            .client
            .post(self.kit_url(name)?)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("x-sign", sign)
            .header("x-timestamp", &ts)
            .header("x-nonce", nonce)
            .body(bytes)
            .send()
            .await
            .map_err(|e| crate::transport_error(name, e))?;
        crate::read_answer(name, resp, &self.kit_key, started).await
    }
}

// ---- Realistic bodies ----

const FAMILY: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀英", "华", "慧",
];
const UNITS: &[&str] = &[
    "研发",
    "产品",
    "市场",
    "销售",
    "财务",
    "人力资源",
    "法务",
    "运营",
    "客服",
    "采购",
    "质量",
    "安全",
];

/// A tenantSync body (`flag` 0 delete, 1 add, 2 modify).
pub fn tenant_sync(
    instance_id: &str,
    order_id: &str,
    tenant_id: &str,
    domain: &str,
    flag: i64,
) -> Value {
    json!({
        "instanceId": instance_id,
        "orderId": order_id,
        "tenantId": tenant_id,
        "tenantCode": format!("code-{}", &tenant_id[..tenant_id.len().min(8)]),
        "name": "华为软件技术有限公司",
        "domainName": domain,
        "flag": flag,
        "testFlag": 0,
        "timeStamp": kit_time_stamp(),
    })
}

/// An applicationSync body; `client_secret` is the plaintext, encrypted here with the service's
/// public key as the platform does (RSA-OAEP with SHA-256 and MGF1-SHA-1, Java's default).
///
/// # Errors
/// [`SimError::InvalidBody`] if the public key does not parse.
pub fn application_sync(
    instance_id: &str,
    tenant_id: &str,
    app_id: &str,
    client_secret: &str,
    public_key_pem: &str,
    flag: i64,
) -> Result<Value, SimError> {
    let cipher = client_secret::encrypt(public_key_pem, client_secret)
        .map_err(|e| SimError::InvalidBody(format!("clientSecret: {e}")))?;
    Ok(json!({
        "instanceId": instance_id,
        "tenantId": tenant_id,
        "appId": app_id,
        "clientId": format!("client-{app_id}"),
        "clientSecret": cipher,
        "flag": flag,
        "testFlag": 0,
        "timeStamp": kit_time_stamp(),
    }))
}

/// `n` users with Chinese names, every documented field filled (the first is an admin).
pub fn users(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let name = format!(
                "{}{}",
                FAMILY[i % FAMILY.len()],
                GIVEN[(i / FAMILY.len()) % GIVEN.len()]
            );
            json!({
                "userName": format!("user{i:05}@tenant"),
                "name": name,
                "orgCode": format!("org{:05}", i % 50),
                "position": "高级工程师",
                "employeeCode": format!("E{i:06}"),
                "employeeType": 1 + (i % 4) as i64,
                "role": if i == 0 { "admin" } else { "user" },
                "enable": "true",
                "mobile": format!("138{:08}", i),
                "email": format!("user{i:05}@example.com"),
                "workPlace": "深圳市龙岗区坂田华为基地",
                "entryDate": "2020-03-01",
            })
        })
        .collect()
}

/// An authSync body (`flag` 0 delete, 1 add, 2 modify, 3 revoke).
pub fn auth_sync(
    instance_id: &str,
    tenant_id: &str,
    app_id: &str,
    users: &[Value],
    flag: i64,
) -> Value {
    json!({
        "instanceId": instance_id,
        "tenantId": tenant_id,
        "appId": app_id,
        "userList": users,
        "currentSyncTime": kit_time_stamp(),
        "flag": flag,
        "testFlag": 0,
        "timeStamp": kit_time_stamp(),
    })
}

/// A flat department list of `n` departments in a tree `depth` levels deep (a chain of `depth`
/// under the top, the rest spread under it), shuffled so parents often come after children, as
/// the page allows (docs/protocol/callbacks.md §9.5).
pub fn departments(n: usize, depth: usize) -> Vec<Value> {
    let depth = depth.clamp(1, n.max(1));
    let mut list: Vec<Value> = (0..n)
        .map(|i| {
            let parent = if i == 0 {
                String::new()
            } else if i < depth {
                format!("D{:06}", i - 1)
            } else {
                format!("D{:06}", (i * 7919) % depth)
            };
            json!({
                "orgCode": format!("D{i:06}"),
                "orgName": format!("{}{}部", UNITS[i % UNITS.len()], i),
                "parentCode": parent,
            })
        })
        .collect();
    list.shuffle(&mut rand::rng());
    list
}

/// An allOrgSync body.
pub fn all_org_sync(instance_id: &str, tenant_id: &str, departments: &[Value]) -> Value {
    json!({
        "instanceId": instance_id,
        "tenantId": tenant_id,
        "orgInfoList": departments,
        "testFlag": 0,
        "timeStamp": kit_time_stamp(),
    })
}

/// A singleOrgSync body.
pub fn single_org_sync(
    instance_id: &str,
    tenant_id: &str,
    org_code: &str,
    org_name: &str,
    parent_code: &str,
    flag: i64,
) -> Value {
    json!({
        "instanceId": instance_id,
        "tenantId": tenant_id,
        "orgCode": org_code,
        "orgName": org_name,
        "parentCode": parent_code,
        "flag": flag,
        "testFlag": 0,
        "timeStamp": kit_time_stamp(),
    })
}

// ---- The whole 联营 purchase ----

/// One Kit step of [`run_kit_lifecycle`].
#[derive(Debug, Clone)]
pub struct KitStep {
    pub name: String,
    pub result_code: String,
    pub elapsed: std::time::Duration,
    pub body_bytes: usize,
}

/// Sizes of the 联营 walk.
#[derive(Debug, Clone, Copy)]
pub struct KitSizes {
    pub users: usize,
    pub departments: usize,
    pub depth: usize,
}

impl Default for KitSizes {
    fn default() -> Self {
        Self {
            users: 500,
            departments: 5000,
            depth: 1000,
        }
    }
}

/// After a basic lifecycle's newInstance (`instance_id`, `order_id`): tenantSync, applicationSync
/// (a secret encrypted with the service's public key), a `sizes.users`-user authSync, a
/// `sizes.departments`-department allOrgSync, singleOrgSync add/modify/delete, authSync revoke and
/// delete, then applicationSync and tenantSync deletes. Every answer must be `000000` with a valid
/// `Body-Sign`; the first that is not stops the walk.
///
/// # Errors
/// The first failed step.
pub async fn run_kit_lifecycle(
    kit: &KitSimulator,
    instance_id: &str,
    order_id: &str,
    sizes: KitSizes,
) -> Result<Vec<KitStep>, SimError> {
    let tenant = format!("tenant-{}", &random_nonce()[..12]);
    let app = "app-0001";
    let domain = "https://idaas.example.com";
    let public_key = kit.public_key().await?;
    let users = users(sizes.users);
    let mut steps = Vec::new();
    let plan: Vec<(&str, &str, Value)> = vec![
        (
            "tenantSync add",
            "tenantSync",
            tenant_sync(instance_id, order_id, &tenant, domain, 1),
        ),
        (
            "tenantSync modify",
            "tenantSync",
            tenant_sync(instance_id, order_id, &tenant, domain, 2),
        ),
        (
            "applicationSync add",
            "applicationSync",
            application_sync(
                instance_id,
                &tenant,
                app,
                "client-secret-示例-0123456789",
                &public_key,
                1,
            )?,
        ),
        (
            "authSync add",
            "authSync",
            auth_sync(instance_id, &tenant, app, &users, 1),
        ),
        (
            "allOrgSync",
            "allOrgSync",
            all_org_sync(
                instance_id,
                &tenant,
                &departments(sizes.departments, sizes.depth),
            ),
        ),
        (
            "singleOrgSync add",
            "singleOrgSync",
            single_org_sync(instance_id, &tenant, "NEW-1", "新部门", "D000000", 1),
        ),
        (
            "singleOrgSync modify",
            "singleOrgSync",
            single_org_sync(instance_id, &tenant, "NEW-1", "新部门（改）", "D000001", 2),
        ),
        (
            "singleOrgSync delete",
            "singleOrgSync",
            single_org_sync(instance_id, &tenant, "NEW-1", "", "", 0),
        ),
        (
            "authSync revoke",
            "authSync",
            auth_sync(instance_id, &tenant, app, &users[..users.len().min(10)], 3),
        ),
        (
            "authSync delete",
            "authSync",
            auth_sync(instance_id, &tenant, app, &users[..users.len().min(5)], 0),
        ),
        (
            "applicationSync delete",
            "applicationSync",
            json!({"instanceId": instance_id, "tenantId": tenant, "appId": app, "flag": 0, "testFlag": 0, "timeStamp": kit_time_stamp()}),
        ),
        (
            "tenantSync delete",
            "tenantSync",
            tenant_sync(instance_id, order_id, &tenant, domain, 0),
        ),
    ];
    for (step, name, body) in plan {
        let body_bytes = serde_json::to_vec(&body).map(|b| b.len()).unwrap_or(0);
        let answer = kit.call(name, &body).await.map_err(|e| match e {
            SimError::BadAnswer { detail, .. } => SimError::BadAnswer {
                step: step.into(),
                detail,
            },
            other => other,
        })?;
        let code = answer.reply.result_code.as_str().to_owned();
        steps.push(KitStep {
            name: step.into(),
            result_code: code.clone(),
            elapsed: answer.elapsed,
            body_bytes,
        });
        if answer.http_status != 200 || !answer.body_sign_valid || code != "000000" {
            return Err(SimError::BadAnswer {
                step: step.into(),
                detail: format!(
                    "HTTP {}, Body-Sign {}, {code} {}",
                    answer.http_status,
                    if answer.body_sign_valid {
                        "valid"
                    } else {
                        "INVALID"
                    },
                    answer.reply.result_msg
                ),
            });
        }
    }
    Ok(steps)
}

/// A whole 联营 purchase: newInstance (polled with queryInstance until the instance is ready),
/// [`run_kit_lifecycle`] on it, then releaseInstance. Returns the instance ID and the steps (the
/// basic calls included).
///
/// # Errors
/// The first failed step.
pub async fn run_joint_purchase(
    basic: &crate::Simulator,
    kit: &KitSimulator,
    order_id: &str,
    sizes: KitSizes,
    poll_timeout: std::time::Duration,
) -> Result<(String, Vec<KitStep>), SimError> {
    use koogallery::ResultCode;
    let mut steps = Vec::new();
    let mut record = |name: &str, a: &Answer| {
        steps.push(KitStep {
            name: name.into(),
            result_code: a.reply.result_code.as_str().into(),
            elapsed: a.elapsed,
            body_bytes: 0,
        });
    };
    let bad = |step: &str, a: &Answer| SimError::BadAnswer {
        step: step.into(),
        detail: format!("{} {}", a.reply.result_code.as_str(), a.reply.result_msg),
    };
    let new = json!({
        "activity": "newInstance",
        "orderId": order_id,
        "orderLineId": format!("{order_id}-000001"),
        "businessId": uuid::Uuid::new_v4().to_string(),
    });
    let a = basic.call(&new).await?;
    record("newInstance", &a);
    if !matches!(
        a.reply.result_code,
        ResultCode::Success | ResultCode::Processing
    ) {
        return Err(bad("newInstance", &a));
    }
    let instance_id = a
        .reply
        .field::<String>("instanceId")
        .ok_or_else(|| bad("newInstance", &a))?;
    let started = Instant::now();
    loop {
        let q = json!({"activity": "queryInstance", "instanceId": instance_id});
        let a = basic.call(&q).await?;
        if a.reply.result_code == ResultCode::Success {
            record("queryInstance (ready)", &a);
            break;
        }
        if a.reply.result_code != ResultCode::Processing {
            return Err(bad("queryInstance", &a));
        }
        if started.elapsed() > poll_timeout {
            return Err(SimError::Timeout {
                step: "queryInstance".into(),
                waited: poll_timeout,
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    steps.extend(run_kit_lifecycle(kit, &instance_id, order_id, sizes).await?);
    let release =
        json!({"activity": "releaseInstance", "instanceId": instance_id, "orderId": order_id});
    let a = basic.call(&release).await?;
    steps.push(KitStep {
        name: "releaseInstance".into(),
        result_code: a.reply.result_code.as_str().into(),
        elapsed: a.elapsed,
        body_bytes: 0,
    });
    if a.reply.result_code != ResultCode::Success {
        return Err(bad("releaseInstance", &a));
    }
    Ok((instance_id, steps))
}

/// What [`repeat`] measured: one Kit call sent `calls` times in a row.
pub struct KitRepeatReport {
    pub name: String,
    pub calls: u64,
    pub body_bytes: usize,
    /// Answers other than `000000` with a valid `Body-Sign`.
    pub wrong: u64,
    /// Latency per call, microseconds.
    pub latency_us: hdrhistogram::Histogram<u64>,
}

impl std::fmt::Display for KitRepeatReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{}: {} calls of {} bytes, {} wrong answers",
            self.name, self.calls, self.body_bytes, self.wrong
        )?;
        crate::load::write_latency(f, &self.latency_us)
    }
}

/// Sends the Kit call `name` with `body` `calls` times, one after the other (KooGallery syncs a
/// tenant one call at a time), each with a fresh nonce, and measures each answer's latency.
///
/// # Errors
/// The first call that cannot be sent or read.
pub async fn repeat(
    kit: &KitSimulator,
    name: &str,
    body: &Value,
    calls: u64,
) -> Result<KitRepeatReport, SimError> {
    let mut latency_us = hdrhistogram::Histogram::<u64>::new(3)
        .map_err(|e| SimError::InvalidOptions(e.to_string()))?;
    let mut wrong = 0;
    for _ in 0..calls {
        let a = kit.call(name, body).await?;
        let _ = latency_us.record(a.elapsed.as_micros() as u64);
        if !(a.http_status == 200 && a.body_sign_valid && a.reply.result_code.as_str() == "000000")
        {
            wrong += 1;
        }
    }
    Ok(KitRepeatReport {
        name: name.into(),
        calls,
        body_bytes: serde_json::to_vec(body).map(|b| b.len()).unwrap_or(0),
        wrong,
        latency_us,
    })
}
