//! The clock: an SNTP client that keeps the system clock set, and the last
//! known good time kept in the store so that a box without a battery-backed
//! clock never goes back to its image's build date after a power cut.
//!
//! Layout:
//! - `sntp`: one bounded query to one server (the `rsntp` packet);
//! - `status`: what is known and what follows from it, without I/O (the
//!   health finding, trust, poll intervals, whether to step or restore);
//! - here: the polling thread, stepping the clock, saving and restoring.
//!
//! Stepping needs root or CAP_SYS_TIME: a server that gave up root asks the
//! privileged helper (`pochta-privileged`); `clock_settime` is POSIX, so
//! this works the same on glibc and on the appliance's aarch64 musl.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pochta_maillog::MailLog;
use pochta_privileged::Helper;
use pochta_store::Store;

mod sntp;
mod status;

pub use sntp::{host_and_port, QueryError};
pub use status::{format_offset, ClockStatus, Sync};

/// The store's key for the last known good time (seconds since the epoch).
pub const LAST_GOOD_KEY: &str = "clock.last_good";
/// How often the current time is saved while pochta runs: a power cut
/// loses at most this much (writes are tiny; the health round writes more).
const SAVE_EVERY: Duration = Duration::from_secs(60);
/// A server that sent a kiss-o'-death is left alone this long.
const KISS_PAUSE: Duration = Duration::from_secs(3600);

/// The clock part: its status for the health page and the dashboard, and
/// the polling thread when time servers are configured.
pub struct Clock {
    shared: Arc<Shared>,
    thread: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

/// What the thread writes and everyone else reads.
struct Shared {
    status: Mutex<ClockStatus>,
    /// [`ClockStatus::trusted`], kept current for readers that must not
    /// lock (the admin login's TOTP check).
    trusted: Arc<AtomicBool>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, ClockStatus> {
        // Every update is a whole-field write: a panic mid-way leaves a
        // status that still reads right.
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, change: impl FnOnce(&mut ClockStatus)) {
        let mut status = self.lock();
        change(&mut status);
        self.trusted
            .store(status.trusted(crate::now()), Ordering::Release);
    }
}

/// What the polling thread needs.
struct Poller {
    shared: Arc<Shared>,
    servers: Vec<String>,
    set_clock: bool,
    store: Store,
    maillog: Arc<MailLog>,
    /// Servers that sent a kiss-o'-death, and until when they rest.
    kissed: Vec<(String, Instant)>,
    /// Sets the clock for a server that is not root.
    helper: Option<Arc<Helper>>,
}

impl Clock {
    /// Starts polling `config.ntp` (nothing to start when it is empty).
    pub fn start(
        config: &pochta_config::System,
        store: Store,
        maillog: Arc<MailLog>,
        helper: Option<Arc<Helper>>,
    ) -> Result<Clock, String> {
        let status = ClockStatus {
            servers: !config.ntp.is_empty(),
            set_clock: config.set_clock,
            ..ClockStatus::default()
        };
        let shared = Arc::new(Shared {
            trusted: Arc::new(AtomicBool::new(status.trusted(crate::now()))),
            status: Mutex::new(status),
        });
        if config.ntp.is_empty() {
            return Ok(Clock {
                shared,
                thread: None,
            });
        }
        let mut poller = Poller {
            shared: shared.clone(),
            servers: config.ntp.clone(),
            set_clock: config.set_clock,
            store,
            maillog,
            kissed: Vec::new(),
            helper,
        };
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("clock".into())
            .spawn(move || poller.run(&stopped))
            .map_err(|e| format!("cannot start the clock: {e}"))?;
        Ok(Clock {
            shared,
            thread: Some((stop, thread)),
        })
    }

    /// The clock as of now (the dashboard shows the skew from it).
    pub fn status(&self) -> ClockStatus {
        self.shared.lock().clone()
    }

    /// True while times on this box can be believed; false until the
    /// first good answer, when it is old, or when the clock is off. The
    /// admin login reads it to say "the clock may be wrong".
    pub fn trusted_flag(&self) -> Arc<AtomicBool> {
        self.shared.trusted.clone()
    }

    /// The health probe `clock`.
    pub(crate) fn probe(&self) -> ClockProbe {
        ClockProbe(self.shared.clone())
    }

    /// Stops polling; the current time is saved one last time.
    pub fn stop(mut self) {
        if let Some((stop, thread)) = self.thread.take() {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }
}

impl Poller {
    fn run(&mut self, stopped: &mpsc::Receiver<()>) {
        let mut failures = 0usize;
        loop {
            let answered = self.poll();
            failures = if answered { 0 } else { failures + 1 };
            let trusted = self.shared.trusted.load(Ordering::Acquire);
            self.save(trusted);
            let next = Instant::now() + status::next_poll(answered, failures);
            // Wake every SAVE_EVERY to save the time, until the next poll.
            loop {
                let left = next.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match stopped.recv_timeout(left.min(SAVE_EVERY)) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        self.save(self.shared.trusted.load(Ordering::Acquire))
                    }
                    _ => {
                        self.save(self.shared.trusted.load(Ordering::Acquire));
                        return;
                    }
                }
            }
        }
    }

    /// One poll: the servers in order until one answers well. True when
    /// one did.
    fn poll(&mut self) -> bool {
        let now = Instant::now();
        self.kissed.retain(|(_, until)| *until > now);
        let mut failures = Vec::new();
        for server in self.servers.clone() {
            if self.kissed.iter().any(|(s, _)| *s == server) {
                continue;
            }
            match sntp::query(&server, sntp::QUERY_TIMEOUT) {
                Ok(measured) => {
                    self.answered(&server, measured);
                    return true;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "time server query failed");
                    if e.is_kiss() {
                        self.kissed.push((server.clone(), now + KISS_PAUSE));
                    }
                    failures.push(e.to_string());
                }
            }
        }
        let why = if failures.is_empty() {
            "every time server asked to be left alone for now (kiss-o'-death)".to_owned()
        } else {
            failures.join("; ")
        };
        self.shared.update(|s| s.last_failure = Some(why));
        false
    }

    /// A good answer: step the clock if it is off and that is allowed, and
    /// record the offset left.
    fn answered(&self, server: &str, measured: sntp::Measured) {
        let mut offset = measured.offset_secs;
        let mut delay = measured.delay_secs;
        let mut step_refused = None;
        if self.set_clock && status::needs_step(offset) {
            match step_by(offset, self.helper.as_deref()) {
                Ok((old, new)) => {
                    tracing::warn!(server, old, new, offset, "clock stepped");
                    self.maillog.clock_set(server, old, new);
                    // Measure again: what is left is what the page shows.
                    match sntp::query(server, sntp::QUERY_TIMEOUT) {
                        Ok(again) => {
                            offset = again.offset_secs;
                            delay = again.delay_secs;
                        }
                        Err(_) => offset = 0.0,
                    }
                }
                Err(why) => {
                    tracing::warn!(server, offset, error = %why, "cannot set the clock");
                    step_refused = Some(why);
                }
            }
        }
        let sync = Sync {
            server: server.to_owned(),
            offset_secs: offset,
            delay_secs: delay,
            at: crate::now(),
        };
        self.shared.update(|s| {
            s.last_sync = Some(sync);
            s.last_failure = None;
            s.step_refused = step_refused;
        });
    }

    /// Saves the current time as the last good one: always when the clock
    /// is trusted (so a wrong time saved earlier is replaced), otherwise
    /// only forward (the clock has not gone back since it was restored, so
    /// it is still a lower bound of the real time).
    fn save(&self, trusted: bool) {
        let now = crate::now();
        if !trusted && saved_time(&self.store).is_some_and(|saved| saved >= now) {
            return;
        }
        if let Err(e) = self.store.set_value(LAST_GOOD_KEY, &now.to_string()) {
            tracing::warn!(error = %e, "cannot save the time");
        }
    }
}

/// The health probe `clock`: reads the status (and refreshes the trusted
/// flag: a sync grows old without any poll).
pub(crate) struct ClockProbe(Arc<Shared>);

impl crate::health::Probe for ClockProbe {
    fn id(&self) -> String {
        "clock".into()
    }
    fn title(&self) -> String {
        "Clock".into()
    }
    fn check(&self) -> crate::health::Finding {
        let now = crate::now();
        let status = self.0.lock();
        self.0.trusted.store(status.trusted(now), Ordering::Release);
        status.finding(now)
    }
}

/// At boot, before anything reads the time: if the clock is earlier than
/// the last good time saved (a box with no battery-backed clock after a
/// power cut), set it forward to that time, when `set_clock` allows. Never
/// backwards.
pub fn restore_clock(store: &Store, maillog: &MailLog, set_clock: bool, helper: Option<&Helper>) {
    // The health round's store check writes the time too (`heartbeat`,
    // every `health_interval_secs`): the later of the two loses least.
    let heartbeat = store
        .value("heartbeat")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<i64>().ok());
    let Some(saved) = saved_time(store).max(heartbeat) else {
        return;
    };
    let now = crate::now();
    let Some(target) = status::restore_target(now, saved) else {
        return;
    };
    if !set_clock {
        tracing::warn!(
            behind = target - now,
            "the clock is earlier than the last time saved; not set ([system] set_clock is off)"
        );
        return;
    }
    match set_to(Duration::from_secs(target.unsigned_abs()), helper) {
        Ok(()) => {
            tracing::warn!(
                old = now,
                new = target,
                "clock set forward to the last saved time"
            );
            maillog.clock_set("saved", now, target);
        }
        Err(why) => tracing::warn!(error = %why, "cannot set the clock to the last saved time"),
    }
}

fn saved_time(store: &Store) -> Option<i64> {
    store.value(LAST_GOOD_KEY).ok()??.parse().ok()
}

/// Steps the clock by `offset` seconds; the clock before and after.
fn step_by(offset: f64, helper: Option<&Helper>) -> Result<(i64, i64), String> {
    let now = SystemTime::now();
    let shift = Duration::try_from_secs_f64(offset.abs()).map_err(|e| e.to_string())?;
    let target = if offset >= 0.0 {
        now.checked_add(shift)
    } else {
        now.checked_sub(shift)
    }
    .ok_or("the time would be out of range")?;
    let since = target
        .duration_since(UNIX_EPOCH)
        .map_err(|_| "the time would be before 1970".to_owned())?;
    let old = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    set_to(since, helper)?;
    Ok((old, since.as_secs() as i64))
}

/// `clock_settime(CLOCK_REALTIME)` (POSIX; needs CAP_SYS_TIME): through the
/// privileged helper when there is one (the server is not root), directly
/// otherwise (a development server, which is refused unless privileged).
fn set_to(since_epoch: Duration, helper: Option<&Helper>) -> Result<(), String> {
    if let Some(helper) = helper {
        return helper.set_clock(since_epoch);
    }
    use nix::sys::time::TimeSpec;
    use nix::time::{clock_settime, ClockId};
    clock_settime(ClockId::CLOCK_REALTIME, TimeSpec::from(since_epoch))
        .map_err(|e| e.desc().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{Probe, State};

    #[test]
    fn without_servers_nothing_runs_and_the_clock_is_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let clock = Clock::start(
            &pochta_config::System::default(),
            store,
            Arc::new(MailLog::discard()),
            None,
        )
        .unwrap();
        assert!(clock.thread.is_none());
        assert!(clock.trusted_flag().load(Ordering::Acquire));
        assert_eq!(clock.probe().check().state, State::Ok);
        clock.stop();
    }

    #[test]
    fn a_silent_server_leaves_the_clock_untrusted_and_the_time_saved() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mute = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let config = pochta_config::System {
            ntp: vec![mute.local_addr().unwrap().to_string()],
            ..pochta_config::System::default()
        };
        let clock =
            Clock::start(&config, store.clone(), Arc::new(MailLog::discard()), None).unwrap();
        let probe = clock.probe();
        let deadline = Instant::now() + Duration::from_secs(10);
        while clock.status().last_failure.is_none() {
            assert!(Instant::now() < deadline, "no poll within 10 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!clock.trusted_flag().load(Ordering::Acquire));
        let finding = probe.check();
        assert_eq!(finding.state, State::Warning);
        assert!(
            finding.reason.contains("no answer from the time server"),
            "{}",
            finding.reason
        );
        clock.stop();
        let saved = saved_time(&store).unwrap();
        assert!((crate::now() - saved).abs() < 60, "{saved}");
    }

    #[test]
    fn restore_leaves_a_later_clock_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.set_value(LAST_GOOD_KEY, "1000").unwrap();
        // The clock is later than 1000: nothing is set, even when allowed
        // (a test run as root must not move this machine's clock).
        restore_clock(&store, &MailLog::discard(), true, None);
        assert!(crate::now() > 1000);
        // A saved time in the future with set_clock off: only a warning.
        let ahead = crate::now() + 86_400;
        store.set_value(LAST_GOOD_KEY, &ahead.to_string()).unwrap();
        restore_clock(&store, &MailLog::discard(), false, None);
        assert!(crate::now() < ahead);
    }
}
