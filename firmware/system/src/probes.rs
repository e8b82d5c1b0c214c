//! The checks this crate makes: the data folder's disk, the store's
//! writes, the queue's oldest message, DNS, the clock (`crate::clock`), the TLS
//! certificate's expiry, and each mail service answering its greeting.

use std::sync::Arc;

use pochta_config::format_size;
use pochta_store::Store;

use crate::health::{Finding, Probe};
use crate::{Liveness, Setup};

mod certificate;
mod dns;
mod service;

pub use certificate::certificate_expiry;
pub use service::dial_address;

/// Every probe for a box set up as `setup` says.
pub(crate) fn standard(
    setup: &Setup,
    liveness: Arc<Liveness>,
    clock: &crate::clock::Clock,
) -> Vec<Arc<dyn Probe>> {
    let mut probes: Vec<Arc<dyn Probe>> = Vec::new();
    for (name, addrs) in &setup.services {
        if !addrs.is_empty() {
            probes.push(Arc::new(service::Service::new(name, addrs.clone())));
        }
    }
    probes.push(Arc::new(StoreWrites(setup.store.clone(), liveness)));
    probes.push(Arc::new(Disk {
        store: setup.store.clone(),
        warning_percent: setup.config.disk_warning_percent,
        refuse_percent: setup.config.disk_refuse_percent,
    }));
    probes.push(Arc::new(Queue(setup.store.clone())));
    probes.push(Arc::new(dns::Dns::new(&setup.dns, &setup.hostname)));
    probes.push(Arc::new(clock.probe()));
    probes.push(Arc::new(certificate::Certificate {
        file: setup.tls_cert.clone(),
        clock_trusted: clock.trusted_flag(),
    }));
    probes
}

/// The store commits a write. That the call returns at all is the
/// watchdog's proof that the store is not stuck.
struct StoreWrites(Store, Arc<Liveness>);

impl Probe for StoreWrites {
    fn id(&self) -> String {
        "store".into()
    }
    fn title(&self) -> String {
        "Mail store".into()
    }
    fn check(&self) -> Finding {
        let started = std::time::Instant::now();
        let result = self.0.heartbeat(crate::now());
        self.1.store_beat();
        match result {
            Ok(()) => Finding::ok(format!(
                "The database takes writes ({} ms)",
                started.elapsed().as_millis()
            )),
            Err(e) => Finding::failing(
                format!("The database does not take writes: {e}"),
                "Look at the disk (Disk space) and the log; restart the box if it stays",
            ),
        }
    }
}

/// Space on the data folder's disk, against the two thresholds.
struct Disk {
    store: Store,
    warning_percent: u8,
    refuse_percent: u8,
}

impl Probe for Disk {
    fn id(&self) -> String {
        "disk".into()
    }
    fn title(&self) -> String {
        "Disk space".into()
    }
    fn check(&self) -> Finding {
        let space = match self.store.disk_space() {
            Ok(s) => s,
            Err(e) => {
                return Finding::failing(
                    format!("Cannot read the data disk's free space: {e}"),
                    "Check that the data disk is still attached",
                )
            }
        };
        let used = space.used_percent();
        let reason = format!(
            "The data disk is {used} % full: {} free of {}",
            format_size(space.available),
            format_size(space.usable())
        );
        if used >= self.refuse_percent {
            Finding::failing(
                format!("{reason}; new mail is refused until space is freed"),
                "Delete old mail (empty Trash and Junk) or move the data to a bigger disk; mail resumes by itself",
            )
        } else if used >= self.warning_percent {
            Finding::warning(
                format!(
                    "{reason}; new mail will be refused at {} %",
                    self.refuse_percent
                ),
                "Delete old mail (empty Trash and Junk) or plan a bigger disk",
            )
        } else {
            Finding::ok(reason)
        }
    }
}

/// The oldest message waiting in the outbound queue.
struct Queue(Store);

/// A message older than this in the queue is worth a warning: the usual
/// retry schedule has had several tries by then.
const QUEUE_WARNING_SECS: i64 = 4 * 3600;
/// Older than this, the sender has been told of the delay; something is
/// wrong with outbound mail as a whole.
const QUEUE_FAILING_SECS: i64 = 24 * 3600;

impl Probe for Queue {
    fn id(&self) -> String {
        "queue".into()
    }
    fn title(&self) -> String {
        "Outgoing mail".into()
    }
    fn check(&self) -> Finding {
        let (oldest, count) = match self.0.queue_oldest() {
            Ok(q) => q,
            Err(e) => {
                return Finding::failing(
                    format!("Cannot read the outgoing queue: {e}"),
                    "Look at the Mail store check and the log",
                )
            }
        };
        let Some(created) = oldest else {
            return Finding::ok("Nothing waiting to be sent");
        };
        let age = (crate::now() - created).max(0);
        let reason = format!(
            "{count} message{} waiting; the oldest for {}",
            if count == 1 { "" } else { "s" },
            pochta_config::format_duration(age)
        );
        let fix = "Open the Queue page to see why delivery fails (often the other side's server, or this box's internet)";
        if age >= QUEUE_FAILING_SECS {
            Finding::failing(reason, fix)
        } else if age >= QUEUE_WARNING_SECS {
            Finding::warning(reason, fix)
        } else {
            Finding::ok(reason)
        }
    }
}
