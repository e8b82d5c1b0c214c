//! The backups and test restores started on the page: each on a thread of
//! its own (they take minutes; a request thread answers at once), one at a
//! time from the page, and how the last one ended, for the page to show.
//! `pochta-backup`'s lock keeps them apart from the schedule's and the
//! CLI's runs.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use pochta_backup::{BackupError, Outcome, Settings, VerifyOutcome};
use serde::Serialize;
use serde_json::json;

use crate::dashboard::now;
use crate::http::Reply;
use crate::State;

use super::failed;

/// How long a request waits for the run it started to end at once (another
/// run holds the lock): that refusal is then its reply, not a line on the
/// page later. A small box's whole backup may end within it too.
const EARLY_END: Duration = Duration::from_millis(300);

/// What a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RunKind {
    /// A backup to every destination, then the retention.
    Backup,
    /// A test restore of the newest backup in every destination.
    Verify,
}

impl RunKind {
    /// The run in words.
    pub(crate) fn noun(self) -> &'static str {
        match self {
            RunKind::Backup => "backup",
            RunKind::Verify => "test restore",
        }
    }
}

/// A run the page started that has not ended.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Running {
    #[serde(skip)]
    id: u64,
    pub kind: RunKind,
    pub started_at: i64,
}

/// How a run the page started ended.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Ended {
    #[serde(skip)]
    id: u64,
    pub kind: RunKind,
    pub started_at: i64,
    pub ended_at: i64,
    /// It ran, and every destination's part of it went well.
    pub ok: bool,
    /// Nothing ran: another run held the lock, or there was nothing to do.
    pub refused: bool,
    /// What went wrong, one sentence-to-be per problem (none when `ok`).
    pub problems: Vec<String>,
}

/// The page's runs: the one under way, and how the last one ended. Kept in
/// memory: the record of runs in the store says the rest.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Runs {
    pub running: Option<Running>,
    pub last: Option<Ended>,
    #[serde(skip)]
    next_id: u64,
}

/// [`Runs`] shared with the threads that do the runs.
#[derive(Default)]
pub(crate) struct PageRuns {
    runs: Mutex<Runs>,
    ended: Condvar,
}

impl PageRuns {
    fn lock(&self) -> MutexGuard<'_, Runs> {
        // The fields are replaced whole under the lock: a panic cannot
        // leave them half-changed.
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the page's runs are doing now.
    pub(crate) fn now(&self) -> Runs {
        self.lock().clone()
    }

    /// Marks a run as under way; `Err` is the run already under way.
    fn begin(&self, kind: RunKind) -> Result<(u64, Option<Ended>), Running> {
        let mut runs = self.lock();
        if let Some(r) = &runs.running {
            return Err(r.clone());
        }
        runs.next_id += 1;
        let id = runs.next_id;
        runs.running = Some(Running {
            id,
            kind,
            started_at: now(),
        });
        Ok((id, runs.last.clone()))
    }

    fn end(&self, ended: Ended) {
        let mut runs = self.lock();
        if runs.running.as_ref().is_some_and(|r| r.id == ended.id) {
            runs.running = None;
        }
        runs.last = Some(ended);
        self.ended.notify_all();
    }

    /// How run `id` ended, when it ends within `wait`.
    fn wait_for(&self, id: u64, wait: Duration) -> Option<Ended> {
        let runs = self.lock();
        let (runs, _) = self
            .ended
            .wait_timeout_while(runs, wait, |r| {
                r.running.as_ref().is_some_and(|r| r.id == id)
            })
            .unwrap_or_else(|e| e.into_inner());
        runs.last.clone().filter(|l| l.id == id)
    }

    /// Forgets run `id`'s refusal (the request that started it answers
    /// with it), putting back the run that ended before it.
    fn forget(&self, id: u64, before: Option<Ended>) {
        let mut runs = self.lock();
        if runs.last.as_ref().is_some_and(|l| l.id == id) {
            runs.last = before;
        }
    }
}

/// Starts a run on a thread of its own. The reply is 202 while it runs,
/// its end when it ended at once, 409 when it could not start.
pub(super) fn start(state: &State, kind: RunKind, full: bool) -> Reply {
    match Settings::load(&state.ctx.store) {
        Ok(s) if s.destinations().is_empty() => {
            return Reply::error(
                409,
                "no backup is set up: choose a folder for backups first",
            )
        }
        Ok(_) => {}
        Err(e) => return failed(e),
    }
    let (id, before) = match state.backups.begin(kind) {
        Ok(begun) => begun,
        Err(running) => {
            return Reply::error(
                409,
                format!(
                    "a {} started on this page is running: wait until it has finished",
                    running.kind.noun()
                ),
            )
        }
    };
    let runs = state.backups.clone();
    let store = state.ctx.store.clone();
    let maillog = state.ctx.maillog.clone();
    let writable = state.ctx.backup_writable.clone();
    let started_at = now();
    let spawned = std::thread::Builder::new()
        .name(format!("admin-{}", kind.noun().replace(' ', "-")))
        .spawn(move || {
            let work = std::panic::AssertUnwindSafe(|| match kind {
                RunKind::Backup => backed_up(pochta_backup::back_up_everywhere(
                    &store,
                    &maillog,
                    writable.as_deref(),
                )),
                RunKind::Verify => verified(pochta_backup::verify_everywhere(
                    &store, &maillog, full, None,
                )),
            });
            let (ok, refused, problems) = std::panic::catch_unwind(work).unwrap_or_else(|_| {
                (
                    false,
                    false,
                    vec!["the run stopped unexpectedly (see the server's log)".to_owned()],
                )
            });
            if !ok {
                tracing::warn!(
                    kind = kind.noun(),
                    ?problems,
                    "a run from the admin page did not go well"
                );
            }
            runs.end(Ended {
                id,
                kind,
                started_at,
                ended_at: now(),
                ok,
                refused,
                problems,
            });
        });
    if let Err(e) = spawned {
        state.backups.end(Ended {
            id,
            kind,
            started_at,
            ended_at: now(),
            ok: false,
            refused: true,
            problems: vec![format!("cannot start a thread: {e}")],
        });
        state.backups.forget(id, before);
        return Reply::error(500, format!("cannot start the {}: {e}", kind.noun()));
    }
    tracing::info!(kind = kind.noun(), full, "started on the admin page");
    match state.backups.wait_for(id, EARLY_END) {
        Some(ended) if ended.refused => {
            state.backups.forget(id, before);
            Reply::error(409, ended.problems.join("; "))
        }
        Some(ended) => Reply::json(200, &json!({ "ended": ended })),
        None => Reply::json(202, &json!({ "running": state.backups.now().running })),
    }
}

/// (ok, refused, problems) of a backup run.
fn backed_up(result: Result<Vec<Outcome>, BackupError>) -> (bool, bool, Vec<String>) {
    match result {
        Ok(outcomes) => {
            let problems: Vec<String> = outcomes
                .iter()
                .filter(|o| !o.ok)
                .map(|o| {
                    let why = o
                        .error
                        .as_deref()
                        .or(o.prune_error.as_deref())
                        .unwrap_or("it did not complete");
                    format!("the backup to {} failed: {why}", o.destination)
                })
                .collect();
            (problems.is_empty(), false, problems)
        }
        Err(e) => refusal(e),
    }
}

/// (ok, refused, problems) of a test restore.
fn verified(result: Result<Vec<VerifyOutcome>, BackupError>) -> (bool, bool, Vec<String>) {
    match result {
        Ok(outcomes) => {
            let mut problems = Vec::new();
            for o in &outcomes {
                match &o.error {
                    // "no backup in the folder /x yet" names it already.
                    Some(e) if o.nothing_yet => problems.push(e.clone()),
                    Some(e) => problems.push(format!("{}: {e}", o.destination)),
                    None => {}
                }
                if let Some(r) = &o.report {
                    problems.extend(
                        r.repository_problems
                            .iter()
                            .chain(&r.problems)
                            .map(|p| format!("{}: {p}", o.destination)),
                    );
                }
            }
            let nothing = outcomes.iter().all(|o| o.nothing_yet);
            (problems.is_empty() && !nothing, nothing, problems)
        }
        Err(e) => refusal(e),
    }
}

/// A run that stopped before any destination's part: refused when another
/// run held the lock or there was nothing to do.
fn refusal(e: BackupError) -> (bool, bool, Vec<String>) {
    let refused = matches!(e, BackupError::Busy(_) | BackupError::NotFound(_));
    (false, refused, vec![e.to_string()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_one_at_a_time_and_a_refusal_is_forgotten() {
        let runs = PageRuns::default();
        let (id, before) = runs.begin(RunKind::Backup).unwrap();
        assert!(before.is_none());
        assert_eq!(
            runs.begin(RunKind::Verify).unwrap_err().kind,
            RunKind::Backup
        );
        assert!(runs.wait_for(id, Duration::from_millis(10)).is_none());
        let ended = |id: u64, refused: bool| Ended {
            id,
            kind: RunKind::Backup,
            started_at: 1,
            ended_at: 2,
            ok: !refused,
            refused,
            problems: Vec::new(),
        };
        runs.end(ended(id, false));
        assert!(runs.wait_for(id, Duration::from_millis(10)).is_some());
        assert!(runs.now().running.is_none());
        let (second, before) = runs.begin(RunKind::Verify).unwrap();
        runs.end(ended(second, true));
        runs.forget(second, before);
        assert_eq!(runs.now().last.map(|l| l.id), Some(id));
    }
}
