//! One health model for the whole box: named checks, each ok, warning or
//! failing since a moment, with a one-line reason and a one-line fix.
//!
//! A [`Probe`] is one cheap, time-bounded check; the round
//! (`crate::round`) runs every probe and hands each [`Finding`] to
//! [`Health::record`], which keeps the moment a state began and tells the
//! caller about changes (the alert pipeline listens to those). Later areas
//! (RAID, backups, updates) plug in by adding probes.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// How a check stands, best first (the order compares: `Failing` is worst).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Nothing to do.
    Ok,
    /// Works, but needs attention soon (a disk filling, a clock not yet set).
    Warning,
    /// Something people notice is broken now.
    Failing,
}

impl State {
    /// The word people read.
    pub fn word(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Warning => "warning",
            State::Failing => "failing",
        }
    }
}

/// What one probe found, in words an office manager understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The verdict.
    pub state: State,
    /// One line: what is the case ("Disk 83 % full: 1.2 GB free").
    pub reason: String,
    /// One line: what to do; empty when there is nothing to do.
    pub fix: String,
}

impl Finding {
    /// All well, with what was seen.
    pub fn ok(reason: impl Into<String>) -> Finding {
        Finding {
            state: State::Ok,
            reason: reason.into(),
            fix: String::new(),
        }
    }

    /// Needs attention soon.
    pub fn warning(reason: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            state: State::Warning,
            reason: reason.into(),
            fix: fix.into(),
        }
    }

    /// Broken now.
    pub fn failing(reason: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            state: State::Failing,
            reason: reason.into(),
            fix: fix.into(),
        }
    }
}

/// One cheap, bounded check. `check` blocks (it runs on the round's own
/// thread) and must return within a few seconds whatever happens: a probe
/// that waits on the network sets its own timeout.
pub trait Probe: Send + Sync {
    /// Stable identifier: `disk`, `clock`, `service.smtp`, … (JSON, alerts).
    fn id(&self) -> String;
    /// What people read: "Disk space", "SMTP (port 25)".
    fn title(&self) -> String;
    /// Looks, and says.
    fn check(&self) -> Finding;
}

/// One check as the health page, `pochta health` and `/api/health` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Stable identifier.
    pub id: String,
    /// What people read.
    pub title: String,
    /// How it stands.
    pub state: State,
    /// When it came to stand so (seconds since the epoch).
    pub since: i64,
    /// What is the case.
    pub reason: String,
    /// What to do; empty when nothing.
    pub fix: String,
}

/// Every check, as of one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// When the last round ended (seconds since the epoch); 0 before the first.
    pub checked_at: i64,
    /// How long the last round took, in milliseconds.
    pub round_ms: u64,
    /// Seconds between rounds: a report older than a few of these is stale.
    pub interval_secs: u64,
    /// In a stable order: the order probes were first recorded.
    pub checks: Vec<Check>,
}

impl Report {
    /// The worst state of any check (`Ok` when there are none).
    pub fn worst(&self) -> State {
        self.checks
            .iter()
            .map(|c| c.state)
            .max()
            .unwrap_or(State::Ok)
    }

    /// A check by its identifier.
    pub fn check(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }
}

/// A check that changed state in [`Health::record`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The state before; `None` for a check seen the first time.
    pub before: Option<State>,
    /// The check as it is now.
    pub now: Check,
}

/// The box's health: the latest state of every check. Shared by the round
/// (which writes), the admin page and the watchdog (which read).
#[derive(Debug, Default)]
pub struct Health {
    report: Mutex<Report>,
}

impl Health {
    /// No checks yet.
    pub fn new() -> Health {
        Health::default()
    }

    /// Takes a finding for check `id` at time `now`. The check's `since`
    /// moves only when its state changes; a change is returned.
    pub fn record(&self, id: &str, title: &str, finding: Finding, now: i64) -> Option<Change> {
        let mut report = self.lock();
        let Finding { state, reason, fix } = finding;
        match report.checks.iter_mut().find(|c| c.id == id) {
            Some(check) => {
                let before = check.state;
                check.title = title.to_owned();
                check.reason = reason;
                check.fix = fix;
                if before == state {
                    return None;
                }
                check.state = state;
                check.since = now;
                Some(Change {
                    before: Some(before),
                    now: check.clone(),
                })
            }
            None => {
                let check = Check {
                    id: id.to_owned(),
                    title: title.to_owned(),
                    state,
                    since: now,
                    reason,
                    fix,
                };
                report.checks.push(check.clone());
                Some(Change {
                    before: None,
                    now: check,
                })
            }
        }
    }

    /// Forgets checks that no probe reports any more (a service turned off).
    pub fn retain(&self, ids: &[String]) {
        self.lock().checks.retain(|c| ids.contains(&c.id));
    }

    /// Marks the end of a round.
    pub fn round_done(&self, at: i64, took_ms: u64, interval_secs: u64) {
        let mut report = self.lock();
        report.checked_at = at;
        report.round_ms = took_ms;
        report.interval_secs = interval_secs;
    }

    /// A copy of the current state.
    pub fn report(&self) -> Report {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Report> {
        // A panic while holding the lock leaves a report that is still
        // whole (every update above is a plain field write): go on with it.
        self.report.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_moves_only_when_the_state_changes() {
        let h = Health::new();
        let first = h.record("disk", "Disk space", Finding::ok("10 % full"), 100);
        assert_eq!(first.unwrap().before, None);
        assert_eq!(
            h.record("disk", "Disk space", Finding::ok("11 % full"), 200),
            None
        );
        let r = h.report();
        assert_eq!(r.check("disk").unwrap().since, 100);
        assert_eq!(r.check("disk").unwrap().reason, "11 % full");
        let change = h
            .record(
                "disk",
                "Disk space",
                Finding::warning("85 % full", "Delete old mail"),
                300,
            )
            .unwrap();
        assert_eq!(change.before, Some(State::Ok));
        assert_eq!(change.now.since, 300);
        assert_eq!(h.report().worst(), State::Warning);
    }

    #[test]
    fn worst_orders_failing_above_warning() {
        let h = Health::new();
        assert_eq!(h.report().worst(), State::Ok);
        h.record("a", "A", Finding::failing("down", "start it"), 1);
        h.record("b", "B", Finding::warning("slow", "wait"), 1);
        assert_eq!(h.report().worst(), State::Failing);
        h.retain(&["b".to_owned()]);
        assert_eq!(h.report().worst(), State::Warning);
        assert_eq!(h.report().checks.len(), 1);
    }

    #[test]
    fn report_round_trips_through_json() {
        let h = Health::new();
        h.record(
            "clock",
            "Clock",
            Finding::warning("not set", "check NTP"),
            5,
        );
        h.round_done(6, 12, 15);
        let json = serde_json::to_string(&h.report()).unwrap();
        assert!(json.contains(r#""state":"warning""#), "{json}");
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, h.report());
    }
}
