//! Bill estimates (docs/protocol/openapi.md §3.2): what usage costs under the SKU's pricing model,
//! rated as KooGallery rates it. KooGallery rates and charges the customer itself; these estimates
//! only let the vendor (and its customer) see what to expect. Money and quantities are exact
//! decimals.
//!
//! What a model's bands apply to (docs/protocol/openapi.md §3.2, from KooGallery's seller guide on
//! listing an on-demand specification):
//! * linear: every unit at the one price;
//! * step (阶梯): the usage of one **billing cycle** (计费周期), each band's share at its price,
//!   summed. Cycles are fixed, chosen per SKU when listing (hourly or daily), and counted from
//!   the first use: a daily cycle is every 24 hours from the instance's first usage record;
//! * tier: each **usage record** (单次话单, here one pushed hourly record) on its own, all of it at
//!   the price of the band its own quantity falls in.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A band of a step or tier price: up to `up_to` units (inclusive; `None` = without limit), at
/// `unit_price` per unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Band {
    #[serde(default, with = "rust_decimal::serde::str_option")]
    pub up_to: Option<Decimal>,
    #[serde(with = "rust_decimal::serde::str")]
    pub unit_price: Decimal,
}

/// A SKU's billing cycle (计费周期), as chosen when listing it: KooGallery offers hourly and daily
/// billing (seller guide, "Billing Cycle and Rule"; docs/protocol/openapi.md §3 rule 2). A cycle is
/// counted from the first use, not from midnight or the hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cycle {
    Hour,
    Day,
}

impl Cycle {
    pub fn length(self) -> Duration {
        match self {
            Self::Hour => Duration::hours(1),
            Self::Day => Duration::days(1),
        }
    }

    /// The cycle's name in configuration and estimates.
    pub fn name(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }
}

/// How a SKU's usage is priced. `cycle` is the SKU's billing cycle: required for step (its bands
/// apply per cycle), accepted and only shown for the others (their amount does not depend on it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "model",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Pricing {
    /// quantity × unit price.
    Linear {
        #[serde(with = "rust_decimal::serde::str")]
        unit_price: Decimal,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cycle: Option<Cycle>,
    },
    /// 阶梯: per billing cycle, each band's share of the cycle's usage at that band's price, summed.
    Step {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cycle: Option<Cycle>,
        bands: Vec<Band>,
    },
    /// Per usage record, the whole record at the price of the band its quantity falls in.
    Tier {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cycle: Option<Cycle>,
        bands: Vec<Band>,
    },
}

/// One usage record as KooGallery rates it: when it begins (`begin_time`) and its quantity
/// (`usage_value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub begin: DateTime<Utc>,
    pub quantity: Decimal,
}

/// A pricing configuration that cannot price anything.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    #[error("a {0} price needs at least one band")]
    NoBands(&'static str),
    #[error("band limits must increase and only the last band may be unlimited")]
    BandsOutOfOrder,
    #[error("prices and band limits must not be negative")]
    Negative,
    #[error(
        "a step price needs the SKU's billing cycle, as chosen when listing it: \"cycle\":\"hour\" or \"day\""
    )]
    NoCycle,
    #[error("the quantity exceeds the last band's limit {0}")]
    BeyondLastBand(Decimal),
    #[error("the amount is too large to compute")]
    Overflow,
}

impl Pricing {
    /// Checks the bands (increasing limits, only the last unlimited, nothing negative) and that a
    /// step price has its cycle.
    pub fn validate(&self) -> Result<(), PricingError> {
        let (name, bands) = match self {
            Self::Linear { unit_price, .. } if unit_price.is_sign_negative() => {
                return Err(PricingError::Negative);
            }
            Self::Linear { .. } => return Ok(()),
            Self::Step { cycle: None, .. } => return Err(PricingError::NoCycle),
            Self::Step { bands, .. } => ("step", bands),
            Self::Tier { bands, .. } => ("tier", bands),
        };
        if bands.is_empty() {
            return Err(PricingError::NoBands(name));
        }
        let mut last = Decimal::ZERO;
        for (i, b) in bands.iter().enumerate() {
            if b.unit_price.is_sign_negative() || b.up_to.is_some_and(|u| u.is_sign_negative()) {
                return Err(PricingError::Negative);
            }
            match b.up_to {
                Some(u) if u > last || (i == 0 && u >= last) => last = u,
                None if i + 1 == bands.len() => {}
                _ => return Err(PricingError::BandsOutOfOrder),
            }
        }
        Ok(())
    }

    /// The model's name in configuration and estimates.
    pub fn model_name(&self) -> &'static str {
        match self {
            Self::Linear { .. } => "linear",
            Self::Step { .. } => "step",
            Self::Tier { .. } => "tier",
        }
    }

    /// The SKU's billing cycle, if configured.
    pub fn cycle(&self) -> Option<Cycle> {
        match self {
            Self::Linear { cycle, .. } | Self::Step { cycle, .. } | Self::Tier { cycle, .. } => {
                *cycle
            }
        }
    }

    /// What `quantity` costs priced on its own: for step, the usage of one billing cycle; for
    /// tier, one usage record.
    pub fn price_of(&self, quantity: Decimal) -> Result<Decimal, PricingError> {
        self.validate()?;
        let quantity = quantity.max(Decimal::ZERO);
        let times = |q: Decimal, p: Decimal| q.checked_mul(p).ok_or(PricingError::Overflow);
        match self {
            Self::Linear { unit_price, .. } => times(quantity, *unit_price),
            Self::Step { bands, .. } => {
                let (mut total, mut floor) = (Decimal::ZERO, Decimal::ZERO);
                for b in bands {
                    let ceiling = b.up_to.unwrap_or(Decimal::MAX).min(quantity);
                    if ceiling > floor {
                        total = total
                            .checked_add(times(ceiling - floor, b.unit_price)?)
                            .ok_or(PricingError::Overflow)?;
                        floor = ceiling;
                    }
                    if floor >= quantity {
                        return Ok(total);
                    }
                }
                Err(PricingError::BeyondLastBand(floor))
            }
            Self::Tier { bands, .. } => {
                let band = bands
                    .iter()
                    .find(|b| b.up_to.is_none_or(|u| quantity <= u))
                    .ok_or_else(|| {
                        PricingError::BeyondLastBand(
                            bands.last().and_then(|b| b.up_to).unwrap_or_default(),
                        )
                    })?;
                times(quantity, band.unit_price)
            }
        }
    }

    /// What the records beginning in `[from, to)` cost (`from` inclusive, `to` exclusive).
    /// `records` are all of the instance's on-demand records, in any order, so that step cycles
    /// are counted from the first of them whatever the period. A cycle that began before `from`
    /// counts its usage before `from` towards its bands: the period is charged what its usage
    /// adds to the cycle's charge, so the amounts of adjacent periods add up to that of both.
    pub fn bill(
        &self,
        records: &[Record],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Decimal, PricingError> {
        self.validate()?;
        let mut amount = Decimal::ZERO;
        let mut add = |a: Decimal| -> Result<(), PricingError> {
            amount = amount.checked_add(a).ok_or(PricingError::Overflow)?;
            Ok(())
        };
        match self {
            Self::Linear { .. } | Self::Tier { .. } => {
                for r in records.iter().filter(|r| r.begin >= from && r.begin < to) {
                    add(self.price_of(r.quantity)?)?;
                }
            }
            Self::Step { cycle, .. } => {
                let length = cycle
                    .ok_or(PricingError::NoCycle)?
                    .length()
                    .num_milliseconds();
                let Some(first) = records
                    .iter()
                    .filter(|r| r.quantity > Decimal::ZERO)
                    .map(|r| r.begin)
                    .min()
                else {
                    return Ok(Decimal::ZERO);
                };
                // Per cycle (by its number from the first use): the usage before the period and
                // within it. UNCONFIRMED how KooGallery dates the first use and places a record
                // that straddles a cycle's end; chosen: the first record's `begin_time`, and the
                // cycle a record's `begin_time` falls in (hourly records never straddle cycles
                // counted from the start of one).
                let mut cycles: BTreeMap<i64, (Decimal, Decimal)> = BTreeMap::new();
                for r in records.iter().filter(|r| r.begin < to) {
                    let n = (r.begin - first).num_milliseconds().div_euclid(length);
                    let (before, within) = cycles.entry(n).or_default();
                    let sum = if r.begin < from { before } else { within };
                    *sum = sum
                        .checked_add(r.quantity.max(Decimal::ZERO))
                        .ok_or(PricingError::Overflow)?;
                }
                for (before, within) in cycles.into_values() {
                    if within > Decimal::ZERO {
                        let all = before.checked_add(within).ok_or(PricingError::Overflow)?;
                        add(self.price_of(all)? - self.price_of(before)?)?;
                    }
                }
            }
        }
        Ok(amount)
    }
}

/// Pricing per SKU (`skuCode`, as in the order), read from configuration
/// (`KOOGALLERY_PRICING`, a JSON object of SKU code to [`Pricing`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceList(pub BTreeMap<String, Pricing>);

impl PriceList {
    /// Parses and validates a price list.
    pub fn from_json(json: &str) -> Result<Self, String> {
        let list: Self = serde_json::from_str(json).map_err(|e| e.to_string())?;
        for (sku, pricing) in &list.0 {
            pricing.validate().map_err(|e| format!("SKU {sku}: {e}"))?;
        }
        Ok(list)
    }

    pub fn for_sku(&self, sku: &str) -> Option<&Pricing> {
        self.0.get(sku)
    }
}

#[cfg(test)]
mod tests;
