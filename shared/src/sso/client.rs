//! A relying party of the OIDC provider (docs/protocol/decisions.md §19): one of the vendor's
//! applications, registered with an ID, a secret (stored as its SHA-256 only) and the exact
//! redirect URIs it may use.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::secret::{hash_opaque, same_hash};

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OidcClient {
    pub client_id: String,
    /// SHA-256 (hex) of the client secret: the secret is 256 random bits, so a plain hash is
    /// enough, and the store never holds it.
    pub secret_hash: String,
    pub name: String,
    /// Compared exactly, byte for byte (no prefix, no normalisation).
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// OIDC Back-Channel Logout 1.0: where a signed logout token is POSTed when a session ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
    /// OIDC third-party initiated login: where a user who signed in from KooGallery's side
    /// (no login started here) is sent, so the app starts its own login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiate_login_uri: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for OidcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcClient")
            .field("client_id", &self.client_id)
            .field("name", &self.name)
            .field("redirect_uris", &self.redirect_uris)
            .finish_non_exhaustive()
    }
}

impl OidcClient {
    /// The secret matches, compared in constant time.
    pub fn secret_matches(&self, secret: &str) -> bool {
        same_hash(&self.secret_hash, &hash_opaque(secret))
    }

    pub fn allows_redirect(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|r| r == uri)
    }

    pub fn allows_post_logout_redirect(&self, uri: &str) -> bool {
        self.post_logout_redirect_uris.iter().any(|r| r == uri)
    }
}

/// Why a client registration is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClientError {
    #[error("{0}")]
    Invalid(String),
}

/// Whether the URL's host is a loopback one (`localhost`, 127.0.0.0/8, `::1`), where plain
/// `http://` is allowed (the simulator, tests); `None` when it has no host.
pub(crate) fn loopback_host(url: &url::Url) -> Option<bool> {
    Some(match url.host()? {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    })
}

/// Checks one URI a client registers: absolute, `https://` (or `http://` on a loopback host), no
/// fragment (OIDC Core §3.1.2.1).
pub fn check_client_uri(what: &str, uri: &str) -> Result<(), ClientError> {
    let bad = |why: &str| ClientError::Invalid(format!("{what} {uri:?}: {why}"));
    let url = url::Url::parse(uri).map_err(|e| bad(&e.to_string()))?;
    let Some(loopback) = loopback_host(&url) else {
        return Err(bad("no host"));
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err(bad("must be https:// (http:// only on a loopback host)")),
    }
    if url.fragment().is_some() {
        return Err(bad("must not have a fragment"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_match_exactly_and_secrets_in_constant_time() {
        let c = OidcClient {
            client_id: "app".into(),
            secret_hash: hash_opaque("s3cret"),
            name: "App".into(),
            redirect_uris: vec!["https://app.example.com/cb".into()],
            post_logout_redirect_uris: vec![],
            backchannel_logout_uri: None,
            initiate_login_uri: None,
            created_at: Utc::now(),
        };
        assert!(c.allows_redirect("https://app.example.com/cb"));
        for near in [
            "https://app.example.com/cb/",
            "https://app.example.com/cb?x=1",
            "https://APP.example.com/cb",
            "https://app.example.com/c",
        ] {
            assert!(!c.allows_redirect(near), "{near}");
        }
        assert!(c.secret_matches("s3cret"));
        assert!(!c.secret_matches("s3cre"));
        assert!(!format!("{c:?}").contains(&c.secret_hash));
        assert!(check_client_uri("redirect", "http://127.0.0.1:3000/cb").is_ok());
        assert!(check_client_uri("redirect", "http://app.example.com/cb").is_err());
        assert!(check_client_uri("redirect", "https://app.example.com/cb#x").is_err());
    }
}
