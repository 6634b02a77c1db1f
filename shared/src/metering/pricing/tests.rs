//! Pricing tests: the pricing models rating usage as KooGallery rates it (its examples, cycles,
//! records, bands).

use super::*;
use proptest::prelude::*;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn record(begin: &str, quantity: &str) -> Record {
    Record {
        begin: t(begin),
        quantity: d(quantity),
    }
}

/// KooGallery's example bands (docs/protocol/openapi.md §3.2): 0.3/min up to 3 minutes, 0.2/min
/// beyond.
fn seed_bands() -> Vec<Band> {
    vec![
        Band {
            up_to: Some(d("3")),
            unit_price: d("0.3"),
        },
        Band {
            up_to: None,
            unit_price: d("0.2"),
        },
    ]
}

fn step(cycle: Cycle) -> Pricing {
    Pricing::Step {
        cycle: Some(cycle),
        bands: seed_bands(),
    }
}

fn tier() -> Pricing {
    Pricing::Tier {
        cycle: None,
        bands: seed_bands(),
    }
}

/// The whole of November 2026.
fn november() -> (DateTime<Utc>, DateTime<Utc>) {
    (t("2026-11-01T00:00:00Z"), t("2026-12-01T00:00:00Z"))
}

/// KooGallery's own example (docs/protocol/openapi.md §3.2), within one cycle and one record: 8
/// minutes at step → 0.3×3 + 0.2×5 = 1.90; a record of 8 at tier → 8×0.2 = 1.60, of 2 → 0.60.
#[test]
fn koogallery_example_within_one_cycle_and_one_record() {
    let (from, to) = november();
    let step = step(Cycle::Day);
    assert_eq!(step.price_of(d("8")).unwrap(), d("1.90"));
    assert_eq!(step.price_of(d("2")).unwrap(), d("0.6"));
    assert_eq!(step.price_of(d("3")).unwrap(), d("0.9"));
    // 5 and 3 minutes in two hourly records of the same daily cycle.
    let one_day = [
        record("2026-11-03T10:00:00Z", "5"),
        record("2026-11-04T09:00:00Z", "3"),
    ];
    assert_eq!(step.bill(&one_day, from, to).unwrap(), d("1.90"));

    let tier = tier();
    assert_eq!(tier.price_of(d("8")).unwrap(), d("1.60"));
    assert_eq!(tier.price_of(d("2")).unwrap(), d("0.60"));
    let one_record = [record("2026-11-03T10:00:00Z", "8")];
    assert_eq!(tier.bill(&one_record, from, to).unwrap(), d("1.60"));
}

/// Step bands start again with every cycle, counted from the first use (not from midnight):
/// daily from 10:00, a record at 09:00 the next day is in the first cycle, one at 10:00 in
/// the second. Priced on the total (8 → 1.90) it would be too little.
#[test]
fn step_bands_start_again_with_every_cycle() {
    let (from, to) = november();
    let two_days = [
        record("2026-11-03T10:00:00Z", "5"),
        record("2026-11-04T10:00:00Z", "3"),
    ];
    // 0.3×3 + 0.2×2 = 1.30, then 0.3×3 = 0.90.
    assert_eq!(
        step(Cycle::Day).bill(&two_days, from, to).unwrap(),
        d("2.2")
    );
    // Hourly: each hour its own cycle.
    let hours = [
        record("2026-11-03T10:00:00Z", "5"),
        record("2026-11-03T11:00:00Z", "3"),
        record("2026-11-03T12:00:00Z", "1"),
    ];
    assert_eq!(step(Cycle::Hour).bill(&hours, from, to).unwrap(), d("2.5"));
    // The same hours in one daily cycle: 9 → 0.9 + 1.2.
    assert_eq!(step(Cycle::Day).bill(&hours, from, to).unwrap(), d("2.1"));
    // The first use anchors the cycles, whatever the period asked for.
    let late_start = [
        record("2026-10-31T23:00:00Z", "1"),
        record("2026-11-01T22:00:00Z", "3"),
        record("2026-11-01T23:00:00Z", "3"),
    ];
    // Cycle 1 (Oct 31 23:00 – Nov 1 23:00): 1 before the period, 3 within: the cycle's
    // 4 → 1.10 less the 0.30 charged before; cycle 2: 3 → 0.90.
    assert_eq!(
        step(Cycle::Day).bill(&late_start, from, to).unwrap(),
        d("1.7")
    );
}

/// Tier bands apply to each record's own quantity: 5 → 1.00 and 3 → 0.90, where the total 8
/// would be 1.60; two records of 2 are 0.60 each, where 4 would be 0.80.
#[test]
fn tier_prices_each_record_on_its_own() {
    let (from, to) = november();
    let tier = tier();
    let records = [
        record("2026-11-03T10:00:00Z", "5"),
        record("2026-11-03T11:00:00Z", "3"),
    ];
    assert_eq!(tier.bill(&records, from, to).unwrap(), d("1.9"));
    let small = [
        record("2026-11-03T10:00:00Z", "2"),
        record("2026-11-03T11:00:00Z", "2"),
    ];
    assert_eq!(tier.bill(&small, from, to).unwrap(), d("1.2"));
    let linear = Pricing::Linear {
        unit_price: d("0.25"),
        cycle: Some(Cycle::Hour),
    };
    assert_eq!(linear.bill(&records, from, to).unwrap(), d("2"));
}

/// `from` is inclusive, `to` exclusive: a record beginning at `to` belongs to the next period.
#[test]
fn the_period_includes_from_and_excludes_to() {
    let records = [
        record("2026-11-01T00:00:00Z", "1"),
        record("2026-12-01T00:00:00Z", "100"),
    ];
    let (from, to) = november();
    for p in [step(Cycle::Day), tier()] {
        assert_eq!(p.bill(&records, from, to).unwrap(), d("0.3"), "{p:?}");
    }
    assert_eq!(tier().bill(&records, to, to).unwrap(), Decimal::ZERO);
}

proptest! {
    /// Whatever the records and wherever the period is split, the two halves cost what the
    /// whole costs (a cycle across the split is charged once, not twice at its cheap bands).
    #[test]
    fn adjacent_periods_add_up(
        hours in proptest::collection::vec((0i64..24 * 6, 1u32..600), 0..30),
        split in 0i64..24 * 6,
        hourly in any::<bool>(),
    ) {
        let start = t("2026-11-01T05:00:00Z");
        let records: Vec<Record> = hours
            .iter()
            .map(|&(h, q)| Record {
                begin: start + Duration::hours(h),
                quantity: Decimal::new(i64::from(q), 1),
            })
            .collect();
        let (from, to) = (start, start + Duration::days(7));
        let mid = start + Duration::hours(split);
        for p in [step(if hourly { Cycle::Hour } else { Cycle::Day }), tier()] {
            let whole = p.bill(&records, from, to).unwrap();
            let halves = p.bill(&records, from, mid).unwrap() + p.bill(&records, mid, to).unwrap();
            prop_assert_eq!(whole, halves);
        }
    }
}

#[test]
fn linear_is_quantity_times_price_exactly() {
    let p = Pricing::Linear {
        unit_price: d("0.0001"),
        cycle: None,
    };
    assert_eq!(p.price_of(d("12345.6789")).unwrap(), d("1.23456789"));
}

#[test]
fn bounded_bands_refuse_a_quantity_beyond_them() {
    let bands = vec![Band {
        up_to: Some(d("10")),
        unit_price: d("1"),
    }];
    let step = Pricing::Step {
        cycle: Some(Cycle::Day),
        bands: bands.clone(),
    };
    assert_eq!(step.price_of(d("10")).unwrap(), d("10"));
    assert!(matches!(
        step.price_of(d("11")),
        Err(PricingError::BeyondLastBand(_))
    ));
    let tier = Pricing::Tier { cycle: None, bands };
    assert!(tier.price_of(d("11")).is_err());
    // Per record: two records of 6 are within the band, where their sum is not.
    let (from, to) = november();
    let two = [
        record("2026-11-03T10:00:00Z", "6"),
        record("2026-11-03T11:00:00Z", "6"),
    ];
    assert_eq!(tier.bill(&two, from, to).unwrap(), d("12"));
    assert!(step.bill(&two, from, to).is_err());
}

#[test]
fn an_amount_too_large_is_an_error_not_a_panic() {
    let p = Pricing::Linear {
        unit_price: Decimal::MAX,
        cycle: None,
    };
    assert_eq!(p.price_of(d("2")), Err(PricingError::Overflow));
}

#[test]
fn bad_bands_are_refused_with_a_reason() {
    let unordered = Pricing::Step {
        cycle: Some(Cycle::Day),
        bands: vec![
            Band {
                up_to: Some(d("5")),
                unit_price: d("1"),
            },
            Band {
                up_to: Some(d("3")),
                unit_price: d("1"),
            },
        ],
    };
    assert_eq!(unordered.validate(), Err(PricingError::BandsOutOfOrder));
    let unlimited_first = Pricing::Tier {
        cycle: None,
        bands: vec![
            Band {
                up_to: None,
                unit_price: d("1"),
            },
            Band {
                up_to: Some(d("3")),
                unit_price: d("1"),
            },
        ],
    };
    assert_eq!(
        unlimited_first.validate(),
        Err(PricingError::BandsOutOfOrder)
    );
    assert_eq!(
        Pricing::Step {
            cycle: Some(Cycle::Hour),
            bands: vec![]
        }
        .validate(),
        Err(PricingError::NoBands("step"))
    );
    assert_eq!(
        Pricing::Linear {
            unit_price: d("-1"),
            cycle: None,
        }
        .validate(),
        Err(PricingError::Negative)
    );
}

#[test]
fn a_price_list_reads_from_json_and_checks_every_sku() {
    let list = PriceList::from_json(
        r#"{"sku-a":{"model":"step","cycle":"day","bands":[{"upTo":"3","unitPrice":"0.3"},{"unitPrice":"0.2"}]},
            "sku-b":{"model":"linear","unitPrice":"0.5"},
            "sku-c":{"model":"tier","cycle":"hour","bands":[{"unitPrice":"0.5"}]}}"#,
    )
    .unwrap();
    let a = list.for_sku("sku-a").unwrap();
    assert_eq!(a.price_of(d("8")).unwrap(), d("1.9"));
    assert_eq!(a.cycle(), Some(Cycle::Day));
    assert_eq!(list.for_sku("sku-b").unwrap().cycle(), None);
    assert_eq!(list.for_sku("sku-c").unwrap().cycle(), Some(Cycle::Hour));
    let err = PriceList::from_json(r#"{"x":{"model":"tier","bands":[]}}"#).unwrap_err();
    assert!(err.contains("SKU x"), "{err}");
    // A step price without its cycle cannot be rated as KooGallery rates it.
    let err = PriceList::from_json(r#"{"s":{"model":"step","bands":[{"unitPrice":"0.2"}]}}"#)
        .unwrap_err();
    assert!(err.contains("SKU s") && err.contains("cycle"), "{err}");
    // KooGallery bills hourly or daily: nothing else.
    let err = PriceList::from_json(
        r#"{"s":{"model":"step","cycle":"month","bands":[{"unitPrice":"0.2"}]}}"#,
    )
    .unwrap_err();
    assert!(err.contains("month"), "{err}");
}
