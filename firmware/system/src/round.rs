//! The health round: every probe, each on its own thread with a deadline,
//! every `interval`; the result goes into [`Health`], to `run/health.json`
//! (what `pochta health` reads) and to the listeners (the alert pipeline).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::health::{Finding, Health, Probe, Report};

/// How long one probe may take before it counts as failing.
pub const PROBE_DEADLINE: Duration = Duration::from_secs(5);

/// Called after every round with the whole report, on the round's thread.
pub type Listener = Box<dyn Fn(&Report) + Send>;

/// `run/health.json` in the data folder.
pub fn health_file(data: &Path) -> PathBuf {
    data.join("run").join("health.json")
}

/// The report the running server last wrote, if any.
pub fn read_report(data: &Path) -> Option<Report> {
    let text = std::fs::read_to_string(health_file(data)).ok()?;
    serde_json::from_str(&text).ok()
}

/// A probe and whether its last run is still going.
struct Slot {
    probe: Arc<dyn Probe>,
    busy: Arc<AtomicBool>,
}

pub(crate) struct Round {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
    file: PathBuf,
    /// Probes added after the start, taken in at the next round.
    added: Arc<std::sync::Mutex<Vec<Arc<dyn Probe>>>>,
}

impl Round {
    pub(crate) fn start(
        health: Arc<Health>,
        probes: Vec<Arc<dyn Probe>>,
        listeners: Vec<Listener>,
        data: PathBuf,
        interval: Duration,
    ) -> Result<Round, String> {
        let mut slots: Vec<Slot> = probes
            .into_iter()
            .map(|probe| Slot {
                probe,
                busy: Arc::new(AtomicBool::new(false)),
            })
            .collect();
        let file = health_file(&data);
        let (stop, stopped) = mpsc::channel::<()>();
        let out = file.clone();
        let added: Arc<std::sync::Mutex<Vec<Arc<dyn Probe>>>> = Arc::default();
        let late = added.clone();
        let thread = std::thread::Builder::new()
            .name("health".into())
            .spawn(move || loop {
                let new: Vec<Arc<dyn Probe>> =
                    std::mem::take(&mut *late.lock().unwrap_or_else(|e| e.into_inner()));
                slots.extend(new.into_iter().map(|probe| Slot {
                    probe,
                    busy: Arc::new(AtomicBool::new(false)),
                }));
                run_once(&health, &slots, &listeners, interval);
                if let Err(e) = write_report(&out, &health.report()) {
                    tracing::warn!(file = %out.display(), error = %e, "cannot write the health report");
                }
                match stopped.recv_timeout(interval) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
            })
            .map_err(|e| format!("cannot start the health checks: {e}"))?;
        Ok(Round {
            stop,
            thread,
            file,
            added,
        })
    }

    /// A probe for the rounds from the next one on.
    pub(crate) fn add(&self, probe: Arc<dyn Probe>) {
        self.added
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(probe);
    }

    pub(crate) fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
        let _ = std::fs::remove_file(&self.file);
    }
}

/// One round: every probe at once, each given [`PROBE_DEADLINE`]. A probe
/// still busy from an earlier round is not started again (its thread may
/// be stuck; starting more would pile them up) and counts as failing.
fn run_once(health: &Health, slots: &[Slot], listeners: &[Listener], interval: Duration) {
    let started = Instant::now();
    let (done, results) = mpsc::channel::<(usize, Finding)>();
    let mut pending = Vec::new();
    for (i, slot) in slots.iter().enumerate() {
        if slot.busy.swap(true, Ordering::AcqRel) {
            continue;
        }
        pending.push(i);
        let probe = slot.probe.clone();
        let busy = slot.busy.clone();
        let done = done.clone();
        let spawned = std::thread::Builder::new()
            .name("probe".into())
            .spawn(move || {
                let finding = probe.check();
                busy.store(false, Ordering::Release);
                let _ = done.send((i, finding));
            });
        if spawned.is_err() {
            slot.busy.store(false, Ordering::Release);
            pending.pop();
        }
    }
    drop(done);
    let deadline = started + PROBE_DEADLINE;
    let mut findings: Vec<Option<Finding>> = vec![None; slots.len()];
    while findings.iter().filter(|f| f.is_some()).count() < pending.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match results.recv_timeout(left) {
            Ok((i, finding)) => findings[i] = Some(finding),
            Err(_) => break,
        }
    }
    let now = crate::now();
    let mut ids = Vec::with_capacity(slots.len());
    for (i, slot) in slots.iter().enumerate() {
        let finding = findings[i].take().unwrap_or_else(|| {
            Finding::failing(
                format!(
                    "The check did not finish within {} seconds",
                    PROBE_DEADLINE.as_secs()
                ),
                "If this stays, restart the box; if it comes back, report it",
            )
        });
        let id = slot.probe.id();
        if let Some(change) = health.record(&id, &slot.probe.title(), finding, now) {
            let before = change.before.map_or("new", |s| s.word());
            tracing::info!(
                check = %id,
                "health: {} {before} -> {}: {}",
                change.now.title,
                change.now.state.word(),
                change.now.reason
            );
        }
        ids.push(id);
    }
    health.retain(&ids);
    health.round_done(
        now,
        started.elapsed().as_millis() as u64,
        interval.as_secs(),
    );
    let report = health.report();
    for listener in listeners {
        listener(&report);
    }
}

/// Replaces the file whole (write, then rename), so a reader never sees half.
fn write_report(path: &Path, report: &Report) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let json = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, format!("{json}\n"))?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::State;

    struct Fixed(&'static str, Finding, Duration);

    impl Probe for Fixed {
        fn id(&self) -> String {
            self.0.into()
        }
        fn title(&self) -> String {
            self.0.to_uppercase()
        }
        fn check(&self) -> Finding {
            std::thread::sleep(self.2);
            self.1.clone()
        }
    }

    fn slot(p: Fixed) -> Slot {
        Slot {
            probe: Arc::new(p),
            busy: Arc::new(AtomicBool::new(false)),
        }
    }

    #[test]
    fn a_round_records_every_probe_and_tells_listeners() {
        let health = Health::new();
        let slots = vec![
            slot(Fixed("a", Finding::ok("fine"), Duration::ZERO)),
            slot(Fixed("b", Finding::warning("meh", "do x"), Duration::ZERO)),
        ];
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s = seen.clone();
        let listeners: Vec<Listener> = vec![Box::new(move |r: &Report| {
            s.lock().unwrap().push(r.checks.len())
        })];
        run_once(&health, &slots, &listeners, Duration::from_secs(1));
        let report = health.report();
        assert_eq!(report.checks.len(), 2);
        assert_eq!(report.worst(), State::Warning);
        assert_eq!(*seen.lock().unwrap(), vec![2]);
        let since = health.report().check("a").unwrap().since;
        run_once(&health, &slots, &listeners, Duration::from_secs(1));
        assert_eq!(*seen.lock().unwrap(), vec![2, 2]);
        assert_eq!(health.report().check("a").unwrap().since, since);
    }

    #[test]
    fn a_stuck_probe_is_failing_and_not_started_twice() {
        let health = Health::new();
        let slots = vec![slot(Fixed(
            "slow",
            Finding::ok("late"),
            PROBE_DEADLINE + Duration::from_secs(2),
        ))];
        let started = Instant::now();
        run_once(&health, &slots, &[], Duration::from_secs(1));
        assert!(started.elapsed() < PROBE_DEADLINE + Duration::from_secs(1));
        let check = health.report().check("slow").cloned().unwrap();
        assert_eq!(check.state, State::Failing);
        assert!(check.reason.contains("did not finish"), "{}", check.reason);
        // Still busy: the second round does not start it again, and says so.
        assert!(slots[0].busy.load(Ordering::Acquire));
        run_once(&health, &slots, &[], Duration::from_secs(1));
        assert_eq!(health.report().check("slow").unwrap().state, State::Failing);
    }

    #[test]
    fn the_report_file_is_what_read_report_returns() {
        let dir = tempfile::tempdir().unwrap();
        let health = Health::new();
        health.record("x", "X", Finding::ok("fine"), 7);
        health.round_done(8, 3, 1);
        write_report(&health_file(dir.path()), &health.report()).unwrap();
        assert_eq!(read_report(dir.path()), Some(health.report()));
    }
}
