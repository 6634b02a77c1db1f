//! The 联营 Kit syncs' bodies as KooGallery sends them (docs/protocol/callbacks.md §9):
//! tenantSync, applicationSync (its `clientSecret` encrypted with the service's public key),
//! authSync with realistic Chinese names, and a deep department tree for allOrgSync, sent
//! parents-after-children, and singleOrgSync.

use rand::seq::SliceRandom as _;
use serde_json::{Value, json};

use super::kit_time_stamp;
use crate::SimError;
use crate::platform::client_secret;

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
