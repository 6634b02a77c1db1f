//! KooGallery result codes (docs/protocol/callbacks.md §4). Always sent as a 6-character string
//! with HTTP 200.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Every result code the V2 basic interfaces define.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResultCode {
    /// `000000` success.
    Success,
    /// `000001` authentication failed (signature, token, replayed nonce).
    AuthenticationFailed,
    /// `000002` invalid request parameter (also stale timestamp / missing nonce, per the official
    /// sample).
    InvalidParameter,
    /// `000003` instance ID does not exist.
    InstanceNotFound,
    /// `000004` request being processed (asynchronous provisioning).
    Processing,
    /// `000005` other internal error.
    InternalError,
    /// `000100` no instance resource available.
    NoResource,
    /// `000101` mobile number missing or already exists.
    MobileConflict,
    /// `000102` email missing or already exists.
    EmailConflict,
    /// `000103` product already purchased.
    AlreadyPurchased,
    /// `000104` internal service error.
    ServiceError,
    /// `000105` account already subscribed to the benefit.
    AlreadySubscribed,
    /// `000106` product resources sold out.
    SoldOut,
    /// `000107` SaaS email domain already exists.
    EmailDomainExists,
}

impl ResultCode {
    pub const ALL: [ResultCode; 14] = [
        Self::Success,
        Self::AuthenticationFailed,
        Self::InvalidParameter,
        Self::InstanceNotFound,
        Self::Processing,
        Self::InternalError,
        Self::NoResource,
        Self::MobileConflict,
        Self::EmailConflict,
        Self::AlreadyPurchased,
        Self::ServiceError,
        Self::AlreadySubscribed,
        Self::SoldOut,
        Self::EmailDomainExists,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "000000",
            Self::AuthenticationFailed => "000001",
            Self::InvalidParameter => "000002",
            Self::InstanceNotFound => "000003",
            Self::Processing => "000004",
            Self::InternalError => "000005",
            Self::NoResource => "000100",
            Self::MobileConflict => "000101",
            Self::EmailConflict => "000102",
            Self::AlreadyPurchased => "000103",
            Self::ServiceError => "000104",
            Self::AlreadySubscribed => "000105",
            Self::SoldOut => "000106",
            Self::EmailDomainExists => "000107",
        }
    }

    /// Parses a code. Older docs wrote the async code as the 7-digit "0000004"; accept it (be
    /// liberal).
    pub fn parse(s: &str) -> Option<Self> {
        if s == "0000004" {
            return Some(Self::Processing);
        }
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The message sent when nothing more specific is known.
    pub fn default_message(self) -> &'static str {
        match self {
            Self::Success => "success.",
            Self::AuthenticationFailed => "authentication failed",
            Self::InvalidParameter => "invalid request parameter",
            Self::InstanceNotFound => "instance does not exist",
            Self::Processing => "request is being processed",
            Self::InternalError => "internal error",
            Self::NoResource => "no instance resource available",
            Self::MobileConflict => "mobile number missing or already exists",
            Self::EmailConflict => "email missing or already exists",
            Self::AlreadyPurchased => "product already purchased",
            Self::ServiceError => "internal service error",
            Self::AlreadySubscribed => "account already subscribed",
            Self::SoldOut => "product resources sold out",
            Self::EmailDomainExists => "email domain already exists",
        }
    }

    /// Codes with which a provisioning attempt may end for good (docs/protocol/decisions.md §5):
    /// the order then fails and KooGallery refunds it.
    pub fn is_failure(self) -> bool {
        !matches!(self, Self::Success | Self::Processing)
    }
}

impl std::fmt::Display for ResultCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ResultCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ResultCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown result code {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_and_is_six_digits() {
        for code in ResultCode::ALL {
            assert_eq!(code.as_str().len(), 6);
            assert_eq!(ResultCode::parse(code.as_str()), Some(code));
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(serde_json::from_str::<ResultCode>(&json).unwrap(), code);
        }
        assert_eq!(ResultCode::parse("000108"), None);
    }

    #[test]
    fn legacy_seven_digit_processing_code_is_accepted() {
        assert_eq!(ResultCode::parse("0000004"), Some(ResultCode::Processing));
    }
}
