//! Bill estimate tests: an instance's on-demand usage in a period priced by its SKU.

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
    let golden = include_str!("../../../tests/fixtures/usage_estimate_v2.json").trim();
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
