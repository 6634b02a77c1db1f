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

/// The provider over `parts`, with `clients` put into the store (created or replaced).
///
/// # Errors
/// A client not stored, or no HTTP client.
pub async fn provider(
    settings: ProviderSettings,
    clients: &[OidcClient],
    parts: Parts,
) -> Result<Provider, BuildError> {
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
    let keys = KeyRing::new(parts.store, parts.sealer, settings.key_rotation);
    let provider = Provider::new(Arc::new(sso), keys, settings)?;
    tracing::info!(
        issuer = provider.settings().issuer(),
        login_address = %provider.settings().login_address(),
        clients = clients.len(),
        "SSO ready: the login address is what the seller console registers"
    );
    Ok(provider)
}
