//! The claims a token carries, and whether they allow use of the license at a given time.

use alloc::string::String;
use serde::{Deserialize, Serialize};

/// The claims of a version 1 token (the crate documentation has the wire format).
///
/// The field order is the serialised order, so it is part of what `Issuer` signs; changing
/// it changes issued tokens (the golden test pins it), not their meaning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Claims {
    /// Claims version: 1.
    pub v: u32,
    /// Id of the key that signs the token.
    pub kid: String,
    /// The license code, e.g. `PL0000001`.
    pub code: String,
    /// The product id, when the license names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// The license's status.
    pub status: Status,
    /// The client id the software sent.
    pub client: String,
    /// Issued at, unix seconds.
    pub iat: u64,
    /// License expiry, unix seconds; `None` is a perpetual license.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// Until when (unix seconds) the token may be relied on offline.
    pub offline_until: u64,
}

impl Claims {
    /// Whether the license may be used at `now_unix`: status `ACTIVE` and not yet expired.
    pub fn usable_at(&self, now_unix: u64) -> bool {
        self.status == Status::Active && self.exp.is_none_or(|exp| exp > now_unix)
    }
}

/// A license's status. Unknown values are kept, not rejected, so a service that adds a status does
/// not break software already shipped; such a license is simply not usable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Status {
    /// `ACTIVE`: the only usable status.
    Active,
    /// `FROZEN`
    Frozen,
    /// `EXPIRED`
    Expired,
    /// `RELEASED`
    Released,
    /// Any other value, as received.
    Other(String),
}

impl Status {
    /// The wire value.
    pub fn as_str(&self) -> &str {
        match self {
            Status::Active => "ACTIVE",
            Status::Frozen => "FROZEN",
            Status::Expired => "EXPIRED",
            Status::Released => "RELEASED",
            Status::Other(other) => other,
        }
    }
}

impl From<String> for Status {
    fn from(value: String) -> Self {
        match value.as_str() {
            "ACTIVE" => Status::Active,
            "FROZEN" => Status::Frozen,
            "EXPIRED" => Status::Expired,
            "RELEASED" => Status::Released,
            _ => Status::Other(value),
        }
    }
}

impl From<Status> for String {
    fn from(status: Status) -> Self {
        match status {
            Status::Other(other) => other,
            known => String::from(known.as_str()),
        }
    }
}

impl core::fmt::Display for Status {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}
