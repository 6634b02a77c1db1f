//! `queryInstance` request and answer (docs/protocol/callbacks.md §6.2): `info[]` of `appInfo` and
//! `usageInfo`.

use serde::{Deserialize, Serialize};

use super::{CallbackRequest, MAX_ID_LEN, require, test_flag};

/// Most instance IDs one queryInstance may carry (docs/protocol/callbacks.md §6.2).
pub const MAX_QUERY_IDS: usize = 100;

/// `queryInstance` (docs/protocol/callbacks.md §6.2): `instanceId` is a comma-separated list of up
/// to 100 IDs.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryInstanceRequest {
    pub instance_id: String,
    /// Set only by the edge's V1 translation (docs/protocol/callbacks.md §11).
    #[serde(default)]
    pub v1: Option<crate::protocol::v1::V1Context>,
    #[serde(default, deserialize_with = "test_flag")]
    pub test_flag: bool,
}

impl QueryInstanceRequest {
    /// The requested IDs, trimmed, blanks and repeats dropped, in request order.
    pub fn instance_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = Vec::new();
        for id in self
            .instance_id
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    }
}

impl CallbackRequest for QueryInstanceRequest {
    fn validate(&self) -> Result<(), String> {
        let ids = self.instance_ids();
        if ids.is_empty() {
            return Err("instanceId must not be empty".into());
        }
        if ids.len() > MAX_QUERY_IDS {
            return Err(format!(
                "instanceId lists {} IDs; at most {MAX_QUERY_IDS} are allowed",
                ids.len()
            ));
        }
        ids.iter()
            .try_for_each(|id| require("instanceId", id, MAX_ID_LEN))
    }
    fn is_test(&self) -> bool {
        self.test_flag
    }
}

/// Application access information (docs/protocol/callbacks.md §6.2 AppInfo).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppInfo {
    pub front_end_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memo: Option<String>,
}

/// Usage figures for pay-per-use and package instances (docs/protocol/callbacks.md §6.2 UsageInfo).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub related_instance_id: Option<String>,
    pub usage_value: f64,
    /// `yyyyMMddHHmmssSSS`, UTC.
    pub statistical_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dashboard_url: Option<String>,
}

/// One entry of queryInstance's `info` (docs/protocol/callbacks.md §6.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceInfo {
    pub instance_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_info: Option<AppInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_info: Option<Vec<UsageInfo>>,
}
