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
//! - `pages`: the server-rendered HTML (setup, enrolment, login, dashboard,
//!   DNS records), posting forms to the same handlers as the API;
//! - `access`: the LAN-only source address policy;
//! - `session`: server-side sessions with cookies and CSRF tokens;
//! - `setup_code`, `totp`, `password`: the one-time setup code, RFC 6238
//!   codes, password strength;
//! - `http`: replies with the security headers, cookies, JSON bodies;
//! - `dashboard`, `queue`, `logsearch` (with `trace`), `security`,
//!   `aliases`: the operational pages' handlers; `health` checks services,
//!   disk space and the certificate.
//!
//! Plain HTTP only for now; HTTPS will be terminated with the workspace's
//! rustls, not tiny-http's own TLS (it would pull a second TLS stack).
//! Knows nothing of the mail protocols.

mod access;
mod aliases;
mod dashboard;
mod directory;
mod health;
mod http;
mod login;
mod logsearch;
mod pages;
mod password;
mod queue;
mod routes;
mod security;
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

pub use access::Access;
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
    /// Each mail service's listening addresses (port 0 resolved), by its
    /// name in `serve.json` (`smtp`, `submission`, …); an empty list is a
    /// service turned off in `[listen]`. The dashboard connects to each.
    pub services: Vec<(&'static str, Vec<SocketAddr>)>,
    /// The TLS certificate (PEM), for its expiry date on the dashboard.
    pub tls_cert: PathBuf,
}

/// Everything a request handler reaches.
pub(crate) struct State {
    ctx: Context,
    access: Access,
    sessions: session::Sessions,
    /// The setup code while no administrator exists.
    setup_code: Mutex<Option<String>>,
    replay: totp::Replay,
    /// Cookies get `Secure` when the page is served over HTTPS (not yet).
    secure_cookies: bool,
    /// Where the admin page itself listens, for the dashboard's check.
    admin_addrs: Vec<SocketAddr>,
}

/// The running admin page.
pub struct AdminServer {
    servers: Vec<Arc<tiny_http::Server>>,
    workers: Vec<JoinHandle<()>>,
    stopping: Arc<AtomicBool>,
    addrs: Vec<SocketAddr>,
}

/// Binds `ctx.config.listen` and starts serving. When no administrator
/// exists, a fresh setup code is made, logged and written to the data
/// folder.
pub fn start(ctx: Context) -> Result<AdminServer, AdminError> {
    let mut servers = Vec::new();
    let mut addrs = Vec::new();
    for &addr in &ctx.config.listen {
        let server = tiny_http::Server::http(addr).map_err(|e| {
            let denied = e
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied);
            AdminError::Bind {
                addr,
                message: format!(
                    "{e}{}",
                    if denied {
                        " (ports below 1024 need root; set admin.listen in the config)"
                    } else {
                        ""
                    }
                ),
            }
        })?;
        addrs.push(server.server_addr().to_ip().unwrap_or(addr));
        servers.push(Arc::new(server));
    }
    let setup_code = if ctx.store.has_admin()? {
        setup_code::remove(&ctx.data);
        None
    } else {
        let code = setup_code::generate();
        setup_code::write(&ctx.data, &code).map_err(|source| AdminError::SetupCode {
            path: setup_code::file(&ctx.data),
            source,
        })?;
        let first = addrs.first().map(|a| a.to_string()).unwrap_or_default();
        tracing::warn!(
            setup_code = %code,
            file = %setup_code::file(&ctx.data).display(),
            "no administrator yet: open http://{first}/ and enter the setup code"
        );
        Some(code)
    };
    let state = Arc::new(State {
        access: Access::new(&ctx.config),
        sessions: session::Sessions::new(Duration::from_secs(ctx.config.session_idle_minutes * 60)),
        setup_code: Mutex::new(setup_code),
        replay: totp::Replay::default(),
        secure_cookies: false,
        admin_addrs: addrs.clone(),
        ctx,
    });
    let stopping = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for server in &servers {
        for n in 0..WORKERS {
            let (server, state, stopping) = (server.clone(), state.clone(), stopping.clone());
            let worker = std::thread::Builder::new()
                .name(format!("admin-http-{n}"))
                .spawn(move || work(&server, &state, &stopping))
                .map_err(|e| AdminError::Bind {
                    addr: addrs[0],
                    message: format!("cannot start a thread: {e}"),
                })?;
            workers.push(worker);
        }
    }
    Ok(AdminServer {
        servers,
        workers,
        stopping,
        addrs,
    })
}

fn work(server: &tiny_http::Server, state: &State, stopping: &AtomicBool) {
    loop {
        match server.recv() {
            Ok(request) => routes::handle(state, request),
            Err(_) if stopping.load(Ordering::SeqCst) => return,
            Err(e) => tracing::warn!(error = %e, "admin: cannot accept a request"),
        }
    }
}

impl AdminServer {
    /// The bound addresses (port 0 resolved).
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Stops accepting, lets requests in progress finish, and joins the
    /// worker threads.
    pub fn stop(self) {
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
