//! The listener of a host that faces the internet: plain HTTP or TLS (rustls, TLS 1.2 and 1.3
//! only) from PEM files reloaded on SIGHUP, a cap on open connections, header limits, and a
//! graceful stop that lets the calls in flight finish.
//!
//! The certificate is read per handshake from a slot that SIGHUP refills, so a renewal takes
//! effect for the next connection and no open connection is dropped. A reload that fails (a
//! missing file, a key that does not match) keeps the certificate in use and says why in the log.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::Duration,
};

use axum::Router;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use rustls::{
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{Semaphore, watch},
};

/// At most this many request headers: KooGallery sends about ten, a load balancer adds a few.
const MAX_HEADERS: usize = 64;
/// The read buffer, which a request's line and headers must fit in (hyper's minimum is 8 KiB).
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// A client that has not sent its headers (or finished its TLS handshake) by then is dropped: a
/// slow client cannot hold a connection slot.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// And it has this long for the body: past it the body reads as an error, which the edge answers
/// with a signed `000002`, and the slot is free again.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the certificate and its key are read from (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// How the listener serves (the listener itself and the TLS configuration are passed beside it).
#[derive(Debug, Clone)]
pub struct ListenSettings {
    /// Connections open at once; the next waits in the kernel's backlog.
    pub max_connections: usize,
    /// How long a stop waits for the calls in flight (the edge's dispatch deadline and a margin).
    pub drain: Duration,
    /// How long a request's body may take to arrive ([`BODY_READ_TIMEOUT`]).
    pub body_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{path} holds no certificate")]
    NoCertificate { path: String },
    #[error("the key in {path} does not fit the certificate, or is not a supported key: {source}")]
    Key { path: String, source: rustls::Error },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The certificate in use; SIGHUP refills it.
#[derive(Debug)]
pub struct CertSlot {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertSlot {
    /// Reads the files once: a host does not start on a certificate it cannot load.
    pub fn load(files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        let key = read_certified_key(&files)?;
        Ok(Arc::new(Self {
            files,
            current: RwLock::new(Arc::new(key)),
        }))
    }

    /// Reads the files again; on failure the certificate in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = read_certified_key(&self.files)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
        Ok(())
    }

    /// The rustls configuration that takes its certificate from this slot.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for CertSlot {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

fn read_certified_key(files: &TlsFiles) -> Result<CertifiedKey, TlsError> {
    let shown = |p: &Path| p.display().to_string();
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Read {
            path: shown(&files.cert),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: shown(&files.cert),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|source| TlsError::Read {
        path: shown(&files.key),
        source,
    })?;
    let provider = rustls::crypto::ring::default_provider();
    // from_der checks that the key is the certificate's.
    CertifiedKey::from_der(certs, key, &provider).map_err(|source| TlsError::Key {
        path: shown(&files.key),
        source,
    })
}

/// Reloads the certificate on every SIGHUP until `stopped`. Without TLS a SIGHUP is logged and
/// ignored (its default action would end the process).
pub(crate) async fn reload_on_sighup(
    slot: Option<Arc<CertSlot>>,
    mut stopped: watch::Receiver<bool>,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: the certificate is not reloaded on a signal");
        return;
    };
    loop {
        tokio::select! {
            _ = stopped.wait_for(|s| *s) => return,
            got = hangups.recv() => if got.is_none() { return },
        }
        match &slot {
            Some(slot) => match slot.reload() {
                Ok(()) => tracing::info!(
                    cert = %slot.files.cert.display(),
                    "SIGHUP: certificate reloaded; new connections use it"
                ),
                Err(e) => tracing::error!(
                    error = %e,
                    "SIGHUP: certificate not reloaded; the one in use stays"
                ),
            },
            None => tracing::info!("SIGHUP: nothing to reload (no TLS)"),
        }
    }
}

/// Serves `app` on `listener` until `stopped`, then lets the open connections finish their calls
/// (at most `settings.drain`) and returns.
pub(crate) async fn serve_connections(
    listener: TcpListener,
    app: Router,
    settings: ListenSettings,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut stopped: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let service = TowerToHyperService::new(app.layer(
        tower_http::timeout::RequestBodyTimeoutLayer::new(settings.body_timeout),
    ));
    // Every connection's task, so that those still open when the drain ends are ended here, not
    // left running past the stop.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let slot = tokio::select! {
            _ = stopped.wait_for(|s| *s) => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let accepted = tokio::select! {
            _ = stopped.wait_for(|s| *s) => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, mostly: wait rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let service = service.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        // Finished connections leave the set as new ones come.
        while connections.try_join_next().is_some() {}
        connections.spawn(async move {
            let _slot = slot;
            match acceptor {
                None => serve_one(TokioIo::new(tcp), service, watcher).await,
                Some(acceptor) => match handshake(&acceptor, tcp).await {
                    Ok(tls) => serve_one(TokioIo::new(tls), service, watcher).await,
                    Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                },
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(settings.drain) => {
            tracing::warn!(drain = ?settings.drain, open = connections.len(), "calls still open after the drain time: closing them");
        }
    }
    connections.shutdown().await;
}

async fn handshake(
    acceptor: &tokio_rustls::TlsAcceptor,
    tcp: TcpStream,
) -> std::io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
    tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(tcp))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out"))?
}

async fn serve_one<I>(
    io: I,
    service: TowerToHyperService<Router>,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_headers(MAX_HEADERS)
        .max_buf_size(MAX_HEADER_BYTES)
        .keep_alive(true);
    let conn = http.serve_connection(io, service);
    // A closed or reset connection is the client's business, not an error of ours.
    let _ = watcher.watch(conn).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn issue(dir: &Path, name: &str) -> TlsFiles {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let files = TlsFiles {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        std::fs::write(&files.cert, cert.pem()).expect("write");
        std::fs::write(&files.key, key.serialize_pem()).expect("write");
        files
    }

    #[test]
    fn a_certificate_that_cannot_be_used_is_refused_with_its_file_named() {
        let dir = tempfile::tempdir().expect("dir");
        let (a, b) = (issue(dir.path(), "a"), issue(dir.path(), "b"));
        CertSlot::load(a.clone()).expect("a matching pair loads");
        let crossed = TlsFiles {
            cert: a.cert.clone(),
            key: b.key.clone(),
        };
        let e = CertSlot::load(crossed).expect_err("a key of another certificate");
        assert!(matches!(e, TlsError::Key { .. }), "{e}");
        let missing = TlsFiles {
            cert: dir.path().join("none.crt"),
            key: a.key.clone(),
        };
        let e = CertSlot::load(missing).expect_err("no file").to_string();
        assert!(e.contains("none.crt"), "{e}");
        std::fs::write(dir.path().join("empty.crt"), "").expect("write");
        let empty = TlsFiles {
            cert: dir.path().join("empty.crt"),
            key: a.key.clone(),
        };
        let e = CertSlot::load(empty).expect_err("no certificate");
        assert!(matches!(e, TlsError::NoCertificate { .. }), "{e}");
    }

    #[test]
    fn a_reload_that_fails_keeps_the_certificate_in_use() {
        let dir = tempfile::tempdir().expect("dir");
        let a = issue(dir.path(), "a");
        let slot = CertSlot::load(a.clone()).expect("loads");
        let before = slot.current.read().unwrap().cert.clone();
        std::fs::write(&a.cert, "garbage").expect("write");
        assert!(slot.reload().is_err());
        assert_eq!(slot.current.read().unwrap().cert, before);
        let b = issue(dir.path(), "b");
        std::fs::copy(&b.cert, &a.cert).expect("copy");
        std::fs::copy(&b.key, &a.key).expect("copy");
        slot.reload().expect("a good pair reloads");
        assert_ne!(slot.current.read().unwrap().cert, before);
    }

    /// A plain listener on loopback serving `app` with `max_connections`; its stop sender.
    async fn listen(
        app: Router,
        max_connections: usize,
    ) -> (
        std::net::SocketAddr,
        watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = watch::channel(false);
        let settings = ListenSettings {
            max_connections,
            drain: Duration::from_secs(5),
            body_timeout: Duration::from_millis(300),
        };
        let task = tokio::spawn(serve_connections(listener, app, settings, None, stopped));
        (addr, stop, task)
    }

    async fn exchange(stream: &mut TcpStream, request: &str, limit: Duration) -> Option<String> {
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut buf = vec![0; 4096];
        match tokio::time::timeout(limit, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            _ => None,
        }
    }

    const GET: &str = "GET / HTTP/1.1\r\nhost: x\r\n\r\n";

    #[tokio::test]
    async fn past_the_connection_cap_a_connection_waits_until_one_closes() {
        let (addr, stop, task) = listen(Router::new().route("/", get(|| async { "ok" })), 1).await;
        let mut first = TcpStream::connect(addr).await.expect("connect");
        assert!(
            exchange(&mut first, GET, Duration::from_secs(2))
                .await
                .is_some()
        );
        // The kernel accepts the second, but the host does not serve it while the first is open.
        let mut second = TcpStream::connect(addr).await.expect("connect");
        assert_eq!(
            exchange(&mut second, GET, Duration::from_millis(300)).await,
            None
        );
        drop(first);
        let mut buf = vec![0; 4096];
        let n = tokio::time::timeout(Duration::from_secs(2), second.read(&mut buf))
            .await
            .expect("served once the first closed")
            .expect("read");
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        let _ = stop.send(true);
        task.await.expect("stops");
    }

    #[tokio::test]
    async fn a_body_that_trickles_in_is_cut_off_and_frees_its_slot() {
        let echo = Router::new().route(
            "/",
            axum::routing::post(|body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>| async move {
                match body {
                    Ok(b) => format!("read {}", b.len()),
                    Err(e) => format!("refused: {e}"),
                }
            }),
        );
        let (addr, stop, task) = listen(echo, 1).await;
        let mut slow = TcpStream::connect(addr).await.expect("connect");
        // Headers promise 100 bytes; one arrives.
        let answer = exchange(
            &mut slow,
            "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nx",
            Duration::from_secs(3),
        )
        .await
        .expect("an answer once the body times out");
        assert!(answer.contains("refused"), "{answer}");
        drop(slow);
        // The only slot is free again.
        let mut next = TcpStream::connect(addr).await.expect("connect");
        let answer = exchange(
            &mut next,
            "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nok",
            Duration::from_secs(3),
        )
        .await
        .expect("served");
        assert!(answer.contains("read 2"), "{answer}");
        let _ = stop.send(true);
        task.await.expect("stops");
    }

    #[tokio::test]
    async fn too_many_headers_are_refused_with_431() {
        let (addr, stop, task) = listen(Router::new().route("/", get(|| async { "ok" })), 8).await;
        let mut request = String::from("GET / HTTP/1.1\r\nhost: x\r\n");
        for i in 0..MAX_HEADERS + 1 {
            request.push_str(&format!("x-h{i}: v\r\n"));
        }
        request.push_str("\r\n");
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let answer = exchange(&mut stream, &request, Duration::from_secs(2))
            .await
            .expect("an answer");
        assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
        let _ = stop.send(true);
        task.await.expect("stops");
    }

    #[tokio::test]
    async fn a_stop_lets_the_call_in_flight_answer_and_refuses_new_connections() {
        let slow = Router::new().route(
            "/",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(400)).await;
                "done"
            }),
        );
        let (addr, stop, task) = listen(slow, 8).await;
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(GET.as_bytes()).await.expect("write");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _ = stop.send(true);
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(3), stream.read_to_string(&mut answer))
            .await
            .expect("answered before the drain ends")
            .expect("read");
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("done"),
            "{answer}"
        );
        task.await.expect("stops");
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "no longer listening"
        );
    }
}
