//! The HTTPS client of every AWS call: the SDK's clients take it as their `HttpClient`
//! ([`AwsHttp::sdk_client`]) and the signed calls of [`crate::signed`] send through it. HTTP/1.1 on
//! hyper-util's pooled client, TLS by rustls with ring, the connection timeout the SDK asks for,
//! and its read timeout (time to the answer's head) around each call.
//!
//! Why not the SDK's own client (`aws-smithy-http-client`): it always links HTTP/2 (`h2`), which
//! none of the services called here needs, and it reads the system's root certificates while
//! each SDK client is built: most of a Lambda function's start-up. Here the trust roots are built
//! on the first HTTPS connection, and a Lambda function takes Mozilla's roots compiled in
//! ([`Roots::Bundled`], `webpki-roots`: no files to read at all); the other hosts keep the
//! system's ([`Roots::System`]).
//!
//! Being the one path of every AWS call, it is also where they are counted, by service and
//! operation, when a test installs an [`AwsCalls`] ([`AwsHttp::counting`], `calls.rs`).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use aws_smithy_runtime_api::client::{
    http::{
        HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
        SharedHttpConnector,
    },
    orchestrator::HttpRequest,
    result::ConnectorError,
    runtime_components::RuntimeComponents,
};
use aws_smithy_types::body::SdkBody;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector as TcpConnector},
    rt::TokioExecutor,
};

use crate::calls::AwsCalls;

type Https = hyper_rustls::HttpsConnector<TcpConnector>;
type Pooled = Client<Bounded, SdkBody>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The connector with the connection timeout over the whole of connecting: name resolution, TCP
/// and the TLS handshake, as the SDK's own client bounds it (hyper-util's own limit covers the TCP
/// connect only).
#[derive(Clone)]
struct Bounded {
    inner: Https,
    limit: Option<Duration>,
}

impl tower_service::Service<http::Uri> for Bounded {
    type Response = <Https as tower_service::Service<http::Uri>>::Response;
    type Error = BoxError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, BoxError>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let limit = self.limit;
        Box::pin(async move {
            match limit {
                Some(limit) => {
                    tokio::time::timeout(limit, connecting)
                        .await
                        .map_err(|_| -> BoxError {
                            Box::new(std::io::Error::new(
                                std::io::ErrorKind::TimedOut,
                                format!("not connected within {limit:?}"),
                            ))
                        })?
                }
                None => connecting.await,
            }
        })
    }
}

/// The connection timeout of a Lambda function's AWS calls, SDK and signed alike (`aws_config`'s
/// default): one value, so that both use one connection pool.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);

/// Which certificates an HTTPS connection's server must chain to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Roots {
    /// The operating system's, read when the first HTTPS connection is made.
    System,
    /// Mozilla's, as the `webpki-roots` crate compiled into the binary: nothing read from disk.
    /// A Lambda function's (its AWS endpoints chain to Amazon's roots, which are in the list).
    Bundled,
}

/// The client: one connection pool per connection timeout, made on first use.
#[derive(Clone)]
pub struct AwsHttp {
    inner: Arc<Inner>,
}

struct Inner {
    roots: Roots,
    tls: OnceLock<Result<Arc<rustls::ClientConfig>, String>>,
    pools: Mutex<HashMap<Option<Duration>, Pooled>>,
    /// Counts every request sent, when installed (tests and measurements only).
    calls: Option<AwsCalls>,
}

impl std::fmt::Debug for AwsHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsHttp")
            .field("roots", &self.inner.roots)
            .finish_non_exhaustive()
    }
}

/// A connection or answer failed; [`is_timeout`](Self::is_timeout) says whether for want of time.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("TLS is not usable: {0}")]
    Tls(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("HTTP request failed")]
    Request(#[source] hyper_util::client::legacy::Error),
}

impl AwsHttp {
    pub fn new(roots: Roots) -> Self {
        Self::with_calls(roots, None)
    }

    /// A client that counts every request it sends in `calls`.
    pub fn counting(roots: Roots, calls: &AwsCalls) -> Self {
        Self::with_calls(roots, Some(calls.clone()))
    }

    fn with_calls(roots: Roots, calls: Option<AwsCalls>) -> Self {
        Self {
            inner: Arc::new(Inner {
                roots,
                tls: OnceLock::new(),
                pools: Mutex::new(HashMap::new()),
                calls,
            }),
        }
    }

    /// This client as the SDK's `HttpClient`.
    pub fn sdk_client(&self) -> SharedHttpClient {
        SharedHttpClient::new(self.clone())
    }

    /// Sends `request`; the answer's head must arrive within `read_timeout`, when given.
    pub async fn send(
        &self,
        request: http::Request<SdkBody>,
        connect_timeout: Option<Duration>,
        read_timeout: Option<Duration>,
    ) -> Result<http::Response<hyper::body::Incoming>, HttpError> {
        let pool = self.pool(connect_timeout)?;
        if let Some(calls) = &self.inner.calls {
            calls.sent(&request);
        }
        let answer = pool.request(request);
        match read_timeout {
            Some(limit) => tokio::time::timeout(limit, answer)
                .await
                .map_err(|_| HttpError::Timeout(limit))?,
            None => answer.await,
        }
        .map_err(HttpError::Request)
    }

    fn pool(&self, connect_timeout: Option<Duration>) -> Result<Pooled, HttpError> {
        let tls = self
            .inner
            .tls
            .get_or_init(|| tls_config(self.inner.roots).map(Arc::new))
            .clone()
            .map_err(HttpError::Tls)?;
        let mut pools = self
            .inner
            .pools
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(pools
            .entry(connect_timeout)
            .or_insert_with(|| {
                let mut tcp = TcpConnector::new();
                tcp.enforce_http(false);
                tcp.set_nodelay(true);
                tcp.set_connect_timeout(connect_timeout);
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config((*tls).clone())
                    .https_or_http()
                    .enable_http1()
                    .wrap_connector(tcp);
                let bounded = Bounded {
                    inner: https,
                    limit: connect_timeout,
                };
                Client::builder(TokioExecutor::new()).build(bounded)
            })
            .clone())
    }
}

fn tls_config(roots: Roots) -> Result<rustls::ClientConfig, String> {
    let store = match roots {
        Roots::Bundled => rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        },
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            if !found.errors.is_empty() {
                tracing::warn!(errors = ?found.errors, "some system root certificates could not be read");
            }
            let mut store = rustls::RootCertStore::empty();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                // Plain HTTP (the emulator) still works; an HTTPS call fails its handshake,
                // naming the unknown issuer.
                tracing::warn!("no system root certificates found: HTTPS calls to AWS will fail");
            }
            store
        }
    };
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(store)
    .with_no_client_auth())
}

impl HttpClient for AwsHttp {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(SdkConnector {
            http: self.clone(),
            connect_timeout: settings.connect_timeout(),
            read_timeout: settings.read_timeout(),
        })
    }
}

/// One SDK client's view of [`AwsHttp`], with its timeouts.
#[derive(Debug)]
struct SdkConnector {
    http: AwsHttp,
    connect_timeout: Option<Duration>,
    read_timeout: Option<Duration>,
}

impl HttpConnector for SdkConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let http = self.http.clone();
        let (connect_timeout, read_timeout) = (self.connect_timeout, self.read_timeout);
        HttpConnectorFuture::new(async move {
            let response = http
                .send(request, connect_timeout, read_timeout)
                .await
                .map_err(connector_error)?;
            aws_smithy_runtime_api::http::Response::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// What the SDK's retry policy needs to know of a failure: a timeout, a connection or I/O failure
/// (both retried, as the SDK's own client classifies them), or anything else.
fn connector_error(e: HttpError) -> ConnectorError {
    match e {
        HttpError::Timeout(_) => ConnectorError::timeout(e.into()),
        HttpError::Tls(_) => ConnectorError::other(e.into(), None),
        HttpError::Request(ref inner) => {
            let hyper = find_source::<hyper::Error>(inner);
            if hyper.is_some_and(hyper::Error::is_timeout) {
                ConnectorError::timeout(e.into())
            } else if inner.is_connect()
                || hyper
                    .is_some_and(|h| h.is_closed() || h.is_canceled() || h.is_incomplete_message())
                || find_source::<std::io::Error>(inner).is_some()
            {
                ConnectorError::io(e.into())
            } else {
                ConnectorError::other(e.into(), None)
            }
        }
    }
}

fn find_source<'a, E: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    std::iter::successors(Some(err), |e| e.source()).find_map(|e| e.downcast_ref::<E>())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback server that accepts one connection and never says a word.
    async fn silent_server() -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (_socket, _) = listener.accept().await.unwrap();
            std::future::pending::<()>().await
        });
        addr
    }

    fn get(url: String) -> http::Request<SdkBody> {
        http::Request::get(url).body(SdkBody::empty()).unwrap()
    }

    #[test]
    fn both_root_sets_make_a_tls_configuration() {
        assert!(tls_config(Roots::Bundled).is_ok());
        // Even with no system roots (a bare machine): plain HTTP must keep working.
        assert!(tls_config(Roots::System).is_ok());
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_io_failure_the_sdk_retries() {
        // Bound and held, never listening: a connection to it is refused.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        let err = AwsHttp::new(Roots::Bundled)
            .send(
                get(format!("http://{addr}/")),
                Some(Duration::from_secs(5)),
                None,
            )
            .await
            .unwrap_err();
        assert!(connector_error(err).is_io());
    }

    #[tokio::test]
    async fn a_tls_handshake_that_never_completes_is_bounded_by_the_connection_timeout() {
        // Accepts the TCP connection and never answers the client's hello.
        let addr = silent_server().await;
        let http = AwsHttp::new(Roots::Bundled);
        let sent = http.send(
            get(format!("https://{addr}/")),
            Some(Duration::from_millis(100)),
            None,
        );
        let err = tokio::time::timeout(Duration::from_secs(10), sent)
            .await
            .expect("the handshake was not bounded by the connection timeout")
            .unwrap_err();
        assert!(connector_error(err).is_io());
    }

    #[tokio::test]
    async fn an_answer_slower_than_the_read_timeout_is_a_timeout() {
        let addr = silent_server().await;
        let err = AwsHttp::new(Roots::Bundled)
            .send(
                get(format!("http://{addr}/")),
                None,
                Some(Duration::from_millis(50)),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, HttpError::Timeout(_)));
        assert!(connector_error(err).is_timeout());
    }
}
