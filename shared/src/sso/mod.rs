//! Single sign-on for 联营 products (docs/protocol/callbacks.md §10; docs/protocol/openapi.md §9;
//! docs/protocol/decisions.md §19): KooGallery's login step (the code and tenant the unified login
//! sends to the vendor's login address, exchanged on the tenant's auth centre), the server-side
//! session that keeps the auth centre's tokens sealed, and the records of the OpenID Connect
//! provider that hands the signed-in user to the vendor's own applications.
//!
//! The domain and its ports live here; the OIDC endpoints and the ID tokens are in
//! `functions/sso`, the auth centre's HTTP client in `adapters/openapi`.

pub mod auth_centre;
pub mod client;
pub mod ending;
pub mod grant;
mod life;
pub mod login;
pub mod record;
pub mod secret;
pub mod session;
pub mod signing_key;
pub mod store;

pub use auth_centre::{AuthCentre, AuthCentreBase, AuthCentreError, AuthCentreUser, TokenGrant};
pub use client::OidcClient;
pub use ending::{EndScope, SessionEnder};
pub use grant::{AuthorizationCode, GrantKind, IssuedAccessToken, PendingLogin};
pub use life::Delivery;
pub use login::{Current, Ended, LoggedIn, LoginError, Sso, SsoSettings};
pub use secret::{Opaque, hash_opaque};
pub use session::{Identity, Session};
pub use signing_key::StoredSigningKey;
pub use store::{ClientStore, GrantStore, SessionStore, SigningKeyStore, SsoStore, TenantLocator};
#[cfg(test)]
mod tests;
