//! The KooGallery SaaS production interface, vendor side: one module per KooGallery concept.
//!
//! ```text
//! protocol/      what travels on the wire: V2 basic DTOs, the reply, time formats   (callbacks §4, §6)
//! security/      every signature and cipher, one file per scheme; the replay port    (callbacks §3)
//! callbacks/     one module per callback (parse → apply → answer) and the registry  (callbacks §6)
//! instance/      the purchased instance: state machine, events, store port, record  (Decisions §5–7)
//! order/         the order behind it and the marketplace port (Query Order)         (openapi §2)
//! provisioning/  the provisioner port: create resources, hear lifecycle notices
//! jobs/          the job queue between callbacks and worker, and its consumer port
//! directory/     the 联营 tenant directory the Kit syncs keep, and its port          (callbacks §9)
//! metering/      pay-per-use: usage reports, hourly windows, the usage push, estimates (openapi §3)
//! config/        settings per concept and the typed secrets bundle
//! testing/       fakes, the in-memory test bed, port contracts (feature `testing`)
//! ```
//!
//! Wire DTOs (`protocol`) and the domain (`instance`, `order`, `provisioning`) never import each
//! other; the callbacks translate (a test in `tests/architecture.rs` holds this). [`ResultCode`],
//! [`clock`] and [`storage`] are the small vocabulary both sides share.

pub mod callbacks;
pub mod clock;
pub mod config;
pub mod directory;
pub mod instance;
pub mod jobs;
pub mod logging;
pub mod metering;
pub mod metrics;
pub mod order;
pub mod protocol;
pub mod provisioning;
pub mod reconciler;
pub mod result_code;
pub mod security;
pub mod storage;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use result_code::ResultCode;
pub use storage::StoreError;
