//! Bill estimates (spec openapi §3.2): what a quantity of usage costs under the SKU's pricing
//! model. KooGallery rates and charges the customer itself; these estimates only let the vendor
//! (and its customer) see what to expect. Money and quantities are exact decimals.

use std::collections::BTreeMap;

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

/// How a SKU's usage is priced.
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
    },
    /// 阶梯: each band's share of the quantity at that band's price, summed.
    Step { bands: Vec<Band> },
    /// The whole quantity at the price of the band the total falls in.
    Tier { bands: Vec<Band> },
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
    #[error("the quantity exceeds the last band's limit {0}")]
    BeyondLastBand(Decimal),
}

impl Pricing {
    /// Checks the bands: increasing limits, only the last unlimited, nothing negative.
    pub fn validate(&self) -> Result<(), PricingError> {
        let (name, bands) = match self {
            Self::Linear { unit_price } if unit_price.is_sign_negative() => {
                return Err(PricingError::Negative);
            }
            Self::Linear { .. } => return Ok(()),
            Self::Step { bands } => ("step", bands),
            Self::Tier { bands } => ("tier", bands),
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

    /// What `quantity` costs.
    pub fn estimate(&self, quantity: Decimal) -> Result<Decimal, PricingError> {
        self.validate()?;
        let quantity = quantity.max(Decimal::ZERO);
        match self {
            Self::Linear { unit_price } => Ok(quantity * unit_price),
            Self::Step { bands } => {
                let (mut total, mut floor) = (Decimal::ZERO, Decimal::ZERO);
                for b in bands {
                    let ceiling = b.up_to.unwrap_or(Decimal::MAX).min(quantity);
                    if ceiling > floor {
                        total += (ceiling - floor) * b.unit_price;
                        floor = ceiling;
                    }
                    if floor >= quantity {
                        return Ok(total);
                    }
                }
                Err(PricingError::BeyondLastBand(floor))
            }
            Self::Tier { bands } => bands
                .iter()
                .find(|b| b.up_to.is_none_or(|u| quantity <= u))
                .map(|b| quantity * b.unit_price)
                .ok_or_else(|| {
                    PricingError::BeyondLastBand(
                        bands.last().and_then(|b| b.up_to).unwrap_or_default(),
                    )
                }),
        }
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
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

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

    /// Seed 000's pricing example (openapi §3.2): 8 minutes, 0.3/min for the first 3, 0.2 beyond.
    #[test]
    fn seed_000_step_and_tier_examples() {
        let step = Pricing::Step {
            bands: seed_bands(),
        };
        assert_eq!(step.estimate(d("8")).unwrap(), d("1.90"));
        let tier = Pricing::Tier {
            bands: seed_bands(),
        };
        assert_eq!(tier.estimate(d("8")).unwrap(), d("1.60"));
        assert_eq!(tier.estimate(d("2")).unwrap(), d("0.6"));
        assert_eq!(step.estimate(d("2")).unwrap(), d("0.6"));
        assert_eq!(step.estimate(d("3")).unwrap(), d("0.9"));
    }

    #[test]
    fn linear_is_quantity_times_price_exactly() {
        let p = Pricing::Linear {
            unit_price: d("0.0001"),
        };
        assert_eq!(p.estimate(d("12345.6789")).unwrap(), d("1.23456789"));
    }

    #[test]
    fn bounded_bands_refuse_a_quantity_beyond_them() {
        let bands = vec![Band {
            up_to: Some(d("10")),
            unit_price: d("1"),
        }];
        let step = Pricing::Step {
            bands: bands.clone(),
        };
        assert_eq!(step.estimate(d("10")).unwrap(), d("10"));
        assert!(matches!(
            step.estimate(d("11")),
            Err(PricingError::BeyondLastBand(_))
        ));
        assert!(Pricing::Tier { bands }.estimate(d("11")).is_err());
    }

    #[test]
    fn bad_bands_are_refused_with_a_reason() {
        let unordered = Pricing::Step {
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
            Pricing::Step { bands: vec![] }.validate(),
            Err(PricingError::NoBands("step"))
        );
        assert_eq!(
            Pricing::Linear {
                unit_price: d("-1")
            }
            .validate(),
            Err(PricingError::Negative)
        );
    }

    #[test]
    fn a_price_list_reads_from_json_and_checks_every_sku() {
        let list = PriceList::from_json(
            r#"{"sku-a":{"model":"step","bands":[{"upTo":"3","unitPrice":"0.3"},{"unitPrice":"0.2"}]},
                "sku-b":{"model":"linear","unitPrice":"0.5"}}"#,
        )
        .unwrap();
        assert_eq!(
            list.for_sku("sku-a").unwrap().estimate(d("8")).unwrap(),
            d("1.9")
        );
        let err = PriceList::from_json(r#"{"x":{"model":"tier","bands":[]}}"#).unwrap_err();
        assert!(err.contains("SKU x"), "{err}");
    }
}
