//! An instance event as stored: the event, who acted and what happened, independent of the domain
//! types.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{SCHEMA, StateRecord, check_schema};
use crate::{
    ResultCode,
    instance::{Actor, EventKind, InstanceEvent, RefreshScene},
    storage::StoreError,
};

#[derive(Serialize, Deserialize)]
pub(super) struct EventRecord {
    #[serde(default)]
    schema: u32,
    instance_id: String,
    seq: u64,
    at: DateTime<Utc>,
    actor: ActorRecord,
    kind: KindRecord,
    from: Option<StateRecord>,
    to: StateRecord,
    #[serde(default)]
    test: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ActorRecord {
    #[serde(rename = "koo_gallery")]
    KooGallery {
        activity: String,
    },
    Worker,
    /// Added within the schema: usage ingestion.
    Metering,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum KindRecord {
    Created {
        business_id: String,
    },
    ProvisioningStarted {
        attempt: u32,
    },
    Provisioned,
    ProvisioningFailed {
        code: ResultCode,
        message: String,
    },
    Refreshed {
        /// KooGallery's own name of the scene (`RENEWAL`, …; an unknown one as received).
        scene: String,
        order_id: String,
        /// Added within the schema (older releases did not keep it): absent when unknown.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        order_line_id: Option<String>,
        expire_time: DateTime<Utc>,
        product_id: Option<String>,
    },
    Frozen,
    Unfrozen,
    Upgraded {
        order_id: String,
        order_line_id: String,
    },
    Released {
        order_id: Option<String>,
    },
    DebugRestarted {
        business_id: String,
    },
    /// Added within the schema (older releases never wrote it).
    QuotaExhausted {
        #[serde(with = "rust_decimal::serde::str")]
        quota: rust_decimal::Decimal,
    },
}

impl From<&InstanceEvent> for EventRecord {
    fn from(e: &InstanceEvent) -> Self {
        Self {
            schema: SCHEMA,
            instance_id: e.instance_id.clone(),
            seq: e.seq,
            at: e.at,
            actor: (&e.actor).into(),
            kind: (&e.kind).into(),
            from: e.from.map(Into::into),
            to: e.to.into(),
            test: e.test,
        }
    }
}

impl EventRecord {
    pub(super) fn into_domain(self) -> Result<InstanceEvent, StoreError> {
        check_schema(self.schema, "event record")?;
        Ok(InstanceEvent {
            instance_id: self.instance_id,
            seq: self.seq,
            at: self.at,
            actor: self.actor.into(),
            kind: self.kind.into(),
            from: self.from.map(Into::into),
            to: self.to.into(),
            test: self.test,
        })
    }
}

impl From<&Actor> for ActorRecord {
    fn from(a: &Actor) -> Self {
        match a {
            Actor::KooGallery { activity } => ActorRecord::KooGallery {
                activity: activity.clone(),
            },
            Actor::Worker => ActorRecord::Worker,
            Actor::Metering => ActorRecord::Metering,
        }
    }
}

impl From<ActorRecord> for Actor {
    fn from(a: ActorRecord) -> Self {
        match a {
            ActorRecord::KooGallery { activity } => Actor::KooGallery { activity },
            ActorRecord::Worker => Actor::Worker,
            ActorRecord::Metering => Actor::Metering,
        }
    }
}

impl From<&EventKind> for KindRecord {
    fn from(k: &EventKind) -> Self {
        match k {
            EventKind::Created { business_id } => KindRecord::Created {
                business_id: business_id.clone(),
            },
            EventKind::ProvisioningStarted { attempt } => {
                KindRecord::ProvisioningStarted { attempt: *attempt }
            }
            EventKind::Provisioned => KindRecord::Provisioned,
            EventKind::ProvisioningFailed { code, message } => KindRecord::ProvisioningFailed {
                code: *code,
                message: message.clone(),
            },
            EventKind::Refreshed {
                scene,
                order_id,
                order_line_id,
                expire_time,
                product_id,
            } => KindRecord::Refreshed {
                scene: scene.as_str().to_owned(),
                order_id: order_id.clone().into(),
                order_line_id: order_line_id.clone().map(Into::into),
                expire_time: *expire_time,
                product_id: product_id.clone(),
            },
            EventKind::Frozen => KindRecord::Frozen,
            EventKind::Unfrozen => KindRecord::Unfrozen,
            EventKind::Upgraded {
                order_id,
                order_line_id,
            } => KindRecord::Upgraded {
                order_id: order_id.clone().into(),
                order_line_id: order_line_id.clone().into(),
            },
            EventKind::Released { order_id } => KindRecord::Released {
                order_id: order_id.clone().map(Into::into),
            },
            EventKind::DebugRestarted { business_id } => KindRecord::DebugRestarted {
                business_id: business_id.clone(),
            },
            EventKind::QuotaExhausted { quota } => KindRecord::QuotaExhausted { quota: *quota },
        }
    }
}

impl From<KindRecord> for EventKind {
    fn from(k: KindRecord) -> Self {
        match k {
            KindRecord::Created { business_id } => EventKind::Created { business_id },
            KindRecord::ProvisioningStarted { attempt } => {
                EventKind::ProvisioningStarted { attempt }
            }
            KindRecord::Provisioned => EventKind::Provisioned,
            KindRecord::ProvisioningFailed { code, message } => {
                EventKind::ProvisioningFailed { code, message }
            }
            KindRecord::Refreshed {
                scene,
                order_id,
                order_line_id,
                expire_time,
                product_id,
            } => EventKind::Refreshed {
                scene: RefreshScene::from_name(&scene),
                order_id: order_id.into(),
                order_line_id: order_line_id.map(Into::into),
                expire_time,
                product_id,
            },
            KindRecord::Frozen => EventKind::Frozen,
            KindRecord::Unfrozen => EventKind::Unfrozen,
            KindRecord::Upgraded {
                order_id,
                order_line_id,
            } => EventKind::Upgraded {
                order_id: order_id.into(),
                order_line_id: order_line_id.into(),
            },
            KindRecord::Released { order_id } => EventKind::Released {
                order_id: order_id.map(Into::into),
            },
            KindRecord::DebugRestarted { business_id } => EventKind::DebugRestarted { business_id },
            KindRecord::QuotaExhausted { quota } => EventKind::QuotaExhausted { quota },
        }
    }
}
