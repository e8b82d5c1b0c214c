//! HTTPS for the admin page. rustls (the workspace's one TLS stack, the
//! mail services' certificate) terminates TLS here, and the plain bytes go
//! to a tiny-http listener on loopback that only this front talks to.
//! tiny-http's own TLS would pull in a second, older rustls.
//!
//! tiny-http sees every forwarded connection coming from 127.0.0.1, so the
//! front records which local port each of its backend connections uses and
//! the real client behind it ([`Peers`]). The record is made after the
//! backend connection is open and before the first byte is sent, so the
//! request handler always finds it; a connection to the backend listener
//! that the front did not make finds nothing and is refused.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};

/// HTTPS connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 64;
/// A client has this long to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection is closed after this long, busy or not (tiny-http keeps
/// connections alive and has no idle timeout of its own).
const MAX_CONNECTION_TIME: Duration = Duration::from_secs(300);

/// Backend connection (its local port on loopback) → the HTTPS client it
/// carries.
#[derive(Default)]
pub(crate) struct Peers(Mutex<HashMap<u16, SocketAddr>>);

impl Peers {
    /// The HTTPS client behind a backend connection from `port`.
    pub(crate) fn client(&self, port: u16) -> Option<SocketAddr> {
        self.lock().get(&port).copied()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u16, SocketAddr>> {
        // A panic while holding the lock cannot leave the map half-changed
        // (single inserts and removes): carry on with it.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Removes a backend connection's record when the connection ends.
struct Recorded<'a> {
    peers: &'a Peers,
    port: u16,
}

impl Drop for Recorded<'_> {
    fn drop(&mut self) {
        self.peers.lock().remove(&self.port);
    }
}

/// The running HTTPS front.
pub(crate) struct TlsFront {
    thread: JoinHandle<()>,
    stop: Arc<Notify>,
}

impl TlsFront {
    /// Serves `listeners` (bound already) on a thread of its own, passing
    /// each connection on to `backend` once its handshake is done.
    pub(crate) fn start(
        listeners: Vec<TcpListener>,
        backend: SocketAddr,
        config: Arc<rustls::ServerConfig>,
        peers: Arc<Peers>,
    ) -> std::io::Result<TlsFront> {
        for l in &listeners {
            l.set_nonblocking(true)?;
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let stop = Arc::new(Notify::new());
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("admin-https".into())
            .spawn(move || {
                runtime.block_on(serve(listeners, backend, config, peers, stopped));
                // Dropping the runtime ends connections still open.
            })?;
        Ok(TlsFront { thread, stop })
    }

    /// Stops accepting, drops open connections and joins the thread.
    pub(crate) fn stop(self) {
        self.stop.notify_one();
        let _ = self.thread.join();
    }
}

async fn serve(
    listeners: Vec<TcpListener>,
    backend: SocketAddr,
    config: Arc<rustls::ServerConfig>,
    peers: Arc<Peers>,
    stop: Arc<Notify>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut accepting = tokio::task::JoinSet::new();
    for listener in listeners {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "admin https: cannot use a listener");
                continue;
            }
        };
        let (acceptor, peers, slots) = (acceptor.clone(), peers.clone(), slots.clone());
        accepting.spawn(async move {
            loop {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (tcp, client) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of descriptors and the like: pause, not spin.
                        tracing::warn!(error = %e, "admin https: cannot accept");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (acceptor, peers) = (acceptor.clone(), peers.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    let work = forward(tcp, client, backend, &acceptor, &peers);
                    if let Err(why) = tokio::time::timeout(MAX_CONNECTION_TIME, work)
                        .await
                        .unwrap_or(Err("connection open too long"))
                    {
                        tracing::debug!(%client, why, "admin https: connection ended");
                    }
                });
            }
        });
    }
    stop.notified().await;
    accepting.shutdown().await;
}

/// One HTTPS connection: the handshake, then bytes both ways between the
/// client and the backend listener.
async fn forward(
    tcp: TcpStream,
    client: SocketAddr,
    backend: SocketAddr,
    acceptor: &tokio_rustls::TlsAcceptor,
    peers: &Peers,
) -> Result<(), &'static str> {
    // Replies come in pieces (see bind_http in lib.rs): no Nagle waits.
    let _ = tcp.set_nodelay(true);
    let mut tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
        .await
        .map_err(|_| "TLS handshake timed out")?
        .map_err(|_| "TLS handshake failed")?;
    let mut plain = TcpStream::connect(backend)
        .await
        .map_err(|_| "cannot reach the admin page's backend")?;
    let _ = plain.set_nodelay(true);
    let port = plain
        .local_addr()
        .map_err(|_| "backend connection has no address")?
        .port();
    peers.lock().insert(port, client);
    let _recorded = Recorded { peers, port };
    tokio::io::copy_bidirectional(&mut tls, &mut plain)
        .await
        .map(|_| ())
        .map_err(|_| "connection reset")
}
