//! What travels on the wire between KooGallery and this product (docs/protocol/callbacks.md §4, §6;
//! openapi): data transfer objects only. They never import the domain (`instance`, `order`,
//! `provisioning`) and the domain never imports them; the callbacks translate.
//!
//! * [`request`]: what every family's requests share: `testFlag`, parsing that names the field.
//! * [`v2_basic`]: the V2 basic interfaces' requests and answers (docs/protocol/callbacks.md §6).
//! * [`kit`]: the 联营 Kit syncs' requests (docs/protocol/callbacks.md §9,
//!   docs/protocol/decisions.md §15–17).
//! * [`reply`]: the answer every callback sends (docs/protocol/callbacks.md §4).
//! * [`time`]: the wire's time formats (docs/protocol/decisions.md §10).
//! * [`openapi`]: KooGallery's open API as the vendor calls it
//!   (docs/protocol/openapi.md §0–§2, §8).
//!
//! * [`license`]: the License callbacks' requests (docs/protocol/openapi.md §6).
//! * [`v1`]: the retired V1 GET interface and the legacy License activities, translated into the
//!   bodies of the callbacks that serve the same concepts (docs/protocol/callbacks.md §11).

pub mod kit;
pub mod license;
pub mod openapi;
pub mod reply;
pub mod request;
pub mod time;
pub mod v1;
pub mod v2_basic;

pub use reply::Reply;
