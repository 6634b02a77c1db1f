//! The HTTP surface: the production URL for every protocol family, the Kit public key, and the
//! listener that serves them until the host stops.

use std::{net::SocketAddr, sync::Arc};

use crate::{LocalSettings, StartError, UsageApi, json_answer, usage_router};
use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, RawQuery, State, rejection::BytesRejection},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use edge::{Edge, EdgeResponse};
use koogallery::{ResultCode, protocol::Reply};
use tokio::sync::watch;

/// Binds the listener and serves the router until the returned sender says stop.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn serve(
    edge: Arc<Edge>,
    usage: Option<UsageApi>,
    settings: &LocalSettings,
    kit_public_key: Option<String>,
    sso: Option<Arc<sso::Provider>>,
    health: Option<Arc<crate::Health>>,
    license: Option<crate::LicenseRoutes>,
    admin: Option<crate::AdminRoutes>,
) -> Result<
    (
        SocketAddr,
        watch::Sender<bool>,
        watch::Receiver<bool>,
        tokio::task::JoinHandle<()>,
    ),
    StartError,
> {
    // The certificate first: a host does not start on files it cannot use.
    let tls = match &settings.tls {
        Some(files) => {
            let slot = crate::server::CertSlot::load(files.clone())?;
            let config = slot.server_config()?;
            Some((slot, config))
        }
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: settings.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: settings.listen,
        source,
    })?;
    let (stop, stopped) = watch::channel(false);
    let listen = crate::server::ListenSettings {
        max_connections: settings.max_connections,
        // The calls in flight answer within the dispatch deadline; the margin covers the answer.
        drain: edge.dispatch_deadline() + DRAIN_MARGIN,
        body_timeout: crate::server::BODY_READ_TIMEOUT,
    };
    let app = router(edge, kit_public_key)
        .merge(usage_router(usage))
        .merge(crate::sso_router(sso))
        .merge(crate::license_router(license))
        .merge(crate::health_router(health))
        .merge(crate::admin_router(admin));
    let (slot, config) = tls.unzip();
    tokio::spawn(crate::server::reload_on_sighup(slot, stopped.clone()));
    let server = tokio::spawn(crate::server::serve_connections(
        listener,
        app,
        listen,
        config,
        stopped.clone(),
    ));
    Ok((addr, stop, stopped, server))
}

/// What a stop waits beyond the dispatch deadline for the last answers to be written.
const DRAIN_MARGIN: std::time::Duration = std::time::Duration::from_secs(1);

/// The HTTP surface: the production URL with its Kit sub-paths (every family goes through the
/// edge, which recognises it by method and path), the Kit public key, and a health check.
pub fn router(edge: Arc<Edge>, kit_public_key: Option<String>) -> Router {
    let max_body_bytes = edge.max_body_bytes();
    let public_key = get(move || {
        let pem = kit_public_key.clone();
        async move { kit_public_key_answer(pem) }
    });
    // Every method reaches the edge: a GET is the V1 interface, a POST to a V1 Kit path the V1 Kit;
    // what it does not serve (another method) gets a signed 000002, never the router's bare 405 or
    // 404.
    Router::new()
        .route("/produce", axum::routing::any(produce))
        .route("/produce/produceAPI/{*rest}", axum::routing::any(produce))
        .route("/kit/public-key", public_key)
        .route(
            "/healthz",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"status":"ok"}"#,
                )
            }),
        )
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"error":"not found; the production URL is POST /produce"}"#,
            )
        })
        // One byte over the limit is enough for the edge to see an oversize body and answer 000002.
        .layer(DefaultBodyLimit::max(max_body_bytes + 1))
        .with_state(edge)
}

pub(crate) fn to_http(resp: EdgeResponse) -> Response {
    resp.into_http::<axum::body::Body>()
}

pub(crate) async fn produce(
    State(edge): State<Arc<Edge>>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match body {
        Ok(body) => to_http(
            edge.handle(edge::Inbound {
                method: &method,
                path: uri.path(),
                query: query.as_deref().unwrap_or(""),
                headers: &headers,
                body: &body,
            })
            .await,
        ),
        Err(rejection) => {
            // Too large (or unreadable): still HTTP 200 with a signed result code.
            let reply = Reply::new(
                ResultCode::InvalidParameter,
                format!("request body rejected: {rejection}"),
            );
            to_http(edge.refuse(uri.path(), &reply))
        }
    }
}

/// `GET /kit/public-key`: the public half of the Kit RSA key (SubjectPublicKeyInfo PEM), which the
/// seller uploads in 卖家中心 → 应用工具 → 应用凭证管理 (docs/protocol/callbacks.md §3.5). Public, so no
/// signature.
pub(crate) fn kit_public_key_answer(pem: Option<String>) -> Response {
    match pem {
        Some(pem) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-pem-file")],
            pem,
        )
            .into_response(),
        None => json_answer(
            404,
            serde_json::json!({"error": "this host has no Kit RSA key"}),
        ),
    }
}
