//! The client of KooGallery's open API (docs/protocol/openapi.md §0–§2, §8;
//! docs/protocol/decisions.md §9), the [`MarketplaceClient`] the worker reads orders through.
//!
//! - Every request is signed with `SDK-HMAC-SHA256` (`koogallery::security::apig`) over the
//!   headers it sends, `Host` and a fresh `X-Sdk-Date` included.
//! - reqwest with rustls: certificates are always verified. Plain `http://` is accepted only for
//!   loopback hosts (the simulator, tests).
//! - On a DNS or connect failure, a timeout, or HTTP 502/503/504 the same request is sent to the
//!   fallback host, signed again (its `Host` differs).
//! - `MKT.*` and `APIG.*` answers are classified once ([`classify`]): retry later, a setup to fix
//!   (wrong AK/SK, no permission: retried and logged loudly), or a refusal of this request.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use koogallery::{
    config::{ConfigError, MarketplaceSettings, OpenApiKeys, catalog},
    exchange::{Capture, ExchangeRecorder},
    license::LicenseCode,
    order::{
        ChargingMode, MarketplaceClient, MarketplaceError, OrderDetails, OrderId, OrderLineId,
    },
    protocol::{
        openapi::{
            MKT_SUCCESS, is_retryable_code, is_retryable_gateway_code,
            query_order::{self, OrderInfo, QueryOrderResponse},
        },
        time::parse_compact,
    },
    security::apig,
};
use reqwest::Url;

/// Where and how the client calls.
#[derive(Debug, Clone)]
pub struct OpenApiSettings {
    pub primary: Url,
    pub fallback: Option<Url>,
    /// Per request (connect included).
    pub timeout: Duration,
}

impl OpenApiSettings {
    /// The hosts and timeout `settings` name, or `None` when the marketplace is offline.
    pub fn from_marketplace(settings: &MarketplaceSettings) -> Option<Self> {
        match settings {
            MarketplaceSettings::Offline => None,
            MarketplaceSettings::OpenApi {
                primary,
                fallback,
                timeout,
            } => Some(Self {
                primary: primary.clone(),
                fallback: fallback.clone(),
                timeout: *timeout,
            }),
        }
    }
}

/// The HTTP client could not be built (no TLS roots, say): the process cannot reach KooGallery.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the open API's HTTP client: {0}")]
pub struct ClientBuildError(#[source] reqwest::Error);

impl ClientBuildError {
    pub fn from_reqwest(e: reqwest::Error) -> Self {
        Self(e)
    }
}

impl From<ClientBuildError> for ConfigError {
    fn from(e: ClientBuildError) -> Self {
        ConfigError::invalid(catalog::OPENAPI_URL.name, e.to_string())
    }
}

/// Makes ring the process's rustls crypto provider unless one is installed already. reqwest is built
/// without a provider of its own (its default, aws-lc-rs, is a long C build and a larger binary; the
/// AWS SDK uses ring too); every reqwest client a deployed function builds calls this first.
pub fn install_tls_provider() {
    // Err: a provider is installed already (an earlier call, or the process chose one); it stays.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// KooGallery's open API client as `settings` configure it (Query Order, the usage push), or
/// `None` when the marketplace is offline. Every call it makes goes to `exchanges` (the host's
/// exchange log; [`ExchangeRecorder::off`] for none).
pub fn client_for(
    settings: &MarketplaceSettings,
    keys: Option<&OpenApiKeys>,
    exchanges: &ExchangeRecorder,
) -> Result<Option<Arc<OpenApiClient>>, ConfigError> {
    let Some(settings) = OpenApiSettings::from_marketplace(settings) else {
        return Ok(None);
    };
    let keys = keys
        .cloned()
        .ok_or_else(|| ConfigError::invalid(catalog::AK.name, "the open API needs the AK/SK"))?;
    Ok(Some(Arc::new(
        OpenApiClient::new(settings, keys)?.with_exchange_log(exchanges.clone()),
    )))
}

/// KooGallery's License API as `settings` and `keys` configure it: this client, or, with no open
/// API configured, one that says so on every call (legacy codes, which it does not know, still work).
/// Every host of the license service builds it this one way.
pub fn license_marketplace(
    settings: &MarketplaceSettings,
    keys: Option<&OpenApiKeys>,
    exchanges: &ExchangeRecorder,
) -> Result<Arc<dyn koogallery::license::LicenseMarketplace>, ConfigError> {
    Ok(match client_for(settings, keys, exchanges)? {
        Some(client) => client,
        None => Arc::new(koogallery::license::marketplace::NotConfigured),
    })
}

pub struct OpenApiClient {
    http: reqwest::Client,
    settings: OpenApiSettings,
    keys: OpenApiKeys,
    /// Where each try on each host is kept (family `openapi`): bodies only, never a header (the
    /// AK/SK signature, the usage push's `signature`).
    exchanges: ExchangeRecorder,
}

/// One failed try on one host, and whether the other host may do better.
enum Try {
    /// Connection-level failure, timeout, or 502/503/504: the fallback host may answer.
    HostDown(String),
    /// An answer: parsed or not, it is the marketplace's.
    Answered { status: u16, body: Vec<u8> },
}

impl OpenApiClient {
    pub fn new(settings: OpenApiSettings, keys: OpenApiKeys) -> Result<Self, ClientBuildError> {
        install_tls_provider();
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .build()
            .map_err(ClientBuildError)?;
        Ok(Self {
            http,
            settings,
            keys,
            exchanges: ExchangeRecorder::off(),
        })
    }

    /// Keeps every call in `exchanges` (the exchange log), one exchange per try on each host.
    pub fn with_exchange_log(mut self, exchanges: ExchangeRecorder) -> Self {
        self.exchanges = exchanges;
        self
    }

    /// [`Self::try_once`], kept in the exchange log as try `attempt` (1 on the primary host, 2
    /// on the fallback).
    async fn send_once(&self, base: &Url, call: &Call<'_>, attempt: u32) -> Try {
        if !self.exchanges.is_on() {
            return self.try_once(base, call).await.0;
        }
        let at = chrono::Utc::now();
        let started = std::time::Instant::now();
        let (outcome, status) = self.try_once(base, call).await;
        let mut capture = Capture::outbound(at, "openapi", call.activity);
        capture.latency = started.elapsed();
        capture.attempt = Some(attempt);
        capture.order_id = form_urlencoded::parse(call.query.as_bytes())
            .find(|(k, _)| k == "orderId")
            .map(|(_, v)| v.into_owned());
        capture.request = without_codes(
            if call.body.is_empty() {
                call.query.as_bytes()
            } else {
                call.body
            },
            call.masked,
        );
        capture.http_status = status;
        match &outcome {
            Try::Answered { body, .. } => {
                capture.result_code = result_code(body);
                capture.response = without_codes(body, call.masked);
            }
            Try::HostDown(why) => capture.error = Some(why.clone()),
        }
        self.exchanges.record(capture);
        outcome
    }

    /// One signed request on `base`: `method path?query` with `body` and `extra` headers, every
    /// header sent also signed; and the HTTP status, when one came.
    async fn try_once(&self, base: &Url, call: &Call<'_>) -> (Try, Option<u16>) {
        let mut url = base.clone();
        url.set_path(call.path);
        url.set_query((!call.query.is_empty()).then_some(call.query));
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => return (Try::HostDown(format!("{base} has no host")), None),
        };
        let sdk_date = apig::sdk_date(chrono::Utc::now());
        let mut headers: Vec<(&str, &str)> = vec![
            ("content-type", call.content_type),
            ("host", host.as_str()),
            (apig::HEADER_SDK_DATE, sdk_date.as_str()),
        ];
        headers.extend(call.extra.iter().map(|(k, v)| (*k, v.as_str())));
        let signature = apig::sign(
            &self.keys.ak,
            self.keys.sk.expose(),
            &apig::Request {
                method: call.method.as_str(),
                path: call.path,
                query: call.query,
                headers: &headers,
                body: call.body,
            },
        );
        // Exactly the headers signed (reqwest writes `Host` from the URL, the same value).
        let mut request = self.http.request(call.method.clone(), url);
        for (name, value) in headers.iter().filter(|(name, _)| *name != "host") {
            request = request.header(*name, *value);
        }
        if !call.body.is_empty() {
            request = request.body(call.body.to_vec());
        }
        let sent = request
            .header("authorization", signature.authorization)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return (Try::HostDown(format!("{host}: {e}")), None),
        };
        let status = response.status().as_u16();
        if matches!(status, 502..=504) {
            return (
                Try::HostDown(format!("{host} answered HTTP {status}")),
                Some(status),
            );
        }
        let outcome = match response.bytes().await {
            Ok(body) => Try::Answered {
                status,
                body: body.to_vec(),
            },
            Err(e) => Try::HostDown(format!("{host}: reading the answer: {e}")),
        };
        (outcome, Some(status))
    }

    /// The primary host, then (re-signed) the fallback when the primary is down. `fresh` makes
    /// the per-attempt headers (the usage push's `ts`, `nonce`, `signature`).
    async fn send(
        &self,
        logged: Logged<'_>,
        method: reqwest::Method,
        path: &str,
        query: &str,
        body: &[u8],
        fresh: impl Fn() -> Vec<(&'static str, String)>,
    ) -> Result<(u16, Vec<u8>), String> {
        self.send_typed(logged, method, path, query, JSON, body, fresh)
            .await
    }

    /// [`Self::send`] with a body of `content_type` (the upload's multipart, signed like any
    /// other header).
    #[allow(clippy::too_many_arguments)]
    async fn send_typed(
        &self,
        logged: Logged<'_>,
        method: reqwest::Method,
        path: &str,
        query: &str,
        content_type: &str,
        body: &[u8],
        fresh: impl Fn() -> Vec<(&'static str, String)>,
    ) -> Result<(u16, Vec<u8>), String> {
        let mut down = Vec::new();
        let hosts = std::iter::once(&self.settings.primary).chain(self.settings.fallback.as_ref());
        for (attempt, base) in (1..).zip(hosts) {
            let call = Call {
                activity: logged.activity,
                masked: logged.masked,
                method: method.clone(),
                path,
                query,
                content_type,
                body,
                extra: fresh(),
            };
            match self.send_once(base, &call, attempt).await {
                Try::Answered { status, body } => return Ok((status, body)),
                Try::HostDown(why) => {
                    tracing::warn!(why, "KooGallery open API host unavailable");
                    down.push(why);
                }
            }
        }
        Err(down.join("; then "))
    }

    async fn get(
        &self,
        activity: &'static str,
        path: &str,
        query: &str,
    ) -> Result<(u16, Vec<u8>), MarketplaceError> {
        let logged = Logged {
            activity,
            masked: &[],
        };
        self.send(logged, reqwest::Method::GET, path, query, b"", Vec::new)
            .await
            .map_err(|m| MarketplaceError::Unavailable(m.into()))
    }
}

/// The `Content-Type` of every JSON call.
const JSON: &str = "application/json";

/// How a call is kept in the exchange log.
#[derive(Debug, Clone, Copy)]
struct Logged<'a> {
    /// What the call is (`queryOrder`, `usagePush`, `licenseActivate`, …).
    activity: &'static str,
    /// License codes the call names: secrets, masked in both bodies before they are kept (the
    /// log's redaction knows field names, and a batch answer is keyed by the codes themselves).
    masked: &'a [LicenseCode],
}

/// `bytes` with every one of `codes` replaced by `<redacted>`.
fn without_codes(bytes: &[u8], codes: &[LicenseCode]) -> Vec<u8> {
    koogallery::exchange::redact::without_values(bytes, codes.iter().map(|c| c.as_str().as_bytes()))
}

/// The KooGallery code of an answer (`resultCode`, or the gateway's and the License API's
/// `error_code`), when it has one.
fn result_code(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    ["resultCode", "error_code"]
        .iter()
        .find_map(|k| value.get(*k)?.as_str().filter(|c| !c.is_empty()))
        .map(str::to_owned)
}

/// One request as [`OpenApiClient::send_once`] signs and sends it.
struct Call<'a> {
    activity: &'static str,
    masked: &'a [LicenseCode],
    method: reqwest::Method,
    path: &'a str,
    query: &'a str,
    content_type: &'a str,
    body: &'a [u8],
    extra: Vec<(&'static str, String)>,
}

/// What an answer's codes mean for the caller (docs/protocol/openapi.md §8): `None` for success.
pub fn classify(status: u16, body: &[u8]) -> Option<MarketplaceError> {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let text = |k: &str| {
        value
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let (code, message) = match (text("resultCode"), text("error_code")) {
        (c, _) if !c.is_empty() => (c, text("resultMsg")),
        (_, c) if !c.is_empty() => (c, text("error_msg")),
        _ => (String::new(), String::new()),
    };
    if code == MKT_SUCCESS {
        return None;
    }
    let detail = format!("HTTP {status} {code} {message}").trim().to_owned();
    Some(if code.starts_with("APIG") {
        if is_retryable_gateway_code(&code) {
            MarketplaceError::Unavailable(detail.into())
        } else {
            // The gateway refused our signature or key: a setup to fix, not an order to fail.
            MarketplaceError::Misconfigured(detail.into())
        }
    } else if code.is_empty() {
        if status >= 500 || status == 429 {
            MarketplaceError::Unavailable(detail.into())
        } else {
            MarketplaceError::Misconfigured(format!("unexpected answer: {detail}").into())
        }
    } else if is_retryable_code(&code) {
        MarketplaceError::Unavailable(detail.into())
    } else if matches!(code.as_str(), "MKT.0150" | "MKT.0151" | "MKT.0154") {
        MarketplaceError::Misconfigured(detail.into())
    } else {
        MarketplaceError::NotFound(detail.into())
    })
}

fn charging_mode(s: &str) -> Option<ChargingMode> {
    Some(match s.trim() {
        "PERIOD" => ChargingMode::Period,
        "ONE_TIME" => ChargingMode::OneTime,
        "ON_DEMAND" => ChargingMode::OnDemand,
        "ON_DEMAND_PKG" => ChargingMode::OnDemandPkg,
        _ => return None,
    })
}

/// The order the domain keeps, from Query Order's `orderInfo` for one line.
pub fn order_details(
    info: OrderInfo,
    order_line_id: &str,
) -> Result<OrderDetails, MarketplaceError> {
    let Some(line) = info
        .order_line
        .iter()
        .find(|l| l.order_line_id.as_deref() == Some(order_line_id))
        .or_else(|| info.order_line.first())
    else {
        return Err(MarketplaceError::NotFound(
            format!(
                "order {} has no line {order_line_id}",
                info.order_id.unwrap_or_default()
            )
            .into(),
        ));
    };
    let product = line.product_info.first().cloned().unwrap_or_default();
    let buyer = info.buyer_info.clone().unwrap_or_default();
    let extend_params = info
        .extend_params
        .iter()
        .chain(&line.extend_params)
        .filter_map(|p| Some((p.name.clone()?, p.value.clone().unwrap_or_default())))
        .collect();
    Ok(OrderDetails {
        order_type: info.order_type.clone(),
        charging_mode: line.charging_mode.as_deref().and_then(charging_mode),
        period_type: line.period_type.clone(),
        period_number: line
            .period_number
            .as_deref()
            .and_then(|n| n.trim().parse().ok()),
        product_id: product.product_id,
        sku_code: product.sku_code,
        product_name: product.product_name,
        quantity: product
            .linear_value
            .as_deref()
            .and_then(|v| v.trim().parse().ok()),
        expire_time: line.expire_time.as_deref().and_then(parse_compact),
        customer_id: buyer.customer_id,
        customer_name: buyer.customer_name,
        extend_params,
        offline: false,
        ..OrderDetails::default()
    })
}

#[async_trait]
impl MarketplaceClient for OpenApiClient {
    async fn query_order(
        &self,
        order_id: &OrderId,
        order_line_id: &OrderLineId,
    ) -> Result<OrderDetails, MarketplaceError> {
        let (status, body) = self
            .get(
                "queryOrder",
                query_order::PATH,
                // An empty line ID asks for the whole order (a refresh that named no line, or
                // one stored before its line was kept); its first line is read.
                &query_order::query(
                    order_id,
                    Some(order_line_id.as_str()).filter(|l| !l.is_empty()),
                ),
            )
            .await?;
        if let Some(e) = classify(status, &body) {
            if matches!(e, MarketplaceError::Misconfigured(_)) {
                tracing::error!(order_id = order_id.as_str(), error = %e, "KooGallery refused our open API credentials; fix KOOGALLERY_AK/KOOGALLERY_SK");
            }
            return Err(e);
        }
        let answer: QueryOrderResponse = serde_json::from_slice(&body).map_err(|e| {
            MarketplaceError::Unavailable(
                format!("Query Order answer is not the expected JSON: {e}").into(),
            )
        })?;
        let info = answer.order_info.ok_or_else(|| {
            MarketplaceError::NotFound(format!("order {order_id}: no orderInfo").into())
        })?;
        order_details(info, order_line_id)
    }
}

pub mod license;
pub mod sso;
pub mod usage;

#[cfg(test)]
mod license_tests;
#[cfg(test)]
mod tests;
