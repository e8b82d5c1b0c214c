//! Pochta's POP3 server (RFC 1939): port 110 with STLS (RFC 2595) and port
//! 995 with implicit TLS (RFC 8314), CAPA (RFC 2449), SASL PLAIN (RFC 5034),
//! UIDL and TOP. The maildrop is the account's INBOX, as it was at login.
//!
//! Layout:
//! - `parse`: the sans-I/O command parser ([`parse::parse`]);
//! - `reply`: `+OK` / `-ERR [CODE]` status lines;
//! - `transfer`: a stored message as a dot-stuffed multi-line response,
//!   chunk by chunk (sans-I/O);
//! - `session`: one connection's state (`Authorization`, `Transaction`)
//!   and the dispatch of each command;
//! - `cmd/`: one file per verb group (`auth` for USER, PASS and AUTH, `capa`
//!   for CAPA and STLS, `maildrop` for STAT, LIST, UIDL, DELE, RSET and
//!   NOOP, `retr` for RETR and TOP, `quit` for QUIT and the UPDATE state);
//! - [`Server`]: accept loops, the connection limit, graceful shutdown.
//!
//! Logins go through `pochta-auth` (mail log, brute-force guard shared with
//! SMTP and IMAP); messages are read from the store's files in chunks,
//! never whole. Must not depend on SMTP or IMAP, nor on SQLite directly.

mod cmd;
pub mod parse;
pub mod reply;
mod session;
pub mod transfer;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pochta_auth::Authenticator;
use pochta_config::Limits;
use pochta_maillog::MailLog;
use pochta_net::Conn;
use pochta_store::{AccountId, Store};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

/// Which service a listener provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Port 110: plain until STLS; logins only after it.
    Pop3,
    /// Port 995: TLS from the first byte (RFC 8314).
    Pop3s,
}

impl Service {
    /// Name used in logs and in `run/serve.json`.
    pub fn name(self) -> &'static str {
        match self {
            Service::Pop3 => "pop3",
            Service::Pop3s => "pop3s",
        }
    }
}

/// Everything sessions share.
pub struct Context {
    /// Announced host name.
    pub hostname: String,
    /// Protocol limits (line length, timeout, connections, login failures).
    pub limits: Limits,
    /// The store.
    pub store: Store,
    /// The operator's mail log.
    pub maillog: Arc<MailLog>,
    /// TLS for STLS and implicit TLS.
    pub tls: TlsAcceptor,
    /// Login checks and the brute-force guard, shared with SMTP and IMAP.
    pub auth: Arc<Authenticator>,
    session_ids: pochta_net::SessionIds,
    /// POP3 connections, bounded by `limits.max_connections`.
    budgets: pochta_net::Budgets,
    /// Accounts whose maildrop a POP3 session holds (RFC 1939 §4).
    locked: Arc<Mutex<HashSet<AccountId>>>,
}

impl Context {
    /// Builds the shared context.
    pub fn new(
        hostname: String,
        limits: Limits,
        store: Store,
        maillog: Arc<MailLog>,
        tls: TlsAcceptor,
        auth: Arc<Authenticator>,
    ) -> Context {
        Context {
            hostname,
            budgets: pochta_net::Budgets::default(),
            limits,
            store,
            maillog,
            tls,
            auth,
            session_ids: pochta_net::SessionIds::new("p"),
            locked: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    fn session_id(&self) -> String {
        self.session_ids.next()
    }

    /// Takes the exclusive lock on an account's maildrop; `None` if another
    /// session holds it.
    fn lock_maildrop(&self, account: AccountId) -> Option<MaildropLock> {
        let mut locked = self.locked.lock().unwrap_or_else(|e| e.into_inner());
        locked.insert(account).then(|| MaildropLock {
            account,
            locked: self.locked.clone(),
        })
    }
}

/// Held by a session in the TRANSACTION state; dropping it unlocks.
pub(crate) struct MaildropLock {
    account: AccountId,
    locked: Arc<Mutex<HashSet<AccountId>>>,
}

impl Drop for MaildropLock {
    fn drop(&mut self) {
        let mut locked = self.locked.lock().unwrap_or_else(|e| e.into_inner());
        locked.remove(&self.account);
    }
}

/// Accept loops for the POP3 services, stopped together.
pub struct Server {
    ctx: Arc<Context>,
    shutdown: watch::Receiver<bool>,
    /// Each session holds a clone; when all are dropped, sessions are done.
    alive: mpsc::Sender<()>,
}

impl Server {
    /// A server whose sessions end when `shutdown` turns true. `alive` is
    /// cloned into every session so the caller can wait for them to drain.
    pub fn new(
        ctx: Arc<Context>,
        shutdown: watch::Receiver<bool>,
        alive: mpsc::Sender<()>,
    ) -> Server {
        Server {
            ctx,
            shutdown,
            alive,
        }
    }

    /// Serves one bound listener until shutdown.
    pub async fn run(&self, listener: TcpListener, service: Service) {
        let listening = pochta_net::Listening {
            name: service.name(),
            shutdown: self.shutdown.clone(),
            alive: self.alive.clone(),
            budget: self.ctx.budgets.of(
                service.name(),
                self.ctx.limits.max_connections,
                self.ctx.limits.max_connections_per_address,
            ),
            busy_reply: (service == Service::Pop3).then(|| {
                reply::Reply::err_code(
                    reply::Code::SysTemp,
                    "Too many connections, try again later",
                )
                .to_wire()
            }),
            address_busy_reply: (service == Service::Pop3).then(|| {
                reply::Reply::err_code(
                    reply::Code::SysTemp,
                    "Too many connections from your address",
                )
                .to_wire()
            }),
        };
        let (ctx, shutdown) = (self.ctx.clone(), self.shutdown.clone());
        pochta_net::accept_loop(listener, listening, move |tcp, peer| {
            serve_connection(ctx.clone(), tcp, peer, service, shutdown.clone())
        })
        .await;
    }
}

async fn serve_connection(
    ctx: Arc<Context>,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    service: Service,
    shutdown: watch::Receiver<bool>,
) {
    let timeout = Duration::from_secs(ctx.limits.command_timeout_secs);
    let implicit = service == Service::Pop3s;
    let Some(stream) =
        pochta_net::open_stream(service.name(), tcp, peer, implicit, &ctx.tls, timeout).await
    else {
        return;
    };
    let conn = Conn::new(stream, timeout);
    let session = session::Session::new(ctx, conn, peer, service, shutdown);
    session.run().await;
}
