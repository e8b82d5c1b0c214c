//! Pochta's IMAP server (RFC 9051 / RFC 3501 IMAP4rev1) on 143 with
//! STARTTLS and 993 with implicit TLS: every mail client reads, organises
//! and syncs mail through it.
//!
//! Layout:
//! - [`Server`] and [`Context`]: accept loops, connection limit, shutdown,
//!   and the change notifier that tells sessions about new mail (IDLE);
//! - `session`: one connection's state (`State`: not authenticated,
//!   authenticated, selected) and the dispatch of each command;
//! - `selected`: a session's view of its selected folder (sequence numbers,
//!   untagged EXISTS/EXPUNGE/FETCH updates);
//! - `cmd/`: one file per command group;
//! - `extended`: ESEARCH and extended LIST, which the codec does not parse yet;
//! - `lex`, `nesting`, `searchres`: rewrites of a command before the codec
//!   parses it (deep search criteria rebalanced; `$`, the saved SEARCH
//!   result of RFC 5182);
//! - `mime`: ENVELOPE and BODYSTRUCTURE from the parsed message, and what
//!   the store's background indexer keeps of each message (search text and
//!   those structures, which FETCH then takes from the store);
//! - `thread`: RFC 5256 base subjects and threading, free of I/O;
//! - `utf7`: modified UTF-7 mailbox names for IMAP4rev1 sessions;
//! - `wire`: quoting strings and literals on the wire;
//! - [`parsers`]: the parsers above as plain functions, for the fuzz targets.
//!
//! Commands are framed by imap-codec's `Fragmentizer` (bounded message size,
//! literals) and parsed by its `CommandCodec`; responses are written by
//! `wire`. This crate never touches SQLite or files directly: all state goes
//! through the store.

mod cmd;
mod extended;
mod lex;
mod mime;
mod nesting;
pub mod parsers;
mod searchres;
mod selected;
mod session;
mod thread;
mod utf7;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use pochta_auth::Authenticator;
use pochta_config::Limits;
use pochta_maillog::MailLog;
use pochta_net::Conn;
use pochta_store::{AccountId, Store};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_rustls::TlsAcceptor;

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Port 143: plain until STARTTLS; no login before TLS.
    Imap,
    /// Port 993: TLS from the first byte (RFC 8314).
    Imaps,
}

impl Service {
    /// Name for logs and the ready file.
    pub fn name(self) -> &'static str {
        match self {
            Service::Imap => "imap",
            Service::Imaps => "imaps",
        }
    }
}

/// Everything IMAP sessions share.
pub struct Context {
    /// Announced host name.
    pub hostname: String,
    /// Protocol limits (line length, timeouts, message size).
    pub limits: Limits,
    /// The store.
    pub store: Store,
    /// The operator's mail log.
    pub maillog: Arc<MailLog>,
    /// TLS for STARTTLS and implicit TLS.
    pub tls: TlsAcceptor,
    /// Logins and the brute-force guard, shared with SMTP and POP3.
    pub auth: Arc<Authenticator>,
    /// Tells sessions which account's folders changed.
    changes: broadcast::Sender<AccountId>,
    budgets: pochta_net::Budgets,
    session_ids: pochta_net::SessionIds,
}

impl Context {
    /// Builds the context and installs the store's change hook, so that
    /// deliveries and other sessions' changes wake IDLE sessions.
    pub fn new(
        hostname: String,
        limits: Limits,
        store: Store,
        maillog: Arc<MailLog>,
        tls: TlsAcceptor,
        auth: Arc<Authenticator>,
    ) -> Context {
        let extractor = pochta_store::Extractor {
            structure_version: mime::STRUCTURE_VERSION,
            extract: Arc::new(mime::extract),
        };
        if let Err(e) = store.start_indexer(extractor) {
            // SEARCH and FETCH still work without the index, only slower.
            tracing::warn!(error = %e, "cannot start the search indexer");
        }
        let (changes, _) = broadcast::channel(1024);
        let hook_sender = changes.clone();
        store.set_change_hook(Arc::new(move |account| {
            // No receiver (no session) is fine.
            let _ = hook_sender.send(account);
        }));
        Context {
            hostname,
            budgets: pochta_net::Budgets::default(),
            limits,
            store,
            maillog,
            tls,
            auth,
            changes,
            session_ids: pochta_net::SessionIds::new("i"),
        }
    }

    fn session_id(&self) -> String {
        self.session_ids.next()
    }
}

/// Accept loops for the IMAP services.
pub struct Server {
    ctx: Arc<Context>,
    shutdown: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
}

impl Server {
    /// A server whose sessions end when `shutdown` turns true; `alive` is
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
            busy_reply: (service == Service::Imap).then(|| {
                "* BYE [UNAVAILABLE] Too many connections, try again later\r\n".to_string()
            }),
            address_busy_reply: (service == Service::Imap).then(|| {
                "* BYE [UNAVAILABLE] Too many connections from your address\r\n".to_string()
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
    peer: std::net::SocketAddr,
    service: Service,
    shutdown: watch::Receiver<bool>,
) {
    let timeout = Duration::from_secs(ctx.limits.command_timeout_secs);
    let implicit = service == Service::Imaps;
    let Some(stream) =
        pochta_net::open_stream(service.name(), tcp, peer, implicit, &ctx.tls, timeout).await
    else {
        return;
    };
    let conn = Conn::new(stream, timeout);
    session::Session::new(ctx, conn, peer, service, shutdown)
        .run()
        .await;
}
