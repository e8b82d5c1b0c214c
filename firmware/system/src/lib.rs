//! The box looking after itself: health checks, the hardware watchdog, the
//! clock, disk space, alerts and mDNS. `pochta serve` starts it beside the
//! services; no protocol crate imports it (they see only the store's
//! disk-space gate).
//!
//! Layout:
//! - `health`: the model ([`Health`], [`Check`], [`Probe`], [`Finding`]);
//! - `probes`: the checks of this crate (services, store, disk, certificate,
//!   queue, DNS);
//! - `round`: the thread that runs every probe each `health_interval_secs`,
//!   writes `run/health.json` and feeds changes to the alerts;
//! - `mdns`: `pochta.local` and the admin page announced on the LAN
//!   (RFC 6762, RFC 6763), with its `mdns` check;
//!
//! This crate must not depend on any protocol crate (smtp, imap, pop3,
//! admin).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use pochta_maillog::MailLog;
use pochta_store::Store;

pub mod health;
mod mdns;
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
    /// The admin page's bound HTTP addresses (mDNS announces the port).
    pub admin_http: Vec<SocketAddr>,
    /// The admin page's bound HTTPS addresses.
    pub admin_https: Vec<SocketAddr>,
}

/// The running system part. Dropping it without [`System::stop`] (a crash
/// path) leaves the watchdog armed, on purpose.
pub struct System {
    health: Arc<Health>,
    round: round::Round,
    mdns: Option<mdns::Mdns>,
}

impl System {
    /// Starts the health round (and with it everything that watches).
    pub fn start(setup: Setup) -> Result<System, String> {
        let health = Arc::new(Health::new());
        let mut probes = probes::standard(&setup);
        let mdns = setup.config.mdns.as_deref().map(|label| {
            mdns::Mdns::start(mdns::Plan::new(
                label,
                &setup.hostname,
                &setup.admin_http,
                &setup.admin_https,
            ))
        });
        if let Some(mdns) = &mdns {
            probes.push(mdns.probe());
        }
        let round = match round::Round::start(
            health.clone(),
            probes,
            Vec::new(),
            setup.data.clone(),
            std::time::Duration::from_secs(setup.config.health_interval_secs),
        ) {
            Ok(round) => round,
            Err(e) => {
                if let Some(mdns) = mdns {
                    mdns.stop();
                }
                return Err(e);
            }
        };
        Ok(System {
            health,
            round,
            mdns,
        })
    }

    /// The shared health state (the admin page reads it).
    pub fn health(&self) -> Arc<Health> {
        self.health.clone()
    }

    /// A clean stop: the round ends, `run/health.json` goes, mDNS says
    /// goodbye.
    pub fn stop(self) {
        self.round.stop();
        if let Some(mdns) = self.mdns {
            mdns.stop();
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
