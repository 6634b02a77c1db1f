//! The console's session cookie and CSRF token: each a MAC, under the admin token, of the
//! session's expiry, so the host keeps no session state and a new admin token ends every session.

use axum::http::{HeaderMap, header};
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::AdminToken;

/// The cookie's name.
pub(crate) const COOKIE: &str = "koogallery_admin";
/// How long a sign-in lasts.
pub(crate) const LIFETIME_SECS: i64 = 12 * 3600;

fn mac(token: &AdminToken, purpose: &str, expires: i64) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(token.expose().as_bytes())
        .expect("HMAC takes a key of any length");
    m.update(format!("koogallery-console:{purpose}:{expires}").as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
}

fn verify(token: &AdminToken, purpose: &str, expires: i64, presented: &str) -> bool {
    let Ok(tag) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(presented) else {
        return false;
    };
    let mut m = Hmac::<Sha256>::new_from_slice(token.expose().as_bytes())
        .expect("HMAC takes a key of any length");
    m.update(format!("koogallery-console:{purpose}:{expires}").as_bytes());
    m.verify_slice(&tag).is_ok()
}

/// A signed-in session: its expiry (Unix seconds).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Session {
    pub(crate) expires: i64,
    /// IAM mode's: no cookie, nothing to sign out of.
    pub(crate) iam: bool,
}

impl Session {
    pub(crate) fn start(now: i64) -> Self {
        Self {
            expires: now + LIFETIME_SECS,
            iam: false,
        }
    }

    /// IAM mode's session: the function URL authenticated the request.
    pub(crate) fn iam() -> Self {
        Self {
            expires: i64::MAX,
            iam: true,
        }
    }

    /// The `Set-Cookie` value that holds this session.
    pub(crate) fn cookie(&self, token: &AdminToken, secure: bool) -> String {
        format!(
            "{COOKIE}={}.{}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={LIFETIME_SECS}{}",
            self.expires,
            mac(token, "session", self.expires),
            if secure { "; Secure" } else { "" }
        )
    }

    /// The cookie that ends it.
    pub(crate) fn ended(secure: bool) -> String {
        format!(
            "{COOKIE}=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0{}",
            if secure { "; Secure" } else { "" }
        )
    }

    /// The session the request's cookie holds, if it is this host's and not expired.
    pub(crate) fn from_headers(headers: &HeaderMap, token: &AdminToken, now: i64) -> Option<Self> {
        let value = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == COOKIE)
            .map(|(_, value)| value)?;
        let (expires, tag) = value.split_once('.')?;
        let expires: i64 = expires.parse().ok()?;
        (expires > now && verify(token, "session", expires, tag)).then_some(Self {
            expires,
            iam: false,
        })
    }

    /// The CSRF token every form of this session carries.
    pub(crate) fn csrf(&self, token: &AdminToken) -> String {
        mac(token, "csrf", self.expires)
    }

    pub(crate) fn csrf_matches(&self, token: &AdminToken, presented: &str) -> bool {
        verify(token, "csrf", self.expires, presented)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookie: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, cookie.parse().unwrap());
        h
    }

    #[test]
    fn a_session_holds_until_it_expires_and_only_under_its_token() {
        let token = AdminToken::read_str("the-token-of-this-host").unwrap();
        let other = AdminToken::read_str("another-token-entirely").unwrap();
        let s = Session::start(1_000);
        let set = s.cookie(&token, true);
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.ends_with("Secure")
        );
        let value = set.split(';').next().unwrap();
        let h = headers(&format!("other=1; {value}"));
        assert!(Session::from_headers(&h, &token, 1_001).is_some());
        assert!(
            Session::from_headers(&h, &token, 1_000 + LIFETIME_SECS).is_none(),
            "expired"
        );
        assert!(
            Session::from_headers(&h, &other, 1_001).is_none(),
            "another token"
        );
        let forged = value.replace(
            &format!("={}", s.expires),
            &format!("={}", s.expires + 999_999),
        );
        assert!(
            Session::from_headers(&headers(&forged), &token, 1_001).is_none(),
            "a later expiry forged"
        );
        let csrf = s.csrf(&token);
        assert!(s.csrf_matches(&token, &csrf));
        assert!(!s.csrf_matches(&other, &csrf));
        assert!(!s.csrf_matches(&token, ""));
        assert!(
            !Session::start(5).csrf_matches(&token, &csrf),
            "another session's"
        );
    }
}
