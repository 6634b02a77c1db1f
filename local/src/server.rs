//! The listener of a host that faces the internet: plain HTTP or TLS (rustls, TLS 1.2 and 1.3
//! only) from PEM files reloaded on SIGHUP, a cap on open connections, header limits, and a
//! graceful stop that lets the calls in flight finish.
//!
//! The certificate is read per handshake from a slot that SIGHUP refills, so a renewal takes
//! effect for the next connection and no open connection is dropped. A reload that fails (a
//! missing file, a key that does not match) keeps the certificate in use and says why in the log.

use std::{
    net::SocketAddr,
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

/// Where the certificate and its key are read from (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// How the listener serves.
#[derive(Debug, Clone)]
pub struct ListenSettings {
    pub addr: SocketAddr,
    /// `None`: plain HTTP (behind a load balancer that ends TLS, or on loopback).
    pub tls: Option<TlsFiles>,
    /// Connections open at once; the next waits in the kernel's backlog.
    pub max_connections: usize,
    /// How long a stop waits for the calls in flight (the edge's dispatch deadline and a margin).
    pub drain: Duration,
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
    let service = TowerToHyperService::new(app);
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
        tokio::spawn(async move {
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
            tracing::warn!(drain = ?settings.drain, "calls still open after the drain time: closing them");
        }
    }
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
