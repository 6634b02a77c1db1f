//! The KooGallery SaaS production interface, vendor side: one module per KooGallery concept.
//!
//! ```text
//! protocol/      what travels on the wire: V2 basic and Kit DTOs, the reply, time formats
//! security/      every signature and cipher, one file per scheme; the replay port
//! callbacks/     one module per callback (parse → apply → answer) and the registry
//! instance/      the purchased instance: state machine, events, store port, record
//! order/         the order behind it and the marketplace port (Query Order), order notices
//! provisioning/  the provisioner port: create resources, hear lifecycle notices
//! jobs/          the job queue between callbacks and worker, and its consumer port
//! directory/     the 联营 tenant directory the Kit syncs keep, and its port
//! exchange/     the exchange log: every call KooGallery made and every call we made, redacted
//! license/       License codes: state, events, daily usage, the store and License open-API ports
//! operator/     the operator's views and actions: instance listings, dead letters, redrives
//! metering/      pay-per-use: usage reports, hourly windows, the usage push, estimates
//! config/        every setting defined once (catalog), per concept; the typed secrets
//! logging        one log set-up for every process
//! failure        what every port failure carries: its words and its cause (`Detail`)
//! refresh_scene  the refreshInstance scene: one type for the wire, the domain and the records
//! retry          the one retry policy: a capped, doubling delay, with or without jitter
//! testing/       fakes, the in-memory test bed, port contracts (feature `testing`)
//! ```
//!
//! `docs/architecture.md` names the protocol sections each module implements; the protocol
//! itself is in `docs/protocol/`.
//!
//! Wire DTOs (`protocol`) and the domain (`instance`, `order`, `provisioning`) never import each
//! other; the callbacks translate (a test in `tests/architecture.rs` holds this). [`ResultCode`],
//! [`clock`], [`failure`], [`refresh_scene`] and [`storage`] are the small vocabulary both sides share.

pub mod callbacks;
pub mod clock;
pub mod config;
pub mod directory;
pub mod exchange;
pub mod failure;
mod id;
pub mod instance;
pub mod jobs;
pub mod license;
pub mod logging;
pub mod metering;
pub mod metrics;
pub mod operator;
pub mod order;
pub mod protocol;
pub mod provisioning;
pub mod reconciler;
pub mod refresh_scene;
pub mod result_code;
pub mod retry;
pub mod security;
pub mod sso;
pub mod storage;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use result_code::ResultCode;
pub use storage::StoreError;
