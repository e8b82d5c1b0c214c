//! The box looking after itself: health checks, the hardware watchdog, the
//! clock, disk space, alerts and mDNS. `pochta serve` starts it beside the
//! services; no protocol crate imports it (they see only the store's
//! disk-space gate).
//!
//! Layout:
//! - `clock`: the SNTP client that keeps the clock set, and the last good
//!   time kept across power cuts;
//! - `health`: the model ([`Health`], [`Check`], [`Probe`], [`Finding`]);
//! - `probes`: the checks of this crate (services, store, disk, certificate,
//!   queue, DNS);
//! - `round`: the thread that runs every probe each `health_interval_secs`,
//!   writes `run/health.json` and feeds changes to the alerts;
//!
//! This crate must not depend on any protocol crate (smtp, imap, pop3,
//! admin).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use pochta_maillog::MailLog;
use pochta_store::Store;

pub mod clock;
pub mod health;
mod probes;
mod round;

pub use health::{Change, Check, Finding, Health, Probe, Report, State};
pub use round::{health_file, read_report};

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
}

/// The running system part. Dropping it without [`System::stop`] (a crash
/// path) leaves the watchdog armed, on purpose.
pub struct System {
    health: Arc<Health>,
    clock: clock::Clock,
    round: round::Round,
}

impl System {
    /// Starts the health round (and with it everything that watches).
    pub fn start(setup: Setup) -> Result<System, String> {
        let health = Arc::new(Health::new());
        let clock = clock::Clock::start(&setup.config, setup.store.clone(), setup.maillog.clone())?;
        let probes = probes::standard(&setup, &clock);
        let round = round::Round::start(
            health.clone(),
            probes,
            Vec::new(),
            setup.data.clone(),
            std::time::Duration::from_secs(setup.config.health_interval_secs),
        )?;
        Ok(System {
            health,
            clock,
            round,
        })
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

    /// A clean stop: the round ends, `run/health.json` goes, the time is
    /// saved.
    pub fn stop(self) {
        self.round.stop();
        self.clock.stop();
    }
}

/// Seconds since the epoch, by the system clock.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
