//! The storm's plan: its options, and which deliveries it sends in which order (the order
//! lines, their repeats, the businessIds).

use std::time::Duration;

use rand::{Rng as _, SeedableRng as _, rngs::StdRng, seq::SliceRandom as _};
use serde_json::{Value, json};

use crate::SimError;

/// What a storm sends and how long it waits.
#[derive(Debug, Clone)]
pub struct StormOptions {
    /// newInstance deliveries in all, repeats included.
    pub deliveries: usize,
    /// The share of the deliveries that repeat an order line already sent (0 ≤ share < 1).
    pub duplicate_share: f64,
    /// Deliveries in flight at once.
    pub connections: usize,
    /// Deliveries started per second, across all connections (default: as fast as answered).
    pub rate: Option<f64>,
    /// Pause before a delivery is repeated after a `000005` or no answer.
    pub retry_pause: Duration,
    /// A delivery still without an answer naming its instance this long after it was first sent
    /// counts as lost.
    pub give_up_after: Duration,
    /// How long every line has to become ready (queryInstance `000000`) after the last delivery.
    pub ready_timeout: Duration,
    /// Pause after the last line is ready before the provisionings are counted (a late duplicate
    /// provisioning would arrive in it).
    pub settle: Duration,
    /// Makes the plan (which lines repeat, which businessIds change, the order) reproducible.
    pub seed: u64,
}

impl Default for StormOptions {
    fn default() -> Self {
        Self {
            deliveries: 10_000,
            duplicate_share: 0.3,
            connections: 64,
            rate: None,
            retry_pause: Duration::from_secs(1),
            give_up_after: Duration::from_secs(180),
            ready_timeout: Duration::from_secs(600),
            settle: Duration::from_secs(2),
            seed: rand::rng().random(),
        }
    }
}

/// How a delivery relates to its order line's first one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryKind {
    /// The line's first delivery.
    Original,
    /// A repeat sent right after its original, so both are in flight together.
    WithOriginal,
    /// A repeat sent later in the storm.
    Later,
}

/// One newInstance delivery of the plan.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub line: usize,
    pub business_id: String,
    pub kind: DeliveryKind,
}

/// The deliveries in the order they are started.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Names this storm's orders (`CS<run><line>`), so two storms against one host do not meet.
    pub run: String,
    pub lines: usize,
    pub deliveries: Vec<Delivery>,
}

impl Plan {
    /// `round(deliveries × share)` repeats over `deliveries − repeats` order lines; each repeat
    /// picks a line at random, keeps its businessId or gets a new one (even odds), and is sent
    /// right after the original or at a random later place (even odds).
    ///
    /// # Errors
    /// [`SimError::InvalidOptions`] for no deliveries or a share outside `[0, 1)`.
    pub fn new(opts: &StormOptions) -> Result<Self, SimError> {
        check(opts)?;
        let mut rng = StdRng::seed_from_u64(opts.seed);
        let run = run_name(&mut rng);
        let repeats = ((opts.deliveries as f64) * opts.duplicate_share).round() as usize;
        let repeats = repeats.min(opts.deliveries - 1);
        let lines = opts.deliveries - repeats;
        // Each delivery gets a place; sorting by it gives the sending order. A line's original is
        // at its index; a repeat "with" it just after; a later one anywhere after it (the tail of
        // the storm included).
        let mut placed: Vec<(f64, Delivery)> = (0..lines)
            .map(|line| {
                (
                    line as f64,
                    Delivery {
                        line,
                        business_id: business_id(&run, line, 0),
                        kind: DeliveryKind::Original,
                    },
                )
            })
            .collect();
        for n in 1..=repeats {
            placed.push(place_repeat(&mut rng, &run, lines, n));
        }
        // Ties (none in practice) in a random order rather than by line.
        placed.shuffle(&mut rng);
        placed.sort_by(|a, b| a.0.total_cmp(&b.0));
        Ok(Self {
            run,
            lines,
            deliveries: placed.into_iter().map(|(_, d)| d).collect(),
        })
    }

    /// How many repeats are sent right after their original, both in flight together.
    pub(super) fn with_original(&self) -> usize {
        self.deliveries
            .iter()
            .filter(|d| d.kind == DeliveryKind::WithOriginal)
            .count()
    }

    /// How many deliveries carry a businessId other than their line's first one.
    pub(super) fn new_business_ids(&self) -> usize {
        self.deliveries
            .iter()
            .filter(|d| d.business_id != business_id(&self.run, d.line, 0))
            .count()
    }

    /// KooGallery's order ID of a line: `CS` and 15 characters, like real ones.
    #[must_use]
    pub fn order_id(&self, line: usize) -> String {
        format!("CS{}{line:07}", self.run)
    }

    pub(super) fn body(&self, d: &Delivery) -> Value {
        let order_id = self.order_id(d.line);
        json!({"activity":"newInstance","orderId":order_id,
            "orderLineId":format!("{order_id}-000001"),"businessId":d.business_id,"testFlag":"0"})
    }
}

/// At least one delivery, and a share of repeats that leaves at least one order line.
fn check(opts: &StormOptions) -> Result<(), SimError> {
    if opts.deliveries == 0 {
        return Err(SimError::InvalidOptions("at least one delivery".into()));
    }
    if !(0.0..1.0).contains(&opts.duplicate_share) {
        return Err(SimError::InvalidOptions(format!(
            "the duplicate share must be in [0, 1), got {}",
            opts.duplicate_share
        )));
    }
    Ok(())
}

/// The storm's run: 8 characters that name its orders, without the look-alikes `I`, `O`, `0`
/// and `1`.
fn run_name(rng: &mut StdRng) -> String {
    (0..8)
        .map(|_| char::from(b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789"[rng.random_range(0..32)]))
        .collect()
}

/// Repeat `n` of the plan, at its place: a line at random, its first businessId or a new one
/// (even odds), right after the original or at a random later place (even odds).
fn place_repeat(rng: &mut StdRng, run: &str, lines: usize, n: usize) -> (f64, Delivery) {
    let line = rng.random_range(0..lines);
    let business_id = if rng.random_bool(0.5) {
        business_id(run, line, 0)
    } else {
        business_id(run, line, n)
    };
    let (place, kind) = if rng.random_bool(0.5) {
        (
            line as f64 + rng.random_range(0.0001..0.001),
            DeliveryKind::WithOriginal,
        )
    } else {
        (
            rng.random_range(line as f64 + 0.001..lines as f64 + 1.0),
            DeliveryKind::Later,
        )
    };
    (
        place,
        Delivery {
            line,
            business_id,
            kind,
        },
    )
}

/// The businessId of a line's first delivery (`repeat` 0), or of a repeat that gets a new one.
pub(super) fn business_id(run: &str, line: usize, repeat: usize) -> String {
    if repeat == 0 {
        format!("storm-{run}-{line}")
    } else {
        format!("storm-{run}-{line}-r{repeat}")
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::collections::{BTreeSet, HashMap};

    use super::*;

    pub(in crate::storm) fn opts(deliveries: usize, share: f64, seed: u64) -> StormOptions {
        StormOptions {
            deliveries,
            duplicate_share: share,
            seed,
            ..StormOptions::default()
        }
    }

    #[test]
    fn the_plan_has_the_asked_share_of_repeats_of_both_kinds() {
        let plan = Plan::new(&opts(10_000, 0.3, 7)).unwrap();
        assert_eq!(plan.deliveries.len(), 10_000);
        assert_eq!(plan.lines, 7_000);
        let originals: BTreeSet<usize> = plan
            .deliveries
            .iter()
            .filter(|d| d.kind == DeliveryKind::Original)
            .map(|d| d.line)
            .collect();
        assert_eq!(originals.len(), 7_000, "one original per line");
        let kind = |k| plan.deliveries.iter().filter(|d| d.kind == k).count();
        let (with, later) = (kind(DeliveryKind::WithOriginal), kind(DeliveryKind::Later));
        assert_eq!(with + later, 3_000);
        assert!((1_300..1_700).contains(&with), "{with}");
        let new_ids = plan
            .deliveries
            .iter()
            .filter(|d| d.business_id != business_id(&plan.run, d.line, 0))
            .count();
        assert!((1_300..1_700).contains(&new_ids), "{new_ids}");
        // Every repeat comes after its original; one "with" it comes within a few places.
        let mut first_at = HashMap::new();
        for (i, d) in plan.deliveries.iter().enumerate() {
            match d.kind {
                DeliveryKind::Original => {
                    first_at.insert(d.line, i);
                }
                DeliveryKind::WithOriginal => {
                    let at = first_at[&d.line];
                    assert!(i - at <= 8, "sent {} places after its original", i - at);
                }
                DeliveryKind::Later => assert!(first_at.contains_key(&d.line)),
            }
        }
        // Reproducible from the seed, different for another.
        let again = Plan::new(&opts(10_000, 0.3, 7)).unwrap();
        assert_eq!(plan.run, again.run);
        assert!(
            plan.deliveries
                .iter()
                .zip(&again.deliveries)
                .all(|(a, b)| a.line == b.line && a.business_id == b.business_id)
        );
        assert_ne!(Plan::new(&opts(10_000, 0.3, 8)).unwrap().run, plan.run);
        assert_eq!(plan.order_id(3).len(), 17);
    }

    #[test]
    fn bad_plans_are_refused() {
        assert!(Plan::new(&opts(0, 0.3, 1)).is_err());
        assert!(Plan::new(&opts(10, 1.0, 1)).is_err());
        assert!(Plan::new(&opts(10, -0.1, 1)).is_err());
        let one = Plan::new(&opts(1, 0.9, 1)).unwrap();
        assert_eq!((one.lines, one.deliveries.len()), (1, 1));
    }
}
