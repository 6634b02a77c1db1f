//! A TCP proxy in front of the emulator that one test can freeze: while frozen it passes no byte
//! either way and opens no connection upstream, so the emulator looks stopped (as a SIGSTOP'd
//! process does: connections are accepted, nothing is answered) to that test's host alone; thawed,
//! everything held goes through, as after SIGCONT. The emulator keeps its state, and the other
//! tests sharing it see nothing.

use std::net::SocketAddr;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpListener, TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    sync::watch,
};

pub struct FreezableProxy {
    addr: SocketAddr,
    frozen: watch::Sender<bool>,
}

impl FreezableProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (frozen, gate) = watch::channel(false);
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let mut gate = gate.clone();
                tokio::spawn(async move {
                    open(&mut gate).await;
                    let Ok(outbound) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = (inbound.set_nodelay(true), outbound.set_nodelay(true));
                    let (from_client, to_client) = inbound.into_split();
                    let (from_upstream, to_upstream) = outbound.into_split();
                    tokio::join!(
                        pump(from_client, to_upstream, gate.clone()),
                        pump(from_upstream, to_client, gate),
                    );
                });
            }
        });
        Self { addr, frozen }
    }

    /// The endpoint URL to give the host's SDK.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    pub fn thaw(&self) {
        self.frozen.send_replace(false);
    }
}

/// Waits while the proxy is frozen.
async fn open(gate: &mut watch::Receiver<bool>) {
    let _ = gate.wait_for(|frozen| !*frozen).await;
}

/// Copies one direction, holding what it read while frozen.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut gate: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        open(&mut gate).await;
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    open(&mut gate).await;
    let _ = to.shutdown().await;
}

/// The emulator's address from `AWS_ENDPOINT_URL` (`http://127.0.0.1:PORT`).
pub fn emulator_addr() -> SocketAddr {
    let url = std::env::var("AWS_ENDPOINT_URL")
        .expect("AWS_ENDPOINT_URL is not set: run through `make test`, which starts the emulator");
    let host_port = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let host_port = host_port.replace("localhost", "127.0.0.1");
    host_port
        .parse()
        .unwrap_or_else(|e| panic!("AWS_ENDPOINT_URL {url:?} is not http://IP:PORT: {e}"))
}
