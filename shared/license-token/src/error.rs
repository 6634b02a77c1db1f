//! Why a token (or a published key set) was not accepted.

use core::fmt;

/// Why [`crate::verify`] rejected a token, or [`crate::keys_from_jwks`] a key set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyError {
    /// Not a `KGL1.<payload>.<signature>` token: wrong prefix, wrong number of parts, bad base64url,
    /// a signature that is not 64 bytes, or claims that are not the expected JSON. Also a key set or
    /// public key that cannot be read.
    Malformed,
    /// The token's `kid` names none of the keys given.
    UnknownKey,
    /// The signature does not verify with the named key.
    BadSignature,
    /// The signed claims are not version 1.
    UnsupportedVersion,
    /// The signed claims' `offlineUntil` has passed: the software must check online again.
    OfflineWindowOver,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VerifyError::Malformed => "malformed license token or key",
            VerifyError::UnknownKey => "license token signed with an unknown key",
            VerifyError::BadSignature => "license token signature does not verify",
            VerifyError::UnsupportedVersion => "unsupported license token version",
            VerifyError::OfflineWindowOver => {
                "license token's offline window is over; check online"
            }
        })
    }
}

#[cfg(feature = "std")]
impl std::error::Error for VerifyError {}
