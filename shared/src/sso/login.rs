//! The login step and the session's life (docs/protocol/callbacks.md §10;
//! docs/protocol/decisions.md §19): KooGallery's `code` and `tenant` exchanged on the tenant's auth
//! centre, the user checked against authSync, the session stored with its tokens sealed; on every
//! use the session is checked again (tenant, app and user still there and enabled) and its access
//! token refreshed within 5 minutes of expiry; logout and the Kit syncs end it.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::auth_centre::{
    AuthCentreBase, AuthCentreUser, ClientCredentials, DEFAULT_ACCESS_SECONDS, REFRESH_TOKEN_DAYS,
    TokenGrant,
};
use super::session::{REFRESH_LEASE, session_binding};
use super::store::TenantLocator;
use super::{AuthCentre, AuthCentreError, Identity, Opaque, Session, SsoStore};
use crate::clock::Clock;
use crate::directory::{App, Tenant, TenantDirectory, TenantKey, User};
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
    directory: Arc<dyn TenantDirectory>,
    locator: Arc<dyn TenantLocator>,
    auth_centre: Arc<dyn AuthCentre>,
    store: Arc<dyn SsoStore>,
    sealer: Arc<dyn CredentialSealer>,
    clock: Arc<dyn Clock>,
    settings: SsoSettings,
    metrics: Arc<dyn Metrics>,
    /// Where the delivery of the `sessionsEnded` directory events is queued (`None`: the events
    /// are kept and delivered with the tenant's next ones).
    jobs: Option<Arc<dyn JobQueue>>,
}

/// The tenant and app a login or a refresh works with, and the app's secret opened.
struct Target {
    tenant: Tenant,
    app: App,
    client_secret: String,
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

    /// Tells the vendor's webhook that these sessions ended (`reason`): a `sessionsEnded` event in
    /// each tenant's directory event stream, in order with the Kit syncs' events, and its
    /// delivery queued.
    ///
    /// # Errors
    /// The directory could not record the events (the caller logs it: back-channel logout has
    /// told the clients already).
    pub async fn announce_ended(
        &self,
        sessions: &[Session],
        reason: &str,
    ) -> Result<(), StoreError> {
        let mut by_tenant: std::collections::BTreeMap<
            TenantKey,
            Vec<crate::directory::EndedSession>,
        > = std::collections::BTreeMap::new();
        for s in sessions {
            by_tenant
                .entry(s.tenant_key())
                .or_default()
                .push(crate::directory::EndedSession {
                    sid: s.sid.clone(),
                    sub: super::session::subject(&s.tenant_id, &s.identity.user_name),
                    app_id: s.app_id.clone(),
                    user_name: s.identity.user_name.clone(),
                    reason: reason.to_owned(),
                });
        }
        let now = self.clock.now();
        for (key, ended) in by_tenant {
            self.directory
                .apply(
                    &key,
                    &crate::directory::DirectoryChange::SessionsEnded(ended),
                    now,
                )
                .await?;
            if let Some(jobs) = &self.jobs {
                let job = crate::jobs::Job::DirectoryNotice {
                    instance_id: key.instance_id.clone(),
                    tenant_id: key.tenant_id.clone(),
                };
                if let Err(e) = jobs.enqueue(&job).await {
                    // Stored: delivered with the tenant's next event, or by this job's retry.
                    tracing::warn!(tenant = %key.tenant_id, error = %e, "sessionsEnded delivery not queued");
                }
            }
        }
        Ok(())
    }

    /// Logins, refreshes and auth-centre failures go to `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<dyn Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    fn auth_centre_failed(&self, e: &AuthCentreError) {
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

    async fn open_target(
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
            identity: identity(&info, &user),
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

    /// The session of a cookie, checked and kept alive: ended (and deleted) when it is over, when
    /// its tenant, app or user is gone or disabled, or when its refresh fails; refreshed within 5
    /// minutes of the access token's expiry.
    ///
    /// # Errors
    /// A store, key or directory failure (the session is left as it was).
    pub async fn current(&self, session_key: &str) -> Result<Current, LoginError> {
        let Some(session) = self.store.session(session_key).await? else {
            return Ok(Current::Absent);
        };
        let now = self.clock.now();
        if session.is_over(now) {
            return self.end(session, Ended::Expired).await;
        }
        let key = session.tenant_key();
        let (Some(tenant), apps) = (
            self.directory.tenant(&key).await?,
            self.directory.apps(&key).await?,
        ) else {
            return self.end(session, Ended::TenantOrAppDeleted).await;
        };
        let Some(app) = apps.into_iter().find(|a| a.app_id == session.app_id) else {
            return self.end(session, Ended::TenantOrAppDeleted).await;
        };
        match self
            .directory
            .user(&key, &session.app_id, &session.identity.user_name)
            .await?
        {
            Some(u) if u.may_use_app() => {}
            _ => return self.end(session, Ended::UserRevoked).await,
        }
        if !session.needs_refresh(now) {
            return Ok(Current::Live(session));
        }
        let target = self.open_target(&key, tenant, app).await?;
        self.refresh(session, target, now).await
    }

    /// Refreshes the access token, one request at a time: the refresher first takes a short lease
    /// on the session (a compare-and-set), so two requests never spend the same refresh token (an
    /// auth centre that rotates them would refuse the second and end a live session). The new
    /// tokens are written over whatever is stored by then (an `add_client` may have changed it),
    /// never dropped.
    async fn refresh(
        &self,
        session: Session,
        target: Target,
        now: DateTime<Utc>,
    ) -> Result<Current, LoginError> {
        let Some(sealed) = session.sealed_refresh_token.clone() else {
            // No refresh token: the session lives until the access token expires.
            return Ok(Current::Live(session));
        };
        if session.refreshing_until.is_some_and(|t| t > now) {
            // Another request is refreshing it; the session is live meanwhile.
            return Ok(Current::Live(session));
        }
        let mut leased = session.clone();
        leased.refreshing_until = Some(now + REFRESH_LEASE);
        leased.version = session.version + 1;
        match self.store.replace_session(&leased, session.version).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => {
                return Ok(match self.store.session(&session.key).await? {
                    Some(s) => Current::Live(s),
                    None => Current::Absent,
                });
            }
            Err(e) => return Err(e.into()),
        }
        let binding = session.binding();
        let refresh_token = self.sealer.open(&binding, &sealed).await?;
        let base = AuthCentreBase::parse(&target.tenant.domain_name)?;
        let creds = ClientCredentials {
            client_id: &target.app.client_id,
            client_secret: &target.client_secret,
        };
        match self.auth_centre.refresh(&base, creds, &refresh_token).await {
            Ok(grant) => {
                self.metrics.record(Metric::SsoRefresh { ok: true });
                let access = self.sealer.seal(&binding, &grant.access_token).await?;
                let refresh = match &grant.refresh_token {
                    Some(r) => Some(self.sealer.seal(&binding, r).await?),
                    None => None,
                };
                let access_expires_at = now + access_lifetime(&grant);
                let mut current = leased;
                for _ in 0..5 {
                    let mut next = current.clone();
                    next.sealed_access_token = access.clone();
                    next.access_expires_at = access_expires_at;
                    // An answer without a refresh token keeps the previous one and its expiry.
                    if let Some(r) = &refresh {
                        next.sealed_refresh_token = Some(r.clone());
                        next.refresh_expires_at = now + Duration::days(REFRESH_TOKEN_DAYS);
                    }
                    next.refreshing_until = None;
                    next.version = current.version + 1;
                    match self.store.replace_session(&next, current.version).await {
                        Ok(()) => {
                            tracing::info!(sid = %next.sid, "SSO access token refreshed");
                            return Ok(Current::Live(next));
                        }
                        Err(StoreError::Conflict) => {
                            match self.store.session(&session.key).await? {
                                Some(s) => current = s,
                                None => return Ok(Current::Absent),
                            }
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(StoreError::Conflict.into())
            }
            Err(e) => {
                self.metrics.record(Metric::SsoRefresh { ok: false });
                self.auth_centre_failed(&e);
                if e.is_refusal() || now >= session.access_expires_at {
                    tracing::warn!(sid = %session.sid, error = %e, "SSO refresh failed; session ended");
                    self.end(leased, Ended::RefreshFailed).await
                } else {
                    // The auth centre is down but the access token still works: the lease lapses
                    // and a later use tries again.
                    tracing::warn!(sid = %session.sid, error = %e, "SSO refresh failed; retried on next use");
                    Ok(Current::Live(leased))
                }
            }
        }
    }

    /// Deletes the session; whoever deleted it reports it ended (and tells its clients), so a
    /// lookup racing a Kit sync's end never tells them twice.
    async fn end(&self, session: Session, why: Ended) -> Result<Current, LoginError> {
        if self.store.delete_session(&session.key).await?.is_none() {
            return Ok(Current::Absent);
        }
        tracing::info!(sid = %session.sid, reason = why.as_str(), "SSO session ended");
        Ok(Current::Ended(session, why))
    }

    /// Logout: the session deleted, returned for its clients and the auth centre's logout.
    ///
    /// # Errors
    /// A store failure.
    pub async fn logout(&self, session_key: &str) -> Result<Option<Session>, StoreError> {
        let ended = self.store.delete_session(session_key).await?;
        if let Some(s) = &ended {
            tracing::info!(sid = %s.sid, reason = Ended::LoggedOut.as_str(), "SSO session ended");
        }
        Ok(ended)
    }

    /// The sessions the Kit syncs end now, deleted and returned for their clients: a user's
    /// (`user_name` given: revoked, deleted, disabled) or an app's or a whole tenant's.
    ///
    /// # Errors
    /// A store failure (what was deleted before it stays deleted).
    pub async fn end_sessions_of(
        &self,
        tenant: &TenantKey,
        app_id: Option<&str>,
        user_name: Option<&str>,
    ) -> Result<Vec<Session>, StoreError> {
        let sessions = match (app_id, user_name) {
            (Some(app), Some(user)) => self.store.sessions_of_user(tenant, app, user).await?,
            _ => self.store.sessions_of_tenant(tenant).await?,
        };
        let mut ended = Vec::new();
        for s in sessions {
            if app_id.is_some_and(|a| a != s.app_id) {
                continue;
            }
            if let Some(s) = self.store.delete_session(&s.key).await? {
                ended.push(s);
            }
        }
        Ok(ended)
    }

    /// Ends the sessions a directory change ends ([`super::EndScope`]), deleted and returned for
    /// their clients.
    ///
    /// # Errors
    /// A store failure (what was deleted before it stays deleted; a retry ends the rest).
    pub async fn end_by_directory(
        &self,
        tenant: &TenantKey,
        scope: &super::EndScope,
    ) -> Result<Vec<Session>, StoreError> {
        use super::EndScope as E;
        let ended = match scope {
            E::Tenant => self.end_sessions_of(tenant, None, None).await?,
            E::App(app) => self.end_sessions_of(tenant, Some(app), None).await?,
            E::Users { app_id, user_names } => {
                let mut all = Vec::new();
                for user in user_names {
                    all.extend(
                        self.end_sessions_of(tenant, Some(app_id), Some(user))
                            .await?,
                    );
                }
                all
            }
        };
        for s in &ended {
            tracing::info!(sid = %s.sid, tenant = %s.tenant_id, user = %s.identity.user_name, "SSO session ended by a Kit sync");
        }
        Ok(ended)
    }

    /// Where the browser goes after logout to end the auth centre's own session
    /// (`{domainName}/api/v1/logout?redirect_url=…`), or `None` when the tenant or its domain is
    /// gone or unusable.
    ///
    /// # Errors
    /// A directory failure.
    pub async fn auth_centre_logout_url(
        &self,
        session: &Session,
        redirect_url: &str,
    ) -> Result<Option<url::Url>, StoreError> {
        let tenant = self.directory.tenant(&session.tenant_key()).await?;
        Ok(tenant
            .and_then(|t| AuthCentreBase::parse(&t.domain_name).ok())
            .map(|base| base.logout_url(Some(redirect_url))))
    }

    /// Records that `client_id` received an ID token in the session (its back-channel logout).
    ///
    /// # Errors
    /// A store failure.
    pub async fn add_client(
        &self,
        mut session: Session,
        client_id: &str,
    ) -> Result<Session, StoreError> {
        for _ in 0..5 {
            if session.clients.iter().any(|c| c == client_id) {
                return Ok(session);
            }
            let read = session.version;
            session.clients.push(client_id.to_owned());
            session.version += 1;
            match self.store.replace_session(&session, read).await {
                Ok(()) => return Ok(session),
                Err(StoreError::Conflict) => match self.store.session(&session.key).await? {
                    Some(s) => session = s,
                    None => return Err(StoreError::Conflict),
                },
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict)
    }
}

fn access_lifetime(grant: &TokenGrant) -> Duration {
    let secs = grant
        .expires_in
        .unwrap_or(DEFAULT_ACCESS_SECONDS)
        .clamp(60, 86_400 * 30);
    Duration::seconds(i64::try_from(secs).unwrap_or(i64::from(u32::MAX)))
}

/// The identity: userinfo's fields where it gives them, authSync's otherwise
/// (docs/protocol/callbacks.md §10).
fn identity(info: &AuthCentreUser, user: &User) -> Identity {
    let pick = |a: &Option<String>, b: &str| {
        a.as_deref()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or(b)
            .to_owned()
    };
    let some = |a: &Option<String>, b: &Option<String>| {
        a.clone()
            .filter(|v| !v.trim().is_empty())
            .or_else(|| b.clone())
    };
    Identity {
        user_name: user.user_name.clone(),
        name: pick(&info.name, &user.name),
        email: some(&info.email, &user.email),
        mobile: some(&info.mobile, &user.mobile),
        role: pick(&info.role, &user.role),
        org_code: pick(&info.organization_code, &user.org_code),
        org_name: info
            .organization_name
            .clone()
            .filter(|v| !v.trim().is_empty()),
    }
}
