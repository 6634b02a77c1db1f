//! `koogallery-admin console --aws --url <AdminUrl>`: the admin function's console in a browser.
//! A browser cannot sign its requests with SigV4, and the function URL (`AuthType: AWS_IAM`)
//! refuses every unsigned one; so this command serves the console on `127.0.0.1` and forwards
//! each request to the function URL, signed with the caller's AWS credentials
//! ([`crate::aws_signing`]).
//!
//! The proxy holds those credentials' power, so it lets in only the browser it was started for:
//!
//! - a one-time token, printed at start in the proxy's URL (`/.proxy/start?token=…`), is
//!   exchanged once for a session cookie (`HttpOnly`, `SameSite=Strict`, random, held in this
//!   process only); every other request must carry that cookie, compared in constant time;
//! - every request must name the proxy itself as its `Host` (no DNS rebinding);
//! - every request that is not a `GET` or `HEAD` must come from the proxy's own origin (`Origin`,
//!   else `Sec-Fetch-Site: same-origin`): the admin function takes no CSRF token in IAM mode (the
//!   `admin` crate's documentation says why), so the check is here, where a forged form post
//!   would arrive;
//! - only `/admin/…` is forwarded, with the request's method, body, `Content-Type` and `Accept`,
//!   never its cookies; redirects are handed back to the browser, not followed.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Query, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
    routing::get,
};
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{admin_cli::AdminError, aws_signing::Signer};

/// The proxy's session cookie.
const COOKIE: &str = "koogallery_proxy";

/// What the proxy's routes share.
#[derive(Clone)]
struct Proxy {
    upstream: String,
    signer: Signer,
    client: reqwest::Client,
    /// `127.0.0.1:<port>`: the only `Host` served.
    authority: String,
    /// The one-time token, until used.
    start_token: Arc<Mutex<Option<String>>>,
    /// The session the token was exchanged for.
    session: Arc<Mutex<Option<String>>>,
}

fn random() -> String {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn same(a: &str, b: &str) -> bool {
    Sha256::digest(a.as_bytes())
        .ct_eq(&Sha256::digest(b.as_bytes()))
        .into()
}

fn refused(status: StatusCode, why: &str) -> Response {
    tracing::warn!(%status, why, "console proxy: request refused");
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{why}\n"),
    )
        .into_response()
}

/// A running proxy: where it listens and the URL that starts its one session.
pub struct Running {
    pub addr: SocketAddr,
    pub start_url: String,
    pub server: tokio::task::JoinHandle<()>,
}

/// Serves the proxy on `127.0.0.1:port` (0: a port the OS picks) in front of `upstream`.
pub async fn start(
    upstream: &str,
    port: u16,
    client: reqwest::Client,
) -> Result<Running, AdminError> {
    let upstream = upstream.trim().trim_end_matches('/').to_owned();
    let signer = Signer::for_url(&upstream).await?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| AdminError::Usage(format!("cannot listen on 127.0.0.1:{port}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| AdminError::Usage(e.to_string()))?;
    let token = random();
    let proxy = Proxy {
        upstream,
        signer,
        client,
        authority: addr.to_string(),
        start_token: Arc::new(Mutex::new(Some(token.clone()))),
        session: Arc::new(Mutex::new(None)),
    };
    let app = Router::new()
        .route("/.proxy/start", get(start_session))
        .fallback(forward)
        .with_state(proxy);
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "console proxy stopped");
        }
    });
    Ok(Running {
        addr,
        start_url: format!("http://{addr}/.proxy/start?token={token}"),
        server,
    })
}

impl Proxy {
    fn host_is_ours(&self, headers: &HeaderMap) -> bool {
        headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|h| h == self.authority)
    }

    fn has_session(&self, headers: &HeaderMap) -> bool {
        let Some(session) = self.session.lock().expect("session lock").clone() else {
            return false;
        };
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .any(|(name, value)| name == COOKIE && same(value, &session))
    }

    fn same_origin(&self, headers: &HeaderMap) -> bool {
        match headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
            Some(origin) => origin == format!("http://{}", self.authority),
            None => headers
                .get("sec-fetch-site")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v == "same-origin"),
        }
    }
}

#[derive(serde::Deserialize)]
struct Start {
    #[serde(default)]
    token: String,
}

/// `GET /.proxy/start?token=…`: the one-time token for the session cookie, once.
async fn start_session(
    State(p): State<Proxy>,
    headers: HeaderMap,
    Query(q): Query<Start>,
) -> Response {
    if !p.host_is_ours(&headers) {
        return refused(StatusCode::FORBIDDEN, "not this proxy's host");
    }
    let taken = {
        let mut token = p.start_token.lock().expect("token lock");
        match token.as_deref() {
            Some(t) if same(t, &q.token) => token.take().is_some(),
            _ => false,
        }
    };
    if !taken {
        return refused(
            StatusCode::FORBIDDEN,
            "this start link is used or wrong: start `koogallery-admin console --aws` again for a new one",
        );
    }
    let session = random();
    *p.session.lock().expect("session lock") = Some(session.clone());
    let mut r = (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, "/admin/instances")],
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict"
    )) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// Everything else: checked, then forwarded signed.
async fn forward(
    State(p): State<Proxy>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !p.host_is_ours(&headers) {
        return refused(StatusCode::FORBIDDEN, "not this proxy's host");
    }
    if !p.has_session(&headers) {
        return refused(
            StatusCode::UNAUTHORIZED,
            "no session: open the start link koogallery-admin printed",
        );
    }
    if method != Method::GET && method != Method::HEAD && !p.same_origin(&headers) {
        return refused(StatusCode::FORBIDDEN, "a form of another origin");
    }
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    if !(uri.path() == "/admin" || uri.path().starts_with("/admin/")) {
        return refused(StatusCode::NOT_FOUND, "the proxy serves /admin/ only");
    }
    let url = format!("{}{path}", p.upstream);
    let mut request = p.client.request(method, &url);
    for name in [header::CONTENT_TYPE, header::ACCEPT] {
        if let Some(v) = headers.get(&name) {
            request = request.header(name, v.clone());
        }
    }
    let mut request = match request.body(body.clone()).build() {
        Ok(r) => r,
        Err(e) => return refused(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    if let Err(e) = p.signer.sign(&mut request, &body).await {
        return refused(StatusCode::BAD_GATEWAY, &e.to_string());
    }
    let answer = match p.client.execute(request).await {
        Ok(a) => a,
        Err(e) => {
            return refused(
                StatusCode::BAD_GATEWAY,
                &format!("the admin function did not answer: {e}"),
            );
        }
    };
    let status = answer.status();
    let mut out = HeaderMap::new();
    for name in [
        header::CONTENT_TYPE,
        header::LOCATION,
        header::CACHE_CONTROL,
        header::CONTENT_SECURITY_POLICY,
        header::HeaderName::from_static("x-frame-options"),
    ] {
        if let Some(v) = answer.headers().get(&name) {
            out.insert(name, v.clone());
        }
    }
    let bytes = match answer.bytes().await {
        Ok(b) => b,
        Err(e) => return refused(StatusCode::BAD_GATEWAY, &e.to_string()),
    };
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() =
        StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    *response.headers_mut() = out;
    response
}

/// `koogallery-admin console --aws`: serves until interrupted.
pub async fn serve(upstream: &str, port: u16, client: reqwest::Client) -> Result<(), AdminError> {
    let running = start(upstream, port, client).await?;
    println!(
        "the console of {upstream} (signed with your AWS credentials), for this browser session only:\n\n  {}\n\nthe link works once; Ctrl-C stops the proxy",
        running.start_url
    );
    tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = running.server => Ok(()),
    }
}
