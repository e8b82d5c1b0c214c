//! The LAN web admin page and its JSON API, served by tiny-http on its own
//! threads (not the mail services' async runtime).
//!
//! Layout:
//! - [`start`] binds the listeners and runs the workers; [`AdminServer::stop`]
//!   ends them;
//! - `routes`: who may ask (source address, session, CSRF token) and which
//!   handler answers;
//! - `login`: first-boot setup with the one-time code, login with password
//!   and TOTP, logout;
//! - `directory`: domains, their DNS records, accounts;
//! - `accounts`: one account (password, quota, offboarding, removal, app
//!   passwords, TOTP enrolment);
//! - `pages`: the server-rendered HTML (setup, enrolment, login, dashboard,
//!   DNS records), posting forms to the same handlers as the API;
//! - `access`: the LAN-only source address policy;
//! - `session`: server-side sessions with cookies and CSRF tokens;
//! - `setup_code`, `totp`: the one-time setup code, RFC 6238
//!   codes (password strength is the store's `check_password`);
//! - `http`: replies with the security headers, cookies, JSON bodies;
//! - `sentence`: a handler's or the store's message as a sentence for a
//!   page;
//! - `front`: every connection's first stop: HTTPS terminated with the
//!   workspace's rustls, request heads, bodies and idle times bounded,
//!   connections per address limited, then a loopback tiny-http listener;
//! - `clientsetup`: Thunderbird autoconfig, Outlook autodiscover (the only
//!   paths answered beyond the LAN), Apple `.mobileconfig`, per-account
//!   settings;
//! - `dnscheck`: the live check of a domain's records and of DNSBLs;
//! - `dashboard`, `queue`, `logsearch` (with `trace`), `security`,
//!   `aliases`: the operational pages' handlers; `health` checks services,
//!   disk space and the certificate;
//! - `backup`: the backup settings, runs started on a thread of their own,
//!   and the backup key behind the password and a code (`pochta-backup`
//!   does the work).
//!
//! - [`parsers`]: what reads request bytes (forms, cookies, JSON bodies,
//!   routes, autodiscover XML) as plain functions, for the fuzz targets.
//!
//! Knows nothing of the mail protocols.

mod access;
mod accounts;
mod aliases;
mod backup;
mod clientsetup;
mod dashboard;
mod directory;
mod dnscheck;
mod front;
mod health;
mod http;
mod keys;
mod login;
mod logsearch;
mod pages;
pub mod parsers;
mod queue;
mod routes;
mod security;
mod sentence;
mod session;
mod setup_code;
mod totp;
mod trace;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use pochta_auth::Authenticator;
use pochta_maillog::MailLog;
use pochta_store::Store;

pub use access::{lan_addresses, page_url, Access};
/// A time in the box's zone for people: `2026-11-28 05:20 UTC+05:30`.
pub use pages::local_time::when as local_time;
pub use setup_code::file as setup_code_file;

/// Worker threads per listener: a slow request (argon2id, RSA key
/// generation) does not hold up the others.
const WORKERS: usize = 2;

/// What went wrong starting the admin page.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// A listening address could not be bound.
    #[error("cannot listen on {addr} (admin.listen): {message}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why, with a hint for privileged ports.
        message: String,
    },
    /// The store could not say whether an administrator exists.
    #[error("admin page: {0}")]
    Store(#[from] pochta_store::StoreError),
    /// The setup code could not be written to the data folder.
    #[error("cannot write the setup code to {path}: {source}")]
    SetupCode {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What the admin page works with.
pub struct Context {
    /// Domains, accounts, administrators.
    pub store: Store,
    /// Where refused clients and logins are recorded.
    pub maillog: Arc<MailLog>,
    /// Shared with the mail protocols for its brute-force guard.
    pub auth: Arc<Authenticator>,
    /// The mail host name the DNS records point to.
    pub hostname: String,
    /// The data folder (for `setup-code.txt`).
    pub data: PathBuf,
    /// The `[admin]` section.
    pub config: pochta_config::Admin,
    /// The box's certificate for HTTPS (`admin.listen_tls`); `None` serves
    /// plain HTTP only.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Where the mail services actually listen (ports resolved), for the
    /// client setup files and page.
    pub listen: pochta_config::Listen,
    /// The `[dns]` section: the resolver of the live DNS check.
    pub dns: pochta_config::Dns,
    /// Each mail service's listening addresses (port 0 resolved), by its
    /// name in `serve.json` (`smtp`, `submission`, …); an empty list is a
    /// service turned off in `[listen]`. The dashboard connects to each.
    pub services: Vec<(&'static str, Vec<SocketAddr>)>,
    /// The TLS certificate (PEM), for its expiry date on the dashboard.
    pub tls_cert: PathBuf,
    /// The box's health checks (`pochta-system`), for the dashboard and
    /// `/api/health`.
    pub health: Arc<pochta_system::Health>,
    /// Alerts raised by the system part (mailed to the postmaster too).
    pub alerts: Option<Arc<pochta_system::Alerts>>,
    /// The privileged helper, which writes `admin.setup_code_copy` for a
    /// server that is not root (the boot partition is root's); `None`:
    /// written directly.
    pub helper: Option<Arc<pochta_privileged::Helper>>,
    /// Whether the box's clock can be believed (set from a time server
    /// lately, or not pochta's job); a refused TOTP code says when not.
    pub clock_trusted: Arc<AtomicBool>,
    /// The folders the server may write, when Landlock confines it (`None`:
    /// not confined): a backup folder chosen after the start is not among
    /// them until a restart. The page's runs are checked against it as the
    /// schedule's are, and the page says when a restart is due.
    pub backup_writable: Option<Vec<PathBuf>>,
}

impl State {
    /// The error for a refused TOTP code: `base`, and, while the box's
    /// clock is not known to be right, that it may be the clock's fault
    /// (TOTP codes are the time, RFC 6238 §4).
    pub(crate) fn totp_refused(&self, base: &str) -> String {
        if self.ctx.clock_trusted.load(Ordering::Acquire) {
            base.to_owned()
        } else {
            format!(
                "{base}. This box's clock has not been set from a time server yet and may be wrong, which makes every code look wrong (see the Clock check on the dashboard)"
            )
        }
    }
}

/// Everything a request handler reaches.
pub(crate) struct State {
    ctx: Context,
    access: Access,
    sessions: session::Sessions,
    /// The setup code while no administrator exists.
    setup_code: Mutex<Option<String>>,
    replay: totp::Replay,
    /// Who is behind each connection the HTTPS front forwards.
    peers: Arc<front::Peers>,
    /// Where the admin page itself listens, for the dashboard's check.
    admin_addrs: Vec<SocketAddr>,
    /// Where it listens for HTTPS (empty when it does not).
    admin_tls_addrs: Vec<SocketAddr>,
    /// The backups and test restores started on the page.
    backups: Arc<backup::PageRuns>,
}

/// The running admin page.
pub struct AdminServer {
    servers: Vec<Arc<tiny_http::Server>>,
    workers: Vec<JoinHandle<()>>,
    stopping: Arc<AtomicBool>,
    addrs: Vec<SocketAddr>,
    tls_addrs: Vec<SocketAddr>,
    front: Option<front::Front>,
}

/// Binds the loopback listener that tiny-http answers on, with
/// `TCP_NODELAY` (Linux hands it on to every accepted connection).
/// tiny-http writes a reply through a 1 KiB buffer, so any page over 1 KiB
/// leaves in two writes; with Nagle's algorithm the second waited for the
/// client's delayed ACK, and every such page took 40 ms longer than it
/// needed. Only the front connects to it (see [`front`]).
fn bind_backend() -> Result<(tiny_http::Server, SocketAddr), AdminError> {
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    let error = |e: &dyn std::fmt::Display| AdminError::Bind {
        addr,
        message: e.to_string(),
    };
    let listener = std::net::TcpListener::bind(addr).map_err(|e| error(&e))?;
    nix::sys::socket::setsockopt(&listener, nix::sys::socket::sockopt::TcpNoDelay, &true)
        .map_err(|e| error(&e))?;
    let bound = listener.local_addr().map_err(|e| error(&e))?;
    let server = tiny_http::Server::from_listener(listener, None).map_err(|e| error(&e))?;
    Ok((server, bound))
}

const PRIVILEGED_HINT: &str = " (ports below 1024 need root; set admin.listen in the config)";

/// Binds the page's listeners (the front serves them).
fn bind_public(addrs: &[SocketAddr]) -> Result<Vec<std::net::TcpListener>, AdminError> {
    let mut listeners = Vec::new();
    for &addr in addrs {
        let l = std::net::TcpListener::bind(addr).map_err(|e| AdminError::Bind {
            addr,
            message: format!(
                "{e}{}",
                if e.kind() == std::io::ErrorKind::PermissionDenied {
                    PRIVILEGED_HINT
                } else {
                    ""
                }
            ),
        })?;
        listeners.push(l);
    }
    Ok(listeners)
}

/// The bound addresses (port 0 resolved).
fn bound(listeners: &[std::net::TcpListener]) -> Vec<SocketAddr> {
    listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect()
}

/// The admin page's public sockets, bound (as root, on the appliance)
/// before anything else of it starts: `admin.listen` and, with a
/// certificate, `admin.listen_tls`.
pub struct Bound {
    plain: Vec<std::net::TcpListener>,
    tls: Vec<std::net::TcpListener>,
}

/// Binds the admin page's addresses; `tls` says whether HTTPS is served.
pub fn bind(config: &pochta_config::Admin, tls: bool) -> Result<Bound, AdminError> {
    Ok(Bound {
        plain: bind_public(&config.listen)?,
        tls: if tls {
            bind_public(&config.listen_tls)?
        } else {
            Vec::new()
        },
    })
}

/// Binds `ctx.config.listen` and `listen_tls` and starts serving. When no
/// administrator exists, a fresh setup code is made, logged and written to
/// the data folder.
pub fn start(ctx: Context) -> Result<AdminServer, AdminError> {
    let bound = bind(&ctx.config, ctx.tls.is_some())?;
    start_bound(ctx, bound)
}

/// Starts serving on sockets [`bind`] bound.
pub fn start_bound(ctx: Context, sockets: Bound) -> Result<AdminServer, AdminError> {
    // (tiny-http backend, whether it answers HTTPS)
    let mut servers = Vec::new();
    let mut entries = Vec::new();
    let plain = sockets.plain;
    let addrs = bound(&plain);
    if !plain.is_empty() {
        let (backend, backend_addr) = bind_backend()?;
        entries.extend(plain.into_iter().map(|listener| front::Entry {
            listener,
            tls: None,
            backend: backend_addr,
        }));
        servers.push((Arc::new(backend), false));
    }
    let mut tls_addrs = Vec::new();
    if let (Some(config), false) = (&ctx.tls, sockets.tls.is_empty()) {
        let listeners = sockets.tls;
        tls_addrs = bound(&listeners);
        let (backend, backend_addr) = bind_backend()?;
        let mut config = (**config).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);
        entries.extend(listeners.into_iter().map(|listener| front::Entry {
            listener,
            tls: Some(config.clone()),
            backend: backend_addr,
        }));
        servers.push((Arc::new(backend), true));
    }
    let setup_code = if ctx.store.has_admin()? {
        remove_setup_code(&ctx);
        None
    } else {
        let code = setup_code::generate();
        setup_code::write(&setup_code::file(&ctx.data), &code).map_err(|source| {
            AdminError::SetupCode {
                path: setup_code::file(&ctx.data),
                source,
            }
        })?;
        if let Some(copy) = &ctx.config.setup_code_copy {
            // A read-only or missing boot partition must not keep the box
            // from starting: the console and the data folder have the code.
            let written = match &ctx.helper {
                Some(helper) => helper.write_setup_copy(&setup_code::copy_text(&code)),
                None => setup_code::write_copy(copy, &code).map_err(|e| e.to_string()),
            };
            if let Err(e) = written {
                tracing::warn!(file = %copy.display(), error = %e, "cannot write the setup code's copy");
            }
        }
        tracing::warn!(
            setup_code = %code,
            file = %setup_code::file(&ctx.data).display(),
            "no administrator yet: {}",
            setup_invitation(&addrs, &tls_addrs)
        );
        Some(code)
    };
    let state = Arc::new(State {
        access: Access::new(&ctx.config),
        sessions: session::Sessions::new(
            Duration::from_secs(ctx.config.session_idle_minutes * 60),
            ctx.store.clone(),
        ),
        setup_code: Mutex::new(setup_code),
        replay: totp::Replay::default(),
        peers: Arc::new(front::Peers::default()),
        admin_addrs: addrs.clone(),
        admin_tls_addrs: tls_addrs.clone(),
        backups: Arc::default(),
        ctx,
    });
    let front =
        front::Front::start(entries, state.peers.clone()).map_err(|e| AdminError::Bind {
            addr: addrs
                .first()
                .or(tls_addrs.first())
                .copied()
                .unwrap_or(([0, 0, 0, 0], 0).into()),
            message: format!("cannot start the page's front: {e}"),
        })?;
    let stopping = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for (server, https) in &servers {
        for n in 0..WORKERS {
            let addr = server
                .server_addr()
                .to_ip()
                .unwrap_or(([0, 0, 0, 0], 0).into());
            let (server, state, stopping) = (server.clone(), state.clone(), stopping.clone());
            let https = *https;
            let worker = std::thread::Builder::new()
                .name(format!("admin-http{}-{n}", if https { "s" } else { "" }))
                .spawn(move || work(&server, &state, &stopping, https))
                .map_err(|e| AdminError::Bind {
                    addr,
                    message: format!("cannot start a thread: {e}"),
                })?;
            workers.push(worker);
        }
    }
    Ok(AdminServer {
        servers: servers.into_iter().map(|(s, _)| s).collect(),
        workers,
        stopping,
        addrs,
        tls_addrs,
        front: Some(front),
    })
}

/// Where to go for the first-boot setup, in words for the log: plain HTTP
/// first (it opens without a warning; the setup code is the secret and the
/// page is LAN-only), then HTTPS with what its certificate warning means.
fn setup_invitation(http: &[SocketAddr], https: &[SocketAddr]) -> String {
    let http = http.first().map(|a| page_url(*a, false));
    let https = https.first().map(|a| page_url(*a, true));
    match (http, https) {
        (Some(plain), Some(tls)) => format!(
            "open {plain} and enter the setup code (or {tls}: its certificate is the box's own \
             self-signed one, so the browser warns once before it opens)"
        ),
        (Some(plain), None) => format!("open {plain} and enter the setup code"),
        (None, Some(tls)) => format!(
            "open {tls} and enter the setup code (the certificate is the box's own \
             self-signed one, so the browser warns once)"
        ),
        (None, None) => "the admin page is turned off ([admin] listen is empty); \
                         turn it on to finish the setup"
            .into(),
    }
}

/// Removes the setup code's files once an administrator exists.
pub(crate) fn remove_setup_code(ctx: &Context) {
    setup_code::remove(&setup_code::file(&ctx.data));
    if let Some(copy) = &ctx.config.setup_code_copy {
        match &ctx.helper {
            Some(helper) => {
                if let Err(e) = helper.remove_setup_copy() {
                    tracing::warn!(file = %copy.display(), error = %e, "cannot remove the used setup code");
                }
            }
            None => setup_code::remove(copy),
        }
    }
}

fn work(server: &tiny_http::Server, state: &State, stopping: &AtomicBool, https: bool) {
    loop {
        match server.recv() {
            Ok(request) => routes::handle(state, request, https),
            Err(_) if stopping.load(Ordering::SeqCst) => return,
            Err(e) => tracing::warn!(error = %e, "admin: cannot accept a request"),
        }
    }
}

impl AdminServer {
    /// The bound HTTP addresses (port 0 resolved).
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The bound HTTPS addresses (port 0 resolved).
    pub fn tls_addrs(&self) -> &[SocketAddr] {
        &self.tls_addrs
    }

    /// Stops accepting, lets requests in progress finish, and joins the
    /// worker threads.
    pub fn stop(self) {
        if let Some(front) = self.front {
            front.stop();
        }
        self.stopping.store(true, Ordering::SeqCst);
        for server in &self.servers {
            // Each unblock wakes one waiting worker.
            for _ in 0..WORKERS {
                server.unblock();
            }
        }
        for worker in self.workers {
            let _ = worker.join();
        }
    }
}
