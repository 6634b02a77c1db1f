//! The whole 联营 purchase (docs/protocol/callbacks.md §6.1, §6.2, §6.5, §9): newInstance polled
//! until ready, every Kit sync in turn on the instance, then releaseInstance.

use std::time::Instant;

use koogallery::ResultCode;
use serde_json::{Value, json};

use super::bodies::{
    all_org_sync, application_sync, auth_sync, departments, single_org_sync, tenant_sync, users,
};
use super::{KitSimulator, kit_time_stamp};
use crate::{Answer, SimError, random_nonce};

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
    let public_key = kit.public_key().await?;
    let users = users(sizes.users);
    let mut steps = Vec::new();
    let plan = plan(instance_id, order_id, &tenant, &public_key, &users, sizes)?;
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

/// The Kit calls of [`run_kit_lifecycle`], in order: (step, sync, body).
fn plan(
    instance_id: &str,
    order_id: &str,
    tenant: &str,
    public_key: &str,
    users: &[Value],
    sizes: KitSizes,
) -> Result<Vec<(&'static str, &'static str, Value)>, SimError> {
    let app = "app-0001";
    let domain = "https://idaas.example.com";
    Ok(vec![
        (
            "tenantSync add",
            "tenantSync",
            tenant_sync(instance_id, order_id, tenant, domain, 1),
        ),
        (
            "tenantSync modify",
            "tenantSync",
            tenant_sync(instance_id, order_id, tenant, domain, 2),
        ),
        (
            "applicationSync add",
            "applicationSync",
            application_sync(
                instance_id,
                tenant,
                app,
                "client-secret-示例-0123456789",
                public_key,
                1,
            )?,
        ),
        (
            "authSync add",
            "authSync",
            auth_sync(instance_id, tenant, app, users, 1),
        ),
        (
            "allOrgSync",
            "allOrgSync",
            all_org_sync(
                instance_id,
                tenant,
                &departments(sizes.departments, sizes.depth),
            ),
        ),
        (
            "singleOrgSync add",
            "singleOrgSync",
            single_org_sync(instance_id, tenant, "NEW-1", "新部门", "D000000", 1),
        ),
        (
            "singleOrgSync modify",
            "singleOrgSync",
            single_org_sync(instance_id, tenant, "NEW-1", "新部门（改）", "D000001", 2),
        ),
        (
            "singleOrgSync delete",
            "singleOrgSync",
            single_org_sync(instance_id, tenant, "NEW-1", "", "", 0),
        ),
        (
            "authSync revoke",
            "authSync",
            auth_sync(instance_id, tenant, app, &users[..users.len().min(10)], 3),
        ),
        (
            "authSync delete",
            "authSync",
            auth_sync(instance_id, tenant, app, &users[..users.len().min(5)], 0),
        ),
        (
            "applicationSync delete",
            "applicationSync",
            json!({"instanceId": instance_id, "tenantId": tenant, "appId": app, "flag": 0, "testFlag": 0, "timeStamp": kit_time_stamp()}),
        ),
        (
            "tenantSync delete",
            "tenantSync",
            tenant_sync(instance_id, order_id, tenant, domain, 0),
        ),
    ])
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
    let mut steps = Vec::new();
    let mut record = |name: &str, a: &Answer| {
        steps.push(KitStep {
            name: name.into(),
            result_code: a.reply.result_code.as_str().into(),
            elapsed: a.elapsed,
            body_bytes: 0,
        });
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
    let a = wait_ready(basic, &instance_id, poll_timeout).await?;
    record("queryInstance (ready)", &a);
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

/// Polls queryInstance every 100 ms until the instance is ready (`000000`, while `000004`);
/// returns the ready answer.
async fn wait_ready(
    basic: &crate::Simulator,
    instance_id: &str,
    poll_timeout: std::time::Duration,
) -> Result<Answer, SimError> {
    let started = Instant::now();
    loop {
        let q = json!({"activity": "queryInstance", "instanceId": instance_id});
        let a = basic.call(&q).await?;
        if a.reply.result_code == ResultCode::Success {
            return Ok(a);
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
}

/// A step whose answer was not the one expected.
fn bad(step: &str, a: &Answer) -> SimError {
    SimError::BadAnswer {
        step: step.into(),
        detail: format!("{} {}", a.reply.result_code.as_str(), a.reply.result_msg),
    }
}
