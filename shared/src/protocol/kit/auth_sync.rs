//! `authSync` request (docs/protocol/callbacks.md §9.3): which users of the tenant may use the app,
//! up to 500 per call, with their role and whether they are enabled.

use serde::{Deserialize, Deserializer};

use super::{MAX_NAME_LEN, integer, list, optional_id, require_id, require_text, text};
use crate::protocol::request::{CallbackRequest, test_flag};

/// `flag` of authSync (docs/protocol/callbacks.md §9.3): 3 revokes the user's access but keeps the
/// record (docs/protocol/decisions.md §16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFlag {
    Delete,
    Add,
    Modify,
    Revoke,
}

impl<'de> Deserialize<'de> for AuthFlag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match integer(d)? {
            0 => Ok(Self::Delete),
            1 => Ok(Self::Add),
            2 => Ok(Self::Modify),
            3 => Ok(Self::Revoke),
            other => Err(serde::de::Error::custom(format!(
                "must be 0 (delete), 1 (add), 2 (modify) or 3 (revoke), got {other}"
            ))),
        }
    }
}

/// One user of `userList`. Only `userName` identifies it; the rest is what an add or modify stores.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KitUser {
    pub user_name: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub org_code: Option<String>,
    #[serde(default)]
    pub position: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub employee_code: Option<String>,
    /// 1 regular, 2 intern, 3 agency dispatch, 4 outsourced; kept as sent.
    #[serde(default, deserialize_with = "text")]
    pub employee_type: Option<String>,
    /// `user` or `admin` (admins get admin rights in the app).
    #[serde(default)]
    pub role: Option<String>,
    /// `"true"` / `"false"` (a JSON boolean is read too).
    #[serde(default, deserialize_with = "text")]
    pub enable: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub mobile: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub work_place: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub entry_date: Option<String>,
}

impl KitUser {
    /// `enable` read as KooGallery writes it; anything but `true` (any case) is disabled.
    pub fn enabled(&self) -> bool {
        self.enable
            .as_deref()
            .is_some_and(|e| e.trim().eq_ignore_ascii_case("true"))
    }

    /// Whether the user is an admin of the app (`role` = `admin`, any case).
    pub fn is_admin(&self) -> bool {
        self.role
            .as_deref()
            .is_some_and(|r| r.trim().eq_ignore_ascii_case("admin"))
    }
}

/// `POST …/produceAPI/v2/authSync`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthSyncRequest {
    #[serde(default)]
    pub instance_id: String,
    pub tenant_id: String,
    pub app_id: String,
    /// A JSON array in V2, a JSON-encoded string in V1.
    #[serde(deserialize_with = "list")]
    pub user_list: Vec<KitUser>,
    #[serde(default)]
    pub current_sync_time: Option<String>,
    pub flag: AuthFlag,
    #[serde(default, deserialize_with = "test_flag")]
    pub test_flag: bool,
    pub time_stamp: String,
}

impl CallbackRequest for AuthSyncRequest {
    fn validate(&self) -> Result<(), String> {
        optional_id("instanceId", &self.instance_id)?;
        require_id("tenantId", &self.tenant_id)?;
        require_id("appId", &self.app_id)?;
        let stores = matches!(self.flag, AuthFlag::Add | AuthFlag::Modify);
        let mut seen = std::collections::HashSet::new();
        for (i, user) in self.user_list.iter().enumerate() {
            let field = |name: &str| format!("userList[{i}].{name}");
            require_id(&field("userName"), &user.user_name)?;
            if !seen.insert(user.user_name.as_str()) {
                return Err(format!(
                    "{}: {:?} appears more than once",
                    field("userName"),
                    user.user_name
                ));
            }
            if stores {
                require_text(&field("name"), user.name.as_deref(), MAX_NAME_LEN)?;
                require_id(&field("orgCode"), user.org_code.as_deref().unwrap_or(""))?;
                require_id(&field("role"), user.role.as_deref().unwrap_or(""))?;
                let enable = user.enable.as_deref().unwrap_or("").trim();
                if !enable.eq_ignore_ascii_case("true") && !enable.eq_ignore_ascii_case("false") {
                    return Err(format!(
                        "{} must be \"true\" or \"false\", got {enable:?}",
                        field("enable")
                    ));
                }
            }
        }
        Ok(())
    }

    fn is_test(&self) -> bool {
        self.test_flag
    }
}
