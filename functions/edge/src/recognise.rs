//! Which protocol family a request belongs to, from its method and path alone
//! (docs/protocol/callbacks.md §6, §9, §11): the V2 basic interfaces on `POST /produce`, the Kit
//! syncs on `POST /produce/produceAPI/v2/{name}`, and the families this release does not serve.

use koogallery::protocol::kit;

/// Which family a request belongs to, from its method and path alone
/// (docs/protocol/callbacks.md §6, §9, §11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Recognised<'a> {
    /// `POST {production URL}`: the V2 basic interfaces, routed by `activity`.
    V2Basic,
    /// `POST {production URL}/produceAPI/v2/{name}`.
    Kit(&'a str),
    /// A family this release does not serve yet (the V1 GET interface, the V1 Kit paths with their
    /// `authToken` header): a clear, signed refusal. The V1 family routes these to the same
    /// callbacks when it comes.
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
        return Recognised::NotServed(format!(
            "the V1 Kit interface {} is not served by this deployment",
            clip(name)
        ));
    }
    if method == http::Method::GET {
        return Recognised::NotServed(
            "the V1 GET interface is not served by this deployment".into(),
        );
    }
    if method != http::Method::POST {
        return Recognised::NotServed(format!(
            "the production URL takes POST, not {}",
            clip(method.as_str())
        ));
    }
    Recognised::V2Basic
}
