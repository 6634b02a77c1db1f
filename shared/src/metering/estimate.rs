//! Bill estimates (docs/protocol/openapi.md §3.2): what an instance's on-demand usage in a period
//! costs under its SKU's pricing (`KOOGALLERY_PRICING`), served read-only at `GET /usage/estimate`.
//! KooGallery rates and charges; this only lets the vendor see what to expect, rated as KooGallery
//! rates (see [`super::pricing`]): step bands per billing cycle, tier bands per record.
//!
//! ```text
//! GET /usage/estimate?instanceId=biz-1&from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z
//! x-usage-timestamp, x-usage-nonce: as for POST /usage
//! x-usage-signature: base64(HMAC-SHA256(usage key, "ts={timestamp}&nonce={nonce}&body={raw query}"))
//! ```
//! The signed "body" is the raw query string, so a captured request cannot be replayed for
//! another instance or period. A record (one per instance and hour: a window) counts when its
//! `begin_time` is in `[from, to)`: `from` inclusive, `to` exclusive. `from` defaults to the start
//! of the current UTC month, `to` to now. Usage deducted from a stop-when-used-up package was
//! prepaid: it is shown apart (`packageQuantity`) and not priced.

use std::sync::Arc;

use chrono::{DateTime, Datelike, TimeZone, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use super::{
    UsageStore, UsageWindow,
    api::{ApiError, authenticate},
    pricing::{PriceList, PricingError, Record},
    push::PushRecord,
};
use crate::{clock::Clock, instance::InstanceStore, security::replay::NonceStore};

/// The form of the estimate's answer. 2: step bands apply per billing cycle and tier bands per
/// record, and the answer names the cycle. 1 (earlier releases, without `schema`) priced the
/// period's total.
pub const SCHEMA: u32 = 2;

/// An estimate, as the endpoint answers it (camelCase JSON; decimals as strings). A contract with
/// the vendor's app: pinned by the golden file `tests/fixtures/usage_estimate_v2.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Estimate {
    /// [`SCHEMA`].
    pub schema: u32,
    pub instance_id: String,
    pub sku_code: String,
    /// `linear`, `step` or `tier`.
    pub model: &'static str,
    /// The SKU's billing cycle as configured (`hour`, `day`); `null` when none is (linear and
    /// tier amounts do not depend on it).
    pub cycle: Option<&'static str>,
    /// The period: records whose `begin_time` is in `[from, to)` (`to` exclusive).
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// On-demand usage in the period (the priced quantity).
    #[serde(with = "rust_decimal::serde::str")]
    pub quantity: Decimal,
    /// Usage deducted from stop-when-used-up packages in the period (prepaid: not priced).
    #[serde(with = "rust_decimal::serde::str")]
    pub package_quantity: Decimal,
    /// Hourly windows with usage in the period.
    pub windows: usize,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
}

/// Why no estimate can be given.
#[derive(Debug, thiserror::Error)]
pub enum EstimateError {
    #[error("instance {0} is unknown")]
    UnknownInstance(String),
    #[error("instance {0} has no SKU code yet (its order was not read)")]
    NoSku(String),
    #[error("no pricing is configured for SKU {0} (KOOGALLERY_PRICING)")]
    NoPricing(String),
    #[error("{0}")]
    Pricing(#[from] PricingError),
    #[error("`from` must be before `to`")]
    BadPeriod,
}

/// When a window's record begins: as pushed once sealed, the hour's start while still open.
fn record_begin(window: &UsageWindow) -> DateTime<Utc> {
    PushRecord::of(window).map_or(window.start, |r| r.begin)
}

/// The estimate for `windows` (all of an instance's) whose record begins in `[from, to)`. All
/// of the on-demand windows take part in the rating, as step cycles are counted from the first
/// use and a cycle may begin before `from` (see [`super::pricing::Pricing::bill`]).
pub fn estimate(
    instance_id: &str,
    sku: &str,
    prices: &PriceList,
    windows: &[UsageWindow],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Estimate, EstimateError> {
    if from >= to {
        return Err(EstimateError::BadPeriod);
    }
    let pricing = prices
        .for_sku(sku)
        .ok_or_else(|| EstimateError::NoPricing(sku.to_owned()))?;
    let in_period: Vec<&UsageWindow> = windows
        .iter()
        .filter(|w| (from..to).contains(&record_begin(w)))
        .collect();
    let sum = |package: bool| -> Decimal {
        in_period
            .iter()
            .filter(|w| w.package.is_some() == package)
            .map(|w| w.total)
            .sum()
    };
    let on_demand: Vec<Record> = windows
        .iter()
        .filter(|w| w.package.is_none())
        .map(|w| Record {
            begin: record_begin(w),
            quantity: w.total,
        })
        .collect();
    Ok(Estimate {
        schema: SCHEMA,
        instance_id: instance_id.to_owned(),
        sku_code: sku.to_owned(),
        model: pricing.model_name(),
        cycle: pricing.cycle().map(|c| c.name()),
        from,
        to,
        quantity: sum(false),
        package_quantity: sum(true),
        windows: in_period.len(),
        amount: pricing.bill(&on_demand, from, to)?.normalize(),
    })
}

/// The start of `now`'s UTC month.
pub fn month_start(now: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(now)
}

/// `GET /usage/estimate` as a service, for the local host and a Lambda function alike.
pub struct UsageEstimates {
    /// The usage key (`KOOGALLERY_USAGE_KEY`); `None`: every request answers 503.
    pub key: Option<crate::security::SecretKey>,
    pub nonces: Arc<dyn NonceStore>,
    pub instances: Arc<dyn InstanceStore>,
    pub usage: Arc<dyn UsageStore>,
    pub prices: Arc<PriceList>,
    pub clock: Arc<dyn Clock>,
}

impl UsageEstimates {
    /// Verifies and answers one request: the HTTP status and the JSON answer (`{"error": …}` on
    /// failure: 401 signature, 400 query, 404 unknown instance, 409 nothing to price with, 503).
    pub async fn handle(
        &self,
        timestamp: Option<&str>,
        nonce: Option<&str>,
        signature: Option<&str>,
        query: &str,
    ) -> (u16, serde_json::Value) {
        match self.answer(timestamp, nonce, signature, query).await {
            Ok(e) => (200, serde_json::to_value(e).unwrap_or_default()),
            Err((status, message)) => (
                status,
                serde_json::json!({"error": message, "retryable": status == 503}),
            ),
        }
    }

    async fn answer(
        &self,
        timestamp: Option<&str>,
        nonce: Option<&str>,
        signature: Option<&str>,
        query: &str,
    ) -> Result<Estimate, (u16, String)> {
        let now = self.clock.now();
        authenticate(
            self.key.as_ref(),
            self.nonces.as_ref(),
            [timestamp, nonce, signature],
            query.as_bytes(),
            now,
        )
        .await
        .map_err(|e| match e {
            // The replay guard unreachable (or unreadable): nothing the caller did.
            ApiError::Refused(crate::metering::IngestError::Store(e)) => (503, e.to_string()),
            e => (e.status(), e.to_string()),
        })?;
        let unavailable = |e: crate::storage::StoreError| (503, e.to_string());
        let (instance_id, from, to) = parse_query(query, now).map_err(|e| (400, e))?;
        let refused = |e: EstimateError| {
            let status = match e {
                EstimateError::UnknownInstance(_) => 404,
                EstimateError::BadPeriod => 400,
                _ => 409,
            };
            (status, e.to_string())
        };
        let instance = self
            .instances
            .get(&instance_id)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| refused(EstimateError::UnknownInstance(instance_id.clone())))?;
        let sku = instance
            .order
            .as_ref()
            .and_then(|o| o.sku_code.clone())
            .ok_or_else(|| refused(EstimateError::NoSku(instance_id.clone())))?;
        let windows = self
            .usage
            .windows_of(&instance_id)
            .await
            .map_err(unavailable)?;
        estimate(&instance_id, &sku, &self.prices, &windows, from, to).map_err(refused)
    }
}

/// `instanceId` (required), `from` and `to` (RFC 3339, optional) from a raw query string.
fn parse_query(
    query: &str,
    now: DateTime<Utc>,
) -> Result<(String, DateTime<Utc>, DateTime<Utc>), String> {
    let (mut id, mut from, mut to) = (None, None, None);
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        let time = || {
            DateTime::parse_from_rfc3339(&v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| format!("{k} must be an RFC 3339 time, got {v:?}"))
        };
        match k.as_ref() {
            "instanceId" => id = Some(v.to_string()),
            "from" => from = Some(time()?),
            "to" => to = Some(time()?),
            other => return Err(format!("unknown parameter {other}")),
        }
    }
    let id = id
        .filter(|i| !i.is_empty())
        .ok_or("instanceId is required")?;
    Ok((
        id,
        from.unwrap_or_else(|| month_start(now)),
        to.unwrap_or(now),
    ))
}

#[cfg(test)]
mod tests;
