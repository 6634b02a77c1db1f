//! Which protocol family a request belongs to, from its method and path alone
//! (docs/protocol/callbacks.md §6, §9, §11): the V2 basic interfaces on `POST /produce`, the Kit
//! syncs on `POST /produce/produceAPI/v2/{name}`, the V1 family on `GET /produce` and
//! `POST /produce/produceAPI/{name}` (§3.6).

use koogallery::protocol::kit;

/// Which family a request belongs to, from its method and path alone
/// (docs/protocol/callbacks.md §6, §9, §11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Recognised<'a> {
    /// `POST {production URL}`: the V2 basic interfaces, routed by `activity`.
    V2Basic,
    /// `POST {production URL}/produceAPI/v2/{name}`.
    Kit(&'a str),
    /// `GET {production URL}?activity=…`: the V1 family (docs/protocol/callbacks.md §11).
    V1Get,
    /// `POST {production URL}/produceAPI/{name}` with an `authToken` header: the V1 Kit.
    V1Kit(&'a str),
    /// A method the production URL does not take: a clear, signed refusal.
    NotServed(String),
}

/// The Kit interface a path names, if it is a V2 Kit path (`…/produceAPI/v2/{name}`).
pub(crate) fn kit_name(path: &str) -> Option<&str> {
    path.rsplit_once(kit::V2_PATH_PREFIX).map(|(_, name)| name)
}

pub(crate) fn recognise<'a>(method: &http::Method, path: &'a str) -> Recognised<'a> {
    let clip = |s: &str| s.chars().take(64).collect::<String>();
    if let Some(name) = kit_name(path) {
        return if method == http::Method::POST {
            Recognised::Kit(name.trim_end_matches('/'))
        } else {
            Recognised::NotServed(format!("Kit interface {} takes POST", clip(name)))
        };
    }
    if let Some((_, name)) = path.rsplit_once(kit::V1_PATH_PREFIX) {
        return if method == http::Method::POST {
            Recognised::V1Kit(name.trim_end_matches('/'))
        } else {
            Recognised::NotServed(format!("Kit interface {} takes POST", clip(name)))
        };
    }
    if method == http::Method::GET {
        return Recognised::V1Get;
    }
    if method != http::Method::POST {
        return Recognised::NotServed(format!(
            "the production URL takes POST, not {}",
            clip(method.as_str())
        ));
    }
    Recognised::V2Basic
}
