//! The retired V1 GET interface (docs/protocol/callbacks.md §3.6, §11; the legacy License GET
//! activities, docs/protocol/openapi.md §6.4; docs/protocol/decisions.md §20): its parameters as
//! received (URL-decoded, first value of a repeated name), its activities, and the translation of
//! each into the body of the callback that serves the same concept — V1 `expireInstance` is a
//! freeze (`updateInstanceStatus`), V1 `upgrade` is `upgradeInstance`, and so on — with what only
//! V1 carries (the order, the buyer's decrypted contact fields) under [`V1_CONTEXT`].

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::security::credential_cipher;

#[cfg(test)]
mod tests;

/// The field of a translated body that carries what only V1 sends. The edge removes it from every
/// V2 body, so only a V1 translation can set it.
pub const V1_CONTEXT: &str = "v1";

/// The legacy License activities (docs/protocol/openapi.md §6.4) and the V1 instance activities
/// (docs/protocol/callbacks.md §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V1Activity {
    NewInstance,
    RefreshInstance,
    ExpireInstance,
    ReleaseInstance,
    Upgrade,
    InstanceStatus,
    QueryInstance,
    GetLicense,
    RefreshLicense,
    ExpireLicense,
    ReleaseLicense,
}

impl V1Activity {
    pub const ALL: [Self; 11] = [
        Self::NewInstance,
        Self::RefreshInstance,
        Self::ExpireInstance,
        Self::ReleaseInstance,
        Self::Upgrade,
        Self::InstanceStatus,
        Self::QueryInstance,
        Self::GetLicense,
        Self::RefreshLicense,
        Self::ExpireLicense,
        Self::ReleaseLicense,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NewInstance => "newInstance",
            Self::RefreshInstance => "refreshInstance",
            Self::ExpireInstance => "expireInstance",
            Self::ReleaseInstance => "releaseInstance",
            Self::Upgrade => "upgrade",
            Self::InstanceStatus => "instanceStatus",
            Self::QueryInstance => "queryInstance",
            Self::GetLicense => "getLicense",
            Self::RefreshLicense => "refreshLicense",
            Self::ExpireLicense => "expireLicense",
            Self::ReleaseLicense => "releaseLicense",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// A License activity: its `instanceId` (in the query, or getLicense's answer) is a license
    /// code (docs/protocol/callbacks.md §11).
    pub fn is_license(self) -> bool {
        matches!(
            self,
            Self::GetLicense | Self::RefreshLicense | Self::ExpireLicense | Self::ReleaseLicense
        )
    }

    /// The activity of the callback that serves it (a V2 basic activity, a License activity).
    pub fn served_by(self) -> &'static str {
        match self {
            Self::NewInstance => "newInstance",
            Self::RefreshInstance => "refreshInstance",
            Self::ExpireInstance | Self::InstanceStatus => "updateInstanceStatus",
            Self::ReleaseInstance => "releaseInstance",
            Self::Upgrade => "upgradeInstance",
            Self::QueryInstance => "queryInstance",
            Self::GetLicense => "getLicense",
            Self::RefreshLicense => "refreshLicenseCode",
            Self::ExpireLicense => "updateLicenseCodeStatus",
            Self::ReleaseLicense => "releaseLicenseCode",
        }
    }
}

/// The parameters of a V1 call, URL-decoded, in the order received.
#[derive(Debug, Clone, Default)]
pub struct V1Params(Vec<(String, String)>);

impl V1Params {
    /// A GET's query string (`application/x-www-form-urlencoded` decoding: `%XX` and `+` as space,
    /// as Huawei's servlet sample reads them).
    pub fn from_query(query: &str) -> Self {
        Self(
            form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// A V1 Kit body's top-level fields (docs/protocol/callbacks.md §3.6: "Kit POST: top-level body
    /// fields"): strings as they are, other values as compact JSON, nulls dropped. UNCONFIRMED how
    /// the platform renders non-string values; V1 Kit bodies carry strings (`userList` is a JSON
    /// string), so this is the reading with the least to guess.
    pub fn from_body(body: &Map<String, Value>) -> Self {
        Self(
            body.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), v)
                })
                .collect(),
        )
    }

    /// The first value of `name` (Huawei's helper reads `getParameterMap().get(k)[0]`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A present, non-blank value, trimmed.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }

    /// All pairs, for the `authToken` (docs/protocol/callbacks.md §3.6).
    pub fn pairs(&self) -> Vec<(&str, &str)> {
        self.0
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    fn required(&self, name: &str) -> Result<&str, String> {
        self.text(name).ok_or_else(|| format!("{name} is missing"))
    }
}

/// What only V1 carries, added to the translated body under [`V1_CONTEXT`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct V1Context {
    /// newInstance and upgrade: the order as the call describes it (KooGallery's Query Order is
    /// not asked about a V1 order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<V1Order>,
}

/// A V1 order as newInstance (or upgrade) describes it (docs/protocol/callbacks.md §11).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct V1Order {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// Decrypted (docs/protocol/callbacks.md §3.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile_phone: Option<String>,
    /// Decrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku_code: Option<String>,
    /// V1's integer `chargingMode` (docs/protocol/callbacks.md §8.1): 0 on demand, 1 period, 3 one
    /// time, 5 on-demand package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charging_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_time: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub trial: bool,
    /// The linear attribute (`amount`, else `diskSize`, else `bandWidth`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<String>,
    /// `saasExtendParams`, decoded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extend_params: Vec<(String, String)>,
}

/// The key size of `mobilePhone` and `email` (docs/protocol/decisions.md §20): tried first, the
/// other size second.
pub use credential_cipher::EncryptType;

/// Translates a verified V1 call into the body of the callback that serves it. `access_key` is the
/// key that verified it (for the buyer's encrypted fields); `encryption` the configured key size.
///
/// # Errors
/// A `resultMsg` for `000002`: an unknown activity, a missing or malformed parameter.
///
/// `issue_key` is the V1 ring's current key: the legacy `getLicense` code is derived from it
/// ([`legacy_license_code`]).
pub fn translate(
    params: &V1Params,
    access_key: &str,
    issue_key: &str,
    encryption: EncryptType,
) -> Result<(V1Activity, Value), String> {
    let name = params.required("activity")?;
    let activity = V1Activity::parse(name).ok_or_else(|| {
        format!(
            "unknown activity {:?}",
            name.chars().take(64).collect::<String>()
        )
    })?;
    let mut body = Map::new();
    body.insert("activity".into(), activity.served_by().into());
    // testFlag: "1" debug; absent real (an Integer in some tables: the callbacks read either).
    if let Some(flag) = params.text("testFlag") {
        body.insert("testFlag".into(), flag.into());
    }
    let copy = |body: &mut Map<String, Value>, from: &str, to: &str| {
        if let Some(v) = params.text(from) {
            body.insert(to.into(), v.into());
        }
    };
    match activity {
        V1Activity::NewInstance => {
            let order_id = params.required("orderId")?;
            let order = v1_order(params, access_key, encryption)?;
            // Idempotent per orderId, per (orderId, productId) on demand (docs/protocol/decisions.md
            // §20): that pair is the order line.
            body.insert(
                "orderLineId".into(),
                v1_order_line_id(order_id, &order).into(),
            );
            copy(&mut body, "orderId", "orderId");
            body.insert("businessId".into(), params.required("businessId")?.into());
            body.insert(V1_CONTEXT.into(), json!(V1Context { order: Some(order) }));
        }
        V1Activity::QueryInstance => {
            copy(&mut body, "instanceId", "instanceId");
            body.insert(V1_CONTEXT.into(), json!(V1Context::default()));
        }
        V1Activity::RefreshInstance => {
            copy(&mut body, "instanceId", "instanceId");
            copy(&mut body, "orderId", "orderId");
            copy(&mut body, "productId", "productId");
            copy(&mut body, "expireTime", "expireTime");
            body.insert("scene".into(), refresh_scene(params)?.into());
            body.insert(V1_CONTEXT.into(), json!(V1Context::default()));
        }
        V1Activity::ExpireInstance => {
            copy(&mut body, "instanceId", "instanceId");
            body.insert("status".into(), "FREEZE".into());
        }
        V1Activity::InstanceStatus => {
            copy(&mut body, "instanceId", "instanceId");
            copy(&mut body, "instanceStatus", "status");
        }
        V1Activity::ReleaseInstance => {
            copy(&mut body, "instanceId", "instanceId");
            copy(&mut body, "orderId", "orderId");
        }
        V1Activity::Upgrade => {
            let order_id = params.required("orderId")?;
            let order = v1_order(params, access_key, encryption)?;
            copy(&mut body, "instanceId", "instanceId");
            copy(&mut body, "orderId", "orderId");
            body.insert(
                "orderLineId".into(),
                v1_order_line_id(order_id, &order).into(),
            );
            body.insert(V1_CONTEXT.into(), json!(V1Context { order: Some(order) }));
        }
        V1Activity::GetLicense => {
            let order_id = params.required("orderId")?;
            body.insert(
                "license".into(),
                legacy_license_code(issue_key, order_id).into(),
            );
            for name in [
                "orderId",
                "businessId",
                "productId",
                "customerId",
                "customerName",
                "skuCode",
                "expireTime",
                "periodType",
                "amount",
            ] {
                copy(&mut body, name, name);
            }
        }
        // The legacy code is the instanceId this service answered getLicense with.
        V1Activity::RefreshLicense => {
            copy(&mut body, "instanceId", "license");
            copy(&mut body, "orderId", "orderId");
            copy(&mut body, "productId", "productId");
            copy(&mut body, "expireTime", "expireTime");
            body.insert("scene".into(), "RENEWAL".into());
        }
        V1Activity::ExpireLicense => {
            copy(&mut body, "instanceId", "license");
            body.insert("status".into(), "FREEZE".into());
        }
        V1Activity::ReleaseLicense => {
            copy(&mut body, "instanceId", "license");
            copy(&mut body, "orderId", "orderId");
        }
    }
    Ok((activity, Value::Object(body)))
}

/// The license code issued for a legacy purchase (docs/protocol/openapi.md §6.4): `LG` and 32 hex
/// digits of HMAC-SHA256(the V1 key, `orderId`). Deterministic, so every repeat of `getLicense`
/// for the order (concurrent ones included) answers the same code; keyed, so knowing an `orderId`
/// does not give the code (it is the buyer's secret). A rotation of the V1 key between an order's
/// first `getLicense` and a repeat (KooGallery repeats for at most 3 hours) would issue a second
/// code; the first stays valid.
pub fn legacy_license_code(issue_key: &str, order_id: &str) -> String {
    use hmac::Mac as _;
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(issue_key.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(b"koogallery legacy license\n");
    mac.update(order_id.trim().as_bytes());
    let tag = mac.finalize().into_bytes();
    format!("LG{}", hex::encode_upper(&tag[..16]))
}

/// The order line a V1 order stands for: the order, or (order, product) on demand.
fn v1_order_line_id(order_id: &str, order: &V1Order) -> String {
    match (order.charging_mode.as_deref(), &order.product_id) {
        (Some("0"), Some(product)) => format!("{order_id}/{product}"),
        _ => order_id.to_owned(),
    }
}

/// V1 refreshInstance has no `scene` (docs/protocol/callbacks.md §11): `trialToFormal=1` is a
/// trial made formal, a negative `orderAmount` a renewal cancelled, anything else a renewal.
fn refresh_scene(params: &V1Params) -> Result<&'static str, String> {
    if params.text("trialToFormal") == Some("1") {
        return Ok("TRIAL_TO_FORMAL");
    }
    match params.text("orderAmount") {
        None => Ok("RENEWAL"),
        Some(a) => match a.parse::<f64>() {
            Ok(v) if v < 0.0 => Ok("UNSUBSCRIBE_RENEWAL_PERIOD"),
            Ok(_) => Ok("RENEWAL"),
            Err(_) => Err(format!("orderAmount {a:?} is not a number")),
        },
    }
}

fn v1_order(
    params: &V1Params,
    access_key: &str,
    encryption: EncryptType,
) -> Result<V1Order, String> {
    let text = |n: &str| params.text(n).map(str::to_owned);
    let secret = |n: &str| -> Result<Option<String>, String> {
        params
            .text(n)
            .map(|v| decrypt_buyer_field(n, v, access_key, encryption))
            .transpose()
    };
    Ok(V1Order {
        customer_id: text("customerId"),
        customer_name: text("customerName"),
        user_id: text("userId"),
        user_name: text("userName"),
        mobile_phone: secret("mobilePhone")?,
        email: secret("email")?,
        product_id: text("productId"),
        sku_code: text("skuCode"),
        charging_mode: text("chargingMode"),
        period_type: text("periodType"),
        period_number: text("periodNumber"),
        expire_time: text("expireTime"),
        trial: params.text("trialFlag") == Some("1"),
        quantity: text("amount")
            .or_else(|| text("diskSize"))
            .or_else(|| text("bandWidth")),
        extend_params: params
            .text("saasExtendParams")
            .map(decode_extend_params)
            .transpose()?
            .unwrap_or_default(),
    })
}

/// `mobilePhone` / `email` (docs/protocol/callbacks.md §3.4): 16-character IV + Base64, decrypted
/// with the configured key size, then the other (docs/protocol/decisions.md §20); PKCS#7 padding
/// tells a wrong size apart. A `+` that arrived unescaped (a space once decoded) is read as `+`.
pub fn decrypt_buyer_field(
    name: &str,
    value: &str,
    access_key: &str,
    configured: EncryptType,
) -> Result<String, String> {
    let other = match configured {
        EncryptType::Aes256 => EncryptType::Aes128,
        EncryptType::Aes128 => EncryptType::Aes256,
    };
    [configured, other]
        .into_iter()
        .find_map(|kind| credential_cipher::decrypt_field(access_key, value, kind).ok())
        .ok_or_else(|| format!("{name} does not decrypt with the V1 key"))
}

/// `saasExtendParams` (docs/protocol/callbacks.md §11): Base64 of `[{"name":…,"value":…}]`, after
/// the URL decoding every parameter gets. Values that are not strings are kept as JSON text.
pub fn decode_extend_params(raw: &str) -> Result<Vec<(String, String)>, String> {
    let bad = || "saasExtendParams is not Base64 of a [{name, value}] JSON array".to_owned();
    let raw = raw.trim().replace(' ', "+");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(raw.trim_end_matches('='))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(&raw))
        .map_err(|_| bad())?;
    let items: Vec<Map<String, Value>> = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    Ok(items
        .into_iter()
        .filter_map(|mut m| {
            let name = match m.remove("name")? {
                Value::String(s) => s,
                other => other.to_string(),
            };
            let value = match m.remove("value") {
                Some(Value::String(s)) => s,
                None | Some(Value::Null) => String::new(),
                Some(other) => other.to_string(),
            };
            Some((name, value))
        })
        .collect())
}
