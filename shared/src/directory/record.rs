//! The stored form of directory records (`v` 1): what the embedded file and the DynamoDB table hold
//! across releases. `tests/fixtures/directory_records_v1.json` pins it; never change a field's name
//! or meaning without a new version that still reads this one.

use crate::failure::Detail;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{App, Department, DirectoryEvent, Tenant, User};
use crate::storage::StoreError;

/// The record version this release writes.
pub const DIRECTORY_RECORD_VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TenantV1 {
    v: u32,
    order_id: String,
    tenant_code: String,
    name: String,
    domain_name: String,
    synced_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AppV1 {
    v: u32,
    app_id: String,
    client_id: String,
    sealed_client_secret: String,
    synced_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserV1 {
    v: u32,
    app_id: String,
    user_name: String,
    name: String,
    org_code: String,
    role: String,
    enabled: bool,
    revoked: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    position: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    employee_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    employee_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mobile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    work_place: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    entry_date: Option<String>,
    synced_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DepartmentV1 {
    v: u32,
    #[serde(flatten)]
    department: Department,
}

/// A chunk of a department set, as written: the departments borrowed.
#[derive(Debug, Serialize)]
struct DepartmentChunkV1Out<'a> {
    v: u32,
    departments: &'a [Department],
}

/// `v` is checked by [`decode`].
#[derive(Debug, Deserialize)]
struct DepartmentChunkV1 {
    departments: Vec<Department>,
}

#[derive(Debug, Serialize, Deserialize)]
struct EventV1 {
    v: u32,
    #[serde(flatten)]
    event: DirectoryEvent,
}

fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    serde_json::to_vec(record).expect("directory records always serialise")
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, StoreError> {
    #[derive(Deserialize)]
    struct Version {
        v: u32,
    }
    let version: Version = serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Corrupt(Detail::caused_by(format!("{what} record"), e)))?;
    if version.v != DIRECTORY_RECORD_VERSION {
        return Err(StoreError::Corrupt(format!(
            "{what} record version {} is newer than this release reads ({DIRECTORY_RECORD_VERSION})",
            version.v
        ).into()));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Corrupt(Detail::caused_by(format!("{what} record"), e)))
}

pub fn encode_tenant(t: &Tenant) -> Vec<u8> {
    encode(&TenantV1 {
        v: DIRECTORY_RECORD_VERSION,
        order_id: t.order_id.clone().into(),
        tenant_code: t.tenant_code.clone(),
        name: t.name.clone(),
        domain_name: t.domain_name.clone(),
        synced_at: t.synced_at,
    })
}

pub fn decode_tenant(bytes: &[u8]) -> Result<Tenant, StoreError> {
    let r: TenantV1 = decode("tenant", bytes)?;
    Ok(Tenant {
        order_id: r.order_id.into(),
        tenant_code: r.tenant_code,
        name: r.name,
        domain_name: r.domain_name,
        synced_at: r.synced_at,
    })
}

pub fn encode_app(a: &App) -> Vec<u8> {
    encode(&AppV1 {
        v: DIRECTORY_RECORD_VERSION,
        app_id: a.app_id.clone(),
        client_id: a.client_id.clone(),
        sealed_client_secret: a.sealed_client_secret.clone(),
        synced_at: a.synced_at,
    })
}

pub fn decode_app(bytes: &[u8]) -> Result<App, StoreError> {
    let r: AppV1 = decode("app", bytes)?;
    Ok(App {
        app_id: r.app_id,
        client_id: r.client_id,
        sealed_client_secret: r.sealed_client_secret,
        synced_at: r.synced_at,
    })
}

pub fn encode_user(u: &User) -> Vec<u8> {
    encode(&UserV1 {
        v: DIRECTORY_RECORD_VERSION,
        app_id: u.app_id.clone(),
        user_name: u.user_name.clone(),
        name: u.name.clone(),
        org_code: u.org_code.clone(),
        role: u.role.clone(),
        enabled: u.enabled,
        revoked: u.revoked,
        position: u.position.clone(),
        employee_code: u.employee_code.clone(),
        employee_type: u.employee_type.clone(),
        mobile: u.mobile.clone(),
        email: u.email.clone(),
        work_place: u.work_place.clone(),
        entry_date: u.entry_date.clone(),
        synced_at: u.synced_at,
    })
}

pub fn decode_user(bytes: &[u8]) -> Result<User, StoreError> {
    let r: UserV1 = decode("user", bytes)?;
    Ok(User {
        app_id: r.app_id,
        user_name: r.user_name,
        name: r.name,
        org_code: r.org_code,
        role: r.role,
        enabled: r.enabled,
        revoked: r.revoked,
        position: r.position,
        employee_code: r.employee_code,
        employee_type: r.employee_type,
        mobile: r.mobile,
        email: r.email,
        work_place: r.work_place,
        entry_date: r.entry_date,
        synced_at: r.synced_at,
    })
}

pub fn encode_department(d: &Department) -> Vec<u8> {
    encode(&DepartmentV1 {
        v: DIRECTORY_RECORD_VERSION,
        department: d.clone(),
    })
}

pub fn decode_department(bytes: &[u8]) -> Result<Department, StoreError> {
    Ok(decode::<DepartmentV1>("department", bytes)?.department)
}

/// A chunk of a department set: `{"v":1,"departments":[{"orgCode":..,"orgName":..,"parentCode":..}]}`
/// (each department as [`encode_department`] writes it, without its own `v`), in the order given.
pub fn encode_department_chunk(departments: &[Department]) -> Vec<u8> {
    encode(&DepartmentChunkV1Out {
        v: DIRECTORY_RECORD_VERSION,
        departments,
    })
}

pub fn decode_department_chunk(bytes: &[u8]) -> Result<Vec<Department>, StoreError> {
    Ok(decode::<DepartmentChunkV1>("department chunk", bytes)?.departments)
}

/// `departments` encoded as chunks ([`encode_department_chunk`]) of at most `max_bytes` each, in
/// the order given, split by encoded size (names can be long). A department too big for a chunk
/// of its own still gets one (over `max_bytes`: the store refuses it). No departments: no chunk.
pub fn split_department_chunks(departments: &[Department], max_bytes: usize) -> Vec<Vec<u8>> {
    // `{"v":1,"departments":[` … `]}`, and a comma between two departments.
    let envelope = encode_department_chunk(&[]).len();
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut size = envelope;
    for (i, d) in departments.iter().enumerate() {
        let len = serde_json::to_vec(d)
            .expect("departments always serialise")
            .len();
        let added = len + usize::from(i > start);
        if i > start && size + added > max_bytes {
            chunks.push(encode_department_chunk(&departments[start..i]));
            start = i;
            size = envelope + len;
        } else {
            size += added;
        }
    }
    if start < departments.len() {
        chunks.push(encode_department_chunk(&departments[start..]));
    }
    chunks
}

pub fn encode_event(e: &DirectoryEvent) -> Vec<u8> {
    encode(&EventV1 {
        v: DIRECTORY_RECORD_VERSION,
        event: e.clone(),
    })
}

pub fn decode_event(bytes: &[u8]) -> Result<DirectoryEvent, StoreError> {
    Ok(decode::<EventV1>("directory event", bytes)?.event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::{EventBody, EventUser};

    fn at() -> DateTime<Utc> {
        "2026-12-05T01:02:03Z".parse().unwrap()
    }

    /// The records an earlier release stored must still read, and this release must write the
    /// very same bytes.
    #[test]
    fn stored_directory_records_keep_their_form() {
        let fixture: serde_json::Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/directory_records_v1.json"
        ))
        .unwrap();
        let bytes = |k: &str| serde_json::to_vec(&fixture[k]).unwrap();
        let tenant = Tenant {
            order_id: "CS1906666666ABCDE".into(),
            tenant_code: "huawei".into(),
            name: "华为技术有限公司".into(),
            domain_name: "https://example.tenantaccount.com".into(),
            synced_at: at(),
        };
        assert_eq!(decode_tenant(&bytes("tenant")).unwrap(), tenant);
        assert_eq!(encode_tenant(&tenant), bytes("tenant"));
        let app = App {
            app_id: "app-001".into(),
            client_id: "client-001".into(),
            sealed_client_secret: "local2.AAAA".into(),
            synced_at: at(),
        };
        assert_eq!(decode_app(&bytes("app")).unwrap(), app);
        assert_eq!(encode_app(&app), bytes("app"));
        let user = User {
            app_id: "app-001".into(),
            user_name: "zhangsan01".into(),
            name: "张三".into(),
            org_code: "10000".into(),
            role: "admin".into(),
            enabled: true,
            revoked: false,
            position: Some("工程师".into()),
            employee_code: None,
            employee_type: Some("1".into()),
            mobile: None,
            email: Some("zhangsan@example.com".into()),
            work_place: None,
            entry_date: None,
            synced_at: at(),
        };
        assert_eq!(decode_user(&bytes("user")).unwrap(), user);
        assert_eq!(encode_user(&user), bytes("user"));
        let department = Department {
            org_code: "10001".into(),
            org_name: "研发部".into(),
            parent_code: Some("10000".into()),
        };
        assert_eq!(decode_department(&bytes("department")).unwrap(), department);
        assert_eq!(encode_department(&department), bytes("department"));
        let chunk = vec![
            Department {
                org_code: "10000".into(),
                org_name: "华为".into(),
                parent_code: None,
            },
            department.clone(),
        ];
        assert_eq!(
            decode_department_chunk(&bytes("departmentChunk")).unwrap(),
            chunk
        );
        assert_eq!(encode_department_chunk(&chunk), bytes("departmentChunk"));
        let event = DirectoryEvent {
            seq: 7,
            at: at(),
            body: EventBody::UsersAuthorized {
                app_id: "app-001".into(),
                users: vec![EventUser::from(&user)],
            },
        };
        assert_eq!(decode_event(&bytes("event")).unwrap(), event);
        assert_eq!(encode_event(&event), bytes("event"));
    }

    #[test]
    fn a_newer_version_is_refused_not_misread() {
        let err = decode_tenant(br#"{"v":2,"orderId":"o"}"#).unwrap_err();
        assert!(!err.is_retryable(), "{err}");
        let err = decode_department_chunk(br#"{"v":2,"departments":[]}"#).unwrap_err();
        assert!(!err.is_retryable(), "{err}");
    }

    #[test]
    fn department_chunks_split_by_encoded_size() {
        let dept = |i: usize, name_len: usize| Department {
            org_code: format!("d{i:04}"),
            org_name: "部".repeat(name_len),
            parent_code: (i > 0).then(|| format!("d{:04}", i - 1)),
        };
        assert!(split_department_chunks(&[], 1000).is_empty());
        // Long names: a few departments per chunk, none over the limit, all there in order.
        let all: Vec<Department> = (0..50).map(|i| dept(i, 100 + i * 7)).collect();
        let max = 2_000;
        let chunks = split_department_chunks(&all, max);
        assert!(chunks.len() > 5, "{} chunks", chunks.len());
        assert!(chunks.iter().all(|c| c.len() <= max));
        let back: Vec<Department> = chunks
            .iter()
            .flat_map(|c| decode_department_chunk(c).unwrap())
            .collect();
        assert_eq!(back, all);
        // Packed: no chunk could have taken the next one's first department.
        for pair in chunks.windows(2) {
            let mut joined = decode_department_chunk(&pair[0]).unwrap();
            joined.push(decode_department_chunk(&pair[1]).unwrap().remove(0));
            assert!(encode_department_chunk(&joined).len() > max);
        }
        // Short names: one chunk.
        let small: Vec<Department> = (0..10).map(|i| dept(i, 2)).collect();
        assert_eq!(
            split_department_chunks(&small, max),
            [encode_department_chunk(&small)]
        );
        // A department bigger than a chunk still gets its own.
        let big = [dept(0, 1), dept(1, 1_000), dept(2, 1)];
        assert_eq!(split_department_chunks(&big, 1_000).len(), 3);
    }
}
