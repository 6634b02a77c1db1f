//! Test support, behind the `testing` feature so it is never in a production build: in-process
//! fakes of every port ([`memory`]), a whole deployment in memory ([`TestBed`]), and the port
//! contract tests every adapter must pass ([`contract`]).

pub mod bed;
pub mod contract;
pub mod directory;
pub mod exchange;
pub mod golden;
pub mod license;
pub mod memory;
pub mod operator;
pub mod sso;
pub mod vendor;

pub use bed::{TestBed, test_client_secret_key, with_kit};
pub use directory::MemoryDirectory;
pub use exchange::MemoryExchangeLog;
pub use memory::{
    ManualClock, MemoryQueue, MemoryStore, RecordedMetrics, Scripted, ScriptedProvisioner,
    sample_access,
};
pub use operator::MemoryDeadLetters;
pub use sso::{MemorySso, ScriptedAuthCentre};
pub use vendor::{SignedVendor, VendorRequest};
