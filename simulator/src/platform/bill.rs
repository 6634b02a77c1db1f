//! KooGallery's bill for pushed usage (话单) under a SKU's on-demand price
//! (docs/protocol/openapi.md §3.2, §3; the §3.2 worked example is the vector).
//!
//! KooGallery rates what it accepted; the vendor only reports raw usage. Models:
//! * linear: every unit at the one price;
//! * step (阶梯): per billing cycle (计费周期, hourly or daily, counted from the first use), the
//!   cycle's usage cut into bands, each share at its band's price;
//! * tier: per record, the whole record at the price of the band its own quantity falls in.
//!
//! The bill for a period is kept as KooGallery's running ledger: what it has charged for the
//! records that began before the period's end, less what it had charged for those that began
//! before its start. A step cycle that straddles the period's start thus charges the period only
//! what its usage adds to the cycle.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;

use crate::openapi::UsageRecord;

/// The price model of a SKU (§3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Model {
    Linear,
    Step,
    Tier,
}

/// The billing cycle chosen when listing the SKU (§3 rule 2, §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cycle {
    Hour,
    Day,
}

/// One band: up to `up_to` units of the quantity priced (inclusive; absent = no limit).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Band {
    #[serde(default, with = "rust_decimal::serde::str_option")]
    pub up_to: Option<Decimal>,
    #[serde(with = "rust_decimal::serde::str")]
    pub unit_price: Decimal,
}

/// A SKU's on-demand price as the seller lists it, e.g.
/// `{"model":"step","cycle":"day","bands":[{"upTo":"3","unitPrice":"0.3"},{"unitPrice":"0.2"}]}`
/// or `{"model":"linear","unitPrice":"0.5"}`. Checked by [`Price::check`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Price {
    pub model: Model,
    #[serde(default)]
    pub cycle: Option<Cycle>,
    #[serde(default, with = "rust_decimal::serde::str_option")]
    pub unit_price: Option<Decimal>,
    #[serde(default)]
    pub bands: Vec<Band>,
}

impl Price {
    /// What KooGallery would refuse to list: linear without a non-negative `unitPrice`; step or
    /// tier without bands, with negative figures, limits not increasing or an unlimited band
    /// before the last; step without its cycle.
    ///
    /// # Errors
    /// What is wrong, in words.
    pub fn check(&self) -> Result<(), String> {
        if self.model == Model::Linear {
            return match self.unit_price {
                Some(p) if p >= Decimal::ZERO => Ok(()),
                Some(_) => Err("a negative unitPrice".into()),
                None => Err("a linear price needs \"unitPrice\"".into()),
            };
        }
        if self.model == Model::Step && self.cycle.is_none() {
            return Err(
                "a step price needs its billing cycle: \"cycle\":\"hour\" or \"day\"".into(),
            );
        }
        if self.bands.is_empty() {
            return Err("a step or tier price needs \"bands\"".into());
        }
        let mut floor = Decimal::ZERO;
        for (i, band) in self.bands.iter().enumerate() {
            if band.unit_price < Decimal::ZERO {
                return Err("a negative unitPrice".into());
            }
            match band.up_to {
                None if i + 1 < self.bands.len() => {
                    return Err("only the last band may be without \"upTo\"".into());
                }
                Some(limit) if limit < floor || (i > 0 && limit == floor) => {
                    return Err("band limits must increase from zero".into());
                }
                Some(limit) => floor = limit,
                None => {}
            }
        }
        Ok(())
    }

    /// One record's charge under tier, or any quantity's under linear.
    fn per_record(&self, quantity: Decimal) -> Result<Decimal, String> {
        if let (Model::Linear, Some(price)) = (self.model, self.unit_price) {
            return Ok(quantity * price);
        }
        let band = self
            .bands
            .iter()
            .find(|b| b.up_to.is_none_or(|limit| quantity <= limit))
            .ok_or_else(|| format!("a record of {quantity} is beyond the last band"))?;
        Ok(quantity * band.unit_price)
    }

    /// One step cycle's charge for its total `quantity`: each band's share at its price.
    fn per_cycle(&self, quantity: Decimal) -> Result<Decimal, String> {
        let (mut charge, mut lower) = (Decimal::ZERO, Decimal::ZERO);
        for band in &self.bands {
            let upper = band.up_to.map_or(quantity, |limit| limit.min(quantity));
            if upper > lower {
                charge += (upper - lower) * band.unit_price;
                lower = upper;
            }
        }
        if lower < quantity {
            return Err(format!("a cycle of {quantity} is beyond the last band"));
        }
        Ok(charge)
    }

    /// KooGallery's ledger: the charge for every record that began before `until`. Step cycles
    /// are numbered from `first_use`.
    fn charged_before(
        &self,
        records: &[(DateTime<Utc>, Decimal)],
        first_use: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Decimal, String> {
        let before = records.iter().filter(|(begin, _)| *begin < until);
        let cycle = match (self.model, self.cycle) {
            (Model::Step, Some(Cycle::Hour)) => TimeDelta::hours(1),
            (Model::Step, Some(Cycle::Day)) => TimeDelta::days(1),
            _ => return before.map(|(_, q)| self.per_record(*q)).sum(),
        };
        let mut cycles: BTreeMap<i64, Decimal> = BTreeMap::new();
        for (begin, quantity) in before {
            // A record belongs to the cycle its begin_time falls in (hourly records never
            // straddle cycles counted from the start of one).
            let n = (*begin - first_use)
                .num_seconds()
                .div_euclid(cycle.num_seconds());
            *cycles.entry(n).or_default() += *quantity;
        }
        cycles.into_values().map(|q| self.per_cycle(q)).sum()
    }
}

/// What KooGallery bills for `instance_id` from the records it accepted (`accepted`, as
/// `GET /_sim/usage` lists them) whose `begin_time` is in `[from, to)`: the quantity and the
/// amount. Records deducted from a stop-when-used-up package (`relate_pkg_instance`) were prepaid
/// and are not billed; the first use that starts the step cycles is the instance's earliest billed
/// record (UNCONFIRMED in §3.2 which record dates it).
///
/// # Errors
/// A price that does not [`Price::check`], a record whose `begin_time` or `usage_value` does not
/// parse, or usage beyond the last band.
pub fn koogallery_bill(
    accepted: &[UsageRecord],
    instance_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    price: &Price,
) -> Result<(Decimal, Decimal), String> {
    price.check()?;
    let records = accepted
        .iter()
        .filter(|r| r.instance_id == instance_id && r.relate_pkg_instance.is_none())
        .map(|r| {
            let begin = NaiveDateTime::parse_from_str(&r.begin_time, super::apig::DATE_FORMAT)
                .map_err(|e| format!("begin_time {}: {e}", r.begin_time))?
                .and_utc();
            let quantity: Decimal = r
                .usage_value
                .parse()
                .map_err(|e| format!("usage_value {}: {e}", r.usage_value))?;
            Ok((begin, quantity))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let Some(first_use) = records.iter().map(|(begin, _)| *begin).min() else {
        return Ok((Decimal::ZERO, Decimal::ZERO));
    };
    let quantity: Decimal = records
        .iter()
        .filter(|(begin, _)| *begin >= from && *begin < to)
        .map(|(_, q)| *q)
        .sum();
    let amount = price.charged_before(&records, first_use, to)?
        - price.charged_before(&records, first_use, from)?;
    Ok((quantity.normalize(), amount.normalize()))
}

#[cfg(test)]
#[path = "bill_tests.rs"]
mod tests;
