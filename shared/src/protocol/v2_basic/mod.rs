//! The V2 basic interfaces (docs/protocol/callbacks.md §6): the `activity` vocabulary, the lenient
//! request parsing every interface shares, and one module per interface's request (and answer)
//! shape. Requests are lenient (unknown fields ignored, `testFlag` as string or number); answers
//! are strict (camelCase, absent optionals omitted, `resultCode` first).

use serde::{Deserialize, Serialize};

pub mod change_instance_check;
pub mod new_instance;
pub mod order_notify;
pub mod query_instance;
pub mod refresh_instance;
pub mod release_instance;
pub mod update_instance_status;
pub mod upgrade_instance;

pub use change_instance_check::{ChangeInstanceCheckRequest, ProductInfo};
pub use new_instance::NewInstanceRequest;
pub use order_notify::OrderNotifyRequest;
pub use query_instance::{AppInfo, InstanceInfo, MAX_QUERY_IDS, QueryInstanceRequest, UsageInfo};
pub use refresh_instance::{RefreshInstanceRequest, RefreshScene};
pub use release_instance::ReleaseInstanceRequest;
pub use update_instance_status::{StatusAction, UpdateInstanceStatusRequest};
pub use upgrade_instance::UpgradeInstanceRequest;

/// Every `activity` of the V2 basic interfaces (docs/protocol/callbacks.md §6), whether or not this
/// deployment serves it: the protocol's vocabulary (the simulator speaks it). Which ones are served
/// is the callback registry's business (`crate::callbacks::registry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Activity {
    NewInstance,
    QueryInstance,
    RefreshInstance,
    UpdateInstanceStatus,
    ReleaseInstance,
    UpgradeInstance,
    ChangeInstanceCheck,
    /// Order notification (docs/protocol/callbacks.md §6.8).
    OrderNotify,
}

impl Activity {
    pub const ALL: [Activity; 8] = [
        Self::NewInstance,
        Self::QueryInstance,
        Self::RefreshInstance,
        Self::UpdateInstanceStatus,
        Self::ReleaseInstance,
        Self::UpgradeInstance,
        Self::ChangeInstanceCheck,
        Self::OrderNotify,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NewInstance => "newInstance",
            Self::QueryInstance => "queryInstance",
            Self::RefreshInstance => "refreshInstance",
            Self::UpdateInstanceStatus => "updateInstanceStatus",
            Self::ReleaseInstance => "releaseInstance",
            Self::UpgradeInstance => "upgradeInstance",
            Self::ChangeInstanceCheck => "changeInstanceCheck",
            Self::OrderNotify => "orderNotify",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl std::fmt::Display for Activity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub use crate::protocol::request::{CallbackRequest, MAX_ID_LEN, parse_request, test_flag_of};
pub(crate) use crate::protocol::request::{require, test_flag};

#[cfg(test)]
mod tests;
