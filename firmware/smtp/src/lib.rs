//! Pochta's SMTP server: the MX service (port 25) that takes mail for local
//! domains, and submission (587 with STARTTLS, 465 with implicit TLS) for
//! authenticated users.
//!
//! Layout:
//! - `reply`: reply codes with enhanced status codes;
//! - `session`: one connection's state and the dispatch of each command;
//! - [`data`]: the DATA and BDAT decoders and the DATA encoder (sans-I/O,
//!   fuzzed);
//! - `cmd/`: one file per verb group (`ehlo`, `auth`, `envelope` for MAIL and
//!   RCPT, `data` for DATA and BDAT);
//! - [`Server`]: accept loops, the connection limit, graceful shutdown.
//!
//! Commands are parsed by `smtp-proto` (sans-I/O, Stalwart's parser) from
//! lines this crate has already bounded in length and time. Bodies stream to
//! a store blob and are committed before `250` (see the store crate); a
//! message is never held whole in memory. On the MX service, SPF is checked
//! at MAIL FROM and DKIM/ARC/DMARC after DATA (the filter crate), which may
//! refuse the message or route it to Junk; submission enforces each
//! account's sending limit at RCPT.
//!
//! - [`outbound`]: the queue worker that delivers queued mail to remote
//!   servers (MX lookup, SMTP client, retries, DSNs);
//! - [`mta_sts`]: MTA-STS policies (RFC 8461) the worker enforces;
//! - `autoreply`: the RFC 3834 auto-reply of a disabled account.

mod autoreply;
mod cmd;
pub mod data;
mod from_null;
pub mod mta_sts;
pub mod outbound;
pub mod reply;
mod session;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pochta_auth::Authenticator;
use pochta_config::Limits;
use pochta_maillog::MailLog;
use pochta_store::Store;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use pochta_net::Conn;

/// Which service a listener provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Port 25: mail for local recipients from anyone; no AUTH.
    Mx,
    /// Port 587: STARTTLS, then AUTH, then mail to anywhere.
    Submission,
    /// Port 465: like submission but TLS from the first byte (RFC 8314).
    Submissions,
}

impl Service {
    /// Name used in logs.
    pub fn name(self) -> &'static str {
        match self {
            Service::Mx => "smtp",
            Service::Submission => "submission",
            Service::Submissions => "submissions",
        }
    }

    fn is_submission(self) -> bool {
        self != Service::Mx
    }
}

/// Everything sessions share.
pub struct Context {
    /// Announced host name.
    pub hostname: String,
    /// Protocol limits.
    pub limits: Limits,
    /// The store.
    pub store: Store,
    /// The operator's mail log.
    pub maillog: Arc<MailLog>,
    /// TLS for STARTTLS and implicit TLS.
    pub tls: TlsAcceptor,
    /// Login checks and the brute-force guard, shared with IMAP and POP3.
    pub auth: Arc<Authenticator>,
    /// SPF/DKIM/ARC/DMARC checks of MX mail; none when not configured.
    pub inbound: Option<Arc<pochta_filter::Inbound>>,
    session_ids: pochta_net::SessionIds,
    budgets: pochta_net::Budgets,
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
            inbound: None,
            session_ids: pochta_net::SessionIds::new(""),
        }
    }

    /// Turns on the inbound checks of mail arriving on the MX service.
    pub fn with_inbound_checks(mut self, inbound: Arc<pochta_filter::Inbound>) -> Context {
        self.inbound = Some(inbound);
        self
    }

    /// The checker, when checks are on.
    pub(crate) fn checks(&self) -> Option<&Arc<pochta_filter::Inbound>> {
        self.inbound.as_ref().filter(|i| i.enabled())
    }

    fn session_id(&self) -> String {
        self.session_ids.next()
    }
}

/// Accept loops for the SMTP services, stopped together.
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
            busy_reply: (service != Service::Submissions).then(|| {
                reply::Reply::new(
                    421,
                    "4.7.0",
                    format!(
                        "{} Too many connections, try again later",
                        self.ctx.hostname
                    ),
                )
                .to_wire()
            }),
            address_busy_reply: (service != Service::Submissions).then(|| {
                reply::Reply::new(
                    421,
                    "4.7.0",
                    format!(
                        "{} Too many connections from your address",
                        self.ctx.hostname
                    ),
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
    let implicit = service == Service::Submissions;
    let Some(stream) =
        pochta_net::open_stream(service.name(), tcp, peer, implicit, &ctx.tls, timeout).await
    else {
        return;
    };
    let conn = Conn::new(stream, timeout);
    let session = session::Session::new(ctx, conn, peer, service, shutdown);
    session.run().await;
}
