//! The purchase lifecycle as KooGallery drives it (docs/protocol/callbacks.md §6.1–§6.7), step by
//! step; or, with [`LifecycleOptions::v1`], as it drives a V1 product through the retired GET
//! interface (§3.6, §11).

mod checks;
mod report;
mod run;
mod script;
mod script_v1;

pub use report::{LifecycleReport, Step};
pub(crate) use run::run;

use std::time::Duration;

use rand::Rng as _;

/// Start of a step note that flags an answer slower than KooGallery's limit.
const SLOW: &str = "SLOW";

/// Characters of generated order IDs (KooGallery's look like `CS2211181819B4LVS`).
const ORDER_ID_CHARS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// How far back the stale-timestamp probe goes (the accepted window is 60 s, §3.1).
const STALE_BY_MS: i64 = 10 * 60 * 1000;

/// How far back the V1 stale-token probe goes: the service accepts a V1 `timeStamp` within 15
/// minutes of its clock (docs/protocol/decisions.md §20), so 20 minutes is out whatever the skew.
const V1_STALE_BY_MINUTES: i64 = 20;

/// Longest `instanceId` KooGallery accepts (§6.1).
const MAX_INSTANCE_ID: usize = 64;

/// A fresh KooGallery-looking order ID: `CS` + 15 random upper-case alphanumerics.
#[must_use]
pub fn new_order_id() -> String {
    let mut rng = rand::rng();
    let tail: String = (0..15)
        .map(|_| char::from(ORDER_ID_CHARS[rng.random_range(0..ORDER_ID_CHARS.len())]))
        .collect();
    format!("CS{tail}")
}

/// How to run [`Simulator::run_lifecycle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleOptions {
    /// The order of the purchase; the order line is `<orderId>-000001`.
    pub order_id: String,
    /// Send `"testFlag":"1"` in every body (seller-console debugging, §1); `testFlag=1` in every
    /// V1 call.
    pub test_flag: bool,
    /// Walk a V1 purchase through the GET interface instead (docs/protocol/callbacks.md §3.6,
    /// §11): newInstance polled until ready, queryInstance, refreshInstance, expireInstance,
    /// instanceStatus, upgrade, releaseInstance, a stale token and an unknown activity.
    pub v1: bool,
    /// How long to poll `queryInstance` (V1: `newInstance`) for the instance to become ready.
    pub poll_timeout: Duration,
    /// Pause between two polls.
    pub poll_interval: Duration,
}

impl Default for LifecycleOptions {
    fn default() -> Self {
        Self {
            order_id: new_order_id(),
            test_flag: false,
            v1: false,
            poll_timeout: Duration::from_secs(30),
            poll_interval: Duration::from_millis(250),
        }
    }
}

// What the crate's tests check directly.
#[cfg(test)]
pub(crate) use checks::{body, check_instance_info};
// The license walk's report prints times the same way.
pub(crate) use report::fmt_elapsed;
