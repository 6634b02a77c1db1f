//! Signed license tokens: the service issues them, the vendor's software verifies them offline
//! with nothing but the service's published Ed25519 public key.
//!
//! # Token format, version 1 (`KGL1`)
//!
//! This is a wire contract: software already shipped verifies these tokens, so a change to anything
//! below is a new version with a new prefix, never an edit of this one.
//!
//! ```text
//! KGL1.<payload>.<signature>
//! ```
//!
//! - `<payload>`: base64url without padding (RFC 4648 §5) of the claims as compact JSON (UTF-8).
//! - `<signature>`: base64url without padding of the 64-byte Ed25519 signature (RFC 8032, pure
//!   Ed25519) over the ASCII bytes `KGL1.<payload>`, that is everything before the second dot.
//!
//! The claims, a JSON object with camelCase names (unknown extra names are ignored):
//!
//! | name           | type             | meaning                                                        |
//! |----------------|------------------|----------------------------------------------------------------|
//! | `v`            | number           | claims version, `1`; any other value fails to verify           |
//! | `kid`          | string           | id of the signing key, as in the published key set             |
//! | `code`         | string           | the license code, e.g. `PL0000001`                             |
//! | `product`      | string, optional | the product id                                                 |
//! | `status`       | string           | `ACTIVE`, `FROZEN`, `EXPIRED`, `RELEASED`; others: not usable  |
//! | `client`       | string           | the client id the software sent                                |
//! | `iat`          | number           | issued at, unix seconds                                        |
//! | `exp`          | number, optional | license expiry, unix seconds; absent: perpetual                |
//! | `offlineUntil` | number           | unix seconds; after it the token is no longer to be relied on  |
//!
//! A verifier checks, in this order: the `KGL1.` prefix and three dot-separated parts; the key
//! named by `kid` (the only payload field read before the signature is checked); the signature,
//! with strict Ed25519 verification; `v == 1`; `offlineUntil >= now`. Whether the license may be
//! used is then a separate question of the verified claims: `status` is `ACTIVE` and `exp` is
//! absent or after now ([`Claims::usable_at`]).
//!
//! The public keys are published as a JWK set, `{"keys":[{"kid":"…","kty":"OKP","crv":"Ed25519",
//! "x":"<base64url of the 32-byte key>"}]}` ([`keys_from_jwks`]).
//!
//! # Features
//!
//! - `std` (default): `std::error::Error` for [`VerifyError`]. Without it the crate is `no_std`
//!   and needs only `alloc`; time is always passed in, as unix seconds.
//! - `issue`: `Issuer`, the signing side (from the caller's 32 secret bytes; no RNG).
//! - `cli`: the `koogallery-license` binary (`koogallery-license check --keys <jwks> --token <t>`).

#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod claims;
mod error;
#[cfg(feature = "issue")]
mod issue;
mod key;
mod verify;

pub use claims::{Claims, Status};
pub use error::VerifyError;
#[cfg(feature = "issue")]
pub use issue::Issuer;
pub use key::{PublicKey, keys_from_jwks};
pub use verify::{PREFIX, Verified, verify};
