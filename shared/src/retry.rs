//! One retry policy for every loop that waits and tries again (the worker's deliveries, the
//! webhook's tries, the usage queue's redeliveries, DynamoDB's unprocessed items and conflicts):
//! a delay that doubles from `first` up to `max`, with or without jitter.

use std::time::Duration;

use rand::Rng;

/// How far a delay may stray below its ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// Exactly the ceiling: the caller's timing must be predictable (a bounded number of tries
    /// inside a known budget, or a queue's visibility that a test reads).
    None,
    /// "Equal jitter": from half the ceiling up to (not quite) the ceiling, so the retries of many callers
    /// failed by one outage do not all return at once, and none returns much sooner than meant.
    Equal,
}

/// A capped, doubling delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay before the first retry (its ceiling, with jitter).
    pub first: Duration,
    /// The cap.
    pub max: Duration,
    pub jitter: Jitter,
}

impl Backoff {
    /// The ceiling of the delay before retry number `retry` (1-based; 0 counts as 1): `first`,
    /// `2 × first`, `4 × first`, …, never above `max`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(31);
        self.first
            .saturating_mul(2u32.saturating_pow(doublings))
            .min(self.max)
    }

    /// The delay actually waited before retry number `retry`: the ceiling, less the jitter.
    pub fn delay(&self, retry: u32) -> Duration {
        let ceiling = self.ceiling(retry);
        match self.jitter {
            Jitter::None => ceiling,
            Jitter::Equal => {
                let half = ceiling / 2;
                let spread = u64::try_from((ceiling - half).as_micros()).unwrap_or(u64::MAX);
                if spread == 0 {
                    return ceiling;
                }
                half + Duration::from_micros(rand::rng().random_range(0..spread))
            }
        }
    }

    /// The longest `tries` attempts wait between them in all (no jitter lengthens a delay).
    pub fn total_between(&self, tries: u32) -> Duration {
        (1..tries).map(|retry| self.ceiling(retry)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff = Backoff {
        first: Duration::from_secs(2),
        max: Duration::from_secs(60),
        jitter: Jitter::Equal,
    };

    #[test]
    fn the_ceiling_doubles_from_first_to_the_cap_and_never_overflows() {
        let secs: Vec<u64> = (0..9).map(|r| B.ceiling(r).as_secs()).collect();
        assert_eq!(secs, [2, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(B.ceiling(u32::MAX), B.max);
    }

    #[test]
    fn equal_jitter_stays_between_half_the_ceiling_and_the_ceiling() {
        for retry in [1, 3, 10] {
            let ceiling = B.ceiling(retry);
            let delays: Vec<Duration> = (0..500).map(|_| B.delay(retry)).collect();
            assert!(delays.iter().all(|d| *d >= ceiling / 2 && *d < ceiling));
            // Jitter spreads them: 500 draws are not all one value.
            assert!(delays.iter().any(|d| *d != delays[0]), "{delays:?}");
        }
        let exact = Backoff {
            jitter: Jitter::None,
            ..B
        };
        assert!((0..50).all(|_| exact.delay(3) == Duration::from_secs(8)));
    }

    #[test]
    fn the_total_wait_between_tries_sums_the_ceilings() {
        let webhook = Backoff {
            first: Duration::from_millis(250),
            max: Duration::from_secs(60),
            jitter: Jitter::None,
        };
        assert_eq!(webhook.total_between(3), Duration::from_millis(750));
        assert_eq!(webhook.total_between(1), Duration::ZERO);
    }
}
