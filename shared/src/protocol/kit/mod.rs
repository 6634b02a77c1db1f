//! The 联营 Kit syncs (docs/protocol/callbacks.md §9, §3.2; docs/protocol/decisions.md §2, §15–18):
//! what KooGallery POSTs to `{production URL}/produceAPI/v2/{name}` to sync a buyer's enterprise:
//! the tenant, the app and its OAuth client, the authorized users, the departments. One module per
//! interface's request; this one holds the vocabulary (the five names) and what their fields share:
//! the `flag` sets, lists sent as an array or as a JSON-encoded string, and the identifier limits.
//!
//! Requests are lenient where the pages are loose (numbers as strings, a list as a string, unknown
//! fields ignored, `instanceId`/`orderId` empty or absent for the seller's own credential) and
//! strict where a silent success would lose a sync for good: an unknown `flag` or a missing
//! mandatory field is refused with `000002` naming the field (docs/protocol/decisions.md §15).

use serde::{Deserialize, Deserializer, de::DeserializeOwned};
use serde_json::Value;

use crate::protocol::request::json_kind;

pub mod all_org_sync;
pub mod application_sync;
pub mod auth_sync;
pub mod single_org_sync;
pub mod tenant_sync;

pub use all_org_sync::{AllOrgSyncRequest, OrgInfo};
pub use application_sync::ApplicationSyncRequest;
pub use auth_sync::{AuthFlag, AuthSyncRequest, KitUser};
pub use single_org_sync::SingleOrgSyncRequest;
pub use tenant_sync::TenantSyncRequest;

/// Every Kit interface (docs/protocol/callbacks.md §9): the protocol's vocabulary, named by the
/// last segment of its path. Which ones are served is the callback registry's business.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KitInterface {
    TenantSync,
    ApplicationSync,
    AuthSync,
    SingleOrgSync,
    AllOrgSync,
}

impl KitInterface {
    pub const ALL: [Self; 5] = [
        Self::TenantSync,
        Self::ApplicationSync,
        Self::AuthSync,
        Self::SingleOrgSync,
        Self::AllOrgSync,
    ];

    /// The path segment: `POST {production URL}/produceAPI/v2/{name}`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TenantSync => "tenantSync",
            Self::ApplicationSync => "applicationSync",
            Self::AuthSync => "authSync",
            Self::SingleOrgSync => "singleOrgSync",
            Self::AllOrgSync => "allOrgSync",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The sub-path KooGallery appends to the production URL for V2 Kit calls
/// (docs/protocol/callbacks.md §9).
pub const V2_PATH_PREFIX: &str = "/produceAPI/v2/";
/// The V1 Kit sub-path (header `authToken`, docs/protocol/callbacks.md §11): routed to the same
/// callbacks once the V1 family is served.
pub const V1_PATH_PREFIX: &str = "/produceAPI/";

/// `flag` of tenantSync, applicationSync and singleOrgSync
/// (docs/protocol/callbacks.md §9.1, §9.2, §9.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncFlag {
    Delete,
    Add,
    Modify,
}

impl SyncFlag {
    /// Deletes carry only the record's key; adds and modifies carry its content too.
    pub fn is_delete(self) -> bool {
        self == Self::Delete
    }
}

impl<'de> Deserialize<'de> for SyncFlag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match integer(d)? {
            0 => Ok(Self::Delete),
            1 => Ok(Self::Add),
            2 => Ok(Self::Modify),
            other => Err(serde::de::Error::custom(format!(
                "must be 0 (delete), 1 (add) or 2 (modify), got {other}"
            ))),
        }
    }
}

/// An `Integer` field (`flag`): a JSON integer, or the same digits as a string (liberal,
/// docs/protocol/decisions.md §11).
pub(crate) fn integer<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    match Value::deserialize(d)? {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| serde::de::Error::custom(format!("must be an integer, got {n}"))),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("must be an integer, got {s:?}"))),
        other => Err(serde::de::Error::custom(format!(
            "must be an integer, got {other}"
        ))),
    }
}

/// A list sent as a JSON array (V2) or as a string holding one (V1, and the allOrgSync example,
/// whose string does not even quote its keys: read as JSON5). Anything else is refused
/// (docs/protocol/decisions.md §15).
pub(crate) fn list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    use serde::de::Error;
    let value = match Value::deserialize(d)? {
        Value::String(s) => match serde_json::from_str::<Value>(&s) {
            Ok(v) => v,
            Err(_) => json5::from_str::<Value>(&s).map_err(|e| {
                D::Error::custom(format!("is a string that does not hold a JSON array: {e}"))
            })?,
        },
        other => other,
    };
    match value {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                serde_path_to_error::deserialize(item)
                    .map_err(|e| D::Error::custom(format!("[{i}].{}: {}", e.path(), e.inner())))
            })
            .collect(),
        other => Err(D::Error::custom(format!(
            "must be an array (or a JSON-encoded array), got {}",
            json_kind(&other)
        ))),
    }
}

/// A string field that KooGallery may also send as a number (`employeeType`, codes); kept as text.
pub(crate) fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::Bool(b)) => Some(b.to_string()),
        Some(other) => {
            return Err(serde::de::Error::custom(format!(
                "must be a string, got {}",
                json_kind(&other)
            )));
        }
    })
}

/// Identifiers: 64 characters documented; twice that accepted (as the basic interfaces do), and
/// never a control character (they separate key parts in the stores).
pub const MAX_ID_LEN: usize = crate::protocol::request::MAX_ID_LEN;
/// Names (`name` 255, `orgName` 128, `domainName` 255): twice the largest documented.
pub const MAX_NAME_LEN: usize = 512;

/// A mandatory identifier: present, non-blank, bounded, no control characters.
pub(crate) fn require_id(field: &str, value: &str) -> Result<(), String> {
    crate::protocol::request::require(field, value, MAX_ID_LEN)?;
    optional_id(field, value)
}

/// An identifier that may be empty (`instanceId`, `orderId` of the seller's own credential) or
/// absent (`parentCode` of the top department): bounded, no control characters.
pub(crate) fn optional_id(field: &str, value: &str) -> Result<(), String> {
    if value.chars().count() > MAX_ID_LEN {
        Err(format!("{field} is longer than {MAX_ID_LEN} characters"))
    } else if value.chars().any(char::is_control) {
        Err(format!("{field} must not contain control characters"))
    } else {
        Ok(())
    }
}

/// A mandatory text (`name`, `orgName`, `domainName`): present, non-blank, bounded.
pub(crate) fn require_text(field: &str, value: Option<&str>, max: usize) -> Result<(), String> {
    crate::protocol::request::require(field, value.unwrap_or(""), max)
}

#[cfg(test)]
mod tests;
