//! `allOrgSync` request (docs/protocol/callbacks.md §9.5): the tenant's whole department set, to
//! replace what is stored (docs/protocol/decisions.md §16).

use serde::Deserialize;

use super::{MAX_NAME_LEN, list, optional_id, require_id, require_text};
use crate::protocol::request::{CallbackRequest, test_flag};

/// One department of the flat list (parents may come after children; the top one has no parent).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrgInfo {
    pub org_code: String,
    /// V1 called it `name`.
    #[serde(alias = "name", default)]
    pub org_name: Option<String>,
    #[serde(default)]
    pub parent_code: Option<String>,
}

/// `POST …/produceAPI/v2/allOrgSync`. Its `flag` (present in the page's example only) is ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AllOrgSyncRequest {
    #[serde(default)]
    pub instance_id: String,
    pub tenant_id: String,
    /// An array, or a JSON string holding one (V1's `orgInfo`).
    #[serde(alias = "orgInfo", deserialize_with = "list")]
    pub org_info_list: Vec<OrgInfo>,
    #[serde(default, deserialize_with = "test_flag")]
    pub test_flag: bool,
    pub time_stamp: String,
}

impl CallbackRequest for AllOrgSyncRequest {
    fn validate(&self) -> Result<(), String> {
        optional_id("instanceId", &self.instance_id)?;
        require_id("tenantId", &self.tenant_id)?;
        let mut seen = std::collections::HashSet::new();
        for (i, org) in self.org_info_list.iter().enumerate() {
            let field = |name: &str| format!("orgInfoList[{i}].{name}");
            require_id(&field("orgCode"), &org.org_code)?;
            require_text(&field("orgName"), org.org_name.as_deref(), MAX_NAME_LEN)?;
            optional_id(
                &field("parentCode"),
                org.parent_code.as_deref().unwrap_or(""),
            )?;
            // orgCode is unique in a tenant (docs/protocol/callbacks.md §9.4): a list naming one
            // twice is not a department set, and keeping either copy would be a guess.
            if !seen.insert(org.org_code.as_str()) {
                return Err(format!(
                    "{}: {:?} appears more than once",
                    field("orgCode"),
                    org.org_code
                ));
            }
        }
        Ok(())
    }

    fn is_test(&self) -> bool {
        self.test_flag
    }
}
