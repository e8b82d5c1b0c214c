//! Service-level supervision: every listener runs as its own task; a task
//! that ended, or a service whose greeting check (`pochta-system`) failed
//! two rounds in a row, is restarted on the same socket without touching
//! the others (the socket was bound as root, once: the server cannot bind
//! ports below 1024 again, and the queue of waiting connections survives). Three restarts of one service within an hour raise an alert.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use pochta_maillog::MailLog;
use pochta_system::{Alerts, Health, State};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Starts a listener's accept loop as a task.
pub type Spawn = Arc<dyn Fn(TcpListener) -> JoinHandle<()> + Send + Sync>;

/// How often the supervisor looks.
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// Restarts of one service within [`RESTART_WINDOW_SECS`] that raise an alert.
const RESTARTS_ALERT: usize = 3;
const RESTART_WINDOW_SECS: i64 = 3600;

/// One listener: its service's name, address and running task.
pub struct Listener {
    pub service: &'static str,
    pub addr: SocketAddr,
    pub spawn: Spawn,
    pub task: JoinHandle<()>,
    /// The bound socket; each task accepts on a duplicate of it.
    pub socket: std::net::TcpListener,
}

/// A task's listener: a duplicate of the bound socket, for the runtime.
pub fn accepting(socket: &std::net::TcpListener) -> std::io::Result<TcpListener> {
    let dup = socket.try_clone()?;
    dup.set_nonblocking(true)?;
    TcpListener::from_std(dup)
}

/// The supervisor's inputs.
pub struct Supervisor {
    pub listeners: Vec<Listener>,
    pub health: Arc<Health>,
    pub alerts: Arc<Alerts>,
    pub maillog: Arc<MailLog>,
}

impl Supervisor {
    /// Runs until `stop` resolves; returns the listeners' tasks, for the
    /// shutdown to wait on.
    pub async fn run(
        mut self,
        mut stop: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Vec<JoinHandle<()>> {
        let mut restarted_at: HashMap<&'static str, i64> = HashMap::new();
        let mut history: HashMap<&'static str, Vec<i64>> = HashMap::new();
        let mut every = tokio::time::interval(LOOK_EVERY);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = &mut stop => break,
            }
            let report = self.health.report();
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            for l in &mut self.listeners {
                let why = if l.task.is_finished() {
                    Some("its task ended".to_owned())
                } else {
                    report
                        .check(&format!("service.{}", l.service))
                        .filter(|c| c.state == State::Failing)
                        // Failing in two rounds, and seen again by a round
                        // that ended after our last restart.
                        .filter(|c| report.checked_at - c.since >= report.interval_secs as i64)
                        .filter(|_| {
                            restarted_at.get(l.service).is_none_or(|&at| {
                                report.checked_at >= at + report.interval_secs as i64
                            })
                        })
                        .map(|c| format!("it stopped answering ({})", c.reason))
                };
                let Some(why) = why else {
                    continue;
                };
                restart(l, &why).await;
                self.maillog.service_restarted(l.service, &why);
                restarted_at.insert(l.service, now);
                let times = history.entry(l.service).or_default();
                times.retain(|&t| now - t < RESTART_WINDOW_SECS);
                times.push(now);
                if times.len() >= RESTARTS_ALERT {
                    self.alerts.event(
                        &format!("restarts-{}", l.service),
                        &format!("The {} service keeps stopping", l.service),
                        &format!(
                            "Pochta restarted the {} service {} times within an hour; the last time because {why}.",
                            l.service,
                            times.len()
                        ),
                        "Look at the mail log and the console for what stops it; restart the box if it goes on",
                        now,
                    );
                    times.clear();
                }
            }
        }
        self.listeners.into_iter().map(|l| l.task).collect()
    }
}

/// Stops the listener's task and starts it again on the same socket. A
/// failure is tried again at the next look, because the old task is then
/// finished.
async fn restart(l: &mut Listener, why: &str) {
    tracing::warn!(service = l.service, addr = %l.addr, "restarting the service: {why}");
    l.task.abort();
    let old = std::mem::replace(&mut l.task, tokio::spawn(async {}));
    let _ = old.await;
    // The socket bound at start, unless it no longer listens (closed from
    // outside, `ss -K`): then a new one on the same address, which works
    // for a port the server may still bind (1024 and up, once root is gone).
    let listening = nix::sys::socket::getsockopt(&l.socket, nix::sys::socket::sockopt::AcceptConn)
        .unwrap_or(false);
    if !listening {
        match std::net::TcpListener::bind(l.addr) {
            Ok(socket) => l.socket = socket,
            Err(e) => {
                tracing::error!(service = l.service, addr = %l.addr, error = %e, "cannot listen again; trying again soon");
                return;
            }
        }
    }
    match accepting(&l.socket) {
        Ok(listener) => {
            l.task = (l.spawn)(listener);
            tracing::info!(service = l.service, addr = %l.addr, "service restarted");
        }
        Err(e) => {
            tracing::error!(service = l.service, addr = %l.addr, error = %e, "cannot listen again; trying again soon");
        }
    }
}
