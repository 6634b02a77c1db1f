//! License codes (License 2.0: docs/protocol/openapi.md §5, §6; the legacy GET License: §6.4;
//! docs/protocol/decisions.md §21): the code KooGallery issues per purchased License resource (or,
//! for a legacy product, the code this service issues on `getLicense`), its state and history, the
//! events the vendor hears, the daily usage statistics, and the ports that keep them
//! ([`LicenseStore`]) and reach KooGallery's License open API ([`LicenseMarketplace`]).
//!
//! A code is one record: every change (a callback, an activation, a query's answer) is one
//! versioned write together with the [`LicenseEvent`]s it produces, delivered to the vendor in
//! `seq` order, at least once, like the tenant directory's events. [`service`] is what the
//! vendor's software talks to: activation, daily checks, signed license tokens; [`upload`] is the
//! vendor's back end delivering a string or a file for a marketplace event (§4).

pub mod api;
mod code;
pub mod event;
pub mod marketplace;
pub mod service;
mod state;
pub mod store;
pub mod upload;
pub mod usage;

pub use code::LicenseCode;
pub use event::{LicenseEvent, LicenseEventBody};
pub use marketplace::{
    LicenseApiError, LicenseInfo, LicenseMarketplace, RemoteStatus, Upload, UsageReport,
};
pub use state::{
    Activation, LegacyPurchase, License, LicenseChange, LicenseError, LicenseStatus, Origin,
    RenewScene,
};
pub use store::{LicenseStore, MutateError, events_delivered, mutate_license};
pub use usage::{DailyUsage, SoftwareUsage};

#[cfg(test)]
mod tests;
