//! A family's authenticator (docs/protocol/callbacks.md §3.1, §3.2; docs/protocol/decisions.md
//! §1–3, §13, §18): its key ring, timestamp window, nonce namespace and body limit, and where its
//! signature, timestamp and nonce travel (the query of a basic call, the `x-…` headers of a Kit
//! call).

use koogallery::{callbacks::Family, security::KeyRing};
use serde_json::Value;

/// How one family authenticates and answers (docs/protocol/callbacks.md §3.1, §3.2;
/// docs/protocol/decisions.md §1–3, §13, §18): its key ring (current and previous), its timestamp
/// window, its nonce namespace, its body limit.
pub(crate) struct Authenticator {
    pub(crate) family: Family,
    pub(crate) keys: KeyRing,
    pub(crate) window_ms: i64,
    pub(crate) max_body_bytes: usize,
    /// Prepended to the family's nonces: each family has its own replay namespace
    /// (docs/protocol/decisions.md §2).
    pub(crate) nonce_namespace: &'static str,
    /// The names of its signature, timestamp and nonce, for the messages.
    pub(crate) names: CredentialNames,
    /// Its official sample refuses a missing signature (`000001`) before it looks at the timestamp
    /// and the nonce (§3.1); the Kit sample checks them first (§3.2).
    pub(crate) signature_checked_first: bool,
    /// Its signature scheme, on the raw body and the body parsed once.
    pub(crate) verify: Verify,
}

/// The names a family gives its signature, timestamp and nonce.
pub(crate) struct CredentialNames {
    pub(crate) signature: &'static str,
    pub(crate) timestamp: &'static str,
    pub(crate) nonce: &'static str,
}

/// A signature scheme (`security::verify_basic_parsed`, `security::verify_kit_parsed`): key ring,
/// nonce, timestamp, signature, raw body, parsed body.
pub(crate) type Verify =
    fn(
        &KeyRing,
        &str,
        &str,
        &str,
        &[u8],
        Option<&serde_json::Map<String, Value>>,
    ) -> Result<koogallery::security::Matched, koogallery::security::SignatureError>;

/// The signature parameters of a request: the query of a basic call
/// (docs/protocol/callbacks.md §3.1), the `x-…` headers of a Kit call (§3.2).
#[derive(Debug, Default)]
pub(crate) struct Credentials {
    pub(crate) signature: Option<String>,
    pub(crate) timestamp: Option<String>,
    pub(crate) nonce: Option<String>,
}

impl Credentials {
    pub(crate) fn from_query(query: &str) -> Self {
        let mut p = Self::default();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match k.as_ref() {
                "signature" => &mut p.signature,
                "timestamp" => &mut p.timestamp,
                "nonce" => &mut p.nonce,
                _ => continue,
            };
            if slot.is_none() && !v.trim().is_empty() {
                *slot = Some(v.trim().to_owned());
            }
        }
        p
    }

    pub(crate) fn from_headers(headers: &http::HeaderMap) -> Self {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        Self {
            signature: get("x-sign"),
            timestamp: get("x-timestamp"),
            nonce: get("x-nonce"),
        }
    }
}
