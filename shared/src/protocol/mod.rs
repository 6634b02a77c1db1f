//! What travels on the wire between KooGallery and this product (spec callbacks §4, §6; openapi):
//! data transfer objects only. They never import the domain (`instance`, `order`, `provisioning`)
//! and the domain never imports them; the callbacks translate.
//!
//! * [`v2_basic`]: the V2 basic interfaces' requests and answers (callbacks §6).
//! * [`reply`]: the answer every callback sends (callbacks §4).
//! * [`time`]: the wire's time formats (Decisions §10).
//! * [`openapi`]: KooGallery's open API as the vendor calls it (openapi §0–§2, §8).
//!
//! The Kit syncs (callbacks §9), the V1 GET interface (§11), License (openapi §5) and the open API
//! (openapi §2–§3) each get a module beside `v2_basic` when they are served.

pub mod openapi;
pub mod reply;
pub mod time;
pub mod v2_basic;

pub use reply::Reply;
