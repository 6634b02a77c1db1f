//! The SSO session's life (docs/protocol/decisions.md §19): the session of a cookie checked on
//! every use (tenant, app and user still there and enabled) and its access token refreshed within
//! 5 minutes of expiry, one request at a time; its end by logout, refusal, expiry or a Kit sync;
//! and the `sessionsEnded` events the vendor's webhook hears. The login step is `login.rs`.

use chrono::{DateTime, Duration, Utc};

use super::auth_centre::{AuthCentreBase, ClientCredentials, REFRESH_TOKEN_DAYS};
use super::login::{Target, access_lifetime};
use super::session::REFRESH_LEASE;
use super::{Current, Ended, LoginError, Session, Sso};
use crate::directory::TenantKey;
use crate::metrics::Metric;
use crate::storage::StoreError;

/// Who delivers the `sessionsEnded` events an end records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// A job is queued for them: a request ended the sessions.
    Queued,
    /// The worker that ended them is delivering the tenant's events and takes them in the same
    /// pass (it reads the pending events until none is left): no job is needed.
    ThisPass,
}

impl Sso {
    /// Tells the vendor's webhook that these sessions ended (`reason`): a `sessionsEnded` event in
    /// each tenant's directory event stream, in order with the Kit syncs' events, delivered as
    /// `delivery` says.
    ///
    /// # Errors
    /// The directory could not record the events (the caller logs it: back-channel logout has
    /// told the clients already).
    pub async fn announce_ended(
        &self,
        sessions: &[Session],
        reason: &str,
        delivery: Delivery,
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
            if let (Delivery::Queued, Some(jobs)) = (delivery, &self.jobs) {
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
