//! The box looking after itself: health checks, the hardware watchdog, the
//! clock, disk space, alerts and mDNS. `pochta serve` starts it beside the
//! services; no protocol crate imports it (they see only the store's
//! disk-space gate).
//!
//! Layout:
//! - `clock`: the SNTP client that keeps the clock set, and the last good
//!   time kept across power cuts;
//! - `health`: the model ([`Health`], [`Check`], [`Probe`], [`Finding`]);
//! - `probes`: the checks of this crate (services, store, disk,
//!   certificate, queue);
//! - `round`: the thread that runs every probe each `health_interval_secs`,
//!   writes `run/health.json` and hands the report to the alerts;
//! - `watchdog`: the hardware watchdog, fed while [`Liveness`] says the
//!   runtime and the store answer;
//! - `alerts`: raise, repeat, clear; to the postmaster's mailbox, an
//!   external address, the dashboard and the console;
//! - `grow`: the data partition grown to the end of the disk on first
//!   boot (`grow_data`);
//! - `lan`: the box's addresses and which are on the LAN (the admin
//!   page's rule too);
//! - `mdns`: `pochta.local` and the admin page announced on the LAN
//!   (RFC 6762, RFC 6763), with its `mdns` check.
//!
//! This crate must not depend on any protocol crate (smtp, imap, pop3,
//! admin).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pochta_maillog::MailLog;
use pochta_store::Store;

mod alerts;
pub mod clock;
mod grow;
pub mod health;
pub mod lan;
mod mdns;
mod probes;
mod round;
mod watchdog;

pub use alerts::{Alert, Alerts};
pub use grow::{grow_data, Grown};
pub use health::{Change, Check, Finding, Health, Probe, Report, State};
pub use probes::{certificate_expiry, dial_address};
pub use round::{health_file, read_report};
pub use watchdog::{Armed, Liveness};

/// Everything the system part needs from `pochta serve`.
pub struct Setup {
    /// `[system]`.
    pub config: pochta_config::System,
    /// `[dns]`, for the DNS probe.
    pub dns: pochta_config::Dns,
    /// The data folder.
    pub data: PathBuf,
    /// The store.
    pub store: Store,
    /// The operator's mail log.
    pub maillog: Arc<MailLog>,
    /// The box's mail host name.
    pub hostname: String,
    /// Each mail service by name with its bound addresses.
    pub services: Vec<(&'static str, Vec<SocketAddr>)>,
    /// The TLS certificate file the services present.
    pub tls_cert: PathBuf,
    /// The hardware watchdog (`[system] watchdog`), opened before the
    /// server gave up root; `None`: no watchdog.
    pub watchdog: Option<Armed>,
    /// The privileged helper, which sets the clock for a server that is not
    /// root; `None`: the clock is set directly (or not at all).
    pub helper: Option<Arc<pochta_privileged::Helper>>,
}

/// The running system part. Dropping it without [`System::stop`] (a crash
/// path) leaves the watchdog armed, on purpose.
pub struct System {
    health: Arc<Health>,
    alerts: Arc<Alerts>,
    liveness: Arc<Liveness>,
    clock: clock::Clock,
    round: round::Round,
    watchdog: watchdog::Watchdog,
    beat: Option<tokio::task::JoinHandle<()>>,
    mdns: Option<mdns::Mdns>,
    mdns_label: Option<String>,
    hostname: String,
}

impl System {
    /// Starts the health round, the watchdog and the alerts. Called on the
    /// services' runtime: a task of it beats for the watchdog.
    pub fn start(mut setup: Setup) -> Result<System, String> {
        let config = &setup.config;
        let interval = Duration::from_secs(config.health_interval_secs);
        let health = Arc::new(Health::new());
        let clock = clock::Clock::start(
            &setup.config,
            setup.store.clone(),
            setup.maillog.clone(),
            setup.helper.clone(),
        )?;
        let alerts = Arc::new(Alerts::new(
            setup.store.clone(),
            setup.maillog.clone(),
            setup.hostname.clone(),
            config,
        ));
        // The store is stuck when one of its calls has not returned for
        // three rounds and a minute: a busy disk is slow, not stuck.
        let liveness = Arc::new(Liveness::new(interval * 3 + Duration::from_secs(60)));
        liveness.runtime_beat();
        liveness.store_beat();
        let beat = tokio::runtime::Handle::try_current().ok().map(|rt| {
            let liveness = liveness.clone();
            rt.spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(1));
                loop {
                    every.tick().await;
                    liveness.runtime_beat();
                }
            })
        });
        let watchdog = match setup.watchdog.take() {
            Some(armed) => {
                let device = armed.path().display().to_string();
                let (watchdog, forced) = watchdog::Watchdog::start(armed, liveness.clone());
                if forced {
                    setup.maillog.watchdog_reset(&device);
                    alerts.event(
                        "watchdog-reset",
                        "Restart forced by the watchdog",
                        "The last restart was forced by the watchdog: Pochta had stopped answering, and the box restarted itself. Mail that was acknowledged before is safe.",
                        "Nothing to do if it does not happen again; if it does, report it with the mail log",
                        now(),
                    );
                }
                watchdog
            }
            None => watchdog::Watchdog::off(),
        };
        let mut probes = probes::standard(&setup, liveness.clone(), &clock);
        probes.push(Arc::new(watchdog.probe()));
        let reviewer = alerts.clone();
        let interval_secs = config.health_interval_secs as i64;
        let round = round::Round::start(
            health.clone(),
            probes,
            vec![Box::new(move |report: &Report| {
                reviewer.review(report, interval_secs, now())
            })],
            setup.data.clone(),
            interval,
        )?;
        Ok(System {
            health,
            clock,
            alerts,
            liveness,
            round,
            watchdog,
            beat,
            mdns: None,
            mdns_label: setup.config.mdns.clone(),
            hostname: setup.hostname.clone(),
        })
    }

    /// Announces `pochta.local` and the admin page over mDNS (when
    /// `[system] mdns` is set), once the admin page's ports are bound.
    pub fn announce(&mut self, admin_http: &[SocketAddr], admin_https: &[SocketAddr]) {
        let Some(label) = &self.mdns_label else {
            return;
        };
        let mdns = mdns::Mdns::start(mdns::Plan::new(
            label,
            &self.hostname,
            admin_http,
            admin_https,
        ));
        self.round.add(mdns.probe());
        self.mdns = Some(mdns);
    }

    /// Adds a check to the rounds from now on: the slot for the later
    /// areas (RAID, backups, updates).
    pub fn add_probe(&self, probe: Arc<dyn Probe>) {
        self.round.add(probe);
    }

    /// The shared health state (the admin page reads it).
    pub fn health(&self) -> Arc<Health> {
        self.health.clone()
    }

    /// The clock: its status (the skew for the dashboard) and whether it
    /// can be trusted.
    pub fn clock(&self) -> &clock::Clock {
        &self.clock
    }

    /// The alert pipeline (the dashboard lists active alerts; the services'
    /// supervisor raises restart alerts).
    pub fn alerts(&self) -> Arc<Alerts> {
        self.alerts.clone()
    }

    /// What keeps the watchdog fed.
    pub fn liveness(&self) -> Arc<Liveness> {
        self.liveness.clone()
    }

    /// A clean stop: the round ends, `run/health.json` goes, mDNS says
    /// goodbye, the time is saved, and the watchdog is disarmed with the magic close.
    pub fn stop(self) {
        self.round.stop();
        if let Some(mdns) = self.mdns {
            mdns.stop();
        }
        self.clock.stop();
        self.watchdog.stop();
        if let Some(beat) = self.beat {
            beat.abort();
        }
    }
}

/// Seconds since the epoch, by the system clock.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
