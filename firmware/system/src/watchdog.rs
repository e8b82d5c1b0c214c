//! The hardware watchdog (Linux watchdog API, `linux/watchdog.h`): opened at
//! start, its timeout set and read back, fed by a thread of its own only
//! while Pochta is alive — the async runtime ticks and the store's writes
//! return. A frozen or hung process stops the feeding and the watchdog
//! resets the box. A clean stop writes the magic close (`V`); a crash
//! never does, so the reset still comes.
//!
//! After a reset the driver's boot status says `WDIOF_CARDRESET`; the start
//! after one records "the last restart was forced by the watchdog".

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::health::{Finding, Probe};

// linux/watchdog.h
nix::ioctl_read!(wdioc_getbootstatus, b'W', 2, nix::libc::c_int);
nix::ioctl_read!(wdioc_keepalive, b'W', 5, nix::libc::c_int);
nix::ioctl_readwrite!(wdioc_settimeout, b'W', 6, nix::libc::c_int);
nix::ioctl_read!(wdioc_gettimeout, b'W', 7, nix::libc::c_int);

/// "Card previously reset the CPU" in the boot status.
const WDIOF_CARDRESET: nix::libc::c_int = 0x0020;

/// The async runtime must have ticked this recently for a feed.
const RUNTIME_STALE: Duration = Duration::from_secs(10);

/// What keeps the feeding going: beats from the parts that must be alive.
#[derive(Debug)]
pub struct Liveness {
    start: Instant,
    runtime_ms: AtomicU64,
    store_ms: AtomicU64,
    /// A store call that has not returned for this long means the store is stuck.
    store_stale: Duration,
}

impl Liveness {
    /// Both beats as of now.
    pub fn new(store_stale: Duration) -> Liveness {
        Liveness {
            start: Instant::now(),
            runtime_ms: AtomicU64::new(0),
            store_ms: AtomicU64::new(0),
            store_stale,
        }
    }

    fn elapsed_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// The async runtime answered (a task ran).
    pub fn runtime_beat(&self) {
        self.runtime_ms.store(self.elapsed_ms(), Ordering::Relaxed);
    }

    /// A store call returned (with or without an error: a full disk is an
    /// alert, not a reason to reset; a call that never returns is).
    pub fn store_beat(&self) {
        self.store_ms.store(self.elapsed_ms(), Ordering::Relaxed);
    }

    /// Why the watchdog must not be fed now, if it must not.
    pub fn stuck(&self) -> Option<String> {
        let now = self.elapsed_ms();
        let runtime = Duration::from_millis(now - self.runtime_ms.load(Ordering::Relaxed).min(now));
        let store = Duration::from_millis(now - self.store_ms.load(Ordering::Relaxed).min(now));
        if runtime > RUNTIME_STALE {
            Some(format!(
                "the services' runtime has not answered for {} s",
                runtime.as_secs()
            ))
        } else if store > self.store_stale {
            Some(format!(
                "the mail store has not answered for {} s",
                store.as_secs()
            ))
        } else {
            None
        }
    }
}

/// What the watchdog check shows.
#[derive(Debug, Clone, Default)]
struct Status {
    /// The device, when one is configured.
    device: Option<PathBuf>,
    /// Timeout the driver took, in seconds.
    timeout_secs: Option<u32>,
    /// Why it could not be armed.
    error: Option<String>,
    /// The start before this one was a watchdog reset, seen at this time.
    forced_reset_at: Option<i64>,
    /// Feeding stopped: why (the box resets soon).
    not_feeding: Option<String>,
}

/// The watchdog part: the feeding thread and what the check shows.
pub struct Watchdog {
    status: Arc<Mutex<Status>>,
    feeder: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

/// An open watchdog device.
struct Device {
    file: File,
    path: PathBuf,
}

impl Device {
    /// Opens the device (this arms it), sets the timeout and reads back what
    /// the driver took (some clamp it, older Raspberry Pi kernels took it
    /// modulo 16), and reads the boot status.
    fn open(path: &Path, timeout_secs: u32) -> Result<(Device, u32, bool), String> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        // Open means armed: from here every way out either keeps the
        // device (and feeds it) or closes it with the magic close.
        let device = Device {
            file,
            path: path.to_owned(),
        };
        let fd = device.file.as_raw_fd();
        let mut boot: nix::libc::c_int = 0;
        // SAFETY: the fd is an open watchdog device and the pointer is to a
        // live c_int, as WDIOC_GETBOOTSTATUS expects.
        let forced =
            unsafe { wdioc_getbootstatus(fd, &mut boot) }.is_ok() && boot & WDIOF_CARDRESET != 0;
        let mut want = timeout_secs as nix::libc::c_int;
        // SAFETY: as above; the driver writes the timeout it took back.
        if let Err(e) = unsafe { wdioc_settimeout(fd, &mut want) } {
            tracing::warn!(device = %path.display(), error = %e, "the watchdog's timeout cannot be set; using the driver's");
        }
        let mut took: nix::libc::c_int = 0;
        // SAFETY: as above.
        let read = unsafe { wdioc_gettimeout(fd, &mut took) };
        match read {
            Ok(_) if took > 0 => Ok((device, took as u32, forced)),
            Ok(_) => {
                device.close_cleanly();
                Err(format!("{} reports a timeout of {took} s", path.display()))
            }
            Err(e) => {
                device.close_cleanly();
                Err(format!(
                    "cannot read the timeout of {} (is it a watchdog?): {e}",
                    path.display()
                ))
            }
        }
    }

    fn feed(&self) -> nix::Result<()> {
        let mut dummy: nix::libc::c_int = 0;
        // SAFETY: an open watchdog fd; WDIOC_KEEPALIVE ignores its argument.
        unsafe { wdioc_keepalive(self.file.as_raw_fd(), &mut dummy) }.map(|_| ())
    }

    /// The magic close: the driver stops the timer when the file closes.
    fn close_cleanly(mut self) {
        if let Err(e) = self.file.write_all(b"V") {
            tracing::warn!(device = %self.path.display(), error = %e, "cannot disarm the watchdog; the box may reset");
        }
    }
}

/// A watchdog device opened (and so armed) while `pochta serve` is still
/// root, before the services run. [`Armed::feed_until_started`] keeps it
/// fed meanwhile (opening the store may migrate it, which can outlast the
/// timeout); [`Watchdog::start`] takes it over. Dropped before that (a
/// start that failed), it is disarmed with the magic close.
pub struct Armed {
    path: PathBuf,
    asked_secs: u32,
    opened: Option<Result<(Device, u32, bool), String>>,
    /// The start-up feeder: its stop, and the thread giving the device back.
    interim: Option<Interim>,
}

struct Interim {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<Device>,
    took: u32,
    forced: bool,
}

impl Armed {
    /// Opens `path` and sets its timeout; an error is kept for the health
    /// check. Starts no thread (the server is not yet confined).
    pub fn open(path: &Path, timeout_secs: u32) -> Armed {
        Armed {
            path: path.to_owned(),
            asked_secs: timeout_secs,
            opened: Some(Device::open(path, timeout_secs)),
            interim: None,
        }
    }

    /// The device.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Feeds the device from a thread of its own until [`Watchdog::start`]
    /// takes it over. A start that hangs is not caught meanwhile, as it was
    /// not before the device was opened this early.
    pub fn feed_until_started(&mut self) {
        let Some(Ok((device, took, forced))) = self.opened.take() else {
            return;
        };
        let every = feed_every(took);
        let (stop, stopped) = mpsc::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("watchdog-start".into())
            .spawn(move || loop {
                if let Err(e) = device.feed() {
                    tracing::error!(error = %e, "cannot feed the watchdog");
                }
                if !matches!(
                    stopped.recv_timeout(every),
                    Err(mpsc::RecvTimeoutError::Timeout)
                ) {
                    return device;
                }
            });
        match spawned {
            Ok(thread) => {
                self.interim = Some(Interim {
                    stop,
                    thread,
                    took,
                    forced,
                })
            }
            Err(e) => {
                // The device went with the closure: it closes without the
                // magic close, and the box resets; say why.
                tracing::error!(error = %e, "cannot start feeding the watchdog");
            }
        }
    }

    /// The device, back from the start-up feeder if it ran.
    fn take(&mut self) -> Option<Result<(Device, u32, bool), String>> {
        if let Some(i) = self.interim.take() {
            let _ = i.stop.send(());
            return Some(
                i.thread
                    .join()
                    .map(|device| (device, i.took, i.forced))
                    .map_err(|_| "the watchdog's start-up feeder panicked".to_owned()),
            );
        }
        self.opened.take()
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        if let Some(Ok((device, _, _))) = self.take() {
            device.close_cleanly();
        }
    }
}

/// Three feeds per timeout, so one late wake-up does not reset.
fn feed_every(took: u32) -> Duration {
    Duration::from_millis(u64::from(took) * 1000 / 3).max(Duration::from_millis(500))
}

impl Watchdog {
    /// No watchdog configured.
    pub fn off() -> Watchdog {
        Watchdog {
            status: Arc::default(),
            feeder: None,
        }
    }

    /// Starts feeding a watchdog [`Armed::open`] opened, while `liveness`
    /// says Pochta is alive. Returns the watchdog part and whether the last
    /// restart was forced by the watchdog. A device that could not be
    /// opened is a health warning, not a failed start: mail goes on.
    pub fn start(mut armed: Armed, liveness: Arc<Liveness>) -> (Watchdog, bool) {
        let path = armed.path.clone();
        let timeout_secs = armed.asked_secs;
        let status = Arc::new(Mutex::new(Status {
            device: Some(path.clone()),
            ..Status::default()
        }));
        let opened = armed
            .take()
            .unwrap_or_else(|| Err("the watchdog was already started".into()));
        let (device, took, forced) = match opened {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "the hardware watchdog is NOT armed");
                lock(&status).error = Some(e);
                return (
                    Watchdog {
                        status,
                        feeder: None,
                    },
                    false,
                );
            }
        };
        let path = path.as_path();
        if took != timeout_secs {
            tracing::warn!(device = %path.display(), asked = timeout_secs, took, "the watchdog took another timeout");
        }
        tracing::info!(device = %path.display(), timeout_secs = took, "hardware watchdog armed");
        {
            let mut s = lock(&status);
            s.timeout_secs = Some(took);
            if forced {
                s.forced_reset_at = Some(crate::now());
            }
        }
        let every = feed_every(took);
        let (stop, stopped) = mpsc::channel::<()>();
        let feeding = status.clone();
        let thread = std::thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || feed_loop(device, every, &liveness, &feeding, &stopped))
            .expect("a thread for the watchdog");
        (
            Watchdog {
                status,
                feeder: Some((stop, thread)),
            },
            forced,
        )
    }

    /// The check for the health page.
    pub fn probe(&self) -> WatchdogProbe {
        WatchdogProbe(self.status.clone())
    }

    /// A clean stop: feeding ends with the magic close.
    pub fn stop(self) {
        if let Some((stop, thread)) = self.feeder {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }
}

fn feed_loop(
    device: Device,
    every: Duration,
    liveness: &Liveness,
    status: &Mutex<Status>,
    stopped: &mpsc::Receiver<()>,
) {
    let fed_stopped = AtomicBool::new(false);
    loop {
        match liveness.stuck() {
            None => {
                if let Err(e) = device.feed() {
                    tracing::error!(error = %e, "cannot feed the watchdog");
                }
                if fed_stopped.swap(false, Ordering::Relaxed) {
                    tracing::warn!("feeding the watchdog again");
                    lock(status).not_feeding = None;
                }
            }
            Some(why) => {
                if !fed_stopped.swap(true, Ordering::Relaxed) {
                    // The console is what a person at the box sees.
                    tracing::error!(
                        "not feeding the watchdog: {why}; the box resets unless this clears"
                    );
                    lock(status).not_feeding = Some(why);
                }
            }
        }
        match stopped.recv_timeout(every) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Stop asked (or the sender dropped at a clean stop).
            _ => {
                device.close_cleanly();
                tracing::info!("hardware watchdog disarmed (clean stop)");
                return;
            }
        }
    }
}

fn lock(status: &Mutex<Status>) -> std::sync::MutexGuard<'_, Status> {
    status.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long after a watchdog reset the check keeps saying so.
const FORCED_RESET_SHOWN_SECS: i64 = 24 * 3600;

/// The watchdog's health check.
pub struct WatchdogProbe(Arc<Mutex<Status>>);

impl Probe for WatchdogProbe {
    fn id(&self) -> String {
        "watchdog".into()
    }
    fn title(&self) -> String {
        "Watchdog".into()
    }
    fn check(&self) -> Finding {
        let s = lock(&self.0).clone();
        let Some(device) = s.device else {
            return Finding::ok("Off: no watchdog device is configured ([system] watchdog)");
        };
        if let Some(e) = s.error {
            return Finding::warning(
                format!("Not armed: {e}; a hang would need someone to unplug the box"),
                "Check that the watchdog driver is loaded (bcm2835_wdt on a Raspberry Pi) and that nothing else holds the device",
            );
        }
        if let Some(why) = s.not_feeding {
            return Finding::failing(
                format!("Not fed: {why}; the box will restart by itself"),
                "Wait for the restart; if it keeps happening, report it with the mail log",
            );
        }
        let armed = format!(
            "Armed on {}: the box restarts if Pochta hangs for {} s",
            device.display(),
            s.timeout_secs.unwrap_or(0)
        );
        match s.forced_reset_at {
            Some(at) if crate::now() - at < FORCED_RESET_SHOWN_SECS => Finding::warning(
                format!("The last restart was forced by the watchdog: Pochta had stopped answering. {armed}"),
                "Nothing to do if it does not happen again; if it does, report it with the mail log",
            ),
            _ => Finding::ok(armed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::State;

    #[test]
    fn liveness_says_what_is_stuck() {
        let l = Liveness::new(Duration::from_millis(50));
        l.runtime_beat();
        l.store_beat();
        assert_eq!(l.stuck(), None);
        std::thread::sleep(Duration::from_millis(80));
        l.runtime_beat();
        let why = l.stuck().unwrap();
        assert!(why.contains("mail store"), "{why}");
        l.store_beat();
        assert_eq!(l.stuck(), None);
    }

    #[test]
    fn a_missing_device_is_a_warning_not_a_failed_start() {
        let liveness = Arc::new(Liveness::new(Duration::from_secs(60)));
        let (wd, forced) =
            Watchdog::start(Armed::open(Path::new("/no/such/watchdog"), 15), liveness);
        assert!(!forced);
        let f = wd.probe().check();
        assert_eq!(f.state, State::Warning);
        assert!(f.reason.contains("/no/such/watchdog"), "{}", f.reason);
        wd.stop();
        assert_eq!(Watchdog::off().probe().check().state, State::Ok);
    }

    #[test]
    fn a_device_that_is_not_a_watchdog_is_refused() {
        // A regular file takes the write but not the ioctls.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("watchdog");
        std::fs::write(&path, "").unwrap();
        let liveness = Arc::new(Liveness::new(Duration::from_secs(60)));
        let (wd, _) = Watchdog::start(Armed::open(&path, 15), liveness);
        let f = wd.probe().check();
        assert_eq!(f.state, State::Warning, "{f:?}");
        assert!(f.reason.contains("timeout"), "{}", f.reason);
    }
}
