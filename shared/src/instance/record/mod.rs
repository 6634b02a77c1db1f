//! How an instance and its history are kept on disk (the embedded store's redb file, the DynamoDB
//! item's `data` attribute): a versioned contract, independent of the domain types, so a rename in
//! the domain cannot silently change what existing deployments have stored.
//!
//! * Schema 2 (this release) writes `"schema":2` and the fields below. Schema 1 is schema 2 without
//!   `provisioning.called` and `outbox` (both default: not called, an idle outbox); schema 0 is
//!   schema 1 without `schema`. All three are read; only schema 2 is written.
//! * Golden tests read records written by earlier releases (`tests/fixtures/*_v0.json`, `*_v1.json`)
//!   and pin what this release writes (`tests/fixtures/*_v2.json`).
//!
//! Field names are snake_case as they always were on disk (`app_info`'s own fields are camelCase, as
//! they were). Times are RFC 3339 UTC.

use crate::failure::Detail;
use serde::{Deserialize, Serialize};

use self::{event::EventRecord, instance::InstanceRecord};
use super::{Instance, InstanceEvent, InstanceState};
use crate::storage::StoreError;

mod event;
mod instance;
mod order;

pub(crate) use order::OrderRecord;

/// The schema this release writes.
pub const SCHEMA: u32 = 2;

/// Encodes an instance as stored.
pub fn encode_instance(instance: &Instance) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(&InstanceRecord::from(instance))
        .map_err(|e| StoreError::Corrupt(Detail::caused_by("cannot encode instance", e)))
}

/// Decodes a stored instance of any known schema.
pub fn decode_instance(bytes: &[u8]) -> Result<Instance, StoreError> {
    let record: InstanceRecord = serde_json::from_slice(bytes).map_err(|e| {
        StoreError::Corrupt(Detail::caused_by("instance record cannot be decoded", e))
    })?;
    record.into_domain()
}

/// Encodes an event as stored.
pub fn encode_event(event: &InstanceEvent) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(&EventRecord::from(event))
        .map_err(|e| StoreError::Corrupt(Detail::caused_by("cannot encode event", e)))
}

/// Decodes a stored event of any known schema.
pub fn decode_event(bytes: &[u8]) -> Result<InstanceEvent, StoreError> {
    let record: EventRecord = serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Corrupt(Detail::caused_by("event record cannot be decoded", e)))?;
    record.into_domain()
}

fn check_schema(schema: u32, what: &str) -> Result<(), StoreError> {
    if schema > SCHEMA {
        return Err(StoreError::Corrupt(format!(
            "{what} has schema {schema}, newer than this release reads ({SCHEMA}); deploy the newer release"
        ).into()));
    }
    Ok(())
}

#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StateRecord {
    Provisioning,
    Active,
    Failed,
    Frozen,
    Released,
}

impl From<InstanceState> for StateRecord {
    fn from(s: InstanceState) -> Self {
        match s {
            InstanceState::Provisioning => Self::Provisioning,
            InstanceState::Active => Self::Active,
            InstanceState::Failed => Self::Failed,
            InstanceState::Frozen => Self::Frozen,
            InstanceState::Released => Self::Released,
        }
    }
}

impl From<StateRecord> for InstanceState {
    fn from(s: StateRecord) -> Self {
        match s {
            StateRecord::Provisioning => Self::Provisioning,
            StateRecord::Active => Self::Active,
            StateRecord::Failed => Self::Failed,
            StateRecord::Frozen => Self::Frozen,
            StateRecord::Released => Self::Released,
        }
    }
}

#[cfg(test)]
mod tests;
