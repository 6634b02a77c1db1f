//! An instance as stored: the record and its parts (failure, access, provisioning progress,
//! outbox, claims), independent of the domain types.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{OrderRecord, SCHEMA, StateRecord, check_schema};
use crate::{
    ResultCode,
    instance::{AccessInfo, Claim, Credential, Failure, Instance, Outbox, ProvisioningProgress},
    order::OrderDetails,
    storage::StoreError,
};

#[derive(Serialize, Deserialize)]
pub(super) struct InstanceRecord {
    /// Absent in schema 0.
    #[serde(default)]
    schema: u32,
    instance_id: String,
    order_id: String,
    order_line_id: String,
    state: StateRecord,
    test: bool,
    failure: Option<FailureRecord>,
    app_info: Option<AccessRecord>,
    order: Option<OrderRecord>,
    expire_time: Option<DateTime<Utc>>,
    applied: BTreeSet<String>,
    provisioning: ProgressRecord,
    pending_notices: BTreeSet<u64>,
    /// Absent before schema 2.
    #[serde(default)]
    outbox: OutboxRecord,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: u64,
    next_seq: u64,
}

#[derive(Serialize, Deserialize)]
struct FailureRecord {
    code: ResultCode,
    message: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccessRecord {
    front_end_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    admin_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_name: Option<String>,
    /// A plain password: what records before schema 2 hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password: Option<String>,
    /// Schema 2: the password sealed (`security::at_rest`); never next to a plain one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password_sealed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    memo: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct ProgressRecord {
    enqueued: bool,
    claim: Option<ClaimRecord>,
    attempts: u32,
    /// Absent before schema 2.
    #[serde(default)]
    called: bool,
}

/// The outbox's delivery state (its pending notices are `pending_notices`, as before schema 2).
#[derive(Default, Serialize, Deserialize)]
struct OutboxRecord {
    claim: Option<ClaimRecord>,
    failing_since: Option<DateTime<Utc>>,
    parked: bool,
}

#[derive(Serialize, Deserialize)]
struct ClaimRecord {
    token: String,
    until: DateTime<Utc>,
}

impl From<&Instance> for InstanceRecord {
    fn from(i: &Instance) -> Self {
        Self {
            schema: SCHEMA,
            instance_id: i.instance_id.clone().into(),
            order_id: i.order_id.clone().into(),
            order_line_id: i.order_line_id.clone().into(),
            state: i.state.into(),
            test: i.test,
            failure: i.failure.as_ref().map(|f| FailureRecord {
                code: f.code,
                message: f.message.clone(),
            }),
            app_info: i.access.as_ref().map(AccessRecord::from),
            order: i.order.as_ref().map(OrderRecord::from),
            expire_time: i.expire_time,
            applied: i.applied.clone(),
            provisioning: ProgressRecord {
                enqueued: i.provisioning.enqueued,
                claim: i.provisioning.claim.as_ref().map(ClaimRecord::from),
                attempts: i.provisioning.attempts,
                called: i.provisioning.called,
            },
            pending_notices: i.outbox.pending.clone(),
            outbox: OutboxRecord {
                claim: i.outbox.claim.as_ref().map(ClaimRecord::from),
                failing_since: i.outbox.failing_since,
                parked: i.outbox.parked,
            },
            created_at: i.created_at,
            updated_at: i.updated_at,
            version: i.version,
            next_seq: i.next_seq,
        }
    }
}

impl InstanceRecord {
    pub(super) fn into_domain(self) -> Result<Instance, StoreError> {
        check_schema(self.schema, "instance record")?;
        Ok(Instance {
            instance_id: self.instance_id.into(),
            order_id: self.order_id.into(),
            order_line_id: self.order_line_id.into(),
            state: self.state.into(),
            test: self.test,
            failure: self.failure.map(|f| Failure {
                code: f.code,
                message: f.message,
            }),
            access: self.app_info.map(AccessInfo::from),
            order: self.order.map(OrderDetails::from),
            expire_time: self.expire_time,
            applied: self.applied,
            provisioning: ProvisioningProgress {
                enqueued: self.provisioning.enqueued,
                claim: self.provisioning.claim.map(Claim::from),
                attempts: self.provisioning.attempts,
                called: self.provisioning.called,
            },
            outbox: Outbox {
                pending: self.pending_notices,
                claim: self.outbox.claim.map(Claim::from),
                failing_since: self.outbox.failing_since,
                parked: self.outbox.parked,
            },
            created_at: self.created_at,
            updated_at: self.updated_at,
            version: self.version,
            next_seq: self.next_seq,
        })
    }
}

impl From<&AccessInfo> for AccessRecord {
    fn from(a: &AccessInfo) -> Self {
        Self {
            front_end_url: a.front_end_url.clone(),
            admin_url: a.admin_url.clone(),
            user_name: a.user_name.clone(),
            password: match &a.password {
                Some(Credential::Plain(p)) => Some(p.clone()),
                _ => None,
            },
            password_sealed: match &a.password {
                Some(Credential::Sealed(s)) => Some(s.clone()),
                _ => None,
            },
            memo: a.memo.clone(),
        }
    }
}

impl From<AccessRecord> for AccessInfo {
    fn from(a: AccessRecord) -> Self {
        Self {
            front_end_url: a.front_end_url,
            admin_url: a.admin_url,
            user_name: a.user_name,
            password: a
                .password_sealed
                .map(Credential::Sealed)
                .or(a.password.map(Credential::Plain)),
            memo: a.memo,
        }
    }
}

impl From<&Claim> for ClaimRecord {
    fn from(c: &Claim) -> Self {
        Self {
            token: c.token.clone(),
            until: c.until,
        }
    }
}

impl From<ClaimRecord> for Claim {
    fn from(c: ClaimRecord) -> Self {
        Self {
            token: c.token,
            until: c.until,
        }
    }
}
