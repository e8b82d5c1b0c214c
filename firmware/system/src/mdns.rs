//! mDNS: the box answers `<label>.local` (A and AAAA, RFC 6762) and
//! announces the admin page as `_http._tcp` and `_https._tcp` (DNS-SD,
//! RFC 6763), so that `http://pochta.local/` opens it from a laptop or a
//! phone on the office network.
//!
//! The responder is the `mdns-sd` crate, on its own thread; this module
//! decides what to announce ([`Plan`], no I/O), starts and stops the
//! responder ([`Mdns`]) and says how it stands ([`Announcing`], the `mdns`
//! check, whose verdict [`judge`] also makes without I/O).
//!
//! Only LAN addresses are announced, by the admin page's own rule
//! (private and link-local ranges): a phone given a public address for
//! `pochta.local` would be turned away by the admin page's access check.
//! mDNS itself never leaves the link (RFC 6762 §11).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mdns_sd::{DaemonEvent, IfKind, IfPredicate, RRType, ServiceDaemon, ServiceInfo};

use crate::health::{Finding, Probe};
use crate::lan::is_lan;

/// DNS-SD service type of a web page (RFC 6763 §7; IANA service names).
const HTTP: &str = "_http._tcp.local.";
/// DNS-SD service type of a web page over TLS.
const HTTPS: &str = "_https._tcp.local.";
/// An instance name is one DNS label: at most 63 bytes (RFC 6763 §4.1.1).
const INSTANCE_MAX: usize = 63;
/// Probing and the first announcement take about a second (RFC 6762 §8.1,
/// §8.3); until this long after the start, "not announced yet" is no news.
const GRACE: Duration = Duration::from_secs(10);
/// How long a clean stop waits for the goodbye packets (RFC 6762 §10.1).
const STOP_WAIT: Duration = Duration::from_secs(2);

/// What the box announces, decided from the configuration and the admin
/// page's bound addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The host name answered, fully qualified: `pochta.local.`.
    pub host: String,
    /// The DNS-SD services; none when the admin page is not on the network.
    pub adverts: Vec<Advert>,
}

/// One DNS-SD service instance (PTR, SRV and TXT records, RFC 6763 §4-6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Advert {
    /// The service type with its domain: `_http._tcp.local.`.
    pub service: &'static str,
    /// The instance name people see in a browser's list.
    pub instance: String,
    /// The admin page's port.
    pub port: u16,
}

impl Plan {
    /// `label` is `[system] mdns`; `box_name` the mail host name (it tells
    /// two boxes apart in a list); `http` and `https` the admin page's
    /// bound addresses.
    pub(crate) fn new(
        label: &str,
        box_name: &str,
        http: &[SocketAddr],
        https: &[SocketAddr],
    ) -> Plan {
        let instance = instance_name(box_name);
        let adverts = [(HTTP, http), (HTTPS, https)]
            .into_iter()
            .filter_map(|(service, addrs)| {
                Some(Advert {
                    service,
                    instance: instance.clone(),
                    port: reachable_port(addrs)?,
                })
            })
            .collect();
        Plan {
            host: format!("{label}.local."),
            adverts,
        }
    }

    /// The host name as people type it: `pochta.local`.
    pub(crate) fn name(&self) -> &str {
        self.host.trim_end_matches('.')
    }

    /// The addresses people open: `http://pochta.local/, https://…:8443/`.
    pub(crate) fn urls(&self) -> String {
        let urls: Vec<String> = self
            .adverts
            .iter()
            .map(|a| {
                let (scheme, default) = if a.service == HTTPS {
                    ("https", 443)
                } else {
                    ("http", 80)
                };
                if a.port == default {
                    format!("{scheme}://{}/", self.name())
                } else {
                    format!("{scheme}://{}:{}/", self.name(), a.port)
                }
            })
            .collect();
        urls.join(", ")
    }
}

/// "Pochta mail server (mail.example.com)", cut to one label's length.
fn instance_name(box_name: &str) -> String {
    let mut name = format!("Pochta mail server ({box_name})");
    if name.len() > INSTANCE_MAX {
        let mut end = INSTANCE_MAX - 1;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
        name.push(')');
    }
    name
}

/// The port of the first address another machine can reach: an address
/// bound to all interfaces or to a LAN one, not to loopback.
fn reachable_port(addrs: &[SocketAddr]) -> Option<u16> {
    addrs
        .iter()
        .find(|a| a.ip().is_unspecified() || is_lan(a.ip()))
        .map(|a| a.port())
}

/// The box's LAN addresses now (see [`crate::lan`]).
fn lan_addresses() -> Vec<IpAddr> {
    crate::lan::addresses()
        .into_iter()
        .filter(|ip| is_lan(*ip))
        .collect()
}

/// What the responder has said since it started; the `mdns` check reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Announcing {
    /// The responder could not start or register, and why.
    pub failure: Option<String>,
    /// At least one announcement went out on an interface.
    pub announced: bool,
    /// Another device held the name; the box answers under this one
    /// instead (RFC 6762 §9).
    pub renamed: Option<String>,
}

/// The running responder. [`Mdns::stop`] says goodbye (records with TTL 0,
/// RFC 6762 §10.1) so that phones forget the box at once.
pub(crate) struct Mdns {
    plan: Plan,
    started: Instant,
    state: Arc<Mutex<Announcing>>,
    running: Option<Running>,
}

struct Running {
    daemon: ServiceDaemon,
    stop: Arc<AtomicBool>,
    watcher: JoinHandle<()>,
}

impl Mdns {
    /// Starts answering as `plan` says. Never fails: what went wrong is
    /// logged and shown by the `mdns` check.
    pub(crate) fn start(plan: Plan) -> Mdns {
        let state = Arc::new(Mutex::new(Announcing::default()));
        let running = if plan.adverts.is_empty() {
            tracing::warn!(
                host = plan.name(),
                "mDNS is on, but the admin page listens on no network address: nothing announced"
            );
            None
        } else {
            match respond(&plan, state.clone()) {
                Ok(running) => {
                    tracing::info!(
                        host = plan.name(),
                        addresses = ?lan_addresses(),
                        "mDNS: answering {} and announcing the admin page at {}",
                        plan.name(),
                        plan.urls()
                    );
                    Some(running)
                }
                Err(e) => {
                    tracing::error!(host = plan.name(), error = %e, "mDNS is OFF");
                    lock(&state).failure = Some(e.to_string());
                    None
                }
            }
        };
        Mdns {
            plan,
            started: Instant::now(),
            state,
            running,
        }
    }

    /// The `mdns` health check, reading this responder's state.
    pub(crate) fn probe(&self) -> Arc<dyn Probe> {
        Arc::new(MdnsCheck {
            plan: self.plan.clone(),
            started: self.started,
            state: self.state.clone(),
        })
    }

    /// Goodbyes, then the responder's thread ends; bounded by [`STOP_WAIT`].
    pub(crate) fn stop(self) {
        let Some(running) = self.running else {
            return;
        };
        match running.daemon.shutdown() {
            Ok(done) => {
                if done.recv_timeout(STOP_WAIT).is_err() {
                    tracing::warn!("mDNS responder did not stop within {STOP_WAIT:?}");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot stop the mDNS responder"),
        }
        running.stop.store(true, Ordering::Release);
        let _ = running.watcher.join();
    }
}

/// Why the responder is not running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum MdnsError {
    /// The responder's thread or sockets could not be set up.
    #[error("cannot start the mDNS responder: {0}")]
    Start(mdns_sd::Error),
    /// The thread that watches the responder could not be started.
    #[error("cannot start the mDNS event thread: {0}")]
    Thread(std::io::Error),
    /// A record was refused (a name too long, a bad character).
    #[error("cannot announce {what}: {error}")]
    Record {
        /// The service instance or host name.
        what: String,
        /// What the responder said.
        error: mdns_sd::Error,
    },
}

/// Starts the responder; one that cannot be set up is stopped again.
fn respond(plan: &Plan, state: Arc<Mutex<Announcing>>) -> Result<Running, MdnsError> {
    let daemon = ServiceDaemon::new().map_err(MdnsError::Start)?;
    match announce(&daemon, plan, state) {
        Ok((stop, watcher)) => Ok(Running {
            daemon,
            stop,
            watcher,
        }),
        Err(e) => {
            let _ = daemon.shutdown();
            Err(e)
        }
    }
}

/// Loopback and non-LAN addresses off, one service per advert with the
/// host's addresses filled in (and kept up to date) by the responder, and
/// a thread that watches its events.
fn announce(
    daemon: &ServiceDaemon,
    plan: &Plan,
    state: Arc<Mutex<Announcing>>,
) -> Result<(Arc<AtomicBool>, JoinHandle<()>), MdnsError> {
    // Commands run in order: the interfaces are chosen before anything is
    // registered.
    let not_lan = IfPredicate::new(|i| i.is_loopback() || !is_lan(i.ip()));
    daemon
        .disable_interface(IfKind::Predicate(not_lan))
        .map_err(MdnsError::Start)?;
    let events = daemon.monitor().map_err(MdnsError::Start)?;
    for advert in &plan.adverts {
        let refused = |error| MdnsError::Record {
            what: format!("{} on {}", advert.service, plan.host),
            error,
        };
        let info = ServiceInfo::new(
            advert.service,
            &advert.instance,
            &plan.host,
            "",
            advert.port,
            &[("path", "/")][..],
        )
        .map_err(refused)?
        .enable_addr_auto();
        daemon.register(info).map_err(refused)?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let watching = stop.clone();
    let watcher = std::thread::Builder::new()
        .name("mdns-events".into())
        .spawn(move || watch(events, state, watching))
        .map_err(MdnsError::Thread)?;
    Ok((stop, watcher))
}

/// Keeps [`Announcing`] up to date from the responder's events until told
/// to stop or the responder is gone.
fn watch(
    events: mdns_sd::Receiver<DaemonEvent>,
    state: Arc<Mutex<Announcing>>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Acquire) {
        let event = match events.recv_timeout(Duration::from_millis(500)) {
            Ok(event) => event,
            Err(mdns_sd::RecvTimeoutError::Timeout) => continue,
            Err(mdns_sd::RecvTimeoutError::Disconnected) => return,
        };
        match event {
            DaemonEvent::Announce(service, on) => {
                tracing::debug!(%service, %on, "mDNS announced");
                lock(&state).announced = true;
            }
            DaemonEvent::NameChange(change) => {
                tracing::warn!(
                    from = %change.original,
                    to = %change.new_name,
                    "mDNS: another device on the network holds the name; answering under a new one"
                );
                if matches!(change.rr_type, RRType::A | RRType::AAAA) {
                    lock(&state).renamed = Some(change.new_name.trim_end_matches('.').to_owned());
                }
            }
            DaemonEvent::Error(e) => {
                tracing::warn!(error = %e, "mDNS responder");
                lock(&state).failure = Some(e.to_string());
            }
            DaemonEvent::IpAdd(ip) => tracing::debug!(%ip, "mDNS: address added"),
            DaemonEvent::IpDel(ip) => tracing::debug!(%ip, "mDNS: address gone"),
            _ => {}
        }
    }
}

fn lock(state: &Mutex<Announcing>) -> std::sync::MutexGuard<'_, Announcing> {
    // Every update is a plain field write: a panic elsewhere leaves the
    // state whole.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The `mdns` check.
struct MdnsCheck {
    plan: Plan,
    started: Instant,
    state: Arc<Mutex<Announcing>>,
}

impl Probe for MdnsCheck {
    fn id(&self) -> String {
        "mdns".into()
    }
    fn title(&self) -> String {
        format!("Name on the network ({})", self.plan.name())
    }
    fn check(&self) -> Finding {
        let state = lock(&self.state).clone();
        judge(&self.plan, &state, self.started.elapsed(), &lan_addresses())
    }
}

/// How mDNS stands, from what the responder said (`state`), how long it
/// has run and the box's LAN addresses now.
pub(crate) fn judge(
    plan: &Plan,
    state: &Announcing,
    running_for: Duration,
    lan: &[IpAddr],
) -> Finding {
    let name = plan.name();
    let by_address = "Open the admin page by the box's address instead (shown on the console)";
    if plan.adverts.is_empty() {
        return Finding::warning(
            format!("{name} is not announced: the admin page listens on no network address"),
            "Set [admin] listen to an address on the network (such as 0.0.0.0:80), or turn mDNS off with [system] mdns",
        );
    }
    if let Some(failure) = &state.failure {
        return Finding::warning(
            format!("{name} is not announced: {failure}"),
            format!("Restart the box; if it stays, turn mDNS off ([system] mdns). {by_address}"),
        );
    }
    if lan.is_empty() {
        return Finding::warning(
            format!("{name} is not announced: the box has no address on the office network"),
            "Connect the network cable and check that the router gives out addresses (DHCP)",
        );
    }
    let addresses: Vec<String> = lan.iter().map(IpAddr::to_string).collect();
    let addresses = addresses.join(", ");
    if let Some(new_name) = &state.renamed {
        return Finding::warning(
            format!("Another device on the network is already called {name}; this box answers as {new_name} ({addresses})"),
            format!("Rename the other device, or give this box another name in [system] mdns. Until then use {new_name}"),
        );
    }
    if !state.announced {
        if running_for < GRACE {
            return Finding::ok(format!("Announcing {name} on {addresses}"));
        }
        return Finding::warning(
            format!(
                "{name} has not been announced on {addresses}; the network may block multicast"
            ),
            format!("Check that the switch or Wi-Fi lets multicast (mDNS) through. {by_address}"),
        );
    }
    Finding::ok(format!(
        "{name} answers with {addresses}; the admin page is at {}",
        plan.urls()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn plan_announces_both_admin_ports_under_the_label() {
        let plan = Plan::new(
            "pochta",
            "mail.example.com",
            &addrs(&["0.0.0.0:80", "[::]:80"]),
            &addrs(&["0.0.0.0:8443"]),
        );
        assert_eq!(plan.host, "pochta.local.");
        assert_eq!(plan.name(), "pochta.local");
        assert_eq!(
            plan.adverts,
            vec![
                Advert {
                    service: "_http._tcp.local.",
                    instance: "Pochta mail server (mail.example.com)".into(),
                    port: 80,
                },
                Advert {
                    service: "_https._tcp.local.",
                    instance: "Pochta mail server (mail.example.com)".into(),
                    port: 8443,
                },
            ]
        );
        assert_eq!(
            plan.urls(),
            "http://pochta.local/, https://pochta.local:8443/"
        );
    }

    #[test]
    fn loopback_only_admin_addresses_are_not_announced() {
        // A development box: the admin page on loopback, HTTPS off.
        let plan = Plan::new(
            "pochta",
            "mx",
            &addrs(&["127.0.0.1:8080", "[::1]:8080"]),
            &[],
        );
        assert!(plan.adverts.is_empty());
        // A LAN address is reachable; a loopback one before it is skipped.
        let plan = Plan::new(
            "box",
            "mx",
            &addrs(&["127.0.0.1:8080", "192.168.1.20:8081"]),
            &addrs(&["203.0.113.7:443"]),
        );
        assert_eq!(plan.adverts.len(), 1);
        assert_eq!(plan.adverts[0].port, 8081);
        assert_eq!(plan.urls(), "http://box.local:8081/");
    }

    #[test]
    fn instance_names_fit_one_label() {
        let long = format!("{}.example.com", "a".repeat(80));
        let name = instance_name(&long);
        assert_eq!(name.len(), INSTANCE_MAX);
        assert!(name.starts_with("Pochta mail server (aaa"), "{name}");
        assert!(name.ends_with(')'), "{name}");
        // Cut on a character boundary, never inside one.
        let name = instance_name(&"я".repeat(40));
        assert!(name.len() <= INSTANCE_MAX, "{name}");
        assert!(name.ends_with(')'), "{name}");
    }

    #[test]
    fn lan_means_private_and_link_local() {
        for ip in [
            "10.77.0.1",
            "192.168.1.2",
            "172.16.0.1",
            "169.254.3.4",
            "fd00::1",
            "fe80::1",
        ] {
            assert!(is_lan(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["127.0.0.1", "::1", "8.8.8.8", "2001:db8::1", "0.0.0.0"] {
            assert!(!is_lan(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn judge_tells_what_is_wrong_and_what_to_do() {
        use crate::health::State;
        let plan = Plan::new("pochta", "mx", &addrs(&["0.0.0.0:80"]), &[]);
        let lan = ips(&["192.168.1.20"]);
        let fine = Announcing {
            announced: true,
            ..Announcing::default()
        };
        let started = Duration::from_secs(1);
        let later = Duration::from_secs(60);

        let f = judge(&plan, &fine, later, &lan);
        assert_eq!(f.state, State::Ok);
        assert_eq!(
            f.reason,
            "pochta.local answers with 192.168.1.20; the admin page is at http://pochta.local/"
        );

        // Not announced yet: fine just after the start, a warning later.
        let quiet = Announcing::default();
        assert_eq!(judge(&plan, &quiet, started, &lan).state, State::Ok);
        let f = judge(&plan, &quiet, later, &lan);
        assert_eq!(f.state, State::Warning);
        assert!(f.fix.contains("multicast"), "{}", f.fix);

        let f = judge(&plan, &fine, later, &[]);
        assert_eq!(f.state, State::Warning);
        assert!(
            f.reason.contains("no address on the office network"),
            "{}",
            f.reason
        );

        let failed = Announcing {
            failure: Some("cannot start the mDNS responder: no sockets".into()),
            ..Announcing::default()
        };
        let f = judge(&plan, &failed, later, &lan);
        assert_eq!(f.state, State::Warning);
        assert!(f.reason.contains("no sockets"), "{}", f.reason);
        assert!(f.fix.contains("[system] mdns"), "{}", f.fix);

        let renamed = Announcing {
            announced: true,
            renamed: Some("pochta-2.local".into()),
            ..Announcing::default()
        };
        let f = judge(&plan, &renamed, later, &lan);
        assert_eq!(f.state, State::Warning);
        assert!(
            f.reason.contains("answers as pochta-2.local"),
            "{}",
            f.reason
        );

        let nothing = Plan::new("pochta", "mx", &addrs(&["127.0.0.1:80"]), &[]);
        let f = judge(&nothing, &fine, later, &lan);
        assert_eq!(f.state, State::Warning);
        assert!(f.fix.contains("[admin] listen"), "{}", f.fix);
    }
}
