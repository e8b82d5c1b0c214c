//! The admin page's front: every connection to the page, plain HTTP or
//! HTTPS, arrives here first. The front
//!
//! - terminates TLS with the workspace's rustls (tiny-http's own TLS would
//!   pull in a second, older rustls) and the mail services' certificate;
//! - bounds what a client may make the page hold: a request head of at most
//!   [`MAX_HEAD`] bytes that must arrive within [`HEAD_TIMEOUT`], a body of
//!   at most the page's own limit within [`BODY_TIMEOUT`], an idle
//!   keep-alive connection for [`IDLE_TIMEOUT`], a connection for
//!   [`MAX_CONNECTION_TIME`], and [`MAX_CONNECTIONS`] connections, at most
//!   [`MAX_PER_ADDRESS`] from one address (tiny-http itself reads a request
//!   line and headers without any bound);
//! - passes the checked bytes on to a tiny-http listener on loopback.
//!
//! tiny-http sees every forwarded connection coming from 127.0.0.1, so the
//! front records which local port each of its backend connections uses and
//! the real client behind it ([`Peers`]). The record is made after the
//! backend connection is open and before the first byte is sent, so the
//! request handler always finds it; a connection to a backend listener that
//! the front did not make finds nothing and is refused with 403 before
//! anything else is read.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use pochta_net::budget::{Budget, Refusal};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Connections served at once over all the page's listeners.
pub(crate) const MAX_CONNECTIONS: usize = 64;
/// Connections one client address may hold at once.
pub(crate) const MAX_PER_ADDRESS: usize = 16;
/// Largest request line and headers accepted (tiny-http, nginx and Apache
/// use 8 KiB lines; a browser's whole head is well under 4 KiB).
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// A client has this long to finish the TLS handshake, and again to send a
/// whole request head once its first byte has come.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// A request body must arrive whole within this.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// A kept-alive connection with no request in flight is closed after this.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A connection is closed after this long, busy or not.
const MAX_CONNECTION_TIME: Duration = Duration::from_secs(300);

/// Backend connection (its local port on loopback) → the client it
/// carries.
#[derive(Default)]
pub(crate) struct Peers(Mutex<HashMap<u16, SocketAddr>>);

impl Peers {
    /// The client behind a backend connection from `port`.
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

/// One listener of the page and where its requests go.
pub(crate) struct Entry {
    pub listener: TcpListener,
    /// TLS for an HTTPS listener.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The tiny-http listener on loopback that answers.
    pub backend: SocketAddr,
}

/// The running front.
pub(crate) struct Front {
    thread: JoinHandle<()>,
    stop: Arc<Notify>,
}

impl Front {
    /// Serves `entries` (bound already) on a thread of its own.
    pub(crate) fn start(entries: Vec<Entry>, peers: Arc<Peers>) -> std::io::Result<Front> {
        for e in &entries {
            e.listener.set_nonblocking(true)?;
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let stop = Arc::new(Notify::new());
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("admin-front".into())
            .spawn(move || {
                runtime.block_on(serve(entries, peers, stopped));
                // Dropping the runtime ends connections still open.
            })?;
        Ok(Front { thread, stop })
    }

    /// Stops accepting, drops open connections and joins the thread.
    pub(crate) fn stop(self) {
        self.stop.notify_one();
        let _ = self.thread.join();
    }
}

async fn serve(entries: Vec<Entry>, peers: Arc<Peers>, stop: Arc<Notify>) {
    let budget = Budget::new(MAX_CONNECTIONS, MAX_PER_ADDRESS);
    let mut accepting = tokio::task::JoinSet::new();
    for entry in entries {
        let listener = match tokio::net::TcpListener::from_std(entry.listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "admin page: cannot use a listener");
                continue;
            }
        };
        let acceptor = entry.tls.map(tokio_rustls::TlsAcceptor::from);
        let (backend, peers, budget) = (entry.backend, peers.clone(), budget.clone());
        accepting.spawn(async move {
            loop {
                let (tcp, client) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of descriptors and the like: pause, not spin.
                        tracing::warn!(error = %e, "admin page: cannot accept");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let slot = match budget.take(client.ip()) {
                    Ok(slot) => slot,
                    Err(refusal) => {
                        refused(&budget, client, refusal);
                        continue; // dropping `tcp` closes it
                    }
                };
                let (acceptor, peers) = (acceptor.clone(), peers.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    let work = connection(tcp, client, acceptor, backend, &peers);
                    if let Err(why) = tokio::time::timeout(MAX_CONNECTION_TIME, work)
                        .await
                        .unwrap_or(Err("connection open too long"))
                    {
                        tracing::debug!(%client, why, "admin page: connection ended");
                    }
                });
            }
        });
    }
    stop.notified().await;
    accepting.shutdown().await;
}

fn refused(budget: &Budget, client: SocketAddr, refusal: Refusal) {
    if let pochta_net::throttle::Verdict::Log { unlogged } = budget.refused.event() {
        tracing::warn!(
            %client,
            unlogged,
            "admin page: {}: connection refused (logged once a minute)",
            refusal.reason()
        );
    }
}

/// One connection: the TLS handshake on an HTTPS listener, then requests.
async fn connection(
    tcp: TcpStream,
    client: SocketAddr,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    backend: SocketAddr,
    peers: &Peers,
) -> Result<(), &'static str> {
    // Replies come in pieces (see bind_backend in lib.rs): no Nagle waits.
    let _ = tcp.set_nodelay(true);
    match acceptor {
        None => relay(tcp, client, backend, peers).await,
        Some(acceptor) => {
            let tls = tokio::time::timeout(HEAD_TIMEOUT, acceptor.accept(tcp))
                .await
                .map_err(|_| "TLS handshake timed out")?
                .map_err(|e| {
                    pochta_net::throttle::tls_failed("admin", client, &e);
                    "TLS handshake failed"
                })?;
            relay(tls, client, backend, peers).await
        }
    }
}

/// Why the front stopped a client's requests: the status it answers with.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Rejected {
    pub status: u16,
    pub reason: &'static str,
}

impl Rejected {
    fn response(&self) -> String {
        let body = format!("{{\"error\": \"{}\"}}\n", self.reason);
        format!(
            "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            self.status,
            reason_phrase(self.status),
            body.len()
        )
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    }
}

/// Carries requests (checked) to the backend and its replies back.
async fn relay<S>(
    stream: S,
    client: SocketAddr,
    backend: SocketAddr,
    peers: &Peers,
) -> Result<(), &'static str>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let plain = TcpStream::connect(backend)
        .await
        .map_err(|_| "cannot reach the admin page's backend")?;
    let _ = plain.set_nodelay(true);
    let port = plain
        .local_addr()
        .map_err(|_| "backend connection has no address")?
        .port();
    peers.lock().insert(port, client);
    let _recorded = Recorded { peers, port };
    let (mut from_client, mut to_client) = tokio::io::split(stream);
    let (mut from_backend, mut to_backend) = plain.into_split();
    let rejected = {
        let up = async {
            let r = requests(&mut from_client, &mut to_backend).await;
            if r.is_ok() {
                // The client is done: the backend sees the end too.
                let _ = to_backend.shutdown().await;
            }
            r
        };
        let down = tokio::io::copy(&mut from_backend, &mut to_client);
        tokio::pin!(up, down);
        tokio::select! {
            r = &mut up => match r {
                Ok(()) => {
                    // Let the last reply finish.
                    let _ = tokio::time::timeout(HEAD_TIMEOUT, &mut down).await;
                    None
                }
                Err(rejected) => Some(rejected),
            },
            _ = &mut down => None,
        }
    };
    if let Some(rejected) = rejected {
        tracing::info!(%client, status = rejected.status, reason = rejected.reason, "admin page: request refused by the front");
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            to_client.write_all(rejected.response().as_bytes()),
        )
        .await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), to_client.shutdown()).await;
    Ok(())
}

/// Reads requests from the client and passes each on once its head is
/// whole and within bounds, then its body. Ends `Ok` when the client
/// closes or stays idle between requests.
async fn requests<R, W>(client: &mut R, backend: &mut W) -> Result<(), Rejected>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        // Wait for the next request.
        if buf.is_empty() {
            match tokio::time::timeout(IDLE_TIMEOUT, read_some(client, &mut buf)).await {
                Ok(Ok(0)) | Err(_) => return Ok(()),
                Ok(Ok(_)) => {}
                Ok(Err(())) => return Ok(()),
            }
        }
        let deadline = Instant::now() + HEAD_TIMEOUT;
        let head = loop {
            if let Some(head) = parse_head(&buf)? {
                break head;
            }
            match tokio::time::timeout_at(deadline, read_some(client, &mut buf)).await {
                Err(_) => {
                    return Err(Rejected {
                        status: 408,
                        reason: "the request did not arrive in time",
                    })
                }
                Ok(Ok(0)) | Ok(Err(())) => return Ok(()),
                Ok(Ok(_)) => {}
            }
        };
        backend
            .write_all(&buf[..head.len])
            .await
            .map_err(|_| backend_gone())?;
        buf.drain(..head.len);
        // The body, as many bytes as Content-Length says.
        let mut left = head.body;
        let deadline = Instant::now() + BODY_TIMEOUT;
        while left > 0 {
            if buf.is_empty() {
                match tokio::time::timeout_at(deadline, read_some(client, &mut buf)).await {
                    Err(_) => {
                        return Err(Rejected {
                            status: 408,
                            reason: "the request body did not arrive in time",
                        })
                    }
                    Ok(Ok(0)) | Ok(Err(())) => return Ok(()),
                    Ok(Ok(_)) => {}
                }
            }
            let n = buf.len().min(left);
            backend
                .write_all(&buf[..n])
                .await
                .map_err(|_| backend_gone())?;
            buf.drain(..n);
            left -= n;
        }
    }
}

fn backend_gone() -> Rejected {
    Rejected {
        status: 400,
        reason: "the page closed the connection",
    }
}

/// Reads what is there (at most a few KiB) into `buf`; 0 at end of input.
async fn read_some<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> Result<usize, ()> {
    let mut chunk = [0u8; 4096];
    let n = r.read(&mut chunk).await.map_err(|_| ())?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

/// A whole request head: its length in bytes and its body's.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub len: usize,
    pub body: usize,
}

/// The head at the start of `buf` once it is whole; `None` while more may
/// complete it. Refuses a head over [`MAX_HEAD`], one that does not parse,
/// a body sent in chunks (every browser sends a length) and a body over
/// the page's limit.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, Rejected> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD => len,
        Ok(httparse::Status::Complete(_)) => return Err(too_long()),
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(too_long()),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(too_long()),
        Err(_) => {
            return Err(Rejected {
                status: 400,
                reason: "the request does not parse as HTTP/1.1",
            })
        }
    };
    let mut body = None;
    for h in request.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Rejected {
                status: 411,
                reason: "send the body with a Content-Length",
            });
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or(Rejected {
                    status: 400,
                    reason: "bad Content-Length",
                })?;
            if body.is_some_and(|b| b != n) {
                return Err(Rejected {
                    status: 400,
                    reason: "two different Content-Length headers",
                });
            }
            body = Some(n);
        }
    }
    let body = body.unwrap_or(0);
    if body > crate::http::MAX_BODY {
        return Err(Rejected {
            status: 413,
            reason: "the request body is too large",
        });
    }
    Ok(Some(Head {
        len,
        body: body as usize,
    }))
}

fn too_long() -> Rejected {
    Rejected {
        status: 431,
        reason: "the request head is too long",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_head_with_its_body_length() {
        let req =
            b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n{\"a\":\"b\"}xyz";
        let head = parse_head(req).unwrap().unwrap();
        assert_eq!(&req[head.len..], b"{\"a\":\"b\"}xyz");
        assert_eq!(head.body, 12);
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap(), None);
    }

    #[test]
    fn a_head_without_end_is_refused_past_the_limit() {
        let mut req = b"GET /".to_vec();
        req.resize(MAX_HEAD, b'a');
        assert_eq!(
            parse_head(&req).unwrap(),
            None,
            "at the limit: wait for more"
        );
        req.push(b'a');
        assert_eq!(parse_head(&req).unwrap_err().status, 431);
        let mut headers = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..100 {
            headers.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        headers.extend_from_slice(b"\r\n");
        assert_eq!(
            parse_head(&headers).unwrap_err().status,
            431,
            "too many headers"
        );
    }

    #[test]
    fn bodies_need_one_length_within_the_page_limit() {
        let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(parse_head(chunked).unwrap_err().status, 411);
        let big = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            crate::http::MAX_BODY + 1
        );
        assert_eq!(parse_head(big.as_bytes()).unwrap_err().status, 413);
        let two = b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(parse_head(two).unwrap_err().status, 400);
        let signed = b"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n";
        assert_eq!(parse_head(signed).unwrap_err().status, 400);
        assert_eq!(
            parse_head(b"\x16\x03\x01 tls to a plain port\r\n\r\n")
                .unwrap_err()
                .status,
            400
        );
    }
}
