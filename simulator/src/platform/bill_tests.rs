//! docs/protocol/openapi.md §3.2's worked example (bands 0.3/min up to 3 min, 0.2/min beyond)
//! held by the simulator's bill, and how the period, packages and cycles are treated.

use super::*;

fn record(instance: &str, begin: &str, value: &str, package: Option<&str>) -> UsageRecord {
    UsageRecord {
        instance_id: instance.into(),
        record_time: begin.into(),
        begin_time: begin.into(),
        end_time: begin.into(),
        usage_value: value.into(),
        metering_sn: format!("{instance}{begin}{value}"),
        relate_pkg_instance: package.map(str::to_owned),
    }
}

fn price(json: &str) -> Price {
    serde_json::from_str(json).unwrap()
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

const BANDS: &str = r#""bands":[{"upTo":"3","unitPrice":"0.3"},{"unitPrice":"0.2"}]"#;

fn step(cycle: &str) -> Price {
    price(&format!(r#"{{"model":"step","cycle":"{cycle}",{BANDS}}}"#))
}

fn tier() -> Price {
    price(&format!(r#"{{"model":"tier",{BANDS}}}"#))
}

fn november() -> (DateTime<Utc>, DateTime<Utc>) {
    (t("2026-11-01T00:00:00Z"), t("2026-12-01T00:00:00Z"))
}

fn amount(accepted: &[UsageRecord], p: &Price) -> String {
    let (from, to) = november();
    koogallery_bill(accepted, "i-1", from, to, p)
        .unwrap()
        .1
        .to_string()
}

/// §3.2 step: 8 minutes in one cycle → 0.3×3 + 0.2×5 = 1.90 (one record or two).
#[test]
fn vector_3_2_step_eight_minutes_in_one_cycle() {
    let one = [record("i-1", "20261101T000000Z", "8", None)];
    let two = [
        record("i-1", "20261101T000000Z", "5", None),
        record("i-1", "20261101T010000Z", "3", None),
    ];
    assert_eq!(amount(&one, &step("day")), "1.9");
    assert_eq!(amount(&two, &step("day")), "1.9");
}

/// §3.2 tier: a record of 8 → 8×0.2 = 1.60; of 2 → 2×0.3 = 0.60; the band limit is inclusive.
#[test]
fn vector_3_2_tier_per_record() {
    for (value, expected) in [("8", "1.6"), ("2", "0.6"), ("3", "0.9")] {
        let accepted = [record("i-1", "20261101T000000Z", value, None)];
        assert_eq!(amount(&accepted, &tier()), expected, "{value}");
    }
}

/// The same 5 + 3 minutes across cycles and records: hourly step cycles 1.30 + 0.90, tier per
/// record 1.00 + 0.90, linear 8 × 0.25.
#[test]
fn per_cycle_per_record_and_linear() {
    let accepted = [
        record("i-1", "20261101T100000Z", "5", None),
        record("i-1", "20261101T110000Z", "3", None),
    ];
    assert_eq!(amount(&accepted, &step("hour")), "2.2");
    assert_eq!(amount(&accepted, &tier()), "1.9");
    assert_eq!(
        amount(
            &accepted,
            &price(r#"{"model":"linear","unitPrice":"0.25"}"#)
        ),
        "2"
    );
}

/// Only the instance's on-demand records beginning in `[from, to)` are billed: another
/// instance, a package's record and a record at `to` are left out.
#[test]
fn the_period_the_instance_and_packages() {
    let accepted = [
        record("i-1", "20261101T000000Z", "5", None),
        record("i-1", "20261101T010000Z", "3", None),
        record("i-1", "20261101T010001Z", "7", Some("pkg")),
        record("i-2", "20261101T010000Z", "9", None),
        record("i-1", "20261201T000000Z", "100", None),
    ];
    let (from, to) = november();
    let (quantity, amount) = koogallery_bill(&accepted, "i-1", from, to, &step("day")).unwrap();
    assert_eq!(
        (quantity.to_string(), amount.to_string()),
        ("8".into(), "1.9".into())
    );
    let none = koogallery_bill(&accepted, "nobody", from, to, &step("day")).unwrap();
    assert_eq!(none, (Decimal::ZERO, Decimal::ZERO));
}

/// Cycles count from the first use, not midnight; a cycle straddling the period's start charges
/// the period what its usage adds (5 then 3 in one daily cycle: 1.30, then 0.60; counted from
/// midnight the 3 would open a cycle of their own at 0.90), and adjacent periods add up.
#[test]
fn cycles_count_from_first_use_and_periods_add_up() {
    let accepted = [
        record("i-1", "20261101T200000Z", "5", None),
        record("i-1", "20261102T030000Z", "3", None),
    ];
    let split = t("2026-11-02T00:00:00Z");
    let bill = |from, to| {
        koogallery_bill(&accepted, "i-1", from, to, &step("day"))
            .unwrap()
            .1
    };
    let (start, end) = november();
    assert_eq!(bill(start, split).to_string(), "1.3");
    assert_eq!(bill(split, end).to_string(), "0.6");
    assert_eq!(bill(start, end).to_string(), "1.9");
}

/// Prices KooGallery would not list are refused, as is usage beyond a limited last band.
#[test]
fn bad_prices_and_usage_beyond_the_bands() {
    for bad in [
        r#"{"model":"linear"}"#,
        r#"{"model":"linear","unitPrice":"-1"}"#,
        r#"{"model":"step","bands":[{"unitPrice":"1"}]}"#,
        r#"{"model":"tier","bands":[]}"#,
        r#"{"model":"tier","bands":[{"unitPrice":"1"},{"upTo":"3","unitPrice":"1"}]}"#,
        r#"{"model":"tier","bands":[{"upTo":"3","unitPrice":"1"},{"upTo":"3","unitPrice":"1"}]}"#,
        r#"{"model":"tier","bands":[{"upTo":"3","unitPrice":"-1"}]}"#,
    ] {
        assert!(price(bad).check().is_err(), "{bad}");
    }
    let limited = r#"{"model":"step","cycle":"day","bands":[{"upTo":"3","unitPrice":"1"}]}"#;
    let accepted = [record("i-1", "20261101T000000Z", "4", None)];
    let (from, to) = november();
    assert!(koogallery_bill(&accepted, "i-1", from, to, &price(limited)).is_err());
}
