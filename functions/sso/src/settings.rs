//! The provider's settings (docs/protocol/decisions.md §19): its issuer (the public base URL, also
//! KooGallery's login address's origin), the unified login's address, the app credential's ID,
//! and the token lifetimes.

use chrono::Duration;
use koogallery::config::{ConfigError, Env, catalog};
use url::Url;

/// KooGallery's unified login (docs/protocol/callbacks.md §10); `{appId}` is replaced.
pub const UNIFIED_LOGIN: &str =
    "https://macroverse.huaweicloud.com/unified-login/#/portal-login?ind=UNOP&appId={appId}";

#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// `https://…` (or `http://` on a loopback host), no path, query or fragment.
    issuer: String,
    /// The issuer is `https://` (decided once, from its parsed scheme).
    secure: bool,
    unified_login: String,
    app_id: String,
    pub id_token_ttl: Duration,
    pub access_token_ttl: Duration,
    pub key_rotation: Duration,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct SettingsError(pub String);

impl ProviderSettings {
    /// # Errors
    /// An issuer that is not an origin, or a login address without `{appId}`.
    pub fn new(issuer: &str, unified_login: &str, app_id: &str) -> Result<Self, SettingsError> {
        let url =
            Url::parse(issuer).map_err(|e| SettingsError(format!("issuer {issuer:?}: {e}")))?;
        koogallery::sso::client::check_client_uri("issuer", issuer)
            .map_err(|e| SettingsError(e.to_string()))?;
        if url.path() != "/" || url.query().is_some() {
            return Err(SettingsError(format!(
                "issuer {issuer:?}: must be an origin (scheme, host, port), no path or query"
            )));
        }
        if !unified_login.contains("{appId}") {
            return Err(SettingsError(format!(
                "unified login {unified_login:?}: has no {{appId}} to fill in"
            )));
        }
        if app_id.trim().is_empty() {
            return Err(SettingsError("the app credential's app ID is empty".into()));
        }
        Ok(Self {
            // The parsed form: scheme and host lower-cased.
            issuer: url.as_str().trim_end_matches('/').to_owned(),
            secure: url.scheme() == "https",
            unified_login: unified_login.to_owned(),
            app_id: app_id.to_owned(),
            id_token_ttl: Duration::minutes(10),
            access_token_ttl: koogallery::sso::grant::ACCESS_TOKEN_TTL,
            key_rotation: Duration::days(30),
        })
    }

    /// The settings the environment gives: `KOOGALLERY_SSO_ISSUER` (unset: `None`, SSO off),
    /// `KOOGALLERY_SSO_APP_ID` (then required) and `KOOGALLERY_SSO_UNIFIED_LOGIN_URL`. The local
    /// host and the Lambda functions read them here alike.
    ///
    /// # Errors
    /// A setting missing or invalid, named.
    pub fn from_env(env: &Env<'_>) -> Result<Option<Self>, ConfigError> {
        let Some(issuer) = env.get(&catalog::SSO_ISSUER) else {
            return Ok(None);
        };
        let app_id = env.get(&catalog::SSO_APP_ID).ok_or_else(|| {
            ConfigError::invalid(
                catalog::SSO_APP_ID.name,
                "required with KOOGALLERY_SSO_ISSUER",
            )
        })?;
        let login = env
            .text(&catalog::SSO_UNIFIED_LOGIN_URL)
            .unwrap_or_default();
        Self::new(&issuer, &login, &app_id)
            .map(Some)
            .map_err(|e| ConfigError::invalid(catalog::SSO_ISSUER.name, e.to_string()))
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// The login address to register in the seller console (应用登录地址).
    pub fn login_address(&self) -> String {
        self.url("/sso/callback")
    }

    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// The unified login for this app.
    pub fn unified_login_url(&self) -> String {
        let app: String = url::form_urlencoded::byte_serialize(self.app_id.as_bytes()).collect();
        self.unified_login.replace("{appId}", &app)
    }

    /// `Secure` cookies unless the issuer is `http://` (allowed on loopback only).
    pub fn secure_cookies(&self) -> bool {
        self.secure
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issuer_is_an_https_origin_or_loopback() {
        let s = ProviderSettings::new("https://sso.vendor.example.com", UNIFIED_LOGIN, "app 1")
            .unwrap();
        assert_eq!(
            s.login_address(),
            "https://sso.vendor.example.com/sso/callback"
        );
        assert!(s.secure_cookies());
        assert_eq!(
            s.unified_login_url(),
            "https://macroverse.huaweicloud.com/unified-login/#/portal-login?ind=UNOP&appId=app+1"
        );
        let local = ProviderSettings::new("http://127.0.0.1:8080/", UNIFIED_LOGIN, "a").unwrap();
        assert_eq!(local.url("/oidc/jwks"), "http://127.0.0.1:8080/oidc/jwks");
        assert!(!local.secure_cookies());
        for bad in [
            "http://sso.example.com",
            "https://x.example.com/sso",
            "not a url",
        ] {
            assert!(
                ProviderSettings::new(bad, UNIFIED_LOGIN, "a").is_err(),
                "{bad}"
            );
        }
        assert!(ProviderSettings::new("https://x.example.com", "https://login", "a").is_err());
    }

    #[test]
    fn the_environment_turns_sso_on_with_an_issuer_and_requires_the_app_id_then() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            Env::from_fn(move |k| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            })
        };
        assert!(ProviderSettings::from_env(&env(&[])).unwrap().is_none());
        let e = ProviderSettings::from_env(&env(&[(
            "KOOGALLERY_SSO_ISSUER",
            "https://sso.example.com",
        )]))
        .unwrap_err();
        assert!(e.to_string().contains("KOOGALLERY_SSO_APP_ID"), "{e}");
        let s = ProviderSettings::from_env(&env(&[
            ("KOOGALLERY_SSO_ISSUER", "HTTPS://SSO.example.com"),
            ("KOOGALLERY_SSO_APP_ID", "app-1"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(s.issuer(), "https://sso.example.com");
        assert!(s.secure_cookies());
        assert!(
            s.unified_login_url()
                .starts_with("https://macroverse.huaweicloud.com/")
        );
    }
}
