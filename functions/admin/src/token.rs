//! The admin token of the local host: `KOOGALLERY_ADMIN_TOKEN`, or else `admin-token` in the data
//! directory, generated on first start (32 random bytes, base64url), owner-only. It is compared in
//! constant time and never logged. [`Auth::Token`](crate::Auth::Token) checks it.

use std::{path::Path, sync::Arc};

use axum::{
    http::{HeaderMap, header},
    response::Response,
};
use base64::Engine;
use koogallery::config::{ConfigError, Env, catalog};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::json_answer;

/// The token file in the data directory, when `KOOGALLERY_ADMIN_TOKEN` is unset.
pub const TOKEN_FILE: &str = "admin-token";

/// The shortest token accepted from `KOOGALLERY_ADMIN_TOKEN`.
const MIN_TOKEN_CHARS: usize = 16;

/// The admin bearer token; its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct AdminToken(Arc<str>);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(…)")
    }
}

impl AdminToken {
    /// The token as sent in `Authorization: Bearer`.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this token, in constant time (the SHA-256 digests are compared, so
    /// not even the length leaks).
    pub fn matches(&self, presented: &str) -> bool {
        let (a, b) = (
            Sha256::digest(self.0.as_bytes()),
            Sha256::digest(presented.as_bytes()),
        );
        a.ct_eq(&b).into()
    }

    /// `KOOGALLERY_ADMIN_TOKEN`, else the data directory's `admin-token` (generated now if
    /// there is none yet).
    pub fn for_host(env: &Env<'_>, data_dir: &Path) -> Result<Self, ConfigError> {
        let setting = &catalog::ADMIN_TOKEN;
        if let Some(token) = env.get(setting) {
            let token = token.trim();
            if token.chars().count() < MIN_TOKEN_CHARS {
                return Err(ConfigError::invalid(
                    setting.name,
                    format!("too short: at least {MIN_TOKEN_CHARS} characters"),
                ));
            }
            return Ok(Self(token.into()));
        }
        Self::load_or_generate(&data_dir.join(TOKEN_FILE))
            .map_err(|e| ConfigError::invalid(setting.name, e))
    }

    /// The token in `path`, generated there (owner-only, written atomically, never replaced) on
    /// first use.
    pub fn load_or_generate(path: &Path) -> Result<Self, String> {
        match Self::read(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            done => return done.map_err(|e| format!("cannot read {}: {e}", path.display())),
        }
        let mut bytes = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        match koogallery::security::at_rest::write_new_file_atomically(path, token.as_bytes()) {
            Ok(()) => Ok(Self(token.into())),
            // Another process wrote one first: theirs is the token.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Self::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
            }
            Err(e) => Err(format!("cannot write {}: {e}", path.display())),
        }
    }

    /// A token given as text (the `koogallery-admin` side); `None` when blank.
    pub fn read_str(text: &str) -> Option<Self> {
        let token = text.trim();
        (!token.is_empty()).then(|| Self(token.into()))
    }

    /// The token in the file at `path` (the `koogallery-admin` side).
    pub fn read(path: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        let token = text.trim();
        if token.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the token file is empty",
            ));
        }
        Ok(Self(token.into()))
    }
}

/// Checks `Authorization: Bearer <token>` against `token`: the refusal, if any (none or not a
/// bearer: 401, another token: 403).
pub fn bearer_refusal(token: &AdminToken, headers: &HeaderMap) -> Option<Response> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match presented {
        None => {
            let mut answer = json_answer(
                401,
                serde_json::json!({"error": "the admin API needs Authorization: Bearer <admin token>"}),
            );
            answer.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            Some(answer)
        }
        Some(presented) if token.matches(presented) => None,
        Some(_) => {
            tracing::warn!("admin API call refused: wrong token");
            Some(json_answer(
                403,
                serde_json::json!({"error": "the admin token is not this host's"}),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Env<'static> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Env::from_fn(move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn the_token_file_is_generated_once_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let first = AdminToken::for_host(&env(&[]), dir.path()).unwrap();
        let again = AdminToken::for_host(&env(&[]), dir.path()).unwrap();
        assert_eq!(first.expose(), again.expose());
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(first.expose())
            .unwrap();
        assert_eq!(bytes.len(), 32);
        assert!(!format!("{first:?}").contains(first.expose()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn the_setting_wins_over_the_file_and_a_short_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let set = "an-operator-chosen-token";
        let token =
            AdminToken::for_host(&env(&[("KOOGALLERY_ADMIN_TOKEN", set)]), dir.path()).unwrap();
        assert_eq!(token.expose(), set);
        assert!(!dir.path().join(TOKEN_FILE).exists());
        let e = AdminToken::for_host(&env(&[("KOOGALLERY_ADMIN_TOKEN", "short")]), dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("KOOGALLERY_ADMIN_TOKEN") && !e.contains("short\""),
            "{e}"
        );
    }

    #[test]
    fn only_the_same_token_matches() {
        let token = AdminToken("the-token-of-this-host".into());
        assert!(token.matches("the-token-of-this-host"));
        assert!(!token.matches("the-token-of-this-hos"));
        assert!(!token.matches("the-token-of-this-host!"));
        assert!(!token.matches(""));
    }
}
