//! The KooGallery SaaS production interface, vendor side: everything the functions share.
//!
//! - [`wire`]: the V2 basic callbacks' requests and responses, [`result_code`], [`time`] formats.
//! - [`signing`] and [`crypto`]: request signatures, `Body-Sign`, credential encryption (spec callbacks §3).
//! - [`domain`]: the instance state machine, its event history and idempotency rules (Decisions §6).
//! - [`ports`]: the narrow traits adapters implement (store, nonces, queue, provisioner, marketplace,
//!   clock, secrets); [`memory`] holds in-process implementations so the whole flow tests without AWS.
//! - [`config`]: settings read once per process.

pub mod config;
pub mod crypto;
pub mod domain;
pub mod error;
pub mod memory;
pub mod offline;
pub mod ports;
pub mod result_code;
pub mod services;
pub mod signing;
pub mod time;
pub mod wire;

#[cfg(any(test, feature = "contract"))]
pub mod contract;

pub use error::{CallbackError, StoreError};
pub use result_code::ResultCode;
