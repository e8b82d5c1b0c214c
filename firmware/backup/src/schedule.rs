//! Backups as the owner set them: every destination at the daily hour,
//! the retention applied after each, a test restore every week; and what
//! each run left, kept in the store for the health check, the dashboard
//! and `pochta backup status`. One backup, verification or pruning at a
//! time per data folder (a lock file), whoever starts it.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pochta_maillog::MailLog;
use pochta_store::Store;
use serde::{Deserialize, Serialize};

use crate::stage::now;
use crate::{BackupError, BackupReport, Destination, Key, PruneReport, Settings, VerifyReport};

/// The store's name for the record of runs.
const KEY: &str = "backup.status";
/// A test restore at least this often.
pub const VERIFY_EVERY_SECS: i64 = 7 * 24 * 3600;

/// What the runs to one destination left.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DestinationStatus {
    /// The destination in words.
    pub destination: String,
    pub last_ok: Option<Done>,
    pub last_failure: Option<Failure>,
    pub last_verify: Option<Verified>,
}

/// A backup that completed, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    pub at: i64,
    pub snapshot: String,
    /// Bytes the snapshot holds, and bytes this backup added.
    pub bytes: u64,
    pub added: u64,
    pub messages: u64,
    pub duration_ms: u64,
}

/// A backup, pruning or verification that did not complete.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub at: i64,
    pub error: String,
}

/// A test restore.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verified {
    pub at: i64,
    pub snapshot: String,
    pub full: bool,
    pub ok: bool,
    pub bodies: u64,
    /// What did not match (empty when `ok`).
    pub problems: Vec<String>,
}

/// The record of runs, by destination (`folder`, `s3`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Status {
    pub destinations: BTreeMap<String, DestinationStatus>,
    /// The local date (`YYYY-MM-DD`) the schedule last started a run.
    pub last_scheduled_day: Option<String>,
}

impl Status {
    pub fn load(store: &Store) -> Result<Status, BackupError> {
        match store.value(KEY)? {
            None => Ok(Status::default()),
            Some(text) => serde_json::from_str(&text).map_err(|e| {
                BackupError::Corrupt(format!("the stored backup status cannot be read: {e}"))
            }),
        }
    }

    fn save(&self, store: &Store) -> Result<(), BackupError> {
        let text = serde_json::to_string(self)
            .map_err(|e| BackupError::Corrupt(format!("backup status: {e}")))?;
        Ok(store.set_value(KEY, &text)?)
    }

    /// Reads, changes and saves the record (under the backup lock, so no
    /// other run writes it meanwhile).
    fn update(store: &Store, change: impl FnOnce(&mut Status)) -> Result<(), BackupError> {
        let mut status = Status::load(store)?;
        change(&mut status);
        status.save(store)
    }
}

/// The one run at a time of a data folder: held while it lives.
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Takes the lock, or says that another run holds it.
    pub fn take(data: &Path) -> Result<RunLock, BackupError> {
        let dir = data.join("backup");
        std::fs::create_dir_all(&dir)?;
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))?;
        match file.try_lock() {
            Ok(()) => Ok(RunLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(BackupError::Busy(
                "another backup, verification or pruning of this box is running: try again when it has finished"
                    .into(),
            )),
            Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
        }
    }
}

/// One destination's result of a run: a report, or the error that
/// stopped it; then the retention applied after a backup that completed.
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub id: &'static str,
    pub destination: String,
    pub ok: bool,
    pub report: Option<BackupReport>,
    pub error: Option<String>,
    pub pruned: Option<PruneReport>,
    pub prune_error: Option<String>,
}

/// Backs up to every destination set, applies the retention, and records
/// each result (store, mail log). An error only when nothing could start
/// (no destination, the lock taken, no key). `writable`: the folders a
/// confined server may write (`None`: not confined, as the CLI).
pub fn back_up_everywhere(
    store: &Store,
    maillog: &MailLog,
    writable: Option<&[PathBuf]>,
) -> Result<Vec<Outcome>, BackupError> {
    let data = store.dir().to_owned();
    let settings = Settings::load(store)?;
    let destinations = settings.destinations();
    if destinations.is_empty() {
        return Err(BackupError::NotFound(
            "no backup destination is set: `pochta backup to FOLDER` or `pochta backup to-s3 ...` sets one".into(),
        ));
    }
    let _lock = RunLock::take(&data)?;
    let key = Key::load_or_create(&data)?;
    let mut outcomes = Vec::new();
    for dest in destinations {
        let id = dest.id();
        let described = dest.describe();
        let backup = match (&dest, writable) {
            (Destination::Folder(folder), Some(writable))
                if !writable.iter().any(|w| folder.starts_with(w)) =>
            {
                Err(format!(
                    "the server may not write to {}: it was chosen after the server started; \
                     restart pochta (or run `pochta backup now`)",
                    folder.display()
                ))
            }
            _ => crate::backup(store, &dest, &key).map_err(|e| e.to_string()),
        };
        let pruned = backup.as_ref().ok().map(|_| {
            crate::prune(&dest, &key, &data, settings.retention).map_err(|e| e.to_string())
        });
        match (&backup, &pruned) {
            (Ok(r), Some(Ok(_))) => {
                maillog.backup_done(&described, &r.snapshot, r.bytes_added, r.duration_ms / 1000)
            }
            (Ok(_), Some(Err(e))) => {
                maillog.backup_failed(&described, &format!("written, but pruning failed: {e}"))
            }
            (Err(e), _) => maillog.backup_failed(&described, e),
            (Ok(_), None) => {}
        }
        Status::update(store, |status| {
            let entry = status.destinations.entry(id.to_owned()).or_default();
            entry.destination = described.clone();
            match (&backup, &pruned) {
                (Ok(r), Some(Ok(_))) | (Ok(r), None) => {
                    entry.last_ok = Some(Done {
                        at: now(),
                        snapshot: r.snapshot.clone(),
                        bytes: r.bytes,
                        added: r.bytes_added,
                        messages: r.manifest.inventory.messages,
                        duration_ms: r.duration_ms,
                    })
                }
                (Ok(_), Some(Err(e))) => {
                    entry.last_failure = Some(Failure {
                        at: now(),
                        error: format!(
                            "the backup was written, but pruning old snapshots failed: {e}"
                        ),
                    })
                }
                (Err(e), _) => {
                    entry.last_failure = Some(Failure {
                        at: now(),
                        error: e.clone(),
                    })
                }
            }
        })?;
        let (pruned, prune_error) = match pruned {
            Some(Ok(p)) => (Some(p), None),
            Some(Err(e)) => (None, Some(e)),
            None => (None, None),
        };
        let (report, error) = match backup {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(e)),
        };
        outcomes.push(Outcome {
            id,
            destination: described,
            ok: error.is_none() && prune_error.is_none(),
            report,
            error,
            pruned,
            prune_error,
        });
    }
    Ok(outcomes)
}

/// One destination's test restore: a report, or why there was none.
#[derive(Debug, Serialize)]
pub struct VerifyOutcome {
    pub destination: String,
    /// The restore ran and everything matched.
    pub ok: bool,
    pub report: Option<VerifyReport>,
    pub error: Option<String>,
    /// There is no backup there yet: nothing failed, nothing was checked.
    pub nothing_yet: bool,
}

/// Test-restores the newest backup in every destination set (or only the
/// one whose id is `only`; a sample, or everything with `full`), and
/// records each result; a destination with no backup yet is reported, not
/// recorded as a failure.
pub fn verify_everywhere(
    store: &Store,
    maillog: &MailLog,
    full: bool,
    only: Option<&str>,
) -> Result<Vec<VerifyOutcome>, BackupError> {
    let data = store.dir().to_owned();
    let mut destinations = Settings::load(store)?.destinations();
    if let Some(id) = only {
        destinations.retain(|d| d.id() == id);
    }
    if destinations.is_empty() {
        return Err(BackupError::NotFound(
            "no backup destination is set: `pochta backup to FOLDER` or `pochta backup to-s3 ...` sets one".into(),
        ));
    }
    let _lock = RunLock::take(&data)?;
    let key = Key::load(&data)?.ok_or_else(|| {
        BackupError::NotFound("this box has no backup key yet: nothing was backed up".into())
    })?;
    let mut outcomes = Vec::new();
    for dest in destinations {
        let destination = dest.describe();
        let outcome = match crate::verify(store, &dest, &key, full) {
            Err(BackupError::NotFound(why)) => VerifyOutcome {
                destination,
                ok: false,
                report: None,
                error: Some(why),
                nothing_yet: true,
            },
            result => {
                let result = result.map_err(|e| e.to_string());
                record_verify(store, maillog, &dest, full, &result)?;
                let (report, error) = match result {
                    Ok(r) => (Some(r), None),
                    Err(e) => (None, Some(e)),
                };
                VerifyOutcome {
                    destination,
                    ok: report.as_ref().is_some_and(VerifyReport::ok),
                    report,
                    error,
                    nothing_yet: false,
                }
            }
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

fn record_verify(
    store: &Store,
    maillog: &MailLog,
    dest: &Destination,
    full: bool,
    result: &Result<VerifyReport, String>,
) -> Result<(), BackupError> {
    let described = dest.describe();
    let verified = match result {
        Ok(r) => Verified {
            at: now(),
            snapshot: r.snapshot.clone(),
            full,
            ok: r.ok(),
            bodies: r.bodies_checked,
            problems: r
                .repository_problems
                .iter()
                .chain(&r.problems)
                .cloned()
                .collect(),
        },
        Err(e) => Verified {
            at: now(),
            snapshot: String::new(),
            full,
            ok: false,
            bodies: 0,
            problems: vec![e.clone()],
        },
    };
    maillog.backup_verified(
        &described,
        &verified.snapshot,
        if verified.ok {
            "ok"
        } else {
            verified
                .problems
                .first()
                .map(String::as_str)
                .unwrap_or("failed")
        },
    );
    Status::update(store, |status| {
        let entry = status.destinations.entry(dest.id().to_owned()).or_default();
        entry.destination = described;
        entry.last_verify = Some(verified);
    })
}

/// The daily schedule, on a thread of its own.
pub struct Scheduler {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Scheduler {
    /// Looks every `poll` whether a run is due: the local hour is the one
    /// set and no run started today, or no backup completed for two days
    /// (the box was off at the hour). A test restore follows a run when the
    /// last one is a week old.
    pub fn start(
        store: Store,
        maillog: Arc<MailLog>,
        poll: Duration,
        writable: Option<Vec<PathBuf>>,
    ) -> Scheduler {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("backup-schedule".into())
            .spawn(move || {
                while !stopping.load(Ordering::Relaxed) {
                    if let Err(e) = tick(&store, &maillog, writable.as_deref()) {
                        tracing::warn!(error = %e, "backup schedule");
                    }
                    let mut slept = Duration::ZERO;
                    while slept < poll && !stopping.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(200));
                        slept += Duration::from_millis(200);
                    }
                }
            })
            .ok();
        Scheduler { stop, thread }
    }

    /// Stops looking. A run under way is not waited for: the process may
    /// end under it, and the next run completes the repository (what a
    /// killed backup leaves is never reported as a backup).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

fn tick(store: &Store, maillog: &MailLog, writable: Option<&[PathBuf]>) -> Result<(), BackupError> {
    let settings = Settings::load(store)?;
    if settings.destinations().is_empty() {
        return Ok(());
    }
    let status = Status::load(store)?;
    let local = chrono::Local::now();
    let today = local.format("%Y-%m-%d").to_string();
    let at_the_hour = chrono::Timelike::hour(&local) == u32::from(settings.hour);
    let newest_ok = status
        .destinations
        .values()
        .filter_map(|d| d.last_ok.as_ref().map(|o| o.at))
        .max();
    let overdue = newest_ok.is_some_and(|at| now() - at > 2 * 24 * 3600);
    if status.last_scheduled_day.as_deref() == Some(today.as_str()) || !(at_the_hour || overdue) {
        return Ok(());
    }
    // Marked before the run: a run that kills the process is not started
    // again in a loop; the health check reports the missing backup.
    Status::update(store, |s| s.last_scheduled_day = Some(today))?;
    tracing::info!("scheduled backup starting");
    match back_up_everywhere(store, maillog, writable) {
        Ok(outcomes) => {
            for o in &outcomes {
                match (&o.report, &o.error) {
                    (Some(r), _) => {
                        tracing::info!(destination = %o.destination, snapshot = %r.snapshot, "backup done")
                    }
                    (None, e) => {
                        tracing::error!(destination = %o.destination, error = ?e, "backup failed")
                    }
                }
            }
        }
        Err(BackupError::Busy(_)) => return Ok(()),
        Err(e) => return Err(e),
    }
    let status = Status::load(store)?;
    let verify_due = status.destinations.values().any(|d| {
        d.last_ok.is_some()
            && d.last_verify
                .as_ref()
                .is_none_or(|v| now() - v.at >= VERIFY_EVERY_SECS)
    });
    if verify_due {
        tracing::info!("weekly test restore starting");
        match verify_everywhere(store, maillog, false, None) {
            Ok(_) | Err(BackupError::Busy(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
