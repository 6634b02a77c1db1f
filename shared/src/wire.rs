//! Wire models of the V2 basic interfaces (spec callbacks §6): one request and one response type per
//! `activity`. Requests are lenient (unknown fields ignored, `testFlag` as string or number);
//! responses are strict (camelCase, absent optionals omitted, `resultCode` first).

use serde::{Deserialize, Deserializer, Serialize, de::DeserializeOwned};
use serde_json::{Map, Value};

use crate::ResultCode;

/// The `activity` values of the V2 basic interfaces (callbacks §6). `orderNotify` (§6.8) arrives
/// in a later release; until then the edge answers it with `000002`.
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
}

impl Activity {
    pub const ALL: [Activity; 7] = [
        Self::NewInstance,
        Self::QueryInstance,
        Self::RefreshInstance,
        Self::UpdateInstanceStatus,
        Self::ReleaseInstance,
        Self::UpgradeInstance,
        Self::ChangeInstanceCheck,
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

/// `testFlag`: `"1"` marks a debug call from the seller console or the daily probes (callbacks §1).
/// V2 pages send a string, Kit bodies an integer, non-debug calls omit it: accept all of them.
fn test_flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => s.trim() == "1",
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        Some(Value::Bool(b)) => b,
        Some(other) => {
            return Err(serde::de::Error::custom(format!(
                "testFlag must be \"0\" or \"1\", got {other}"
            )));
        }
    })
}

/// A request that can check its own mandatory fields beyond what serde enforces.
pub trait CallbackRequest: DeserializeOwned {
    /// Checks non-empty mandatory identifiers and sizes; the error text becomes `resultMsg`.
    fn validate(&self) -> Result<(), String>;
    fn is_test(&self) -> bool;
}

/// Parses and validates a verified request body; the error is a `resultMsg` for `000002`.
pub fn parse_request<R: CallbackRequest>(body: &Value) -> Result<R, String> {
    // serde_path_to_error names the offending field ("scene: unknown variant ..."), which serde alone
    // does not for values read from an already-parsed body.
    let req: R = serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            format!("invalid request: {inner}")
        } else {
            format!("invalid request: {path}: {inner}")
        }
    })?;
    req.validate()?;
    Ok(req)
}

fn require(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.trim().is_empty() {
        Err(format!("{field} must not be empty"))
    } else if value.chars().count() > max {
        Err(format!("{field} is longer than {max} characters"))
    } else {
        Ok(())
    }
}

/// Identifier limit: the spec gives 64 for every ID (callbacks §6). Be liberal by a factor of two so a
/// slightly longer platform ID never fails an order, while still bounding what gets stored.
pub const MAX_ID_LEN: usize = 128;

/// `newInstance` (callbacks §6.1). The V2 body carries no customer data: the order comes from Query Order.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewInstanceRequest {
    pub order_id: String,
    pub order_line_id: String,
    pub business_id: String,
    #[serde(default, deserialize_with = "test_flag")]
    pub test_flag: bool,
}

impl CallbackRequest for NewInstanceRequest {
    fn validate(&self) -> Result<(), String> {
        require("orderId", &self.order_id, MAX_ID_LEN)?;
        require("orderLineId", &self.order_line_id, MAX_ID_LEN)?;
        require("businessId", &self.business_id, 64)
    }
    fn is_test(&self) -> bool {
        self.test_flag
    }
}

/// Most instance IDs one queryInstance may carry (callbacks §6.2).
pub const MAX_QUERY_IDS: usize = 100;

/// `queryInstance` (callbacks §6.2): `instanceId` is a comma-separated list of up to 100 IDs.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryInstanceRequest {
    pub instance_id: String,
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

/// `refreshInstance` scenes (callbacks §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefreshScene {
    TrialToFormal,
    Renewal,
    UnsubscribeRenewalPeriod,
    RenewalChange,
}

impl RefreshScene {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TrialToFormal => "TRIAL_TO_FORMAL",
            Self::Renewal => "RENEWAL",
            Self::UnsubscribeRenewalPeriod => "UNSUBSCRIBE_RENEWAL_PERIOD",
            Self::RenewalChange => "RENEWAL_CHANGE",
        }
    }
}

/// `refreshInstance` (callbacks §6.3): renewal, trial→formal, renewal cancellation, change on renewal.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshInstanceRequest {
    pub instance_id: String,
    pub order_id: String,
    /// Mandatory in the table; accepted when absent (be liberal) since nothing here depends on it.
    #[serde(default)]
    pub order_line_id: Option<String>,
    pub scene: RefreshScene,
    #[serde(default)]
    pub product_id: Option<String>,
    /// New expiry, UTC, 14 or 17 digits (Decisions §10).
    pub expire_time: String,
    #[serde(default, deserialize_with = "test_flag")]
    pub test_flag: bool,
}

impl CallbackRequest for RefreshInstanceRequest {
    fn validate(&self) -> Result<(), String> {
        require("instanceId", &self.instance_id, MAX_ID_LEN)?;
        require("orderId", &self.order_id, MAX_ID_LEN)?;
        if crate::time::parse_compact(self.expire_time.trim()).is_none() {
            return Err(format!(
                "expireTime {:?} is not yyyyMMddHHmmss or yyyyMMddHHmmssSSS",
                self.expire_time
            ));
        }
        Ok(())
    }
    fn is_test(&self) -> bool {
        self.test_flag
    }
}

/// `updateInstanceStatus` target (callbacks §6.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StatusAction {
    Freeze,
    /// V1's `instanceStatus` used `NORMAL` for the same thing; accepted as an alias (be liberal).
    #[serde(alias = "NORMAL")]
    Unfreeze,
}

/// `updateInstanceStatus` (callbacks §6.4): freeze or unfreeze, idempotent.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateInstanceStatusRequest {
    pub instance_id: String,
    pub status: StatusAction,
    #[serde(default, deserialize_with = "test_flag")]
    pub test_flag: bool,
}

impl CallbackRequest for UpdateInstanceStatusRequest {
    fn validate(&self) -> Result<(), String> {
        require("instanceId", &self.instance_id, MAX_ID_LEN)
    }
    fn is_test(&self) -> bool {
        self.test_flag
    }
}

/// `releaseInstance` (callbacks §6.5): a repeat is success.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseInstanceRequest {
    pub instance_id: String,
    #[serde(default)]
    pub order_id: Option<String>,
    #[serde(default)]
    pub order_line_id: Option<String>,
    #[serde(default, deserialize_with = "test_flag")]
    pub test_flag: bool,
}

impl CallbackRequest for ReleaseInstanceRequest {
    fn validate(&self) -> Result<(), String> {
        require("instanceId", &self.instance_id, MAX_ID_LEN)
    }
    fn is_test(&self) -> bool {
        self.test_flag
    }
}

/// `upgradeInstance` (callbacks §6.6): a new (upgrade) order on an unchanged instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeInstanceRequest {
    pub instance_id: String,
    pub order_id: String,
    pub order_line_id: String,
    #[serde(default, deserialize_with = "test_flag")]
    pub test_flag: bool,
}

impl CallbackRequest for UpgradeInstanceRequest {
    fn validate(&self) -> Result<(), String> {
        require("instanceId", &self.instance_id, MAX_ID_LEN)?;
        require("orderId", &self.order_id, MAX_ID_LEN)?;
        require("orderLineId", &self.order_line_id, MAX_ID_LEN)
    }
    fn is_test(&self) -> bool {
        self.test_flag
    }
}

/// The target product of a renewal change (callbacks §6.7). Its field list is UNCONFIRMED: the likely
/// fields are typed, everything else is kept as received.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linear_value: Option<f64>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `productInfo` arrives as an object, or (seen in third-party code) as a JSON string: accept both.
fn product_info<'de, D: Deserializer<'de>>(d: D) -> Result<ProductInfo, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => serde_json::from_str(&s).map_err(serde::de::Error::custom),
        v @ Value::Object(_) => ProductInfo::deserialize(v).map_err(serde::de::Error::custom),
        other => Err(serde::de::Error::custom(format!(
            "productInfo must be an object, got {other}"
        ))),
    }
}

/// `changeInstanceCheck` (callbacks §6.7): may the instance change to `productInfo` at renewal?
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeInstanceCheckRequest {
    pub instance_id: String,
    #[serde(deserialize_with = "product_info")]
    pub product_info: ProductInfo,
    #[serde(default, deserialize_with = "test_flag")]
    pub test_flag: bool,
}

impl CallbackRequest for ChangeInstanceCheckRequest {
    fn validate(&self) -> Result<(), String> {
        require("instanceId", &self.instance_id, MAX_ID_LEN)
    }
    fn is_test(&self) -> bool {
        self.test_flag
    }
}

/// What a callback answers: `resultCode`, `resultMsg`, then the interface's own fields, sent as-is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reply {
    pub result_code: ResultCode,
    #[serde(default)]
    pub result_msg: String,
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

/// `resultMsg` is at most 255 characters (callbacks §4).
pub const MAX_RESULT_MSG: usize = 255;

impl Reply {
    pub fn new(code: ResultCode, msg: impl Into<String>) -> Self {
        let mut msg: String = msg.into();
        if msg.chars().count() > MAX_RESULT_MSG {
            msg = msg.chars().take(MAX_RESULT_MSG - 3).collect::<String>() + "...";
        }
        Self {
            result_code: code,
            result_msg: msg,
            fields: Map::new(),
        }
    }

    pub fn success() -> Self {
        Self::new(ResultCode::Success, ResultCode::Success.default_message())
    }

    pub fn code(code: ResultCode) -> Self {
        Self::new(code, code.default_message())
    }

    /// Adds a field; `None`-like values are the caller's business (skip them before calling).
    pub fn with(mut self, key: &str, value: impl Serialize) -> Self {
        // Serialising our own wire structs cannot fail; fall back to null rather than panic.
        self.fields.insert(
            key.to_owned(),
            serde_json::to_value(value).unwrap_or(Value::Null),
        );
        self
    }

    /// Compact JSON bytes, the exact bytes that are signed with `Body-Sign` and sent.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self)
            .unwrap_or_else(|_| br#"{"resultCode":"000005","resultMsg":"internal error"}"#.to_vec())
    }

    /// Reads an interface-specific field back (clients, tests).
    pub fn field<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.fields.get(key).and_then(|v| T::deserialize(v).ok())
    }
}

/// Application access information (callbacks §6.2 AppInfo).
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

/// Usage figures for pay-per-use and package instances (callbacks §6.2 UsageInfo).
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

/// One entry of queryInstance's `info` (callbacks §6.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceInfo {
    pub instance_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_info: Option<AppInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_info: Option<Vec<UsageInfo>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn new_instance_doc_body_parses_and_test_flag_forms_are_accepted() {
        let body = json!({"activity":"newInstance","businessId":"87b94795-0603-4e24-8ae5-69420d60e3c8",
            "orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","testFlag":"1"});
        let r: NewInstanceRequest = parse_request(&body).unwrap();
        assert!(r.test_flag);
        assert_eq!(r.order_line_id, "CS2211181819B4LVS-000001");
        for (flag, expected) in [
            (json!("0"), false),
            (json!(1), true),
            (json!(0), false),
            (Value::Null, false),
        ] {
            let mut b = body.clone();
            b["testFlag"] = flag;
            assert_eq!(
                parse_request::<NewInstanceRequest>(&b).unwrap().test_flag,
                expected
            );
        }
    }

    #[test]
    fn missing_or_empty_mandatory_fields_name_the_field() {
        let err = parse_request::<NewInstanceRequest>(&json!({"orderId":"A","businessId":"b"}))
            .unwrap_err();
        assert!(err.contains("orderLineId"), "{err}");
        let err = parse_request::<NewInstanceRequest>(
            &json!({"orderId":" ","orderLineId":"x","businessId":"b"}),
        )
        .unwrap_err();
        assert!(err.contains("orderId must not be empty"), "{err}");
    }

    #[test]
    fn query_instance_splits_ids_and_caps_at_one_hundred() {
        let r: QueryInstanceRequest = parse_request(&json!({"instanceId":" a, b,,a ,c"})).unwrap();
        assert_eq!(r.instance_ids(), vec!["a", "b", "c"]);
        let many: Vec<String> = (0..101).map(|i| format!("i{i}")).collect();
        let err = parse_request::<QueryInstanceRequest>(&json!({"instanceId": many.join(",")}))
            .unwrap_err();
        assert!(err.contains("at most 100"), "{err}");
        let ok: Vec<String> = (0..100).map(|i| format!("i{i}")).collect();
        assert!(
            parse_request::<QueryInstanceRequest>(&json!({"instanceId": ok.join(",")})).is_ok()
        );
    }

    #[test]
    fn refresh_accepts_both_time_widths_and_rejects_garbage() {
        let mut b = json!({"instanceId":"i","orderId":"o","orderLineId":"l","scene":"RENEWAL",
            "expireTime":"20221124023618256"});
        assert!(parse_request::<RefreshInstanceRequest>(&b).is_ok());
        b["expireTime"] = json!("20221124023618");
        assert!(parse_request::<RefreshInstanceRequest>(&b).is_ok());
        b["expireTime"] = json!("2022-11-24");
        assert!(
            parse_request::<RefreshInstanceRequest>(&b)
                .unwrap_err()
                .contains("expireTime")
        );
        b["expireTime"] = json!("20221124023618");
        b["scene"] = json!("SOMETHING_ELSE");
        assert!(
            parse_request::<RefreshInstanceRequest>(&b)
                .unwrap_err()
                .contains("scene")
        );
    }

    #[test]
    fn status_accepts_v1_normal_alias() {
        let r: UpdateInstanceStatusRequest =
            parse_request(&json!({"instanceId":"i","status":"NORMAL"})).unwrap();
        assert_eq!(r.status, StatusAction::Unfreeze);
        assert!(
            parse_request::<UpdateInstanceStatusRequest>(
                &json!({"instanceId":"i","status":"PAUSE"})
            )
            .is_err()
        );
    }

    #[test]
    fn product_info_as_object_or_string() {
        let a: ChangeInstanceCheckRequest = parse_request(
            &json!({"instanceId":"i","productInfo":{"productId":"p","skuCode":"s","linearValue":5,"x":"y"}}),
        )
        .unwrap();
        let b: ChangeInstanceCheckRequest = parse_request(
            &json!({"instanceId":"i","productInfo":"{\"productId\":\"p\",\"skuCode\":\"s\",\"linearValue\":5,\"x\":\"y\"}"}),
        )
        .unwrap();
        assert_eq!(a.product_info, b.product_info);
        assert_eq!(a.product_info.linear_value, Some(5.0));
        assert_eq!(a.product_info.other["x"], "y");
    }

    #[test]
    fn reply_serialises_result_code_first_and_truncates_long_messages() {
        let r = Reply::new(ResultCode::Processing, "x".repeat(400)).with("instanceId", "abc");
        let s = String::from_utf8(r.to_bytes()).unwrap();
        assert!(
            s.starts_with(r#"{"resultCode":"000004","resultMsg":"xxx"#),
            "{s}"
        );
        assert!(s.ends_with(r#"...","instanceId":"abc"}"#), "{s}");
        let back: Reply = serde_json::from_str(&s).unwrap();
        assert_eq!(back.result_msg.chars().count(), MAX_RESULT_MSG);
        assert_eq!(back.field::<String>("instanceId").as_deref(), Some("abc"));
    }
}
