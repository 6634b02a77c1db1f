//! The provider assembled over one backend's stores and keys, the same for the local host and
//! the Lambda function: the configured clients put into the store, the auth centre's HTTPS
//! client, the SSO domain service, the signing keys.

use std::sync::Arc;

use koogallery::{
    clock::Clock,
    directory::TenantDirectory,
    security::at_rest::CredentialSealer,
    sso::{OidcClient, Sso, SsoSettings, SsoStore, TenantLocator},
};
use koogallery_openapi::sso::{AUTH_CENTRE_TIMEOUT, AuthCentreClient};

use crate::{KeyRing, Provider, ProviderSettings};

/// The stores and keys the provider works with.
pub struct Parts {
    pub directory: Arc<dyn TenantDirectory>,
    pub locator: Arc<dyn TenantLocator>,
    pub store: Arc<dyn SsoStore>,
    pub sealer: Arc<dyn CredentialSealer>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<dyn koogallery::metrics::Metrics>,
    /// Where the delivery of `sessionsEnded` events is queued (the worker delivers them).
    pub jobs: Option<Arc<dyn koogallery::jobs::JobQueue>>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("OIDC client {client_id} not stored: {source}")]
    Client {
        client_id: String,
        source: koogallery::storage::StoreError,
    },
    #[error(transparent)]
    Http(#[from] koogallery_openapi::ClientBuildError),
}

/// The provider over `parts`, with `clients` put into the store (created or replaced) and any
/// other stored client removed; `None` leaves the stored clients as they are (the worker, which
/// only ends sessions).
///
/// # Errors
/// A client not stored, or no HTTP client.
pub async fn provider(
    settings: ProviderSettings,
    clients: Option<&[OidcClient]>,
    parts: Parts,
) -> Result<Provider, BuildError> {
    if let Some(clients) = clients {
        reconcile_clients(clients, &parts).await?;
    }
    let sso = Sso::new(
        parts.directory,
        parts.locator,
        Arc::new(AuthCentreClient::new(AUTH_CENTRE_TIMEOUT)?),
        parts.store.clone(),
        parts.sealer.clone(),
        parts.clock,
        SsoSettings {
            app_id: Some(settings.app_id().to_owned()),
            login_address: Some(settings.login_address()),
        },
    )
    .with_metrics(parts.metrics);
    let sso = match parts.jobs {
        Some(jobs) => sso.with_jobs(jobs),
        None => sso,
    };
    let keys = KeyRing::new(parts.store, parts.sealer, settings.key_rotation);
    let provider = Provider::new(Arc::new(sso), keys, settings)?;
    tracing::info!(
        issuer = provider.settings().issuer(),
        login_address = %provider.settings().login_address(),
        clients = clients.map(<[OidcClient]>::len),
        "SSO ready: the login address is what the seller console registers"
    );
    Ok(provider)
}

/// Puts `clients` into the store and removes every other stored client: the configuration is the
/// list, so a client taken out of it stops working (its secret too).
async fn reconcile_clients(clients: &[OidcClient], parts: &Parts) -> Result<(), BuildError> {
    for client in clients {
        parts
            .store
            .put_client(client)
            .await
            .map_err(|source| BuildError::Client {
                client_id: client.client_id.clone(),
                source,
            })?;
    }
    // The configuration is the list: a client taken out of it stops working (its secret too).
    let stored = parts
        .store
        .clients()
        .await
        .map_err(|source| BuildError::Client {
            client_id: "(all)".into(),
            source,
        })?;
    for old in stored {
        if !clients.iter().any(|c| c.client_id == old.client_id) {
            parts
                .store
                .delete_client(&old.client_id)
                .await
                .map_err(|source| BuildError::Client {
                    client_id: old.client_id.clone(),
                    source,
                })?;
            tracing::info!(client = %old.client_id, "OIDC client removed: no longer configured");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use koogallery::sso::ClientStore as _;
    use koogallery::testing::{MemoryDirectory, MemorySso};

    fn client(id: &str) -> OidcClient {
        OidcClient {
            client_id: id.into(),
            secret_hash: koogallery::sso::hash_opaque(id),
            name: id.into(),
            redirect_uris: vec!["https://app.example.com/cb".into()],
            post_logout_redirect_uris: vec![],
            backchannel_logout_uri: None,
            initiate_login_uri: None,
            created_at: chrono::Utc::now(),
        }
    }

    #[tokio::test]
    async fn the_configured_clients_are_the_only_ones_that_work() {
        let store = Arc::new(MemorySso::new());
        let directory = Arc::new(MemoryDirectory::new());
        let parts = || Parts {
            directory: directory.clone(),
            locator: directory.clone(),
            store: store.clone(),
            sealer: Arc::new(koogallery::security::at_rest::LocalKeySealer::random()),
            clock: Arc::new(koogallery::clock::SystemClock),
            metrics: Arc::new(koogallery::metrics::NoMetrics),
            jobs: None,
        };
        let settings = || {
            ProviderSettings::new(
                "https://sso.example.com",
                crate::settings::UNIFIED_LOGIN,
                "a",
            )
            .unwrap()
        };
        provider(settings(), Some(&[client("one"), client("two")]), parts())
            .await
            .unwrap();
        assert_eq!(store.clients().await.unwrap().len(), 2);
        provider(settings(), Some(&[client("two")]), parts())
            .await
            .unwrap();
        let left: Vec<String> = store
            .clients()
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.client_id)
            .collect();
        assert_eq!(
            left,
            vec!["two".to_owned()],
            "a client taken out of the configuration stops working"
        );
    }
}
