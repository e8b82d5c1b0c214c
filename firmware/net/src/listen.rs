//! What every protocol's listener does the same way: the accept loop with
//! its connection budget and graceful stop, and the TLS handshake of the
//! implicit-TLS ports.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use crate::budget::{Budget, Refusal};
use crate::throttle::Verdict;
use crate::{Conn, Stream};

/// How a listener behaves.
pub struct Listening {
    /// Service name for logs.
    pub name: &'static str,
    /// Ends the loop when it turns true.
    pub shutdown: watch::Receiver<bool>,
    /// Cloned into every connection; the caller waits for all clones to
    /// drop to know that sessions have drained.
    pub alive: mpsc::Sender<()>,
    /// The service's connection budget (its own, not shared with the
    /// protocol's other services).
    pub budget: Arc<Budget>,
    /// Said to a client refused for the service's limit, on plain-text
    /// ports only (on an implicit-TLS port the client expects a handshake).
    pub busy_reply: Option<String>,
    /// Said to a client refused because its address holds too many
    /// connections (plain-text ports only).
    pub address_busy_reply: Option<String>,
}

/// Accepts connections until shutdown and runs `serve` for each one that
/// fits in the service's budget. Refusals are logged once a minute with a
/// count, so that a flood cannot fill the log.
pub async fn accept_loop<F, Fut>(listener: TcpListener, mut l: Listening, serve: F)
where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = l.shutdown.changed() => return,
        };
        let (tcp, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, service = l.name, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let alive = l.alive.clone();
        match l.budget.take(peer.ip()) {
            Ok(slot) => {
                let session = serve(tcp, peer);
                tokio::spawn(async move {
                    let _alive = alive;
                    let _slot = slot;
                    session.await;
                });
            }
            Err(refusal) => {
                if let Verdict::Log { unlogged } = l.budget.refused.event() {
                    tracing::warn!(
                        %peer,
                        service = l.name,
                        held = l.budget.held(),
                        unlogged,
                        "{}: connection refused (logged once a minute; `unlogged` counts \
                         the refusals since the last line)",
                        refusal.reason()
                    );
                }
                let reply = match refusal {
                    Refusal::Service => l.busy_reply.clone(),
                    Refusal::Address => l.address_busy_reply.clone(),
                };
                tokio::spawn(async move {
                    let _alive = alive;
                    let mut conn = Conn::new(Stream::Plain(tcp), Duration::from_secs(5));
                    if let Some(text) = reply {
                        conn.push(&text);
                    }
                    conn.close().await;
                });
            }
        }
    }
}

/// The stream of a new connection: TLS from the first byte on an
/// implicit-TLS port (RFC 8314), plain otherwise. `None` when the handshake
/// fails or takes longer than `timeout`.
pub async fn open_stream(
    service: &str,
    tcp: TcpStream,
    peer: SocketAddr,
    implicit_tls: bool,
    tls: &TlsAcceptor,
    timeout: Duration,
) -> Option<Stream> {
    if !implicit_tls {
        return Some(Stream::Plain(tcp));
    }
    match tokio::time::timeout(timeout, tls.accept(tcp)).await {
        Ok(Ok(s)) => Some(Stream::Tls(Box::new(s))),
        Ok(Err(e)) => {
            crate::throttle::tls_failed(service, peer, &e);
            None
        }
        Err(_) => {
            crate::throttle::tls_failed(service, peer, &"timed out");
            None
        }
    }
}

/// Session ids for the logs: a per-process prefix (start time, and a letter
/// for the protocol) and a counter, e.g. `i6b09ca81.3`.
pub struct SessionIds {
    prefix: String,
    next: std::sync::atomic::AtomicU64,
}

impl SessionIds {
    /// Ids starting with `tag` (empty for SMTP, `i` for IMAP, `p` for POP3).
    pub fn new(tag: &str) -> SessionIds {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        SessionIds {
            prefix: format!("{tag}{started:x}"),
            next: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// The next id.
    pub fn next(&self) -> String {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{}.{n:x}", self.prefix)
    }
}
