//! The login step (docs/protocol/callbacks.md §10; docs/protocol/decisions.md §19): KooGallery's
//! `code` and `tenant` exchanged on the tenant's auth centre, the user checked against authSync,
//! the session stored with its tokens sealed. The session's life after that is `life.rs`.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::auth_centre::{
    AuthCentreBase, ClientCredentials, DEFAULT_ACCESS_SECONDS, REFRESH_TOKEN_DAYS, TokenGrant,
};
use super::session::session_binding;
use super::store::TenantLocator;
use super::{AuthCentre, AuthCentreError, Identity, Opaque, Session, SsoStore};
use crate::clock::Clock;
use crate::directory::{App, Tenant, TenantDirectory, TenantKey};
use crate::jobs::JobQueue;
use crate::metrics::{Metric, Metrics};
use crate::security::at_rest::{CredentialSealer, SealError};
use crate::storage::StoreError;

/// What the login step needs to know of the deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SsoSettings {
    /// The app credential's app ID (the unified login's `appId`, applicationSync's `appId`). When
    /// unset, a tenant with exactly one app signs in to that one.
    pub app_id: Option<String>,
    /// The login address registered with KooGallery, sent as `redirect_uri` with the code (the
    /// parameter is optional; it is sent when known).
    pub login_address: Option<String>,
}

/// Why a login was refused or could not be completed. [`Self::is_refusal`] decides 403 (the
/// user may not sign in) from 503 (try again).
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("tenant {0:?} is unknown or deleted (no tenantSync)")]
    UnknownTenant(String),
    #[error("tenant {tenant:?} has no app {app:?} (no applicationSync)")]
    UnknownApp { tenant: String, app: String },
    #[error(transparent)]
    AuthCentre(#[from] AuthCentreError),
    #[error("user {user:?} is not an authorized, enabled user of app {app:?} of tenant {tenant:?}")]
    NotAuthorized {
        user: String,
        app: String,
        tenant: String,
    },
    #[error("userinfo names tenant {said:?}; the login named {tenant:?}")]
    TenantMismatch { said: String, tenant: String },
    #[error("the sign-in parameters are missing or malformed: {0}")]
    BadRequest(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Seal(#[from] SealError),
}

impl LoginError {
    /// The user is refused (403 page, no session), as opposed to a failure of our own stores or
    /// keys (503, try again). A failed auth-centre call refuses the login
    /// (docs/protocol/decisions.md §19).
    pub fn is_refusal(&self) -> bool {
        !matches!(self, Self::Store(_) | Self::Seal(_))
    }

    /// The metric label of the outcome.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::UnknownTenant(_) | Self::UnknownApp { .. } => "unknown_tenant",
            Self::AuthCentre(_) => "auth_centre_failed",
            Self::NotAuthorized { .. } | Self::TenantMismatch { .. } => "not_authorized",
            Self::BadRequest(_) => "bad_request",
            Self::Store(_) | Self::Seal(_) => "unavailable",
        }
    }
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    LoggedOut,
    /// Past its refresh token, or past an access token with no refresh token.
    Expired,
    /// The auth centre refused the refresh token, or could not renew an expired access token.
    RefreshFailed,
    /// authSync revoked, deleted or disabled the user.
    UserRevoked,
    /// tenantSync deleted the tenant, or applicationSync the app.
    TenantOrAppDeleted,
}

impl Ended {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoggedOut => "logged_out",
            Self::Expired => "expired",
            Self::RefreshFailed => "refresh_failed",
            Self::UserRevoked => "user_revoked",
            Self::TenantOrAppDeleted => "tenant_or_app_deleted",
        }
    }
}

/// A session looked up by its cookie.
#[derive(Debug)]
pub enum Current {
    Live(Session),
    /// It ended on this lookup (and is deleted): its clients are to be told.
    Ended(Session, Ended),
    Absent,
}

/// A login that succeeded: the cookie value (sent once, to the browser) and the session.
#[derive(Debug)]
pub struct LoggedIn {
    pub cookie: Opaque,
    pub session: Session,
}

/// The SSO domain service over its ports.
pub struct Sso {
    pub(super) directory: Arc<dyn TenantDirectory>,
    pub(super) locator: Arc<dyn TenantLocator>,
    pub(super) auth_centre: Arc<dyn AuthCentre>,
    pub(super) store: Arc<dyn SsoStore>,
    pub(super) sealer: Arc<dyn CredentialSealer>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) settings: SsoSettings,
    pub(super) metrics: Arc<dyn Metrics>,
    /// Where the delivery of the `sessionsEnded` directory events is queued (`None`: the events
    /// are kept and delivered with the tenant's next ones).
    pub(super) jobs: Option<Arc<dyn JobQueue>>,
}

/// The tenant and app a login or a refresh works with, and the app's secret opened.
pub(super) struct Target {
    pub(super) tenant: Tenant,
    pub(super) app: App,
    pub(super) client_secret: String,
}

impl Sso {
    pub fn new(
        directory: Arc<dyn TenantDirectory>,
        locator: Arc<dyn TenantLocator>,
        auth_centre: Arc<dyn AuthCentre>,
        store: Arc<dyn SsoStore>,
        sealer: Arc<dyn CredentialSealer>,
        clock: Arc<dyn Clock>,
        settings: SsoSettings,
    ) -> Self {
        Self {
            directory,
            locator,
            auth_centre,
            store,
            sealer,
            clock,
            settings,
            metrics: Arc::new(crate::metrics::NoMetrics),
            jobs: None,
        }
    }

    /// Queues the delivery of the `sessionsEnded` events on `jobs`.
    pub fn with_jobs(mut self, jobs: Arc<dyn JobQueue>) -> Self {
        self.jobs = Some(jobs);
        self
    }

    /// Logins, refreshes and auth-centre failures go to `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<dyn Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    pub(super) fn auth_centre_failed(&self, e: &AuthCentreError) {
        if e.is_failure_of_the_service() {
            self.metrics.record(Metric::SsoAuthCentreFailure);
        }
    }

    pub fn store(&self) -> &Arc<dyn SsoStore> {
        &self.store
    }

    pub fn sealer(&self) -> &Arc<dyn CredentialSealer> {
        &self.sealer
    }

    pub fn settings(&self) -> &SsoSettings {
        &self.settings
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn app_of<'a>(&self, apps: &'a [App]) -> Option<&'a App> {
        match &self.settings.app_id {
            Some(id) => apps.iter().find(|a| &a.app_id == id),
            None if apps.len() == 1 => apps.first(),
            None => None,
        }
    }

    /// The tenants of `tenant_id` that have the app, newest tenantSync first. The spec keys a
    /// tenant by (instanceId, tenantId) but the unified login sends only the tenant: when the
    /// same enterprise bought twice, the most recently synced tenant that has the app is used for
    /// the exchange (docs/protocol/decisions.md §19).
    async fn candidates(
        &self,
        tenant_id: &str,
    ) -> Result<Vec<(TenantKey, Tenant, App)>, LoginError> {
        let mut tenants = self.locator.tenants_by_id(tenant_id).await?;
        if tenants.is_empty() {
            return Err(LoginError::UnknownTenant(tenant_id.to_owned()));
        }
        tenants.sort_by_key(|t| std::cmp::Reverse(t.1.synced_at));
        let mut out = Vec::new();
        for (key, tenant) in tenants {
            let apps = self.directory.apps(&key).await?;
            if let Some(app) = self.app_of(&apps) {
                out.push((key, tenant, app.clone()));
            }
        }
        if out.is_empty() {
            return Err(LoginError::UnknownApp {
                tenant: tenant_id.to_owned(),
                app: self
                    .settings
                    .app_id
                    .clone()
                    .unwrap_or_else(|| "(the only app)".into()),
            });
        }
        Ok(out)
    }

    pub(super) async fn open_target(
        &self,
        key: &TenantKey,
        tenant: Tenant,
        app: App,
    ) -> Result<Target, LoginError> {
        let client_secret = self
            .sealer
            .open(&key.app_binding(&app.app_id), &app.sealed_client_secret)
            .await?;
        Ok(Target {
            tenant,
            app,
            client_secret,
        })
    }

    /// KooGallery's callback to the login address: `code` exchanged once, userinfo read, the user
    /// checked against authSync, the session created.
    ///
    /// # Errors
    /// [`LoginError`]: a refusal (403, no session) or an unavailable store or key (503).
    pub async fn login(&self, code: &str, tenant_id: &str) -> Result<LoggedIn, LoginError> {
        let result = self.try_login(code, tenant_id).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => {
                if let LoginError::AuthCentre(a) = e {
                    self.auth_centre_failed(a);
                }
                e.outcome()
            }
        };
        self.metrics.record(Metric::SsoLogin { outcome });
        result
    }

    async fn try_login(&self, code: &str, tenant_id: &str) -> Result<LoggedIn, LoginError> {
        if code.is_empty() || code.len() > 2048 {
            return Err(LoginError::BadRequest("code is missing or too long".into()));
        }
        if tenant_id.is_empty() || tenant_id.len() > 256 {
            return Err(LoginError::BadRequest(
                "tenant is missing or too long".into(),
            ));
        }
        let candidates = self.candidates(tenant_id).await?;
        let (key, tenant, app) = candidates[0].clone();
        let target = self.open_target(&key, tenant, app).await?;
        let base = AuthCentreBase::parse(&target.tenant.domain_name)?;
        let creds = ClientCredentials {
            client_id: &target.app.client_id,
            client_secret: &target.client_secret,
        };
        let grant = self
            .auth_centre
            .exchange_code(&base, creds, code, self.settings.login_address.as_deref())
            .await?;
        let info = self
            .auth_centre
            .user_info(&base, &grant.access_token)
            .await?;
        if let Some(said) = info.tenant.as_deref().filter(|t| !t.is_empty())
            && said != tenant_id
        {
            return Err(LoginError::TenantMismatch {
                said: said.to_owned(),
                tenant: tenant_id.to_owned(),
            });
        }
        // The user must be authorized where the credentials came from, or in another purchase of
        // the same tenant that has the same app client.
        let mut authorized = None;
        for (key, tenant, app) in &candidates {
            if app.client_id != target.app.client_id {
                continue;
            }
            if let Some(user) = self
                .directory
                .user(key, &app.app_id, &info.user_name)
                .await?
                && user.may_use_app()
            {
                authorized = Some((key.clone(), tenant.clone(), app.clone(), user));
                break;
            }
        }
        let Some((key, tenant, app, user)) = authorized else {
            return Err(LoginError::NotAuthorized {
                user: info.user_name,
                app: target.app.app_id,
                tenant: tenant_id.to_owned(),
            });
        };
        let now = self.clock.now();
        let cookie = Opaque::random();
        let session_key = cookie.key();
        let binding = session_binding(&session_key);
        let sealed_access_token = self.sealer.seal(&binding, &grant.access_token).await?;
        let sealed_refresh_token = match &grant.refresh_token {
            Some(r) => Some(self.sealer.seal(&binding, r).await?),
            None => None,
        };
        let session = Session {
            key: session_key,
            sid: Opaque::random().expose().to_owned(),
            instance_id: key.instance_id.clone(),
            tenant_id: key.tenant_id.to_string(),
            tenant_name: tenant.name.clone(),
            app_id: app.app_id.clone(),
            identity: Identity::of_sign_in(&info, &user),
            sealed_access_token,
            sealed_refresh_token,
            access_expires_at: now + access_lifetime(&grant),
            refresh_expires_at: now + Duration::days(REFRESH_TOKEN_DAYS),
            auth_time: now,
            clients: Vec::new(),
            refreshing_until: None,
            version: 1,
        };
        self.store.create_session(&session).await?;
        tracing::info!(
            sid = %session.sid,
            tenant = %session.tenant_id,
            app = %session.app_id,
            user = %session.identity.user_name,
            "SSO login"
        );
        Ok(LoggedIn { cookie, session })
    }
}

pub(super) fn access_lifetime(grant: &TokenGrant) -> Duration {
    let secs = grant
        .expires_in
        .unwrap_or(DEFAULT_ACCESS_SECONDS)
        .clamp(60, 86_400 * 30);
    Duration::seconds(i64::try_from(secs).unwrap_or(i64::from(u32::MAX)))
}
