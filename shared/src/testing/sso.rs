//! SSO in memory (docs/protocol/decisions.md §19): [`MemorySso`], the reference the adapters'
//! contract is written against; [`ScriptedAuthCentre`], a tenant auth centre that answers as
//! told; and the port contracts every adapter passes ([`sso_store_contract`],
//! [`tenant_locator_contract`]).

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex, PoisonError},
};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use crate::{
    directory::TenantKey,
    sso::{
        AuthCentre, AuthCentreBase, AuthCentreError, AuthCentreUser, ClientStore, GrantKind,
        GrantStore, OidcClient, Session, SessionStore, SigningKeyStore, StoredSigningKey,
        TokenGrant, auth_centre::ClientCredentials,
    },
    storage::StoreError,
};

#[derive(Default)]
struct Data {
    sessions: BTreeMap<String, Session>,
    grants: BTreeMap<(GrantKind, String), (String, DateTime<Utc>)>,
    clients: BTreeMap<String, OidcClient>,
    keys: Vec<StoredSigningKey>,
}

/// Every SSO store in memory.
#[derive(Default)]
pub struct MemorySso {
    data: Mutex<Data>,
}

impl MemorySso {
    pub fn new() -> Self {
        Self::default()
    }

    fn data(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl SessionStore for MemorySso {
    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        let mut d = self.data();
        if d.sessions.contains_key(&session.key) {
            return Err(StoreError::Conflict);
        }
        d.sessions.insert(session.key.clone(), session.clone());
        Ok(())
    }

    async fn session(&self, key: &str) -> Result<Option<Session>, StoreError> {
        Ok(self.data().sessions.get(key).cloned())
    }

    async fn replace_session(
        &self,
        session: &Session,
        read_version: u64,
    ) -> Result<(), StoreError> {
        let mut d = self.data();
        match d.sessions.get_mut(&session.key) {
            Some(s) if s.version == read_version => {
                *s = session.clone();
                Ok(())
            }
            _ => Err(StoreError::Conflict),
        }
    }

    async fn delete_session(&self, key: &str) -> Result<Option<Session>, StoreError> {
        Ok(self.data().sessions.remove(key))
    }

    async fn sessions_of_user(
        &self,
        tenant: &TenantKey,
        app_id: &str,
        user_name: &str,
    ) -> Result<Vec<Session>, StoreError> {
        Ok(self
            .data()
            .sessions
            .values()
            .filter(|s| {
                &s.tenant_key() == tenant && s.app_id == app_id && s.identity.user_name == user_name
            })
            .cloned()
            .collect())
    }

    async fn sessions_of_tenant(&self, tenant: &TenantKey) -> Result<Vec<Session>, StoreError> {
        Ok(self
            .data()
            .sessions
            .values()
            .filter(|s| &s.tenant_key() == tenant)
            .cloned()
            .collect())
    }
}

#[async_trait]
impl GrantStore for MemorySso {
    async fn put_grant(
        &self,
        kind: GrantKind,
        key: &str,
        record: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.data()
            .grants
            .insert((kind, key.to_owned()), (record.to_owned(), expires_at));
        Ok(())
    }

    async fn take_grant(
        &self,
        kind: GrantKind,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        let taken = self.data().grants.remove(&(kind, key.to_owned()));
        Ok(taken.filter(|(_, exp)| now < *exp).map(|(r, _)| r))
    }

    async fn grant(
        &self,
        kind: GrantKind,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .data()
            .grants
            .get(&(kind, key.to_owned()))
            .filter(|(_, exp)| now < *exp)
            .map(|(r, _)| r.clone()))
    }
}

#[async_trait]
impl ClientStore for MemorySso {
    async fn put_client(&self, client: &OidcClient) -> Result<(), StoreError> {
        self.data()
            .clients
            .insert(client.client_id.clone(), client.clone());
        Ok(())
    }

    async fn client(&self, client_id: &str) -> Result<Option<OidcClient>, StoreError> {
        Ok(self.data().clients.get(client_id).cloned())
    }

    async fn clients(&self) -> Result<Vec<OidcClient>, StoreError> {
        Ok(self.data().clients.values().cloned().collect())
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        Ok(self.data().clients.remove(client_id).is_some())
    }
}

#[async_trait]
impl SigningKeyStore for MemorySso {
    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
        let mut keys = self.data().keys.clone();
        keys.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.kid.cmp(&b.kid)));
        Ok(keys)
    }

    async fn add_signing_key(&self, key: &StoredSigningKey) -> Result<bool, StoreError> {
        let mut d = self.data();
        if d.keys.iter().any(|k| k.kid == key.kid) {
            return Ok(false);
        }
        d.keys.push(key.clone());
        Ok(true)
    }

    async fn remove_signing_key(&self, kid: &str) -> Result<(), StoreError> {
        self.data().keys.retain(|k| k.kid != kid);
        Ok(())
    }
}

/// One call the [`ScriptedAuthCentre`] received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthCentreCall {
    Exchange {
        client_id: String,
        code: String,
    },
    Refresh {
        client_id: String,
        refresh_token: String,
    },
    UserInfo {
        access_token: String,
    },
}

/// A tenant auth centre that answers from a script: codes map to users; every exchange and
/// refresh issues `access-N` / `refresh-N`; scripted failures come first, one per call.
#[derive(Default)]
pub struct ScriptedAuthCentre {
    inner: Mutex<Scripted>,
}

#[derive(Default)]
struct Scripted {
    codes: BTreeMap<String, AuthCentreUser>,
    tokens: BTreeMap<String, AuthCentreUser>,
    refresh: BTreeMap<String, AuthCentreUser>,
    failures: VecDeque<AuthCentreError>,
    without_refresh_token: bool,
    expires_in: Option<u64>,
    issued: u64,
    calls: Vec<AuthCentreCall>,
}

impl ScriptedAuthCentre {
    pub fn new() -> Self {
        Self::default()
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Scripted> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `code` signs in `user` (once).
    pub fn code_for(&self, code: &str, user: AuthCentreUser) {
        self.inner().codes.insert(code.to_owned(), user);
    }

    /// The next call fails with `e`.
    pub fn fail_next(&self, e: AuthCentreError) {
        self.inner().failures.push_back(e);
    }

    /// Token answers carry no `refresh_token` from now on.
    pub fn omit_refresh_token(&self) {
        self.inner().without_refresh_token = true;
    }

    pub fn set_expires_in(&self, secs: Option<u64>) {
        self.inner().expires_in = secs;
    }

    pub fn calls(&self) -> Vec<AuthCentreCall> {
        self.inner().calls.clone()
    }

    fn issue(s: &mut Scripted, user: AuthCentreUser) -> TokenGrant {
        s.issued += 1;
        let access = format!("access-{}", s.issued);
        s.tokens.insert(access.clone(), user.clone());
        let refresh_token = (!s.without_refresh_token).then(|| {
            let r = format!("refresh-{}", s.issued);
            s.refresh.insert(r.clone(), user);
            r
        });
        TokenGrant {
            access_token: access,
            refresh_token,
            expires_in: s.expires_in,
        }
    }
}

fn invalid_grant(what: &str) -> AuthCentreError {
    AuthCentreError::Refused {
        status: 400,
        error: "invalid_grant".into(),
        description: what.into(),
    }
}

#[async_trait]
impl AuthCentre for ScriptedAuthCentre {
    async fn exchange_code(
        &self,
        _base: &AuthCentreBase,
        client: ClientCredentials<'_>,
        code: &str,
        _redirect_uri: Option<&str>,
    ) -> Result<TokenGrant, AuthCentreError> {
        let mut s = self.inner();
        s.calls.push(AuthCentreCall::Exchange {
            client_id: client.client_id.into(),
            code: code.into(),
        });
        if let Some(e) = s.failures.pop_front() {
            return Err(e);
        }
        let user = s
            .codes
            .remove(code)
            .ok_or_else(|| invalid_grant("Invalid authorization code"))?;
        Ok(Self::issue(&mut s, user))
    }

    async fn refresh(
        &self,
        _base: &AuthCentreBase,
        client: ClientCredentials<'_>,
        refresh_token: &str,
    ) -> Result<TokenGrant, AuthCentreError> {
        let answer = {
            let mut s = self.inner();
            s.calls.push(AuthCentreCall::Refresh {
                client_id: client.client_id.into(),
                refresh_token: refresh_token.into(),
            });
            match s.failures.pop_front() {
                Some(e) => Err(e),
                // Rotation: a refresh token works once.
                None => match s.refresh.remove(refresh_token) {
                    Some(user) => Ok(Self::issue(&mut s, user)),
                    None => Err(invalid_grant("Invalid refresh token")),
                },
            }
        };
        // As a real call would, let other requests run meanwhile (the races of a refresh).
        tokio::task::yield_now().await;
        answer
    }

    async fn user_info(
        &self,
        _base: &AuthCentreBase,
        access_token: &str,
    ) -> Result<AuthCentreUser, AuthCentreError> {
        let mut s = self.inner();
        s.calls.push(AuthCentreCall::UserInfo {
            access_token: access_token.into(),
        });
        if let Some(e) = s.failures.pop_front() {
            return Err(e);
        }
        s.tokens
            .get(access_token)
            .cloned()
            .ok_or(AuthCentreError::Refused {
                status: 401,
                error: "unauthorized".into(),
                description: "Full authentication is required to access this resource".into(),
            })
    }
}

fn t0() -> DateTime<Utc> {
    crate::protocol::time::parse_compact("20260101000000").unwrap_or_default()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A session of `user_name` in `tenant`'s `app_id`, under a fresh key.
pub fn sample_session(tenant: &TenantKey, app_id: &str, user_name: &str) -> Session {
    let now = t0();
    Session {
        key: crate::sso::Opaque::random().key(),
        sid: unique("sid"),
        instance_id: tenant.instance_id.clone(),
        tenant_id: tenant.tenant_id.to_string(),
        tenant_name: "租户".into(),
        app_id: app_id.into(),
        identity: crate::sso::Identity {
            user_name: user_name.into(),
            name: "王伟".into(),
            email: None,
            mobile: None,
            role: "user".into(),
            org_code: "org00000".into(),
            org_name: None,
        },
        sealed_access_token: "sealed-a".into(),
        sealed_refresh_token: Some("sealed-r".into()),
        access_expires_at: now + Duration::hours(2),
        refresh_expires_at: now + Duration::days(30),
        auth_time: now,
        clients: vec![],
        refreshing_until: None,
        version: 1,
    }
}

/// Sessions (create once, compare-and-set, delete returns what was there, the indexes by user and
/// tenant, nothing of another tenant or instance), grants (single use, expiry, kinds apart, one of
/// two concurrent takes), clients and signing keys (add once, oldest first, remove).
pub async fn sso_store_contract<S: crate::sso::SsoStore + 'static>(store: Arc<S>) {
    let tenant = TenantKey::new(unique("inst"), unique("tenant"));
    let same_tenant_other_instance = TenantKey::new(unique("inst"), tenant.tenant_id.clone());
    let a = sample_session(&tenant, "app-1", "alice");
    let b = sample_session(&tenant, "app-1", "bob");
    let c = sample_session(&tenant, "app-2", "alice");
    let d = sample_session(&same_tenant_other_instance, "app-1", "alice");
    for s in [&a, &b, &c, &d] {
        store.create_session(s).await.unwrap();
    }
    assert!(matches!(
        store.create_session(&a).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.session(&a.key).await.unwrap().as_ref(), Some(&a));
    assert_eq!(store.session("no-such-key").await.unwrap(), None);

    let mut next = a.clone();
    next.version = 2;
    next.clients.push("vendor-app".into());
    next.sealed_refresh_token = None;
    store.replace_session(&next, 1).await.unwrap();
    assert_eq!(store.session(&a.key).await.unwrap().as_ref(), Some(&next));
    assert!(
        matches!(
            store.replace_session(&next, 1).await,
            Err(StoreError::Conflict)
        ),
        "a write over a version no longer there is a conflict"
    );

    let keys = |v: Vec<Session>| {
        let mut k: Vec<String> = v.into_iter().map(|s| s.key).collect();
        k.sort();
        k
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        keys(
            store
                .sessions_of_user(&tenant, "app-1", "alice")
                .await
                .unwrap()
        ),
        vec![a.key.clone()]
    );
    assert_eq!(
        keys(store.sessions_of_tenant(&tenant).await.unwrap()),
        sorted(vec![a.key.clone(), b.key.clone(), c.key.clone()])
    );
    assert_eq!(
        store.delete_session(&b.key).await.unwrap().map(|s| s.key),
        Some(b.key.clone())
    );
    assert_eq!(store.delete_session(&b.key).await.unwrap(), None);
    assert_eq!(
        keys(store.sessions_of_tenant(&tenant).await.unwrap()),
        sorted(vec![a.key.clone(), c.key.clone()])
    );
    assert!(
        matches!(
            store.replace_session(&b, 1).await,
            Err(StoreError::Conflict)
        ),
        "a deleted session is not brought back"
    );
    assert_eq!(
        keys(
            store
                .sessions_of_tenant(&same_tenant_other_instance)
                .await
                .unwrap()
        ),
        vec![d.key.clone()]
    );

    // Grants.
    let now = t0();
    let code = unique("code");
    store
        .put_grant(
            GrantKind::AuthorizationCode,
            &code,
            "{\"r\":1}",
            now + Duration::seconds(60),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .grant(GrantKind::PendingLogin, &code, now)
            .await
            .unwrap(),
        None,
        "kinds apart"
    );
    assert_eq!(
        store
            .grant(GrantKind::AuthorizationCode, &code, now)
            .await
            .unwrap()
            .as_deref(),
        Some("{\"r\":1}")
    );
    let (x, y) = tokio::join!(
        store.take_grant(GrantKind::AuthorizationCode, &code, now),
        store.take_grant(GrantKind::AuthorizationCode, &code, now)
    );
    let taken: Vec<_> = [x.unwrap(), y.unwrap()].into_iter().flatten().collect();
    assert_eq!(
        taken,
        vec!["{\"r\":1}".to_owned()],
        "exactly one take gets it"
    );
    assert_eq!(
        store
            .take_grant(GrantKind::AuthorizationCode, &code, now)
            .await
            .unwrap(),
        None
    );
    let old = unique("login");
    store
        .put_grant(
            GrantKind::PendingLogin,
            &old,
            "x",
            now + Duration::seconds(10),
        )
        .await
        .unwrap();
    let later = now + Duration::seconds(10);
    assert_eq!(
        store
            .grant(GrantKind::PendingLogin, &old, later)
            .await
            .unwrap(),
        None,
        "expired"
    );
    assert_eq!(
        store
            .take_grant(GrantKind::PendingLogin, &old, later)
            .await
            .unwrap(),
        None
    );

    // Clients.
    let id = unique("client");
    let client = OidcClient {
        client_id: id.clone(),
        secret_hash: crate::sso::hash_opaque("s"),
        name: "应用".into(),
        redirect_uris: vec!["https://app.example.com/cb".into()],
        post_logout_redirect_uris: vec![],
        backchannel_logout_uri: Some("https://app.example.com/bc".into()),
        initiate_login_uri: None,
        created_at: now,
    };
    store.put_client(&client).await.unwrap();
    assert_eq!(store.client(&id).await.unwrap().as_ref(), Some(&client));
    let mut changed = client.clone();
    changed
        .redirect_uris
        .push("https://app.example.com/cb2".into());
    store.put_client(&changed).await.unwrap();
    assert_eq!(store.client(&id).await.unwrap().as_ref(), Some(&changed));
    assert!(store.clients().await.unwrap().iter().any(|c| c == &changed));
    assert!(store.delete_client(&id).await.unwrap());
    assert!(!store.delete_client(&id).await.unwrap());
    assert_eq!(store.client(&id).await.unwrap(), None);

    // Signing keys.
    let key = |kid: &str, at: DateTime<Utc>| StoredSigningKey {
        kid: kid.into(),
        alg: "ES256".into(),
        sealed_private_key: format!("sealed-{kid}"),
        public_jwk: serde_json::json!({"kid": kid}),
        created_at: at,
    };
    let k1 = key(&unique("k"), now);
    let k2 = key(&unique("k"), now + Duration::days(30));
    assert!(store.add_signing_key(&k2).await.unwrap());
    assert!(store.add_signing_key(&k1).await.unwrap());
    assert!(
        !store
            .add_signing_key(&key(&k1.kid, now + Duration::days(99)))
            .await
            .unwrap()
    );
    let mine = |all: Vec<StoredSigningKey>| {
        all.into_iter()
            .filter(|k| k.kid == k1.kid || k.kid == k2.kid)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        mine(store.signing_keys().await.unwrap()),
        vec![k1.clone(), k2.clone()],
        "oldest first"
    );
    store.remove_signing_key(&k1.kid).await.unwrap();
    assert_eq!(mine(store.signing_keys().await.unwrap()), vec![k2]);
}

/// The tenants of a tenantId across instances, deleted ones left out, other tenants never.
pub async fn tenant_locator_contract<D>(dir: Arc<D>)
where
    D: crate::directory::TenantDirectory + crate::sso::TenantLocator + 'static,
{
    use crate::directory::DirectoryChange as C;
    use crate::testing::directory::sample_tenant;
    let now = t0();
    let tenant_id = unique("tenant");
    let one = TenantKey::new(unique("inst"), tenant_id.clone());
    let two = TenantKey::new(unique("inst"), tenant_id.clone());
    let seller = TenantKey::new("", tenant_id.clone());
    let other = TenantKey::new(one.instance_id.clone(), unique("tenant"));
    for (k, name) in [
        (&one, "一"),
        (&two, "二"),
        (&seller, "卖家"),
        (&other, "别"),
    ] {
        dir.apply(k, &C::PutTenant(sample_tenant(name, now)), now)
            .await
            .unwrap();
    }
    let mut found: Vec<(TenantKey, String)> = dir
        .tenants_by_id(&tenant_id)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, t)| (k, t.name))
        .collect();
    found.sort();
    let mut expected = vec![
        (one.clone(), "一".to_owned()),
        (two.clone(), "二".to_owned()),
        (seller.clone(), "卖家".to_owned()),
    ];
    expected.sort();
    assert_eq!(found, expected);
    dir.apply(&two, &C::DeleteTenant, now).await.unwrap();
    let left: Vec<TenantKey> = dir
        .tenants_by_id(&tenant_id)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(
        !left.contains(&two) && left.contains(&one) && left.len() == 2,
        "{left:?}"
    );
    assert!(
        dir.tenants_by_id(&unique("tenant"))
            .await
            .unwrap()
            .is_empty()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_passes_the_sso_contracts() {
        sso_store_contract(Arc::new(MemorySso::new())).await;
        tenant_locator_contract(Arc::new(crate::testing::MemoryDirectory::new())).await;
    }
}
