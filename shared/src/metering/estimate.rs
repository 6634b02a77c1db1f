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
mod tests {
    use super::*;
    use crate::metering::{WindowKey, pricing::Pricing};

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn window(start: &str, total: &str, package: Option<&str>) -> UsageWindow {
        let key = WindowKey {
            instance_id: "i-1".into(),
            start: t(start),
            package: package.map(str::to_owned),
        };
        let mut w = UsageWindow::open(&key, t(start));
        w.total = total.parse().unwrap();
        w
    }

    fn prices() -> PriceList {
        PriceList::from_json(
            r#"{"sku-step":{"model":"step","cycle":"day","bands":[{"upTo":"3","unitPrice":"0.3"},{"unitPrice":"0.2"}]},
                "sku-hourly":{"model":"step","cycle":"hour","bands":[{"upTo":"3","unitPrice":"0.3"},{"unitPrice":"0.2"}]},
                "sku-tier":{"model":"tier","bands":[{"upTo":"3","unitPrice":"0.3"},{"unitPrice":"0.2"}]}}"#,
        )
        .unwrap()
    }

    fn november() -> (DateTime<Utc>, DateTime<Utc>) {
        (t("2026-11-01T00:00:00Z"), t("2026-12-01T00:00:00Z"))
    }

    fn amount(sku: &str, windows: &[UsageWindow], from: &str, to: &str) -> String {
        estimate("i-1", sku, &prices(), windows, t(from), t(to))
            .unwrap()
            .amount
            .to_string()
    }

    /// KooGallery's example (docs/protocol/openapi.md §3.2) through the estimate, within one cycle
    /// and one record: 5 + 3 minutes in two hours of one daily cycle → step 1.90 (the package's
    /// usage and the hour at `to`, which is excluded, left out); one hourly record of 8 → tier
    /// 1.60.
    #[test]
    fn koogallery_example_within_one_cycle_and_one_record() {
        let windows = [
            window("2026-11-01T00:00:00Z", "5", None),
            window("2026-11-01T01:00:00Z", "3", None),
            window("2026-11-01T01:00:00Z", "7", Some("pkg")),
            window("2026-12-01T00:00:00Z", "100", None),
        ];
        let (from, to) = november();
        let step = estimate("i-1", "sku-step", &prices(), &windows, from, to).unwrap();
        assert_eq!(step.amount.to_string(), "1.9");
        assert_eq!((step.quantity, step.windows), ("8".parse().unwrap(), 3));
        assert_eq!(step.package_quantity, "7".parse().unwrap());
        assert_eq!((step.model, step.cycle), ("step", Some("day")));
        let one_record = [window("2026-11-01T00:00:00Z", "8", None)];
        let tier = estimate("i-1", "sku-tier", &prices(), &one_record, from, to).unwrap();
        assert_eq!(tier.amount.to_string(), "1.6");
        assert_eq!((tier.model, tier.cycle), ("tier", None));
        assert!(matches!(
            estimate("i-1", "sku-none", &prices(), &windows, from, to),
            Err(EstimateError::NoPricing(_))
        ));
        assert!(matches!(
            estimate("i-1", "sku-step", &prices(), &windows, to, from),
            Err(EstimateError::BadPeriod)
        ));
        assert!(matches!(
            Pricing::Linear {
                unit_price: Decimal::ONE,
                cycle: None,
            }
            .model_name(),
            "linear"
        ));
    }

    /// Across cycles and records, the same 5 + 3 minutes cost more than their total would:
    /// hourly step cycles (1.30 + 0.90), daily cycles a day apart (the same), tier per record
    /// (5 × 0.2 + 3 × 0.3 = 1.90, not 8 × 0.2 = 1.60).
    #[test]
    fn across_cycles_and_records() {
        let hours = [
            window("2026-11-01T10:00:00Z", "5", None),
            window("2026-11-01T11:00:00Z", "3", None),
        ];
        let days = [
            window("2026-11-01T10:00:00Z", "5", None),
            window("2026-11-02T10:00:00Z", "3", None),
        ];
        let (from, to) = ("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z");
        assert_eq!(amount("sku-hourly", &hours, from, to), "2.2");
        assert_eq!(amount("sku-step", &hours, from, to), "1.9");
        assert_eq!(amount("sku-step", &days, from, to), "2.2");
        assert_eq!(amount("sku-tier", &hours, from, to), "1.9");
    }

    /// A daily cycle begun before the period (first use Oct 31 23:00) counts the usage it had
    /// before `from` towards its bands: November is charged 2 + 6 → 1.90 minus the 0.60 October
    /// was charged, so the two months add up to the cycle's charge.
    #[test]
    fn a_cycle_begun_before_the_period_counts_its_earlier_usage() {
        let windows = [
            window("2026-10-31T23:00:00Z", "2", None),
            window("2026-11-01T00:00:00Z", "6", None),
        ];
        let nov = amount(
            "sku-step",
            &windows,
            "2026-11-01T00:00:00Z",
            "2026-12-01T00:00:00Z",
        );
        let oct = amount(
            "sku-step",
            &windows,
            "2026-10-01T00:00:00Z",
            "2026-11-01T00:00:00Z",
        );
        assert_eq!((oct.as_str(), nov.as_str()), ("0.6", "1.3"));
    }

    /// A sealed window counts by its record's `begin_time` as pushed: a package's record begins
    /// a second into the hour (see `UsageWindow::seal_package`).
    #[test]
    fn a_record_counts_by_its_begin_time() {
        let mut package = window("2026-11-01T01:00:00Z", "7", Some("pkg"));
        package.seal_package(t("2026-11-01T02:06:00Z"), None, &[]);
        let windows = [window("2026-11-01T01:00:00Z", "3", None), package];
        let e = estimate(
            "i-1",
            "sku-step",
            &prices(),
            &windows,
            t("2026-11-01T01:00:01Z"),
            t("2026-11-02T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            (e.quantity, e.package_quantity, e.windows),
            (Decimal::ZERO, "7".parse().unwrap(), 1)
        );
    }

    /// The answer leaves the process: its JSON form is a contract with the vendor's app, pinned
    /// byte for byte (as the endpoint sends it), with its schema number.
    #[test]
    fn the_answer_keeps_its_form() {
        let golden = include_str!("../../tests/fixtures/usage_estimate_v2.json").trim();
        let windows = [
            window("2026-11-01T00:00:00Z", "5", None),
            window("2026-11-01T01:00:00Z", "3", None),
            window("2026-11-01T01:00:00Z", "7", Some("pkg")),
        ];
        let (from, to) = november();
        let step = estimate("i-1", "sku-step", &prices(), &windows, from, to).unwrap();
        let tier = estimate("i-1", "sku-tier", &prices(), &windows, from, to).unwrap();
        let answer = serde_json::json!([step, tier]).to_string();
        assert_eq!(answer, golden);
        assert_eq!(step.schema, 2);
    }

    #[test]
    fn the_query_names_the_instance_and_defaults_to_this_month() {
        let now = t("2026-11-21T13:25:00Z");
        let (id, from, to) = parse_query("instanceId=biz%2D1", now).unwrap();
        assert_eq!(
            (id.as_str(), from, to),
            ("biz-1", t("2026-11-01T00:00:00Z"), now)
        );
        let (_, from, _) =
            parse_query("instanceId=a&from=2026-11-20T08%3A00%3A00%2B08%3A00", now).unwrap();
        assert_eq!(from, t("2026-11-20T00:00:00Z"));
        assert!(parse_query("from=2026-11-20T00:00:00Z", now).is_err());
        assert!(parse_query("instanceId=a&to=yesterday", now).is_err());
        assert!(parse_query("instanceId=a&sku=x", now).is_err());
    }
}
