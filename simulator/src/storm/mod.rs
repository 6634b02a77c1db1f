//! `koogallery-sim storm`: KooGallery's newInstance deliveries at scale, with its repeats. A share
//! of the deliveries repeats an order line already sent (same `orderId`/`orderLineId`, the same or
//! a new `businessId`, always a new nonce and timestamp), half of them sent right beside their
//! original so that both are in flight at once. A delivery answered with a signed, retryable
//! `000005` (or not answered in KooGallery's 5 s) is repeated, as KooGallery does
//! (docs/protocol/callbacks.md §5).
//!
//! Then it checks what must hold whatever the load (docs/protocol/callbacks.md §6.1,
//! docs/protocol/decisions.md §6): every delivery of an order line was answered with the same
//! instanceId, and no two lines share one; every line becomes ready through queryInstance; and the
//! vendor's webhook, played here by [`WebhookReceiver`], received exactly one provisioning per line
//! and none for an instance nobody was answered. Any breach is a violation in the report (and a
//! non-zero exit of the command).

mod deliver;
mod judge;
mod plan;
mod ready;
mod report;
mod run;
mod webhook;

pub use deliver::{Attempt, Outcome};
pub use plan::{Delivery, DeliveryKind, Plan, StormOptions};
pub use report::StormReport;
pub use run::run_storm;
pub use webhook::{Provisioned, Provisionings, WebhookReceiver};
