//! Single sign-on on the local host (docs/protocol/decisions.md §19): the OIDC provider built over
//! the host's stores, its routes, the OIDC clients file, and `koogallery-local oidc-client add`,
//! which registers one of the vendor's applications.

use std::sync::Arc;

use axum::{
    Router,
    body::Bytes,
    extract::{RawQuery, State},
    http::{HeaderMap, Method, Uri},
    response::Response,
    routing::any,
};
use koogallery::config::ConfigError;
use sso::Provider;
use sso::clients::{CLIENTS_FILE, ClientOptions, NewClient, add_client};

use crate::{SsoHostSettings, StartError};

/// The provider over the host's stores, with the clients file's clients put into the store.
pub(crate) async fn provider(
    settings: &SsoHostSettings,
    parts: sso::build::Parts,
) -> Result<Arc<Provider>, StartError> {
    let invalid = |name: &'static str, e: String| StartError::Config(ConfigError::invalid(name, e));
    let clients = sso::clients::clients_from(&settings.clients)
        .map_err(|e| invalid(koogallery::config::catalog::OIDC_CLIENTS.name, e))?;
    sso::build::provider(settings.provider.clone(), Some(&clients), parts)
        .await
        .map(Arc::new)
        .map_err(|e| invalid(koogallery::config::catalog::SSO_ISSUER.name, e.to_string()))
}

/// The SSO routes ([`sso::PATHS`]), when SSO is on.
pub fn sso_router(provider: Option<Arc<Provider>>) -> Router {
    let Some(provider) = provider else {
        return Router::new();
    };
    let mut router = Router::new();
    for path in sso::PATHS {
        router = router.route(path, any(serve));
    }
    router.with_state(provider)
}

async fn serve(
    State(provider): State<Arc<Provider>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let req = sso::Request {
        method: &method,
        path: uri.path(),
        query: query.as_deref().unwrap_or(""),
        headers: &headers,
        body: &body,
    };
    provider.handle(&req).await.into_http::<axum::body::Body>()
}

/// `koogallery-local oidc-client add …`: prints the new client as JSON.
pub fn oidc_client_command(program: &str, args: &[String]) -> std::process::ExitCode {
    let run = || -> Result<NewClient, String> {
        if args.first().map(String::as_str) != Some("add") {
            return Err("usage: oidc-client add --name NAME --redirect-uri URI [--redirect-uri URI…] \
                 [--post-logout-redirect-uri URI…] [--backchannel-logout-uri URI] [--initiate-login-uri URI]"
                .into());
        }
        let options = ClientOptions::parse(&args[1..])?;
        let env = koogallery::config::Env::process();
        let data_dir = std::path::PathBuf::from(
            env.text(&koogallery::config::catalog::DATA_DIR)
                .unwrap_or_default(),
        );
        let path = env
            .get(&koogallery::config::catalog::OIDC_CLIENTS)
            .map_or_else(|| data_dir.join(CLIENTS_FILE), std::path::PathBuf::from);
        add_client(&path, options)
    };
    match run() {
        Ok(c) => {
            println!("{}", serde_json::to_string_pretty(&c).unwrap_or_default());
            eprintln!("{program}: the secret is shown once; restart the host to load the client");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{program}: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
