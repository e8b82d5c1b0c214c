//! `pochta serve`: load the configuration, open the store, bind every
//! listener, announce readiness, and shut down gracefully on SIGTERM/SIGINT
//! (mini-redis `shutdown.rs`: a broadcast, then a bounded drain).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pochta_auth::Authenticator;
use pochta_config::{Config, PortSet};
use pochta_maillog::MailLog;
use pochta_smtp::{Context, Server, Service};
use pochta_store::Store;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

/// A listener's protocol and service.
#[derive(Clone, Copy)]
pub enum Proto {
    Smtp(Service),
    Imap(pochta_imap::Service),
    Pop3(pochta_pop3::Service),
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Proto::Smtp(s) => s.name(),
            Proto::Imap(s) => s.name(),
            Proto::Pop3(s) => s.name(),
        }
    }
}

/// The file that says a server runs on this data folder, and where.
pub fn ready_file(data: &Path) -> PathBuf {
    data.join("run").join("serve.json")
}

/// `run/serve.json`: written when every listener is bound, removed at a
/// clean stop. Tests, the console banner and `pochta status` read it; the
/// lock (`datadir`) says whether its server still runs.
#[derive(Debug, Serialize, Deserialize)]
pub struct ServeInfo {
    pub pid: u32,
    pub hostname: Option<String>,
    /// The mail services' bound addresses (ports chosen by the system
    /// filled in).
    #[serde(flatten)]
    pub listen: pochta_config::Listen,
    /// The admin page over HTTP.
    pub admin: Vec<SocketAddr>,
    /// The admin page over HTTPS.
    pub admin_tls: Vec<SocketAddr>,
    /// Who the server runs as and how it is confined.
    #[serde(default)]
    pub sandbox: Option<crate::privilege::Sandbox>,
}

impl ServeInfo {
    /// The file's contents, if it is there and readable.
    pub fn read(data: &Path) -> Option<ServeInfo> {
        let text = std::fs::read_to_string(ready_file(data)).ok()?;
        serde_json::from_str(&text).ok()
    }
}

pub fn serve(data: &Path, config_path: Option<&Path>) -> Result<(), String> {
    init_tracing();
    raise_open_files_limit();
    let root = nix::unistd::Uid::effective().is_root();
    let ports = if root {
        PortSet::Standard
    } else {
        PortSet::Unprivileged
    };
    let config = match config_path {
        Some(p) => Config::load(p, ports).map_err(|e| e.to_string())?,
        None => Config::embedded(ports),
    };
    // Started as root, the server runs as `pochta`: without that user it
    // does not start at all (never serving as root instead).
    let user = if root {
        Some(pochta_privileged::serving_user()?)
    } else {
        None
    };
    // Before anything is written: one server per data folder.
    let _lock = crate::datadir::lock_for_serving(data)?;
    // First boot on a card bigger than the image: the data partition takes
    // the rest of it, before the store is opened. A failure is only told:
    // the box works on the partition it has.
    if config.system.grow_data {
        match pochta_system::grow_data(data) {
            Ok(Some(g)) => tracing::info!(
                partition = %g.partition.display(),
                "the data partition grew from {} to {} (the rest of the disk)",
                pochta_config::format_size(g.before),
                pochta_config::format_size(g.after)
            ),
            Ok(None) => {}
            Err(e) => tracing::warn!("the data partition was not grown: {e}"),
        }
    }
    // What needs root, then root given up, before the first thread.
    if let Some(user) = &user {
        crate::privilege::hand_over(data, user)?;
    }
    let mut privileged = crate::privilege::acquire(&config, root)?;
    let sandbox = crate::privilege::give_up(data, user.as_ref(), privileged.helper.as_deref())?;
    if let Some(watchdog) = &mut privileged.watchdog {
        watchdog.feed_until_started();
    }
    let store = crate::datadir::open(data)?;
    let maillog = Arc::new(
        MailLog::open(&data.join("log").join("mail.log"))
            .map_err(|e| format!("cannot open the mail log: {e}"))?,
    );
    // Before anything reads the time (certificates are made and checked
    // below): a box without a clock battery wakes up in the past.
    pochta_system::clock::restore_clock(
        &store,
        &maillog,
        config.system.set_clock,
        privileged.helper.as_deref(),
    );
    let hostname = config.hostname.clone().unwrap_or_else(system_hostname);
    if let Some(problem) = pochta_filter::records::host_problem(&hostname) {
        tracing::warn!("{problem}; mail from other servers cannot reach this one until then");
    }
    let (tls, server_cert) = crate::tls::acceptor(
        data,
        &crate::tls::in_data(data, &config.tls.cert_file),
        &crate::tls::in_data(data, &config.tls.key_file),
        &hostname,
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        // Renewal of the box's own certificate, and a certificate put in
        // place by the owner, served without a restart: every few minutes,
        // and at once on SIGHUP (`systemctl reload pochta`).
        let refresh = tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let mut hangup = signal(SignalKind::hangup()).ok();
            let mut every = tokio::time::interval(crate::tls::CHECK_EVERY);
            every.tick().await;
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    Some(()) = async { hangup.as_mut()?.recv().await } => {
                        tracing::info!("SIGHUP: looking at the certificate files again");
                    }
                }
                let cert = server_cert.clone();
                let _ = tokio::task::spawn_blocking(move || cert.refresh()).await;
            }
        });
        let result = run(
            data, config, hostname, store, maillog, tls, privileged, sandbox,
        )
        .await;
        refresh.abort();
        result
    })
}

/// Binds the mail services' addresses (`[listen]`), before root is given up.
pub fn bind_mail(config: &Config) -> Result<Vec<(Proto, std::net::TcpListener)>, String> {
    let l = &config.listen;
    let services = [
        (Proto::Smtp(Service::Mx), "listen.smtp", &l.smtp),
        (
            Proto::Smtp(Service::Submission),
            "listen.submission",
            &l.submission,
        ),
        (
            Proto::Smtp(Service::Submissions),
            "listen.submissions",
            &l.submissions,
        ),
        (
            Proto::Imap(pochta_imap::Service::Imap),
            "listen.imap",
            &l.imap,
        ),
        (
            Proto::Imap(pochta_imap::Service::Imaps),
            "listen.imaps",
            &l.imaps,
        ),
        (
            Proto::Pop3(pochta_pop3::Service::Pop3),
            "listen.pop3",
            &l.pop3,
        ),
        (
            Proto::Pop3(pochta_pop3::Service::Pop3s),
            "listen.pop3s",
            &l.pop3s,
        ),
    ];
    let mut bound = Vec::new();
    for (proto, key, addrs) in services {
        for addr in addrs {
            let listener = std::net::TcpListener::bind(addr).map_err(|e| {
                let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
                    " (ports below 1024 need root; set unprivileged ports in the config)"
                } else {
                    ""
                };
                format!("cannot listen on {addr} ({key}): {e}{hint}")
            })?;
            bound.push((proto, listener));
        }
    }
    Ok(bound)
}

#[allow(clippy::too_many_arguments)]
async fn run(
    data: &Path,
    config: Config,
    hostname: String,
    store: Store,
    maillog: Arc<MailLog>,
    tls: tokio_rustls::TlsAcceptor,
    privileged: crate::privilege::Privileged,
    sandbox: crate::privilege::Sandbox,
) -> Result<(), String> {
    let crate::privilege::Privileged {
        mail: bound,
        admin: admin_bound,
        watchdog,
        helper,
    } = privileged;
    let (stop, shutdown) = watch::channel(false);
    let (alive, mut drained) = mpsc::channel::<()>(1);
    let auth = Arc::new(Authenticator::new(
        store.clone(),
        maillog.clone(),
        config.guard.clone(),
    ));
    // A resolver that cannot be set up (no /etc/resolv.conf yet) must not
    // stop the mail: the checks are off, loudly, until the next start.
    let inbound = if config.auth.checks {
        match pochta_filter::Inbound::new(&config.dns, &config.auth, &hostname) {
            Ok(i) => Some(Arc::new(i)),
            Err(e) => {
                tracing::error!(error = %e, "inbound checks (SPF, DKIM, DMARC) are OFF");
                None
            }
        }
    } else {
        None
    };
    // Domains from an older Pochta get their DKIM keys; RSA generation takes
    // a moment, so it does not hold up the listeners.
    let keys_store = store.clone();
    tokio::task::spawn_blocking(move || match pochta_filter::ensure_keys(&keys_store) {
        Ok(domains) if !domains.is_empty() => {
            tracing::info!(
                ?domains,
                "DKIM keys generated: publish them (pochta domain dns)"
            )
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "cannot generate DKIM keys"),
    });
    let mut smtp_context = Context::new(
        hostname.clone(),
        config.limits.clone(),
        store.clone(),
        maillog.clone(),
        tls.clone(),
        auth.clone(),
    );
    if let Some(inbound) = inbound {
        smtp_context = smtp_context.with_inbound_checks(inbound);
    }
    let smtp = Arc::new(Server::new(
        Arc::new(smtp_context),
        shutdown.clone(),
        alive.clone(),
    ));
    let imap = Arc::new(pochta_imap::Server::new(
        Arc::new(pochta_imap::Context::new(
            hostname.clone(),
            config.limits.clone(),
            store.clone(),
            maillog.clone(),
            tls.clone(),
            auth.clone(),
        )),
        shutdown.clone(),
        alive.clone(),
    ));
    let pop3 = Arc::new(pochta_pop3::Server::new(
        Arc::new(pochta_pop3::Context::new(
            hostname.clone(),
            config.limits.clone(),
            store.clone(),
            maillog.clone(),
            tls.clone(),
            auth.clone(),
        )),
        shutdown.clone(),
        alive.clone(),
    ));
    drop(alive);
    let listen = listening(&bound);
    // Every service by its name, with its bound addresses (none: turned
    // off), for the dashboard's up/down check.
    let services: Vec<(&'static str, Vec<SocketAddr>)> = listen
        .by_service()
        .into_iter()
        .map(|(name, addrs)| (name, addrs.to_vec()))
        .collect();
    // The box looking after itself: health checks (and the watchdog, the
    // clock, alerts, mDNS), beside the services.
    store.set_disk_limit(config.system.disk_refuse_percent);
    let mut system = pochta_system::System::start(pochta_system::Setup {
        config: config.system.clone(),
        dns: config.dns.clone(),
        data: data.to_owned(),
        store: store.clone(),
        maillog: maillog.clone(),
        hostname: hostname.clone(),
        services: services.clone(),
        tls_cert: crate::tls::in_data(data, &config.tls.cert_file),
        watchdog,
        // The helper lives as long as the server (kept below too): the
        // clock may be set with it, and later parts will ask it more.
        helper: helper.clone(),
    })?;
    // Backups: their health check always; the daily run when the schedule
    // is on. The schedule and the admin page's runs may write only the
    // folders Landlock let the server write when it started.
    system.add_probe(Arc::new(pochta_backup::BackupProbe::new(store.clone())));
    let confined_to = sandbox
        .landlock_missing
        .is_none()
        .then(|| sandbox.writable.clone());
    let backups = config.system.backup_schedule.then(|| {
        pochta_backup::Scheduler::start(
            store.clone(),
            maillog.clone(),
            Duration::from_secs(30),
            confined_to.clone(),
        )
    });
    // The admin page runs on its own threads; its listeners are bound here,
    // with the others, so that a taken port stops the start.
    let admin = pochta_admin::start_bound(
        pochta_admin::Context {
            store: store.clone(),
            maillog: maillog.clone(),
            auth: auth.clone(),
            hostname: hostname.clone(),
            data: data.to_owned(),
            config: config.admin.clone(),
            tls: Some(tls.config().clone()),
            listen: listen.clone(),
            dns: config.dns.clone(),
            services: services.clone(),
            tls_cert: crate::tls::in_data(data, &config.tls.cert_file),
            health: system.health(),
            alerts: Some(system.alerts()),
            clock_trusted: system.clock().trusted_flag(),
            helper: helper.clone(),
            backup_writable: confined_to,
        },
        admin_bound,
    )
    .map_err(|e| e.to_string())?;
    // mDNS announces the admin page's bound ports.
    system.announce(admin.addrs(), admin.tls_addrs());
    // The queue worker, signing mail from local domains with their DKIM
    // keys. A resolver that cannot be set up must not stop the mail coming
    // in: queued mail waits, loudly.
    let queue_worker = match pochta_smtp::outbound::Outbound::new(
        store.clone(),
        maillog.clone(),
        config.queue.clone(),
        &config.dns,
        hostname.clone(),
        Some(pochta_filter::signing_hook(store.clone())),
    ) {
        Ok(outbound) => Some(tokio::spawn(Arc::new(outbound).run(
            shutdown.clone(),
            Duration::from_secs(config.server.shutdown_grace_secs),
        ))),
        Err(e) => {
            tracing::error!(error = %e, "outbound delivery is OFF: mail stays queued");
            None
        }
    };
    let announce = ServeInfo {
        pid: std::process::id(),
        hostname: Some(hostname.clone()),
        listen,
        admin: admin.addrs().to_vec(),
        admin_tls: admin.tls_addrs().to_vec(),
        sandbox: Some(sandbox),
    };
    for addr in admin.addrs() {
        tracing::info!(service = "admin", %addr, "listening");
    }
    for addr in admin.tls_addrs() {
        tracing::info!(service = "admin-https", %addr, "listening");
    }
    let mut listeners = Vec::new();
    for (proto, socket) in bound {
        let addr: SocketAddr = socket.local_addr().map_err(|e| e.to_string())?;
        let listener = crate::supervise::accepting(&socket)
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        tracing::info!(service = proto.name(), %addr, "listening");
        let spawn: crate::supervise::Spawn = match proto {
            Proto::Smtp(service) => {
                let server = smtp.clone();
                Arc::new(move |l| {
                    let server = server.clone();
                    tokio::spawn(async move { server.run(l, service).await })
                })
            }
            Proto::Imap(service) => {
                let server = imap.clone();
                Arc::new(move |l| {
                    let server = server.clone();
                    tokio::spawn(async move { server.run(l, service).await })
                })
            }
            Proto::Pop3(service) => {
                let server = pop3.clone();
                Arc::new(move |l| {
                    let server = server.clone();
                    tokio::spawn(async move { server.run(l, service).await })
                })
            }
        };
        listeners.push(crate::supervise::Listener {
            service: proto.name(),
            addr,
            task: spawn(listener),
            spawn,
            socket,
        });
    }
    let mut stopping = shutdown.clone();
    let supervisor = tokio::spawn(
        crate::supervise::Supervisor {
            listeners,
            health: system.health(),
            alerts: system.alerts(),
            maillog: maillog.clone(),
        }
        .run(Box::pin(async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        })),
    );
    let ready = ready_file(data);
    let announce = serde_json::to_string(&announce).map_err(|e| e.to_string())?;
    write_ready_file(&ready, &announce)
        .map_err(|e| format!("cannot write {}: {e}", ready.display()))?;
    tracing::info!("pochta ready: {announce}");

    wait_for_signal().await;
    tracing::info!("shutting down: no new connections; waiting for sessions to finish");
    let _ = stop.send(true);
    // Joining the admin threads blocks: off the runtime.
    let admin_stopped = tokio::task::spawn_blocking(move || admin.stop());
    for t in supervisor.await.unwrap_or_default() {
        let _ = t.await;
    }
    if let Some(worker) = queue_worker {
        let _ = worker.await;
    }
    let _ = admin_stopped.await;
    let _ = tokio::task::spawn_blocking(move || system.stop()).await;
    if let Some(backups) = backups {
        backups.stop();
    }
    // Every session holds a clone of `alive`; recv() ends when all are gone.
    drop((smtp, imap, pop3));
    let grace = Duration::from_secs(config.server.shutdown_grace_secs);
    if tokio::time::timeout(grace, drained.recv()).await.is_err() {
        tracing::warn!(
            "sessions still running after {grace:?}; stopping anyway (committed mail is safe)"
        );
    }
    let _ = std::fs::remove_file(&ready);
    drop(helper);
    tracing::info!("stopped");
    Ok(())
}

/// Where the mail services listen, with ports the system chose (`:0`)
/// filled in: what the admin page's client setup files tell clients.
fn listening(bound: &[(Proto, std::net::TcpListener)]) -> pochta_config::Listen {
    let mut l = pochta_config::Listen {
        smtp: Vec::new(),
        submission: Vec::new(),
        submissions: Vec::new(),
        imap: Vec::new(),
        imaps: Vec::new(),
        pop3: Vec::new(),
        pop3s: Vec::new(),
    };
    for (proto, listener) in bound {
        let Ok(addr) = listener.local_addr() else {
            continue;
        };
        let list = match proto {
            Proto::Smtp(Service::Mx) => &mut l.smtp,
            Proto::Smtp(Service::Submission) => &mut l.submission,
            Proto::Smtp(Service::Submissions) => &mut l.submissions,
            Proto::Imap(pochta_imap::Service::Imap) => &mut l.imap,
            Proto::Imap(pochta_imap::Service::Imaps) => &mut l.imaps,
            Proto::Pop3(pochta_pop3::Service::Pop3) => &mut l.pop3,
            Proto::Pop3(pochta_pop3::Service::Pop3s) => &mut l.pop3s,
        };
        list.push(addr);
    }
    l
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the process can only be killed; run on.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}

/// Every connection is a descriptor: the soft limit (1024 on most systems)
/// would run out long before the services' budgets, and an accept that
/// fails with EMFILE fails for every service at once. The soft limit goes
/// up to the hard one, which an unprivileged process may always do.
fn raise_open_files_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::debug!(from = soft, to = hard, "open files limit raised"),
            Err(e) => tracing::warn!(error = %e, soft, hard, "cannot raise the open files limit"),
        },
        Ok((soft, _)) => tracing::debug!(limit = soft, "open files limit"),
        Err(e) => tracing::warn!(error = %e, "cannot read the open files limit"),
    }
}

fn write_ready_file(path: &Path, content: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{content}\n"))?;
    std::fs::rename(&tmp, path)
}

/// The log's filter when `POCHTA_LOG` does not set one. rustls logs what
/// any client can provoke (an odd SNI, an alert) as warnings, one line per
/// connection; the services count failed handshakes and log them once a
/// minute instead (`pochta_net::throttle`).
const DEFAULT_LOG: &str = "info,rustls=error";

pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("POCHTA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

pub fn system_hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_lowercase())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
